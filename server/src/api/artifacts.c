/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Artifacts: an uploaded .otab is accepted only when its manifest verifies
 * against the newest KeyList the server holds (ota_manifest_verify, the
 * code the device runs) and its image matches the manifest's size and
 * SHA-256. The image goes to the content-addressed store (store-internal.h:
 * a file named by the image's hex SHA-256, the layout delivery reads).
 * Only the bundle header is decoded; the image is hashed while written.
 * Both ways in (a small bundle in one request, or an upload session's file,
 * uploads.c) go through wa_bundle_begin / wa_bundle_verify /
 * wa_bundle_commit; so does a delta bundle of an artifact (b->delta; its
 * own checks and row are in deltas.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db-internal.h"
#include "fleetota/bundle.h"
#include "fleetota/crypt.h"
#include "fleetota/crypto.h"
#include "fleetota/trust.h"
#include "store-internal.h"
#include "webapi-internal.h"

/* Decoding room for a bundle header (manifest, keylist, root chain). */
#define WA_HEADER_ARENA_BYTES (2u * OTA_MAX_BUNDLE_HEADER_BYTES + OTA_DECODE_ARENA_BYTES)
#define WA_KEYLIST_ARENA_BYTES (2u * OTA_DECODE_ARENA_BYTES)

/* The statements (migrations/code/api_artifacts.sql), in one table. */
enum { STMT_LIST, STMT_GET, STMT_PRECHECK, STMT_INSERT, STMT_DELETE };
static const struct srv_db_stmt stmts[] = {
	[STMT_LIST] = {"wa_artifact_list", "SELECT api_artifact_list($1, $2, $3, $4, $5)", 5},
	[STMT_GET] = {"wa_artifact_get", "SELECT api_artifact_get($1)", 1},
	[STMT_PRECHECK] =
		{"wa_artifact_precheck",
		 "SELECT keylist, id_known, manifest_known FROM api_artifact_precheck($1, $2)", 2},
	/* $21: the upload session deleted with the insert (NULL: none) */
	[STMT_INSERT] =
		{"wa_artifact_insert",
		 "SELECT api_artifact_insert($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
		 "$13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)",
		 24},
	[STMT_DELETE] = {"wa_artifact_delete",
			 "SELECT artifact, found, store_path, store_users FROM "
			 "api_artifact_delete($1, $2)",
			 2},
};

enum ota_err wa_artifacts_prepare(struct srv_db *db)
{
	return srv_db_prepare_stmts(db, stmts, sizeof(stmts) / sizeof(stmts[0]));
}

void wa_h_artifacts_list(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"product", "version", "security",
					      "cursor",	 "limit",   NULL};
	const char *params[5];
	char limit[WA_LIMIT_TEXT_BYTES];

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	params[0] = wa_query(ctx, "product");
	params[1] = wa_query(ctx, "version");
	for (int i = 0; i < 2; i++) {
		if (params[i] != NULL && !wa_text_valid(params[i])) {
			wa_reply_error(ctx, 400, "bad_request", "1..128 printable characters",
				       i == 0 ? "product" : "version");
			return;
		}
	}
	params[2] = wa_query(ctx, "security");
	if (params[2] != NULL && strcmp(params[2], "true") != 0 &&
	    strcmp(params[2], "false") != 0) {
		wa_reply_error(ctx, 400, "bad_request", "true or false", "security");
		return;
	}
	params[3] = wa_query(ctx, "cursor");
	if (params[3] != NULL && !wa_id_valid(params[3], WA_MAX_OBJECT_ID)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[4] = limit;
	wa_db_stmt(ctx, &stmts[STMT_LIST], params, wa_reply_db_text);
}

bool wa_artifact_path(struct wa_ctx *ctx, const char *const *allowed)
{
	if (!wa_query_only(ctx, allowed))
		return false;
	if (!wa_id_valid(ctx->path_arg, WA_MAX_OBJECT_ID)) {
		wa_reply_error(ctx, 400, "bad_request", "not an artifact id", "artifact_id");
		return false;
	}
	return true;
}

static bool artifact_arg(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};

	return wa_artifact_path(ctx, allowed);
}

void wa_reply_artifact_row(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		wa_reply_error(ctx, 404, "not_found", "no such artifact", NULL);
		return;
	}
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

void wa_h_artifacts_get(struct wa_ctx *ctx)
{
	const char *params[1] = {ctx->path_arg};

	if (!artifact_arg(ctx))
		return;
	wa_db_stmt(ctx, &stmts[STMT_GET], params, wa_reply_artifact_row);
}

/* ---- creating an artifact (shared by POST /artifacts and sessions) -- */

static void bundle_free(void *p)
{
	struct wa_bundle *b = p;

	if (b == NULL)
		return;
	srv_store_writer_free(b->writer);
	if (b->ext_free != NULL)
		b->ext_free(b->ext);
	free(b->manifest_bytes);
	free(b->arena_mem);
	free(b->release); /* one allocation */
	free(b);
}

/* What the bundle carries after its header: a delta's payload, or the image. */
static void bundle_payload(const Fleetota__V1__Manifest *m, const uint8_t **ret_sha256,
			   uint64_t *ret_size)
{
	if (m->delta != NULL) {
		*ret_sha256 = m->delta->sha256.data;
		*ret_size = m->delta->size;
		return;
	}
	/* the store holds what devices fetch: the ciphertext of an encrypted image */
	ota_manifest_payload(m, ret_sha256, ret_size);
}

void wa_bundle_refuse(struct wa_ctx *ctx, enum ota_err err, const char *what)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "%s: %s", what, ota_err_describe(err));
	wa_reply_error(ctx, 422, ota_err_name(err), msg, "body");
}

