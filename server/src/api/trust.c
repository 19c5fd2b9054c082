/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signed RootLists and KeyLists, verified with the device's own code before
 * they are stored: a RootList is one chain step from the newest one (or a
 * self-signed first one); a KeyList is signed by a threshold of the newest
 * RootList's keys and has a higher version than the newest KeyList.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db-internal.h"
#include "fleetota/crypto.h"
#include "fleetota/trust.h"
#include "webapi-internal.h"

/* The statements (migrations/code/api_trust.sql), in one table. */
enum {
	STMT_KEYLIST_LIST,
	STMT_ROOTLIST_LIST,
	STMT_STATE,
	STMT_KEYLIST_INSERT,
	STMT_ROOTLIST_INSERT
};
static const struct srv_db_stmt stmts[] = {
	[STMT_KEYLIST_LIST] = {"wa_keylist_list", "SELECT api_keylist_list($1, $2)", 2},
	[STMT_ROOTLIST_LIST] = {"wa_rootlist_list", "SELECT api_rootlist_list($1, $2)", 2},
	[STMT_STATE] = {"wa_trust_state", "SELECT rootlist, keylist_version FROM api_trust_state()",
			0},
	/* $7: an admin forces retiring keys below the fleet coverage threshold */
	[STMT_KEYLIST_INSERT] = {"wa_keylist_insert",
				 "SELECT keylist, allowed, dropped, coverage, required FROM "
				 "api_keylist_insert($1, $2, $3, $4, $5, $6, $7)",
				 7},
	[STMT_ROOTLIST_INSERT] = {"wa_rootlist_insert",
				  "SELECT api_rootlist_insert($1, $2, $3, $4)", 4},
};

enum ota_err wa_trust_prepare(struct srv_db *db)
{
	return srv_db_prepare_stmts(db, stmts, sizeof(stmts) / sizeof(stmts[0]));
}

static void list(struct wa_ctx *ctx, const struct srv_db_stmt *stmt)
{
	static const char *const allowed[] = {"cursor", "limit", NULL};
	const char *params[2];
	char limit[WA_LIMIT_TEXT_BYTES];
	uint64_t v;

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	params[0] = wa_query(ctx, "cursor");
	if (params[0] != NULL && !wa_parse_u64(params[0], 0, INT64_MAX, &v)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[1] = limit;
	wa_db_stmt(ctx, stmt, params, wa_reply_db_text);
}

void wa_h_keylists_list(struct wa_ctx *ctx)
{
	list(ctx, &stmts[STMT_KEYLIST_LIST]);
}

void wa_h_rootlists_list(struct wa_ctx *ctx)
{
	list(ctx, &stmts[STMT_ROOTLIST_LIST]);
}

/* ---- uploads -------------------------------------------------------- */

struct trust_upload {
	uint8_t arena_mem[4 * OTA_DECODE_ARENA_BYTES];
	uint8_t trusted_bytes[OTA_MAX_ENVELOPE_BYTES];
	struct ota_arena arena;
	Fleetota__V1__Signed *env;
	bool keylist;
	bool force; /* KeyList: retire keys below the fleet coverage threshold */
};

static void refuse(struct wa_ctx *ctx, enum ota_err err, const char *what)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "%s: %s", what, ota_err_describe(err));
	wa_reply_error(ctx, 422, ota_err_name(err), msg, "body");
}

static void inserted(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err == OTA_ERR_STORAGE && strcmp(wa_sqlstate(res), "23505") == 0) {
		wa_reply_error(ctx, 409, "conflict", "this version exists", "body");
		return;
	}
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		if (PQntuples(res) == 1 && PQnfields(res) == 5 &&
		    strcmp(PQgetvalue(res, 0, 1), "false") == 0) {
			char msg[200];

			snprintf(msg, sizeof(msg),
				 "drops %s key(s) while only %s of the fleet trusts a kept key "
				 "(required %s); an admin may force it with ?force=true",
				 PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
				 PQgetvalue(res, 0, 4));
			wa_reply_error(ctx, 409, "keyrotation_coverage", msg, "body");
			return;
		}
		wa_reply_error(ctx, 409, "conflict", "a newer version was stored meanwhile",
			       "body");
		return;
	}
	wa_reply_text(ctx, 201, PQgetvalue(res, 0, 0));
}

