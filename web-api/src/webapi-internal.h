/* SPDX-License-Identifier: Apache-2.0 */
#ifndef WEBAPI_INTERNAL_H
#define WEBAPI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "fleetota/err.h"
#include "fleetota/webapi.h"

/* ---- roles and tokens (token.c) --------------------------------------- */

enum wa_role {
	WA_ROLE_NONE = 0,
	WA_ROLE_VIEWER = 1,
	WA_ROLE_OPERATOR = 2,
	WA_ROLE_ADMIN = 3,
};

/* "viewer" ... ; NULL for WA_ROLE_NONE. */
const char *wa_role_name(enum wa_role role);
/* WA_ROLE_NONE for anything that is not a role name. */
enum wa_role wa_role_from_name(const char *name);

/* A fresh token (WEBAPI_TOKEN_CHARS characters + NUL). */
enum ota_err wa_token_generate(char out[WEBAPI_TOKEN_CHARS + 1]);

/*
 * Extracts the token of an Authorization header value ("Bearer TOKEN")
 * and checks its shape. OTA_OK and its lowercase hex SHA-256 in hex_out;
 * OTA_ERR_FORMAT for anything else (the caller answers 401).
 */
enum ota_err wa_token_hash_header(const char *header, char hex_out[65]);

/* Lowercase hex SHA-256 of a token. */
enum ota_err wa_token_hash(const char *token, char hex_out[65]);

/* Lowercase hex of len bytes into out (2 * len + 1 bytes). */
void wa_hex(const uint8_t *data, size_t len, char *out);

/* ---- identifiers and query values (validate.c) ------------------------ */

/* Artifact, device, group ids: ^[A-Za-z0-9][A-Za-z0-9._-]{0,max-1}$. */
bool wa_id_valid(const char *s, size_t max);
/* Token names: ^[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,63}$. */
bool wa_name_valid(const char *s);
/* Tags: ^[A-Za-z0-9][A-Za-z0-9._:=/-]{0,63}$. */
bool wa_tag_valid(const char *s);
/* Free text for filters (model, version, ...): 1..128 printable bytes. */
bool wa_text_valid(const char *s);
/* Decimal integer in [min, max]. */
bool wa_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

#define WA_MAX_TAGS 32u
#define WA_MAX_GROUP_MEMBERS 1000u

/* ---- dynamic group filters (filter.c) --------------------------------- */

/* Most conditions in one filter and most values of one "in" list. */
#define WA_FILTER_MAX_CONDITIONS 16u
#define WA_FILTER_MAX_IN_VALUES 64u
#define WA_FILTER_MAX_DEPTH 4u
/* Room for a compiled WHERE clause. */
#define WA_FILTER_SQL_BYTES 4096u

struct wa_filter_sql {
	char where[WA_FILTER_SQL_BYTES]; /* "(model = $3 AND ...)" */
	char *params[WA_FILTER_MAX_CONDITIONS];
	int n_params;
};

/*
 * Compiles a filter (see openapi.yaml, GroupFilter) to a WHERE clause over
 * the columns of table alias "d" of devices, numbering its parameters from
 * first_param ($first_param...). Only a fixed set of fields and operators
 * exists; every value is a parameter, never SQL text. OTA_OK and *out
 * (free with wa_filter_sql_clear); OTA_ERR_FORMAT with a message in err
 * (128 bytes) naming what is wrong.
 */
enum ota_err wa_filter_compile(const json_t *filter, int first_param, struct wa_filter_sql *out,
			       char err[128]);
void wa_filter_sql_clear(struct wa_filter_sql *out);

/* ---- bundles (upload.c) ----------------------------------------------- */

/*
 * Splits an in-memory .otab: checks the prefix and the header length
 * against the bundle length. OTA_OK and the header's offset and length
 * and the image's offset; OTA_ERR_FORMAT otherwise.
 */
enum ota_err wa_bundle_split(const uint8_t *buf, size_t len, size_t *ret_header_off,
			     size_t *ret_header_len, size_t *ret_image_off);

/*
 * Decodes PostgreSQL's text form of a bytea ("\\x0a1b...") into out (cap
 * bytes). OTA_OK and *ret_len, or OTA_ERR_FORMAT.
 */
enum ota_err wa_pg_bytea_decode(const char *text, uint8_t *out, size_t cap, size_t *ret_len);

/* ---- the server side (webapi.c) --------------------------------------- */

struct wa_ctx;
typedef void (*wa_handler)(struct wa_ctx *ctx);