bool wa_bundle_begin(struct wa_ctx *ctx, const char *artifact_id, const uint8_t *header,
		     size_t header_len, uint64_t image_size, wa_bundle_store_fn store_image)
{
	struct wa_bundle *b = calloc(1, sizeof(*b));
	uint8_t digest[OTA_SHA256_BYTES];

	if (b == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return false;
	}
	ctx->state = b;
	ctx->state_free = bundle_free;
	snprintf(b->artifact_id, sizeof(b->artifact_id), "%s", artifact_id);
	b->image_size = image_size;
	b->store_image = store_image;
	b->arena_mem = malloc(WA_HEADER_ARENA_BYTES);
	if (b->arena_mem == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return false;
	}
	ota_arena_init(&b->arena, b->arena_mem, WA_HEADER_ARENA_BYTES);
	if (header_len > OTA_MAX_BUNDLE_HEADER_BYTES ||
	    ota_bundle_header_decode(header, header_len, &b->arena, &b->header) != OTA_OK) {
		wa_bundle_refuse(ctx, OTA_ERR_FORMAT, "bundle header");
		return false;
	}
	b->manifest_len = fleetota__v1__signed__get_packed_size(b->header->manifest);
	if (b->manifest_len == 0 || b->manifest_len > OTA_MAX_ENVELOPE_BYTES) {
		wa_bundle_refuse(ctx, OTA_ERR_FORMAT, "manifest");
		return false;
	}
	b->manifest_bytes = malloc(b->manifest_len);
	if (b->manifest_bytes == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return false;
	}
	fleetota__v1__signed__pack(b->header->manifest, b->manifest_bytes);
	if (ota_sha256(b->manifest_bytes, b->manifest_len, digest) != OTA_OK) {
		wa_reply_error(ctx, 500, "internal", "hash failed", NULL);
		return false;
	}
	srv_hex_encode(digest, sizeof(digest), b->digest_hex);
	return true;
}

static void bundle_inserted(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct wa_bundle *b = ctx->state;

	if (err == OTA_ERR_STORAGE && strcmp(wa_sqlstate(res), "23505") == 0) {
		wa_reply_error(ctx, 409, "conflict", "this artifact id or manifest exists", "id");
		return;
	}
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (b->created != NULL)
		b->created(ctx, b);
	wa_reply_text(ctx, 201, PQgetvalue(res, 0, 0));
}