static void state_loaded(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct trust_upload *up = ctx->state;
	Fleetota__V1__RootList *root = NULL, *new_root = NULL;
	Fleetota__V1__Signed *trusted_env = NULL;
	Fleetota__V1__KeyList *keylist = NULL;
	uint64_t now = (uint64_t)time(NULL), current_kl;
	size_t trusted_len = 0;
	uint8_t digest[OTA_SHA256_BYTES];
	char digest_hex[SRV_SHA256_HEX_BYTES], version[SRV_U64_TEXT_BYTES],
		root_version[SRV_U64_TEXT_BYTES];
	char *body_hex = NULL, *ids_text = NULL;
	const char *params[7];
	enum ota_err verr;

	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	current_kl = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	if (!PQgetisnull(res, 0, 0)) {
		if (wa_pg_bytea_decode(PQgetvalue(res, 0, 0), up->trusted_bytes,
				       sizeof(up->trusted_bytes), &trusted_len) != OTA_OK ||
		    ota_envelope_decode(up->trusted_bytes, trusted_len, &up->arena, &trusted_env) !=
			    OTA_OK ||
		    ota_rootlist_parse(trusted_env, &up->arena, &root) != OTA_OK) {
			wa_reply_error(ctx, 500, "internal", "the stored RootList does not decode",
				       NULL);
			return;
		}
	}
	if (ota_sha256(ctx->body, ctx->body_len, digest) != OTA_OK) {
		wa_reply_error(ctx, 500, "internal", "hash failed", NULL);
		return;
	}
	srv_hex_encode(digest, sizeof(digest), digest_hex);
	body_hex = malloc(2 * ctx->body_len + 1);
	if (body_hex == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	srv_hex_encode(ctx->body, ctx->body_len, body_hex);

	if (up->keylist) {
		json_t *ids;

		if (root == NULL) {
			wa_reply_error(ctx, 422, ota_err_name(OTA_ERR_ROOT_CHAIN),
				       "the server holds no RootList yet: upload one first",
				       "body");
			goto out;
		}
		verr = ota_keylist_verify(root, up->env, current_kl, now, &up->arena, &keylist);
		if (verr != OTA_OK) {
			refuse(ctx, verr, "keylist");
			goto out;
		}
		ids = json_array();
		for (size_t i = 0; ids != NULL && i < keylist->n_keys; i++) {
			char id_hex[2 * OTA_KEY_ID_BYTES + 1];

			srv_hex_encode(keylist->keys[i]->key_id.data, keylist->keys[i]->key_id.len,
				       id_hex);
			json_array_append_new(ids, json_string(id_hex));
		}
		ids_text = ids != NULL ? json_dumps(ids, JSON_COMPACT) : NULL;
		json_decref(ids);
		if (ids_text == NULL) {
			wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
			goto out;
		}
		snprintf(version, sizeof(version), "%llu", (unsigned long long)keylist->version);
		snprintf(root_version, sizeof(root_version), "%llu",
			 (unsigned long long)root->version);
		params[0] = version;
		params[1] = root_version;
		params[2] = body_hex;
		params[3] = digest_hex;
		params[4] = ids_text;
		params[5] = ctx->actor;
		params[6] = up->force ? "true" : "false";
		wa_db_stmt(ctx, &stmts[STMT_KEYLIST_INSERT], params, inserted);
		goto out;
	}
	if (root == NULL)
		verr = ota_rootlist_verify_initial(up->env, &up->arena, &new_root);
	else
		verr = ota_rootlist_verify_next(root, up->env, now, &up->arena, &new_root);
	if (verr != OTA_OK) {
		refuse(ctx, verr, "rootlist");
		goto out;
	}
	snprintf(version, sizeof(version), "%llu", (unsigned long long)new_root->version);
	params[0] = version;
	params[1] = body_hex;
	params[2] = digest_hex;
	params[3] = ctx->actor;
	wa_db_stmt(ctx, &stmts[STMT_ROOTLIST_INSERT], params, inserted);
out:
	free(body_hex);
	free(ids_text);
}

static void upload(struct wa_ctx *ctx, bool keylist)
{
	static const char *const allowed_keylist[] = {"force", NULL};
	static const char *const allowed_rootlist[] = {NULL};
	struct trust_upload *up;
	const char *force;

	if (!wa_query_only(ctx, keylist ? allowed_keylist : allowed_rootlist))
		return;
	force = keylist ? wa_query(ctx, "force") : NULL;
	if (force != NULL && strcmp(force, "true") != 0 && strcmp(force, "false") != 0) {
		wa_reply_error(ctx, 400, "bad_request", "true or false", "force");
		return;
	}
	if (ctx->body_len > OTA_MAX_ENVELOPE_BYTES) {
		wa_reply_error(ctx, 413, "payload_too_large", "a signed list is at most 64 KiB",
			       "body");
		return;
	}
	up = calloc(1, sizeof(*up));
	if (up == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	ctx->state = up;
	ctx->state_free = free;
	up->keylist = keylist;
	up->force = force != NULL && strcmp(force, "true") == 0;
	ota_arena_init(&up->arena, up->arena_mem, sizeof(up->arena_mem));
	if (ota_envelope_decode(ctx->body, ctx->body_len, &up->arena, &up->env) != OTA_OK) {
		refuse(ctx, OTA_ERR_FORMAT, keylist ? "keylist" : "rootlist");
		return;
	}
	wa_db_stmt(ctx, &stmts[STMT_STATE], NULL, state_loaded);
}

void wa_h_keylists_upload(struct wa_ctx *ctx)
{
	upload(ctx, true);
}

void wa_h_rootlists_upload(struct wa_ctx *ctx)
{
	upload(ctx, false);
}

static const struct wa_route routes[] = {
	{EVHTTP_REQ_GET, "/api/v1/keylists", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_keylists_list},
	{EVHTTP_REQ_POST, "/api/v1/keylists", WA_ROLE_ADMIN, WA_BODY_BINARY, wa_h_keylists_upload},
	{EVHTTP_REQ_GET, "/api/v1/rootlists", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_rootlists_list},
	{EVHTTP_REQ_POST, "/api/v1/rootlists", WA_ROLE_ADMIN, WA_BODY_BINARY,
	 wa_h_rootlists_upload},
};

const struct wa_resource wa_trust_resource = {WA_TABLE(routes), .prepare = wa_trust_prepare};
