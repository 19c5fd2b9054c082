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

#include "fleetota/arena.h"
#include "fleetota/err.h"
#include "api-limits.h"
#include "db-internal.h"
#include "fleetota/trust.h"
#include "hex-internal.h"
#include "ota.pb-c.h"
#include "webapi.h"

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
enum ota_err wa_token_hash_header(const char *header, char hex_out[SRV_SHA256_HEX_BYTES]);

/* Lowercase hex SHA-256 of a token. */
enum ota_err wa_token_hash(const char *token, char hex_out[SRV_SHA256_HEX_BYTES]);

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

/*
 * The GroupFilter compiler is SQL (migrations/code/filter.sql): it refuses
 * a filter with SQLSTATE FO400 and a message naming what is wrong.
 * wa_filter_refused: res is such a refusal. wa_filter_error: when it is
 * (err OTA_ERR_STORAGE), replies 400 bad_request (field "filter", the
 * compiler's message) and returns true; false otherwise.
 */
struct wa_ctx;
bool wa_filter_refused(const PGresult *res);
bool wa_filter_error(struct wa_ctx *ctx, enum ota_err err, const PGresult *res);

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

/* ---- creating an artifact from a bundle (artifacts.c) ------------------ */

struct wa_ctx;
struct wa_bundle;
struct srv_store_writer;

/*
 * Writes a bundle's image to the store (an srv_store_writer) and then
 * calls wa_bundle_commit; may take several loop turns (wa_defer).
 */
typedef void (*wa_bundle_store_fn)(struct wa_ctx *ctx, struct wa_bundle *b);

/*
 * One artifact being created, by POST /api/v1/artifacts (the bundle in
 * memory) or by finishing an upload session (the bundle in a file): both
 * decode the header here, verify the manifest against the server's newest
 * KeyList with the same code, and store the image through a store writer
 * that checks its SHA-256 before the file gets its name. ctx->state is
 * this struct; ext is the caller's (freed with ext_free).
 */
struct wa_bundle {
	char artifact_id[WA_ARTIFACT_ID_BYTES];
	char upload_id[WA_UPLOAD_ID_BYTES]; /* the session deleted with the insert, or "" */
	uint8_t *arena_mem;
	struct ota_arena arena;
	Fleetota__V1__BundleHeader *header;
	uint8_t *manifest_bytes; /* the manifest envelope, serialized */
	size_t manifest_len;
	char digest_hex[SRV_SHA256_HEX_BYTES];
	uint64_t image_size; /* the bundle's bytes after its header */
	/* after verification */
	Fleetota__V1__Manifest *manifest; /* in arena */
	uint8_t signer_key_id[OTA_KEY_ID_BYTES]; /* the keylist is gone by then */
	struct srv_store_writer *writer; /* the image on its way to the store */
	wa_bundle_store_fn store_image;
	/* called after the artifact row is in (before the 201 reply) */
	void (*created)(struct wa_ctx *ctx, struct wa_bundle *b);
	void *ext;
	void (*ext_free)(void *ext);
	/* a delta bundle of the artifact artifact_id (deltas.c), not a new artifact */
	bool delta;
	struct wa_delta_release *release; /* the artifact's release, after the precheck */
};

/*
 * Makes ctx->state a new bundle for artifact_id (checked by the caller)
 * and decodes header (header_len bytes, bounded by the caller). true on
 * success; false after replying (422 OTA_ERR_FORMAT, 500).
 */
bool wa_bundle_begin(struct wa_ctx *ctx, const char *artifact_id, const uint8_t *header,
		     size_t header_len, uint64_t image_size, wa_bundle_store_fn store_image);
/*
 * Checks id and manifest against the database (409), verifies the
 * manifest against the newest KeyList (422 with the error name) and the
 * image size (422 OTA_ERR_SIZE), then calls b->store_image.
 */
void wa_bundle_verify(struct wa_ctx *ctx);
/*
 * Commits b->writer: 422 OTA_ERR_HASH (nothing stored) when the image
 * differs from the manifest, else inserts the artifact (and its audit
 * row, and deletes b->upload_id's session in the same statement) and
 * replies 201 (409 on a duplicate).
 */
void wa_bundle_commit(struct wa_ctx *ctx, struct wa_bundle *b);
/* The 422 reply for a bundle refused with err ("what: description"). */
void wa_bundle_refuse(struct wa_ctx *ctx, enum ota_err err, const char *what);
/*
 * A bundle in the request body (at most one upload chunk): a new artifact
 * artifact_id, or (delta) a delta bundle of the artifact artifact_id.
 * Replies.
 */
void wa_bundle_from_body(struct wa_ctx *ctx, const char *artifact_id, bool delta);