void wa_bundle_commit(struct wa_ctx *ctx, struct wa_bundle *b)
{
	const Fleetota__V1__Manifest *m = b->manifest;
	uint8_t digest[OTA_SHA256_BYTES];
	char image_hex[SRV_SHA256_HEX_BYTES], signer_hex[SRV_SHA256_HEX_BYTES],
		store_name[SRV_SHA256_HEX_BYTES], size_text[24];
	char *manifest_hex = NULL, *hw_json = NULL;
	char nums[8][SRV_U64_TEXT_BYTES];
	const char *params[24];
	json_t *hw;
	enum ota_err err;

	const uint8_t *payload_sha = NULL;
	uint64_t payload_size = 0;
	bundle_payload(m, &payload_sha, &payload_size);
	err = srv_store_writer_commit(b->writer, payload_sha, digest, store_name);
	if (err == OTA_ERR_HASH) {
		wa_bundle_refuse(ctx, OTA_ERR_HASH, b->delta ? "delta" : "image");
		return;
	}
	if (err != OTA_OK) {
		wa_reply_error(ctx, 500, "store_error", "cannot write the image store", NULL);
		return;
	}
	if (b->delta) {
		wa_delta_insert(ctx, b, store_name);
		return;
	}
	manifest_hex = malloc(2 * b->manifest_len + 1);
	hw = json_array();
	for (size_t i = 0; hw != NULL && i < m->n_hw_revisions; i++)
		json_array_append_new(hw, json_string(m->hw_revisions[i]));
	hw_json = hw != NULL ? json_dumps(hw, JSON_COMPACT) : NULL;
	json_decref(hw);
	if (manifest_hex == NULL || hw_json == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		goto out;
	}
	srv_hex_encode(b->manifest_bytes, b->manifest_len, manifest_hex);
	srv_hex_encode(digest, sizeof(digest), image_hex);
	srv_hex_encode(b->signer_key_id, OTA_KEY_ID_BYTES, signer_hex);
	snprintf(nums[0], 24, "%llu", (unsigned long long)m->version_code);
	snprintf(nums[1], 24, "%llu", (unsigned long long)m->security_counter);
	snprintf(nums[2], 24, "%llu", (unsigned long long)m->min_installed_version);
	snprintf(nums[3], 24, "%llu", (unsigned long long)m->issued_at);
	snprintf(nums[4], 24, "%llu", (unsigned long long)m->expires_at);
	snprintf(nums[5], 24, "%llu", (unsigned long long)m->sequence);
	/* the signed fix range (Manifest 30..31) means something only for a security fix */
	snprintf(nums[6], 24, "%llu",
		 (unsigned long long)(m->is_security_update ? m->fixes_version_code_min : 0));
	snprintf(nums[7], 24, "%llu",
		 (unsigned long long)(m->is_security_update ? m->fixes_version_code_max : 0));
	snprintf(size_text, sizeof(size_text), "%llu", (unsigned long long)payload_size);
	params[0] = b->artifact_id;
	params[1] = b->digest_hex;
	params[2] = manifest_hex;
	params[3] = m->product;
	params[4] = hw_json;
	params[5] = m->version;
	params[6] = nums[0];
	params[7] = nums[1];
	params[8] = nums[2];
	params[9] = m->is_security_update ? "true" : "false";
	params[10] = nums[3];
	params[11] = nums[4];
	params[12] = image_hex;
	params[13] = size_text;
	params[14] = m->image->name != NULL ? m->image->name : "";
	params[15] = signer_hex;
	params[16] = store_name;
	params[17] = m->allow_downgrade ? "true" : "false";
	params[18] = nums[5];
	params[19] = ctx->actor;
	params[20] = b->upload_id[0] != '\0' ? b->upload_id : NULL;
	params[21] = nums[6];
	params[22] = nums[7];
	params[23] = m->advisory != NULL ? m->advisory : "";
	wa_db_stmt(ctx, &stmts[STMT_INSERT], params, bundle_inserted);
out:
	free(manifest_hex);
	free(hw_json);
}

