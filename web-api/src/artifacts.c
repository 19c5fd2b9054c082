/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Artifacts: an uploaded .otab is accepted only when its manifest verifies
 * against the newest KeyList the server holds (ota_manifest_verify, the
 * code the device runs) and its image matches the manifest's size and
 * SHA-256. The image goes to the content-addressed store (store-internal.h:
 * a file named by the image's hex SHA-256, the layout delivery reads).
 * Only the bundle header is decoded; the image is hashed while written.
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
#include "fleetota/crypto.h"
#include "fleetota/trust.h"
#include "store-internal.h"
#include "webapi-internal.h"

/* Decoding room for a bundle header (manifest, keylist, root chain). */
#define WA_HEADER_ARENA_BYTES (2u * OTA_MAX_BUNDLE_HEADER_BYTES + OTA_DECODE_ARENA_BYTES)
#define WA_KEYLIST_ARENA_BYTES (2u * OTA_DECODE_ARENA_BYTES)

#define ARTIFACT_JSON                                                                         \
	"json_build_object('artifact_id', x.artifact_id, 'digest', encode(x.digest, 'hex'), " \
	"'product', x.product, 'hw_revisions', x.hw_revisions, 'version', x.version, "        \
	"'version_code', x.version_code, 'security_counter', x.security_counter, "            \
	"'min_installed_version', x.min_installed_version, 'allow_downgrade', "               \
	"x.allow_downgrade, 'is_security_update', x.is_security_update, 'issued_at', "        \
	"x.issued_at, 'expires_at', x.expires_at, 'manifest_sequence', x.manifest_sequence, " \
	"'image_sha256', encode(x.image_sha256, 'hex'), 'image_size', x.image_size, "         \
	"'image_name', x.image_name, 'signing_key_id', encode(x.signing_key_id, 'hex'), "     \
	"'uploaded_by', x.uploaded_by, 'created_at', x.created_at, 'assigned_devices', "      \
	"(SELECT count(*) FROM assignments s WHERE s.artifact_id = x.artifact_id))"

static const char sql_list[] =
	"SELECT json_build_object('items', COALESCE(json_agg(" ARTIFACT_JSON
	" ORDER BY x.artifact_id), '[]'::json), 'next_cursor', "
	"CASE WHEN count(*) = $5::int THEN max(x.artifact_id) END)::text FROM ("
	"SELECT * FROM artifacts WHERE ($1::text IS NULL OR product = $1) "
	"AND ($2::text IS NULL OR version = $2) "
	"AND ($3::boolean IS NULL OR is_security_update = $3::boolean) "
	"AND artifact_id > COALESCE($4::text, '') ORDER BY artifact_id LIMIT $5::int) x";

static const char sql_get[] = "SELECT " ARTIFACT_JSON "::text FROM artifacts x "
			      "WHERE x.artifact_id = $1";

/* The newest KeyList, and whether the id or the manifest is known. */
static const char sql_precheck[] =
	"SELECT (SELECT bytes FROM keylists ORDER BY version DESC LIMIT 1), "
	"EXISTS (SELECT 1 FROM artifacts WHERE artifact_id = $1), "
	"EXISTS (SELECT 1 FROM artifacts WHERE digest = decode($2, 'hex'))";

static const char sql_insert[] =
	"WITH x AS (INSERT INTO artifacts (artifact_id, digest, manifest, product, "
	"hw_revisions, version, version_code, security_counter, min_installed_version, "
	"is_security_update, issued_at, expires_at, image_sha256, image_size, image_name, "
	"signing_key_id, store_path, allow_downgrade, manifest_sequence, uploaded_by) VALUES "
	"($1, decode($2, 'hex'), decode($3, 'hex'), $4, ARRAY(SELECT "
	"jsonb_array_elements_text($5::jsonb)), $6, $7::bigint, $8::bigint, $9::bigint, "
	"$10::boolean, $11::bigint, $12::bigint, decode($13, 'hex'), $14::bigint, $15, "
	"decode($16, 'hex'), $17, $18::boolean, $19::bigint, $20) RETURNING *), "
	"a AS (INSERT INTO audit (actor, action, object, after) SELECT $20, 'artifact.upload', "
	"'artifact:' || x.artifact_id, to_jsonb(" ARTIFACT_JSON ") FROM x) "
	"SELECT " ARTIFACT_JSON "::text FROM x";

static const char sql_delete[] =
	"WITH x AS (DELETE FROM artifacts WHERE artifact_id = $1 AND NOT EXISTS (SELECT 1 "
	"FROM assignments WHERE artifact_id = $1) RETURNING *), "
	"a AS (INSERT INTO audit (actor, action, object, before) SELECT $2, "
	"'artifact.delete', 'artifact:' || x.artifact_id, to_jsonb(" ARTIFACT_JSON ") FROM x) "
	"SELECT (SELECT " ARTIFACT_JSON "::text FROM x), "
	"(SELECT count(*) FROM artifacts WHERE artifact_id = $1), "
	"(SELECT store_path FROM x), "
	"(SELECT count(*) FROM artifacts o WHERE o.store_path = (SELECT store_path FROM x) "
	"AND o.artifact_id <> $1)";

enum ota_err wa_artifacts_prepare(struct srv_db *db)
{
	enum ota_err err = srv_db_prepare(db, "wa_artifact_list", sql_list);

	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_artifact_get", sql_get);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_artifact_precheck", sql_precheck);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_artifact_insert", sql_insert);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_artifact_delete", sql_delete);
	return err;
}