/* The artifact id of the path checked (400), the query names in allowed (artifacts.c). */
bool wa_artifact_path(struct wa_ctx *ctx, const char *const *allowed);
/* One artifact's JSON in column 0 (200), or 404 "no such artifact" (artifacts.c). */
void wa_reply_artifact_row(struct wa_ctx *ctx, enum ota_err err, const PGresult *res);

/* ---- deltas of an artifact (deltas.c) ---------------------------------- */

struct wa_delta_release;
/* Runs the delta precheck of b (delta_precheck), then cb. */
void wa_delta_precheck(struct wa_ctx *ctx, struct wa_bundle *b,
		       void (*cb)(struct wa_ctx *ctx, enum ota_err err, const PGresult *res));
/*
 * The precheck's row (column 0 is the KeyList, checked by the caller): the
 * artifact exists (404), the manifest is new (409); keeps the artifact's
 * release in b->release. false after replying.
 */
bool wa_delta_precheck_ok(struct wa_ctx *ctx, struct wa_bundle *b, const PGresult *res);
/*
 * The verified manifest m is a delta of b's artifact: a DeltaInfo of a
 * known algorithm, not encrypted, the artifact's image (hash 422 HASH,
 * size 422 SIZE), product, version and counter (409), a base without a
 * delta yet (409). false after replying.
 */
bool wa_delta_manifest_ok(struct wa_ctx *ctx, struct wa_bundle *b, const Fleetota__V1__Manifest *m);
/* Inserts the delta whose payload is the store file store_name; replies 201. */
void wa_delta_insert(struct wa_ctx *ctx, struct wa_bundle *b, const char *store_name);

/* ---- upload sessions (uploads.c) --------------------------------------- */

struct wa_uploads;
/*
 * Creates the private upload dir (<store_dir>/.uploads, mode 0700) and the
 * purge timer. max_bundle bounds one session's declared size.
 */
enum ota_err wa_uploads_new(struct webapi *api, struct event_base *base, const char *store_dir,
			    uint64_t max_bundle, struct wa_uploads **ret);
void wa_uploads_free(struct wa_uploads *up);
struct wa_uploads *wa_uploads_of(const struct wa_ctx *ctx);

/* ---- resources and their routes (webapi.c dispatches) ------------------ */

typedef void (*wa_handler)(struct wa_ctx *ctx);

enum wa_body {
	WA_BODY_NONE,
	WA_BODY_JSON,
	WA_BODY_BINARY,
	WA_BODY_CHUNK, /* an upload chunk: application/offset+octet-stream too */
};

/* One operation of openapi.yaml. */
struct wa_route {
	enum evhttp_cmd_type method;
	const char *pattern; /* segments; "*" matches one {id} */
	enum wa_role role; /* the least role it needs; WA_ROLE_NONE: no token */
	enum wa_body body;
	wa_handler handler;
};

/*
 * One REST resource, defined by its own file as wa_NAME_resource: its
 * routes and its statements (a table of calls of SQL functions, registered
 * when the listener starts). webapi.c knows no resource by name: it walks
 * wa_resources, so adding one is a file and two lines in resources.c.
 */
struct wa_resource {
	const struct wa_route *routes;
	size_t n_routes;
	const struct srv_db_stmt *stmts; /* may be NULL */
	size_t n_stmts;
	/* a resource whose statements are not one table yet registers them here (or NULL) */
	enum ota_err (*prepare)(struct srv_db *db);
};

/* The n entries of a file's static table, for a wa_resource initializer. */
#define WA_TABLE(table) (table), (sizeof(table) / sizeof((table)[0]))

/* The resources (resources.c), in the order their routes are matched; NULL-terminated. */
extern const struct wa_resource *const wa_resources[];

/* ---- the server side (webapi.c) --------------------------------------- */

struct wa_ctx {
	struct webapi *api;
	struct evhttp_request *req;
	enum evhttp_cmd_type method;
	const struct wa_route *route;
	char path_arg[WA_PATH_ARG_BYTES]; /* the {id} of the path, decoded */
	struct evkeyvalq query;
	bool query_parsed;
	/* the caller */
	long long token_id;
	enum wa_role role;
	char actor[WA_ACTOR_BYTES]; /* "token:ID:NAME" */
	/* request body */
	json_t *json; /* parsed JSON body, or NULL */
	const uint8_t *body; /* raw body (binary endpoints), borrowed */
	size_t body_len;
	/* handler state */
	void *state;
	void (*state_free)(void *state);
	int step;
	double started_ms;
	bool etag; /* a 200 carries an ETag; If-None-Match -> 304 (observe.c) */
	struct event *defer_ev; /* wa_defer */
	void (*defer_cb)(struct wa_ctx *ctx);
	/* live requests of the listener (webapi_free orphans them) */
	struct wa_ctx *live_prev, *live_next;
	bool orphan;
};