struct wa_ctx {
	struct webapi *api;
	struct evhttp_request *req;
	enum evhttp_cmd_type method;
	const struct wa_route *route;
	char path_arg[160]; /* the {id} of the path, decoded */
	struct evkeyvalq query;
	bool query_parsed;
	/* the caller */
	long long token_id;
	enum wa_role role;
	char actor[96]; /* "token:ID:NAME" */
	/* request body */
	json_t *json; /* parsed JSON body, or NULL */
	const uint8_t *body; /* raw body (binary endpoints), borrowed */
	size_t body_len;
	/* handler state */
	void *state;
	void (*state_free)(void *state);
	int step;
	double started_ms;
	/* live requests of the listener (webapi_free orphans them) */
	struct wa_ctx *live_prev, *live_next;
	bool orphan;
};

/* Replies with a JSON body (stolen reference) and frees ctx. */
void wa_reply_json(struct wa_ctx *ctx, int status, json_t *body);
/* Replies with raw JSON text of a database result and frees ctx. */
void wa_reply_text(struct wa_ctx *ctx, int status, const char *json_text);
/*
 * Replies {"error": {"code", "message", "field"?}} and frees ctx. field may
 * be NULL.
 */
void wa_reply_error(struct wa_ctx *ctx, int status, const char *code, const char *message,
		    const char *field);
/* The answer to a failed database call (503 or 500). */
void wa_reply_db_error(struct wa_ctx *ctx, enum ota_err err, const PGresult *res);

/* A query parameter, or NULL. */
const char *wa_query(struct wa_ctx *ctx, const char *name);
/*
 * Checks that every query parameter is in allowed (NULL-terminated);
 * replies 400 naming the first unknown one and returns false otherwise.
 */
bool wa_query_only(struct wa_ctx *ctx, const char *const *allowed);
/*
 * Reads ?limit= (1..WEBAPI_PAGE_MAX, default WEBAPI_PAGE_DEFAULT) into out
 * as text. Replies 400 and returns false when invalid.
 */
bool wa_query_limit(struct wa_ctx *ctx, char out[16]);

/*
 * Runs the prepared statement stmt; cb gets ctx back. On a refused call,
 * replies 503 itself.
 */
void wa_db(struct wa_ctx *ctx, const char *stmt, int n_params, const char *const *values,
	   void (*cb)(struct wa_ctx *ctx, enum ota_err err, const PGresult *res));
/* The same with SQL text (dynamic filters), always parameterised. */
void wa_db_sql(struct wa_ctx *ctx, const char *sql, int n_params, const char *const *values,
	       void (*cb)(struct wa_ctx *ctx, enum ota_err err, const PGresult *res));

/* SQLSTATE of a failed statement ("23505"), or "". */
const char *wa_sqlstate(const PGresult *res);

const char *wa_store_dir(const struct wa_ctx *ctx);

/* Registers statements: one per module. */
enum ota_err wa_tokens_prepare(struct srv_db *db);
enum ota_err wa_devices_prepare(struct srv_db *db);
enum ota_err wa_groups_prepare(struct srv_db *db);
enum ota_err wa_artifacts_prepare(struct srv_db *db);
enum ota_err wa_trust_prepare(struct srv_db *db);

/* Handlers (one per operation of openapi.yaml). */
void wa_h_tokens_list(struct wa_ctx *ctx);
void wa_h_tokens_create(struct wa_ctx *ctx);
void wa_h_tokens_revoke(struct wa_ctx *ctx);
void wa_h_me(struct wa_ctx *ctx);
void wa_h_audit_list(struct wa_ctx *ctx);
void wa_h_devices_list(struct wa_ctx *ctx);
void wa_h_devices_get(struct wa_ctx *ctx);
void wa_h_devices_tags(struct wa_ctx *ctx);
void wa_h_devices_decommission(struct wa_ctx *ctx);
void wa_h_groups_list(struct wa_ctx *ctx);
void wa_h_groups_create(struct wa_ctx *ctx);
void wa_h_groups_get(struct wa_ctx *ctx);
void wa_h_groups_delete(struct wa_ctx *ctx);
void wa_h_groups_members(struct wa_ctx *ctx);
void wa_h_groups_devices(struct wa_ctx *ctx);
void wa_h_artifacts_list(struct wa_ctx *ctx);
void wa_h_artifacts_upload(struct wa_ctx *ctx);
void wa_h_artifacts_get(struct wa_ctx *ctx);
void wa_h_artifacts_delete(struct wa_ctx *ctx);
void wa_h_keylists_list(struct wa_ctx *ctx);
void wa_h_keylists_upload(struct wa_ctx *ctx);
void wa_h_rootlists_list(struct wa_ctx *ctx);
void wa_h_rootlists_upload(struct wa_ctx *ctx);

/* Token creation shared by the API and the CLI (tokens.c). */
extern const char wa_sql_token_create[];

#endif
