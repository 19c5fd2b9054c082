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

#define KEYLIST_JSON                                                                        \
	"json_build_object('version', k.version, 'rootlist_version', k.rootlist_version, "  \
	"'sha256', encode(k.sha256, 'hex'), 'key_ids', ARRAY(SELECT encode(i, 'hex') FROM " \
	"unnest(k.key_ids) i), 'created_at', k.created_at)"
#define ROOTLIST_JSON                                                                 \
	"json_build_object('version', r.version, 'sha256', encode(r.sha256, 'hex'), " \
	"'created_at', r.created_at)"

static const char sql_keylist_list[] =
	"SELECT json_build_object('items', COALESCE(json_agg(" KEYLIST_JSON
	" ORDER BY k.version DESC), '[]'::json), 'next_cursor', CASE WHEN count(*) = $2::int "
	"THEN min(k.version)::text END)::text FROM (SELECT * FROM keylists WHERE "
	"($1::bigint IS NULL OR version < $1::bigint) ORDER BY version DESC LIMIT $2::int) k";

static const char sql_rootlist_list[] =
	"SELECT json_build_object('items', COALESCE(json_agg(" ROOTLIST_JSON
	" ORDER BY r.version DESC), '[]'::json), 'next_cursor', CASE WHEN count(*) = $2::int "
	"THEN min(r.version)::text END)::text FROM (SELECT * FROM rootlists WHERE "
	"($1::bigint IS NULL OR version < $1::bigint) ORDER BY version DESC LIMIT $2::int) r";

/* The newest RootList and the newest KeyList version. */
static const char sql_trust_state[] =
	"SELECT (SELECT bytes FROM rootlists ORDER BY version DESC LIMIT 1), "
	"(SELECT COALESCE(max(version), 0) FROM keylists)";

/*
 * Inserted only while it is still the newest (a concurrent upload loses) and
 * while the rollout engine's key-rotation check (0010) allows the keys it
 * drops: enough of the fleet must already trust a key the new list keeps,
 * unless an admin forces it ($7; the check audits a forced retirement).
 */
static const char sql_keylist_insert[] =
	"WITH chk AS (SELECT rollout_keylist_check(ARRAY(SELECT decode(x, 'hex') FROM "
	"jsonb_array_elements_text($5::jsonb) x), $7::boolean, $6, $1::bigint) AS c), "
	"k AS (INSERT INTO keylists (version, rootlist_version, bytes, sha256, key_ids) "
	"SELECT $1::bigint, $2::bigint, decode($3, 'hex'), decode($4, 'hex'), ARRAY(SELECT "
	"decode(x, 'hex') FROM jsonb_array_elements_text($5::jsonb) x) WHERE NOT EXISTS "
	"(SELECT 1 FROM keylists WHERE version >= $1::bigint) AND (SELECT (c ->> "
	"'allowed')::boolean "
	"FROM chk) RETURNING *), "
	"a AS (INSERT INTO audit (actor, action, object, after) SELECT $6, 'keylist.upload', "
	"'keylist:' || k.version, to_jsonb(" KEYLIST_JSON ") || jsonb_build_object('rotation', "
	"(SELECT c FROM chk)) FROM k) "
	"SELECT (SELECT " KEYLIST_JSON "::text FROM k), (SELECT c ->> 'allowed' FROM chk), "
	"(SELECT c ->> 'dropped' FROM chk), (SELECT c ->> 'coverage' FROM chk), "
	"(SELECT c ->> 'required' FROM chk)";

static const char sql_rootlist_insert[] =
	"WITH r AS (INSERT INTO rootlists (version, bytes, sha256) SELECT $1::bigint, "
	"decode($2, 'hex'), decode($3, 'hex') WHERE NOT EXISTS (SELECT 1 FROM rootlists "
	"WHERE version >= $1::bigint) RETURNING *), "
	"a AS (INSERT INTO audit (actor, action, object, after) SELECT $4, 'rootlist.upload', "
	"'rootlist:' || r.version, to_jsonb(" ROOTLIST_JSON ") FROM r) "
	"SELECT " ROOTLIST_JSON "::text FROM r";

enum ota_err wa_trust_prepare(struct srv_db *db)
{
	enum ota_err err = srv_db_prepare(db, "wa_keylist_list", sql_keylist_list);

	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_rootlist_list", sql_rootlist_list);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_trust_state", sql_trust_state);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_keylist_insert", sql_keylist_insert);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_rootlist_insert", sql_rootlist_insert);
	return err;
}

static void list(struct wa_ctx *ctx, const char *stmt)
{
	static const char *const allowed[] = {"cursor", "limit", NULL};
	const char *params[2];
	char limit[16];
	uint64_t v;

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	params[0] = wa_query(ctx, "cursor");
	if (params[0] != NULL && !wa_parse_u64(params[0], 0, INT64_MAX, &v)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[1] = limit;
	wa_db(ctx, stmt, 2, params, wa_reply_db_text);
}

void wa_h_keylists_list(struct wa_ctx *ctx)
{
	list(ctx, "wa_keylist_list");
}

void wa_h_rootlists_list(struct wa_ctx *ctx)
{
	list(ctx, "wa_rootlist_list");
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
	uint8_t digest[32];
	char digest_hex[SRV_SHA256_HEX_BYTES], version[24], root_version[24];
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
		wa_db(ctx, "wa_keylist_insert", 7, params, inserted);
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
	wa_db(ctx, "wa_rootlist_insert", 4, params, inserted);
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
	wa_db(ctx, "wa_trust_state", 0, NULL, state_loaded);
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
