/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deltas of an artifact (issue 15; docs/server.md "Delta updates"). A delta
 * bundle (ota-keys sign --base) goes through the artifact path of
 * artifacts.c (one request, or an upload session): its manifest verifies
 * against the newest KeyList with the device's code, its payload is hashed
 * into the content-addressed store. Here: what makes it a delta of the
 * artifact it is uploaded to (the same image, product, version and
 * counter; a base without a delta yet), its row, and the list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetota/limits.h"
#include "webapi-internal.h"

/* The statements (migrations/code/deltas.sql), in one table. */
enum { STMT_PRECHECK, STMT_INSERT, STMT_LIST };
static const struct srv_db_stmt stmts[] = {
	[STMT_PRECHECK] = {"wa_delta_precheck",
			   "SELECT keylist, artifact_found, digest_known, image_sha256, image_size,"
			   " product, version_code, security_counter, bases"
			   " FROM delta_precheck($1, $2)",
			   2},
	[STMT_INSERT] = {"wa_delta_insert",
			 "SELECT delta_insert($1, $2, $3::bigint, $4, $5, $6, $7::bigint, $8,"
			 " $9::bigint, $10, $11, $12, $13)",
			 13},
	[STMT_LIST] = {"wa_delta_list", "SELECT delta_list($1, $2, $3::integer)", 3},
};

/* The artifact a delta must rebuild (from the precheck). */
struct wa_delta_release {
	char image_sha256[SRV_SHA256_HEX_BYTES];
	uint64_t image_size;
	uint64_t version_code;
	uint64_t security_counter;
	char product[OTA_MAX_STRING_BYTES + 1];
	char bases[]; /* hex SHA-256 of the bases that have a delta, ","-separated */
};

void wa_delta_precheck(struct wa_ctx *ctx, struct wa_bundle *b,
		       void (*cb)(struct wa_ctx *ctx, enum ota_err err, const PGresult *res))
{
	const char *params[2] = {b->artifact_id, b->digest_hex};

	wa_db_stmt(ctx, &stmts[STMT_PRECHECK], params, cb);
}

bool wa_delta_precheck_ok(struct wa_ctx *ctx, struct wa_bundle *b, const PGresult *res)
{
	struct wa_delta_release *rel;
	const char *bases = PQgetvalue(res, 0, 8);
	size_t bases_len = strlen(bases);

	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
		wa_reply_error(ctx, 404, "not_found", "no such artifact", NULL);
		return false;
	}
	if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
		wa_reply_error(ctx, 409, "conflict", "this manifest is already uploaded", "body");
		return false;
	}
	rel = calloc(1, sizeof(*rel) + bases_len + 1);
	if (rel == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return false;
	}
	b->release = rel;
	snprintf(rel->image_sha256, sizeof(rel->image_sha256), "%s", PQgetvalue(res, 0, 3));
	snprintf(rel->product, sizeof(rel->product), "%s", PQgetvalue(res, 0, 5));
	memcpy(rel->bases, bases, bases_len + 1);
	if (!wa_parse_u64(PQgetvalue(res, 0, 4), 0, INT64_MAX, &rel->image_size) ||
	    !wa_parse_u64(PQgetvalue(res, 0, 6), 0, INT64_MAX, &rel->version_code) ||
	    !wa_parse_u64(PQgetvalue(res, 0, 7), 0, INT64_MAX, &rel->security_counter)) {
		wa_reply_error(ctx, 500, "internal", "bad artifact row", NULL);
		return false;
	}
	return true;
}

/* Whether hex (64 digits) is one of the ","-separated list. */
static bool base_listed(const char *list, const char *hex)
{
	size_t len = strlen(hex);

	for (const char *p = list; *p != '\0';) {
		const char *end = strchr(p, ',');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

		if (n == len && memcmp(p, hex, len) == 0)
			return true;
		if (end == NULL)
			break;
		p = end + 1;
	}
	return false;
}

bool wa_delta_manifest_ok(struct wa_ctx *ctx, struct wa_bundle *b, const Fleetota__V1__Manifest *m)
{
	const struct wa_delta_release *rel = b->release;
	char image_hex[SRV_SHA256_HEX_BYTES], base_hex[SRV_SHA256_HEX_BYTES];
	char msg[320];

	if (m->delta == NULL) {
		wa_reply_error(ctx, 422, ota_err_name(OTA_ERR_FORMAT),
			       "not a delta bundle (no DeltaInfo): upload it to /api/v1/artifacts",
			       "body");
		return false;
	}
	if (m->encryption != NULL) {
		wa_bundle_refuse(ctx, OTA_ERR_UNSUPPORTED, "an encrypted delta");
		return false;
	}
	if (m->delta->algorithm != FLEETOTA__V1__DELTA_ALGORITHM__DELTA_ALGORITHM_ZSTD_CHUNKED) {
		wa_bundle_refuse(ctx, OTA_ERR_DELTA_UNSUPPORTED, "delta algorithm");
		return false;
	}
	srv_hex_encode(m->image->sha256.data, OTA_SHA256_BYTES, image_hex);
	if (strcmp(image_hex, rel->image_sha256) != 0) {
		snprintf(msg, sizeof(msg), "delta: its final image is not the image of artifact %s",
			 b->artifact_id);
		wa_reply_error(ctx, 422, ota_err_name(OTA_ERR_HASH), msg, "body");
		return false;
	}
	if (m->image->size != rel->image_size) {
		snprintf(msg, sizeof(msg),
			 "delta: its final image has %llu bytes, the image of artifact %s %llu",
			 (unsigned long long)m->image->size, b->artifact_id,
			 (unsigned long long)rel->image_size);
		wa_reply_error(ctx, 422, ota_err_name(OTA_ERR_SIZE), msg, "body");
		return false;
	}
	if (strcmp(m->product, rel->product) != 0 || m->version_code != rel->version_code ||
	    m->security_counter != rel->security_counter) {
		snprintf(msg, sizeof(msg),
			 "delta: not the release of artifact %s (product, version_code and "
			 "security_counter must be the artifact's)",
			 b->artifact_id);
		wa_reply_error(ctx, 409, "conflict", msg, "body");
		return false;
	}
	srv_hex_encode(m->delta->base_sha256.data, OTA_SHA256_BYTES, base_hex);
	if (strcmp(base_hex, rel->image_sha256) == 0) {
		wa_reply_error(ctx, 409, "conflict", "delta: its base is the artifact's own image",
			       "body");
		return false;
	}
	if (base_listed(rel->bases, base_hex)) {
		snprintf(msg, sizeof(msg), "artifact %s has a delta from base %.16s... already",
			 b->artifact_id, base_hex);
		wa_reply_error(ctx, 409, "conflict", msg, "body");
		return false;
	}
	return true;
}