static void reply_list(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

void wa_h_artifacts_list(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"product", "version", "security",
					      "cursor",	 "limit",   NULL};
	const char *params[5];
	char limit[16];

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
	if (params[3] != NULL && !wa_id_valid(params[3], 128)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[4] = limit;
	wa_db(ctx, "wa_artifact_list", 5, params, reply_list);
}

static bool artifact_arg(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};

	if (!wa_query_only(ctx, allowed))
		return false;
	if (!wa_id_valid(ctx->path_arg, 128)) {
		wa_reply_error(ctx, 400, "bad_request", "not an artifact id", "artifact_id");
		return false;
	}
	return true;
}

static void reply_one(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
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
	wa_db(ctx, "wa_artifact_get", 1, params, reply_one);
}

/* ---- upload --------------------------------------------------------- */

struct upload {
	char artifact_id[132];
	uint8_t *arena_mem;
	struct ota_arena arena;
	Fleetota__V1__BundleHeader *header;
	uint8_t *manifest_bytes; /* the manifest envelope, serialized */
	size_t manifest_len;
	char digest_hex[65];
	size_t image_off;
	char tmp_path[PATH_MAX]; /* a temporary file in the store, or "" */
};

static void upload_free(void *p)
{
	struct upload *up = p;

	if (up == NULL)
		return;
	if (up->tmp_path[0] != '\0')
		unlink(up->tmp_path);
	free(up->manifest_bytes);
	free(up->arena_mem);
	free(up);
}

static void refuse(struct wa_ctx *ctx, enum ota_err err, const char *what)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "%s: %s", what, ota_err_describe(err));
	wa_reply_error(ctx, 422, ota_err_name(err), msg, "body");
}

/*
 * Writes the image (len bytes) to a temporary file in the store while
 * hashing it. OTA_OK and the digest; OTA_ERR_STORAGE.
 */