/* A new artifact: neither its id nor its manifest is known. */
static bool artifact_precheck_ok(struct wa_ctx *ctx, const PGresult *res)
{
	if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		wa_reply_error(ctx, 409, "conflict", "an artifact with this id exists", "id");
		return false;
	}
	if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
		wa_reply_error(ctx, 409, "conflict", "this manifest is already uploaded", "body");
		return false;
	}
	return true;
}

static void bundle_checked(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct wa_bundle *b = ctx->state;
	uint8_t *kl_bytes = NULL, *kl_arena_mem = NULL;
	size_t kl_len = 0;
	struct ota_arena kl_arena;
	Fleetota__V1__Signed *kl_env = NULL;
	Fleetota__V1__KeyList *keylist = NULL;
	Fleetota__V1__Manifest *m = NULL;
	const Fleetota__V1__PublicKey *signer = NULL;
	enum ota_err verr;

	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (b->delta ? !wa_delta_precheck_ok(ctx, b, res) : !artifact_precheck_ok(ctx, res))
		return;
	if (PQgetisnull(res, 0, 0)) {
		wa_reply_error(ctx, 422, ota_err_name(OTA_ERR_KEY_UNKNOWN),
			       "the server holds no KeyList yet: upload one first", "body");
		return;
	}
	kl_bytes = malloc(OTA_MAX_ENVELOPE_BYTES);
	kl_arena_mem = malloc(WA_KEYLIST_ARENA_BYTES);
	if (kl_bytes == NULL || kl_arena_mem == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		goto out;
	}
	ota_arena_init(&kl_arena, kl_arena_mem, WA_KEYLIST_ARENA_BYTES);
	if (wa_pg_bytea_decode(PQgetvalue(res, 0, 0), kl_bytes, OTA_MAX_ENVELOPE_BYTES, &kl_len) !=
		    OTA_OK ||
	    ota_envelope_decode(kl_bytes, kl_len, &kl_arena, &kl_env) != OTA_OK ||
	    ota_keylist_parse(kl_env, &kl_arena, &keylist) != OTA_OK) {
		wa_reply_error(ctx, 500, "internal", "the stored KeyList does not decode", NULL);
		goto out;
	}
	/* the device's own check: signature by a key of the trusted list */
	verr = ota_manifest_verify(keylist, b->header->manifest, &b->arena, &m, &signer);
	if (verr != OTA_OK) {
		wa_bundle_refuse(ctx, verr, "manifest");
		goto out;
	}
	if (m->image == NULL || m->image->sha256.len != OTA_SHA256_BYTES ||
	    signer->key_id.len != OTA_KEY_ID_BYTES) {
		wa_bundle_refuse(ctx, OTA_ERR_FORMAT, "manifest");
		goto out;
	}
	if (!b->delta && m->delta != NULL) {
		wa_reply_error(ctx, 422, ota_err_name(OTA_ERR_FORMAT),
			       "a delta bundle: upload it to /api/v1/artifacts/{id}/deltas",
			       "body");
		goto out;
	}
	if (b->delta && !wa_delta_manifest_ok(ctx, b, m))
		goto out;
	const uint8_t *payload_sha = NULL;
	uint64_t payload_size = 0;
	bundle_payload(m, &payload_sha, &payload_size);
	if (payload_size != b->image_size) {
		wa_bundle_refuse(ctx, OTA_ERR_SIZE, b->delta ? "delta" : "image");
		goto out;
	}
	/* the manifest lives in b->arena, the keylist only in kl_arena */
	b->manifest = m;
	memcpy(b->signer_key_id, signer->key_id.data, OTA_KEY_ID_BYTES);
	if (srv_store_writer_new(wa_store_dir(ctx), &b->writer) != OTA_OK) {
		wa_reply_error(ctx, 500, "store_error", "cannot write the image store", NULL);
		goto out;
	}
	b->store_image(ctx, b);
out:
	free(kl_bytes);
	free(kl_arena_mem);
}