static void delta_inserted(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct wa_bundle *b = ctx->state;

	if (err == OTA_ERR_STORAGE && strcmp(wa_sqlstate(res), "23505") == 0) {
		wa_reply_error(ctx, 409, "conflict", "this delta or manifest exists", "body");
		return;
	}
	if (err == OTA_ERR_STORAGE && strcmp(wa_sqlstate(res), "23503") == 0) {
		wa_reply_error(ctx, 404, "not_found", "no such artifact (deleted meanwhile)", NULL);
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

void wa_delta_insert(struct wa_ctx *ctx, struct wa_bundle *b, const char *store_name)
{
	const Fleetota__V1__DeltaInfo *d = b->manifest->delta;
	char base_hex[SRV_SHA256_HEX_BYTES], delta_hex[SRV_SHA256_HEX_BYTES],
		signer_hex[SRV_SHA256_HEX_BYTES];
	char base_size[SRV_U64_TEXT_BYTES], delta_size[SRV_U64_TEXT_BYTES],
		chunk[SRV_U64_TEXT_BYTES];
	char *manifest_hex = malloc(2 * b->manifest_len + 1);
	const char *params[13];

	if (manifest_hex == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	srv_hex_encode(b->manifest_bytes, b->manifest_len, manifest_hex);
	srv_hex_encode(d->base_sha256.data, OTA_SHA256_BYTES, base_hex);
	srv_hex_encode(d->sha256.data, OTA_SHA256_BYTES, delta_hex);
	srv_hex_encode(b->signer_key_id, OTA_KEY_ID_BYTES, signer_hex);
	snprintf(base_size, sizeof(base_size), "%llu", (unsigned long long)d->base_size);
	snprintf(delta_size, sizeof(delta_size), "%llu", (unsigned long long)d->size);
	snprintf(chunk, sizeof(chunk), "%u", (unsigned)d->chunk_bytes);
	params[0] = b->artifact_id;
	params[1] = base_hex;
	params[2] = base_size;
	params[3] = b->digest_hex;
	params[4] = manifest_hex;
	params[5] = delta_hex;
	params[6] = delta_size;
	params[7] = "zstd_chunked"; /* the one algorithm wa_delta_manifest_ok admits */
	params[8] = chunk;
	params[9] = signer_hex;
	params[10] = store_name;
	params[11] = ctx->actor;
	params[12] = b->upload_id[0] != '\0' ? b->upload_id : NULL;
	wa_db_stmt(ctx, &stmts[STMT_INSERT], params, delta_inserted);
	free(manifest_hex);
}

static void wa_h_deltas_upload(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};

	if (!wa_artifact_path(ctx, allowed))
		return;
	wa_bundle_from_body(ctx, ctx->path_arg, true);
}

static void wa_h_deltas_list(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"cursor", "limit", NULL};
	const char *params[3];
	const char *cursor;
	char limit[WA_LIMIT_TEXT_BYTES];

	if (!wa_artifact_path(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	cursor = wa_query(ctx, "cursor");
	if (cursor != NULL && (strlen(cursor) != 2 * OTA_SHA256_BYTES ||
			       strspn(cursor, "0123456789abcdef") != 2 * OTA_SHA256_BYTES)) {
		wa_reply_error(ctx, 400, "bad_request", "cursor: a base_sha256 (64 hex digits)",
			       "cursor");
		return;
	}
	params[0] = ctx->path_arg;
	params[1] = cursor;
	params[2] = limit;
	wa_db_stmt(ctx, &stmts[STMT_LIST], params, wa_reply_artifact_row);
}

/* ---- the resource ----------------------------------------------------- */

static const struct wa_route routes[] = {
	{EVHTTP_REQ_GET, "/api/v1/artifacts/*/deltas", WA_ROLE_VIEWER, WA_BODY_NONE,
	 wa_h_deltas_list},
	{EVHTTP_REQ_POST, "/api/v1/artifacts/*/deltas", WA_ROLE_OPERATOR, WA_BODY_BINARY,
	 wa_h_deltas_upload},
};

const struct wa_resource wa_deltas_resource = {WA_TABLE(routes), WA_TABLE(stmts)};