static enum ota_err write_image(struct upload *up, const char *store_dir, const uint8_t *image,
				size_t len, uint8_t digest[32])
{
	struct ota_sha256_ctx sha;
	size_t done = 0;
	int fd;

	if ((size_t)snprintf(up->tmp_path, sizeof(up->tmp_path), "%s/.upload-XXXXXX", store_dir) >=
	    sizeof(up->tmp_path)) {
		up->tmp_path[0] = '\0';
		return OTA_ERR_STORAGE;
	}
	fd = mkstemp(up->tmp_path);
	if (fd < 0) {
		up->tmp_path[0] = '\0';
		return OTA_ERR_STORAGE;
	}
	if (ota_sha256_init(&sha) != OTA_OK) {
		close(fd);
		return OTA_ERR_STORAGE;
	}
	while (done < len) {
		size_t chunk = len - done > 1u << 20 ? 1u << 20 : len - done;
		ssize_t n;

		if (ota_sha256_update(&sha, image + done, chunk) != OTA_OK)
			break;
		n = write(fd, image + done, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (done != len || fsync(fd) != 0) {
		ota_sha256_abort(&sha);
		close(fd);
		return OTA_ERR_STORAGE;
	}
	close(fd);
	return ota_sha256_final(&sha, digest);
}

static void upload_inserted(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err == OTA_ERR_STORAGE && strcmp(wa_sqlstate(res), "23505") == 0) {
		wa_reply_error(ctx, 409, "conflict", "this artifact id or manifest exists", "id");
		return;
	}
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	wa_reply_text(ctx, 201, PQgetvalue(res, 0, 0));
}

static void upload_checked(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct upload *up = ctx->state;
	uint8_t *kl_bytes = NULL, *kl_arena_mem = NULL;
	size_t kl_len = 0;
	struct ota_arena kl_arena;
	Fleetota__V1__Signed *kl_env = NULL;
	Fleetota__V1__KeyList *keylist = NULL;
	Fleetota__V1__Manifest *m = NULL;
	const Fleetota__V1__PublicKey *signer = NULL;
	uint8_t digest[32];
	char image_hex[65], signer_hex[65], final_path[PATH_MAX], store_name[65];
	char *manifest_hex = NULL, *hw_json = NULL;
	char nums[6][24];
	const char *params[20];
	json_t *hw;
	enum ota_err verr;

	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		wa_reply_error(ctx, 409, "conflict", "an artifact with this id exists", "id");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
		wa_reply_error(ctx, 409, "conflict", "this manifest is already uploaded", "body");
		return;
	}
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
	verr = ota_manifest_verify(keylist, up->header->manifest, &up->arena, &m, &signer);
	if (verr != OTA_OK) {
		refuse(ctx, verr, "manifest");
		goto out;
	}
	if (m->image == NULL || m->image->sha256.len != OTA_SHA256_BYTES ||
	    signer->key_id.len != OTA_KEY_ID_BYTES) {
		refuse(ctx, OTA_ERR_FORMAT, "manifest");
		goto out;
	}
	if (m->image->size != ctx->body_len - up->image_off) {
		refuse(ctx, OTA_ERR_SIZE, "image");
		goto out;
	}
	if (write_image(up, wa_store_dir(ctx), ctx->body + up->image_off,
			ctx->body_len - up->image_off, digest) != OTA_OK) {
		wa_reply_error(ctx, 500, "store_error", "cannot write the image store", NULL);
		goto out;
	}
	if (memcmp(digest, m->image->sha256.data, OTA_SHA256_BYTES) != 0) {
		refuse(ctx, OTA_ERR_HASH, "image");
		goto out;
	}
	srv_store_name_from_sha256(digest, store_name);
	if ((size_t)snprintf(final_path, sizeof(final_path), "%s/%s", wa_store_dir(ctx),
			     store_name) >= sizeof(final_path) ||
	    rename(up->tmp_path, final_path) != 0) {
		wa_reply_error(ctx, 500, "store_error", "cannot write the image store", NULL);
		goto out;
	}
	up->tmp_path[0] = '\0';

	manifest_hex = malloc(2 * up->manifest_len + 1);
	hw = json_array();
	for (size_t i = 0; hw != NULL && i < m->n_hw_revisions; i++)
		json_array_append_new(hw, json_string(m->hw_revisions[i]));
	hw_json = hw != NULL ? json_dumps(hw, JSON_COMPACT) : NULL;
	json_decref(hw);
	if (manifest_hex == NULL || hw_json == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		goto out;
	}
	wa_hex(up->manifest_bytes, up->manifest_len, manifest_hex);
	wa_hex(digest, sizeof(digest), image_hex);
	wa_hex(signer->key_id.data, OTA_KEY_ID_BYTES, signer_hex);
	snprintf(nums[0], 24, "%llu", (unsigned long long)m->version_code);
	snprintf(nums[1], 24, "%llu", (unsigned long long)m->security_counter);
	snprintf(nums[2], 24, "%llu", (unsigned long long)m->min_installed_version);
	snprintf(nums[3], 24, "%llu", (unsigned long long)m->issued_at);
	snprintf(nums[4], 24, "%llu", (unsigned long long)m->expires_at);
	snprintf(nums[5], 24, "%llu", (unsigned long long)m->sequence);
	{
		char size_text[24];

		snprintf(size_text, sizeof(size_text), "%llu", (unsigned long long)m->image->size);
		params[0] = up->artifact_id;
		params[1] = up->digest_hex;
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
		wa_db(ctx, "wa_artifact_insert", 20, params, upload_inserted);
	}
out:
	free(manifest_hex);
	free(hw_json);
	free(kl_bytes);
	free(kl_arena_mem);
}