void wa_bundle_verify(struct wa_ctx *ctx)
{
	struct wa_bundle *b = ctx->state;
	const char *params[2] = {b->artifact_id, b->digest_hex};

	if (b->delta)
		wa_delta_precheck(ctx, b, bundle_checked);
	else
		wa_db_stmt(ctx, &stmts[STMT_PRECHECK], params, bundle_checked);
}

/* ---- POST /api/v1/artifacts: a small bundle in one request ----------- */

/* The image is in the request body (at most one upload chunk). */
static void store_from_body(struct wa_ctx *ctx, struct wa_bundle *b)
{
	if (srv_store_writer_write(b->writer, ctx->body + (ctx->body_len - b->image_size),
				   b->image_size) != OTA_OK) {
		wa_reply_error(ctx, 500, "store_error", "cannot write the image store", NULL);
		return;
	}
	wa_bundle_commit(ctx, b);
}

void wa_bundle_from_body(struct wa_ctx *ctx, const char *artifact_id, bool delta)
{
	size_t header_off, header_len, image_off;

	if (wa_bundle_split(ctx->body, ctx->body_len, &header_off, &header_len, &image_off) !=
	    OTA_OK) {
		wa_bundle_refuse(ctx, OTA_ERR_FORMAT, "bundle");
		return;
	}
	if (!wa_bundle_begin(ctx, artifact_id, ctx->body + header_off, header_len,
			     ctx->body_len - image_off, store_from_body))
		return;
	((struct wa_bundle *)ctx->state)->delta = delta;
	wa_bundle_verify(ctx);
}

void wa_h_artifacts_upload(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"id", NULL};
	const char *id;

	if (!wa_query_only(ctx, allowed))
		return;
	id = wa_query(ctx, "id");
	if (id == NULL || !wa_id_valid(id, WA_MAX_OBJECT_ID)) {
		wa_reply_error(ctx, 400, "bad_request",
			       "id: 1..128 of letters, digits and . _ - (first alphanumeric)",
			       "id");
		return;
	}
	wa_bundle_from_body(ctx, id, false);
}

/* ---- delete --------------------------------------------------------- */

static void artifact_deleted(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	const char *store_path;

	if (err == OTA_ERR_STORAGE && strcmp(wa_sqlstate(res), "23503") == 0) {
		wa_reply_error(ctx, 409, "conflict", "the artifact is used by a campaign", NULL);
		return;
	}
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQgetisnull(res, 0, 0)) {
		if (strcmp(PQgetvalue(res, 0, 1), "0") == 0)
			wa_reply_error(ctx, 404, "not_found", "no such artifact", NULL);
		else
			wa_reply_error(ctx, 409, "conflict", "the artifact is assigned to devices",
				       NULL);
		return;
	}
	store_path = PQgetvalue(res, 0, 2);
	/* the store is shared by content: drop the file only when unused */
	if (strcmp(PQgetvalue(res, 0, 3), "0") == 0 && srv_store_name_valid(store_path)) {
		char path[PATH_MAX];

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", wa_store_dir(ctx), store_path) <
		    sizeof(path))
			unlink(path);
	}
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

void wa_h_artifacts_delete(struct wa_ctx *ctx)
{
	const char *params[2] = {ctx->path_arg, ctx->actor};

	if (!artifact_arg(ctx))
		return;
	wa_db_stmt(ctx, &stmts[STMT_DELETE], params, artifact_deleted);
}

static const struct wa_route routes[] = {
	{EVHTTP_REQ_GET, "/api/v1/artifacts", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_artifacts_list},
	{EVHTTP_REQ_POST, "/api/v1/artifacts", WA_ROLE_OPERATOR, WA_BODY_BINARY,
	 wa_h_artifacts_upload},
	{EVHTTP_REQ_GET, "/api/v1/artifacts/*", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_artifacts_get},
	{EVHTTP_REQ_DELETE, "/api/v1/artifacts/*", WA_ROLE_OPERATOR, WA_BODY_NONE,
	 wa_h_artifacts_delete},
};

const struct wa_resource wa_artifacts_resource = {WA_TABLE(routes),
						  .prepare = wa_artifacts_prepare};