/* accesslog.c: one access-log line for an answered request (no token, no query). */
void wa_access_log(const struct wa_ctx *ctx, int status, size_t bytes, double duration_ms);

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
/*
 * A database callback for statements that return one JSON text cell:
 * 200 with it, or the failed call's answer.
 */
void wa_reply_db_text(struct wa_ctx *ctx, enum ota_err err, const PGresult *res);

/* A query parameter, or NULL. */
const char *wa_query(struct wa_ctx *ctx, const char *name);
/*
 * Checks that every query parameter is in allowed (NULL-terminated), given
 * once, at most 256 bytes of valid UTF-8 without NUL (values reach SQL as
 * text); replies 400 bad_request naming the first bad one and returns false
 * otherwise. Every handler calls it before reading a parameter: it is the
 * one place where query strings are validated.
 */
bool wa_query_only(struct wa_ctx *ctx, const char *const *allowed);
/*
 * Reads ?limit= (1..WEBAPI_PAGE_MAX, default WEBAPI_PAGE_DEFAULT) into out
 * as text. Replies 400 and returns false when invalid.
 */
bool wa_query_limit(struct wa_ctx *ctx, char out[WA_LIMIT_TEXT_BYTES]);

/*
 * Runs the prepared statement stmt with the API's deadline
 * (admin_db_timeout_ms); cb gets ctx back (OTA_ERR_TIMEOUT at the deadline:
 * wa_reply_db_error answers 503 "timeout"). On a refused call, replies 503
 * itself.
 */
void wa_db(struct wa_ctx *ctx, const char *stmt, int n_params, const char *const *values,
	   void (*cb)(struct wa_ctx *ctx, enum ota_err err, const PGresult *res));
/* wa_db of an entry of a module's statement table (srv_db_stmt). */
static inline void wa_db_stmt(struct wa_ctx *ctx, const struct srv_db_stmt *stmt,
			      const char *const *values,
			      void (*cb)(struct wa_ctx *ctx, enum ota_err err, const PGresult *res))
{
	wa_db(ctx, stmt->name, stmt->n_params, values, cb);
}

/* SQLSTATE of a failed statement ("23505"), or "". */
const char *wa_sqlstate(const PGresult *res);

const char *wa_store_dir(const struct wa_ctx *ctx);

/*
 * Calls cb(ctx) on a later turn of the loop (other requests run in
 * between): long work is cut into bounded steps. If the listener goes
 * away first, ctx is freed without a reply.
 */
void wa_defer(struct wa_ctx *ctx, void (*cb)(struct wa_ctx *ctx));

/*
 * A ctx that is no HTTP request (timers that query the database through
 * wa_db); wa_ctx_done frees it. NULL when out of memory.
 */
struct wa_ctx *wa_ctx_internal(struct webapi *api);
void wa_ctx_done(struct wa_ctx *ctx);
/* A request header, or NULL. */
const char *wa_header(struct wa_ctx *ctx, const char *name);
/* Adds a response header (before the reply). */
void wa_add_header(struct wa_ctx *ctx, const char *name, const char *value);

/*
 * The statements and handlers of devices.c, groups.c, artifacts.c and
 * trust.c (their own route tables list them; to become static there).
 */
enum ota_err wa_devices_prepare(struct srv_db *db);
enum ota_err wa_groups_prepare(struct srv_db *db);
enum ota_err wa_artifacts_prepare(struct srv_db *db);
enum ota_err wa_trust_prepare(struct srv_db *db);
void wa_h_devices_list(struct wa_ctx *ctx);
void wa_h_devices_get(struct wa_ctx *ctx);
void wa_h_devices_tags(struct wa_ctx *ctx);
void wa_h_devices_decommission(struct wa_ctx *ctx);
void wa_h_devices_clear_suspect(struct wa_ctx *ctx);
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

/* ---- the operator console (console.c, observe.c) ---------------------- */

struct wa_console;
struct wa_asset;
/* The Content-Security-Policy of every console answer. */
extern const char wa_console_csp[];
/* Reads the assets of dir (flat, bounded) into memory. */
enum ota_err wa_console_new(const char *dir, struct wa_console **ret);
void wa_console_free(struct wa_console *console);
const struct wa_asset *wa_console_find(const struct wa_console *console, const char *name);
/* The listener's console, or NULL when console_dir is not set. */
const struct wa_console *wa_console_of(const struct wa_ctx *ctx);
/* Replies with len bytes of data (borrowed until sent) and frees ctx. */
void wa_reply_bytes(struct wa_ctx *ctx, int status, const char *content_type, const char *data,
		    size_t len);
/*
 * Adds the ETag of a 200 body text and tells whether the request's
 * If-None-Match names it (the answer is then 304 without a body).
 */
bool wa_etag_not_modified(struct wa_ctx *ctx, const char *text);

#endif