void wa_h_artifacts_upload(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"id", NULL};
	const char *id;
	struct upload *up;
	size_t header_off, header_len;
	uint8_t digest[32];
	const char *params[2];
	enum ota_err err;

	if (!wa_query_only(ctx, allowed))
		return;
	id = wa_query(ctx, "id");
	if (id == NULL || !wa_id_valid(id, 128)) {
		wa_reply_error(ctx, 400, "bad_request",
			       "id: 1..128 of letters, digits and . _ - (first alphanumeric)",
			       "id");
		return;
	}
	up = calloc(1, sizeof(*up));
	if (up == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	ctx->state = up;
	ctx->state_free = upload_free;
	snprintf(up->artifact_id, sizeof(up->artifact_id), "%s", id);
	if (wa_bundle_split(ctx->body, ctx->body_len, &header_off, &header_len, &up->image_off) !=
	    OTA_OK) {
		refuse(ctx, OTA_ERR_FORMAT, "bundle");
		return;
	}
	up->arena_mem = malloc(WA_HEADER_ARENA_BYTES);
	if (up->arena_mem == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	ota_arena_init(&up->arena, up->arena_mem, WA_HEADER_ARENA_BYTES);
	err = ota_bundle_header_decode(ctx->body + header_off, header_len, &up->arena, &up->header);
	if (err != OTA_OK) {
		refuse(ctx, OTA_ERR_FORMAT, "bundle header");
		return;
	}
	up->manifest_len = fleetota__v1__signed__get_packed_size(up->header->manifest);
	if (up->manifest_len == 0 || up->manifest_len > OTA_MAX_ENVELOPE_BYTES) {
		refuse(ctx, OTA_ERR_FORMAT, "manifest");
		return;
	}
	up->manifest_bytes = malloc(up->manifest_len);
	if (up->manifest_bytes == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	fleetota__v1__signed__pack(up->header->manifest, up->manifest_bytes);
	if (ota_sha256(up->manifest_bytes, up->manifest_len, digest) != OTA_OK) {
		wa_reply_error(ctx, 500, "internal", "hash failed", NULL);
		return;
	}
	wa_hex(digest, sizeof(digest), up->digest_hex);
	params[0] = up->artifact_id;
	params[1] = up->digest_hex;
	wa_db(ctx, "wa_artifact_precheck", 2, params, upload_checked);
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
	wa_db(ctx, "wa_artifact_delete", 2, params, artifact_deleted);
}
