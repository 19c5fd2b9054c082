/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Resumable upload sessions: a bundle of any size up to max_upload_bytes
 * arrives in chunks of at most WEBAPI_UPLOAD_CHUNK_MAX bytes, each written
 * at its offset to a file in the private upload dir (<store_dir>/.uploads),
 * so no request body above one chunk is ever held in memory. The session
 * state (owner token, declared size, offset, expiry) is a row of uploads
 * (migrations/0012_uploads.sql, code/uploads.sql). Finishing reads the bundle header from the
 * file (bounded), verifies it with the code of POST /api/v1/artifacts
 * (artifacts.c: wa_bundle_*) and copies the image into the store through a
 * store writer, one chunk per turn of the loop.
 *
 * A chunk is accepted in two steps: the database moves the offset only if
 * it still is the one the client sent (so of two requests for the same
 * offset exactly one wins and writes), then the bytes go to the file; if
 * the write fails the offset is moved back. A crash between the two leaves
 * a file shorter than the offset: finishing then refuses (409), and the
 * SHA-256 checks catch anything else.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "db-internal.h"
#include "fleetota/bundle.h"
#include "fleetota/crypto.h"
#include "fleetota/limits.h"
#include "log-internal.h"
#include "store-internal.h"
#include "webapi-internal.h"

/* "u_" + 32 lowercase hex characters (128 random bits). */
/* Read buffer of the copy into the store. */
#define WA_UPLOAD_COPY_BUF (256u * 1024u)

struct wa_uploads {
	struct webapi *api;
	struct event *purge_ev;
	char dir[PATH_MAX];
	uint64_t max_bundle;
	bool purging;
};

/* The statements (migrations/code/uploads.sql), in one table. */
enum { STMT_CREATE, STMT_GET, STMT_ADVANCE, STMT_RETREAT, STMT_DELETE, STMT_PURGE };
static const struct srv_db_stmt stmts[] = {
	/* within the bounds; NULL when the area is full, and the open sessions */
	[STMT_CREATE] = {"wa_upload_create",
			 "SELECT upload, open_sessions FROM upload_create_counted($1, $2, $3, $4, "
			 "$5, $6, $7, $8)",
			 8},
	[STMT_GET] = {"wa_upload_get",
		      "SELECT upload, upload_offset, size, sha256_hex FROM upload_get($1, $2)", 2},
	[STMT_ADVANCE] = {"wa_upload_advance",
			  "SELECT upload, upload_offset, size FROM upload_advance($1, $2, $3, $4)",
			  4},
	/* undoes STMT_ADVANCE when the chunk could not be written */
	[STMT_RETREAT] = {"wa_upload_retreat", "SELECT upload_retreat($1, $2, $3, $4)", 4},
	[STMT_DELETE] = {"wa_upload_delete", "SELECT upload_delete($1, $2, $3)", 3},
	[STMT_PURGE] = {"wa_upload_purge", "SELECT upload_purge()", 0},
};

static bool upload_id_valid(const char *s)
{
	if (strlen(s) != WA_UPLOAD_ID_LEN || s[0] != 'u' || s[1] != '_')
		return false;
	for (size_t i = 2; i < WA_UPLOAD_ID_LEN; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

/* 64 lowercase hex characters (from the database) into 32 bytes. */
static bool hex32_decode(const char *hex, uint8_t out[OTA_SHA256_BYTES])
{
	if (strlen(hex) != 64)
		return false;
	for (size_t i = 0; i < 32; i++) {
		unsigned v = 0;

		for (size_t k = 0; k < 2; k++) {
			char c = hex[2 * i + k];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else
				return false;
		}
		out[i] = (uint8_t)v;
	}
	return true;
}

/* The session's file; the id is checked, so it never leaves the dir. */
static bool upload_path(const struct wa_uploads *up, const char *id, char out[PATH_MAX])
{
	return upload_id_valid(id) &&
	       (size_t)snprintf(out, PATH_MAX, "%s/%s", up->dir, id) < PATH_MAX;
}

static void upload_unlink(const struct wa_uploads *up, const char *id)
{
	char path[PATH_MAX];

	if (upload_path(up, id, path) && unlink(path) != 0 && errno != ENOENT)
		srv_log(SRV_LOG_WARN, "webapi: cannot remove upload %s: %s", id, strerror(errno));
}

/* Checks the path's {id} and the query; replies 400 and false otherwise. */
static bool session_arg(struct wa_ctx *ctx, const char *const *allowed)
{
	if (!wa_query_only(ctx, allowed))
		return false;
	if (!upload_id_valid(ctx->path_arg)) {
		wa_reply_error(ctx, 400, "bad_request", "not an upload id", "upload_id");
		return false;
	}
	return true;
}

/* ---- purge ---------------------------------------------------------- */

/*
 * Files without a row (a crash between creating the file and its row, or
 * between deleting the row and the file): a file untouched for longer than
 * a session lives is past its session's expiry, whatever happened.
 */
static void sweep_orphans(const struct wa_uploads *up)
{
	DIR *dir = opendir(up->dir);
	struct dirent *de;
	time_t now = time(NULL);

	if (dir == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		struct stat st;

		if (!upload_id_valid(de->d_name) ||
		    fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (now - st.st_mtime > (time_t)WEBAPI_UPLOAD_TTL_SEC + 3600) {
			srv_log(SRV_LOG_INFO, "webapi: removing stale upload file %s", de->d_name);
			upload_unlink(up, de->d_name);
		}
	}
	closedir(dir);
}

static void purge_done(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct wa_uploads *up = wa_uploads_of(ctx);

	up->purging = false;
	sweep_orphans(up);
	if (err == OTA_OK) {
		for (int r = 0; r < PQntuples(res); r++)
			upload_unlink(up, PQgetvalue(res, r, 0));
		if (PQntuples(res) > 0)
			srv_log(SRV_LOG_INFO, "webapi: %d expired upload session(s) purged",
				PQntuples(res));
	}
	wa_ctx_done(ctx);
}

static void purge_tick(evutil_socket_t fd, short what, void *arg)
{
	struct wa_uploads *up = arg;
	struct wa_ctx *ctx;

	(void)fd;
	(void)what;
	if (up->purging)
		return;
	ctx = wa_ctx_internal(up->api);
	if (ctx == NULL)
		return;
	up->purging = true;
	wa_db_stmt(ctx, &stmts[STMT_PURGE], NULL, purge_done);
}

enum ota_err wa_uploads_new(struct webapi *api, struct event_base *base, const char *store_dir,
			    uint64_t max_bundle, struct wa_uploads **ret)
{
	struct wa_uploads *up = calloc(1, sizeof(*up));
	struct timeval period = {WEBAPI_UPLOAD_PURGE_SEC, 0};
	struct stat st;

	if (up == NULL)
		return OTA_ERR_NOMEM;
	up->api = api;
	up->max_bundle = max_bundle;
	if ((size_t)snprintf(up->dir, sizeof(up->dir), "%s/.uploads", store_dir) >=
		    sizeof(up->dir) - WA_UPLOAD_ID_LEN - 2 ||
	    (mkdir(up->dir, 0700) != 0 && errno != EEXIST) || lstat(up->dir, &st) != 0 ||
	    !S_ISDIR(st.st_mode) || chmod(up->dir, 0700) != 0) {
		srv_log(SRV_LOG_ERROR, "webapi: upload dir %s unusable", up->dir);
		free(up);
		return OTA_ERR_STORAGE;
	}
	up->purge_ev = event_new(base, -1, EV_PERSIST, purge_tick, up);
	if (up->purge_ev == NULL || event_add(up->purge_ev, &period) != 0) {
		wa_uploads_free(up);
		return OTA_ERR_NOMEM;
	}
	*ret = up;
	return OTA_OK;
}

void wa_uploads_free(struct wa_uploads *up)
{
	if (up == NULL)
		return;
	if (up->purge_ev != NULL)
		event_free(up->purge_ev);
	free(up);
}

/* ---- POST /api/v1/uploads ------------------------------------------- */

struct create_state {
	char id[WA_UPLOAD_ID_LEN + 1];
	bool file_made; /* removed again unless the row is in */
	bool keep;
	struct wa_uploads *up;
};

static void create_state_free(void *p)
{
	struct create_state *cs = p;

	if (cs == NULL)
		return;
	if (cs->file_made && !cs->keep)
		upload_unlink(cs->up, cs->id);
	free(cs);
}

static void create_done(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct create_state *cs = ctx->state;

	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQgetisnull(res, 0, 0)) {
		char msg[128];

		snprintf(msg, sizeof(msg),
			 "the upload area is full (%s open sessions, at most %u sessions and "
			 "%llu bytes): finish or delete one",
			 PQgetvalue(res, 0, 1), WEBAPI_UPLOAD_MAX_SESSIONS,
			 (unsigned long long)WEBAPI_UPLOAD_MAX_TOTAL_BYTES);
		wa_reply_error(ctx, 409, "conflict", msg, "size");
		return;
	}
	cs->keep = true;
	{
		char loc[96];

		snprintf(loc, sizeof(loc), "/api/v1/uploads/%s", cs->id);
		wa_add_header(ctx, "Location", loc);
	}
	wa_reply_text(ctx, 201, PQgetvalue(res, 0, 0));
}

static void create_purged(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct create_state *cs = ctx->state;
	struct wa_uploads *up = cs->up;
	json_t *size_j = json_object_get(ctx->json, "size");
	json_t *sha_j = json_object_get(ctx->json, "sha256");
	uint8_t rnd[WA_UPLOAD_ID_RANDOM_BYTES];
	char path[PATH_MAX], size_text[SRV_U64_TEXT_BYTES], ttl[SRV_U32_TEXT_BYTES],
		max_n[SRV_U32_TEXT_BYTES], max_total[SRV_U64_TEXT_BYTES];
	const char *params[8];
	int fd;

	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	for (int r = 0; r < PQntuples(res); r++)
		upload_unlink(up, PQgetvalue(res, r, 0));
	sweep_orphans(up);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		wa_reply_error(ctx, 500, "internal", "no randomness", NULL);
		return;
	}
	cs->id[0] = 'u';
	cs->id[1] = '_';
	srv_hex_encode(rnd, sizeof(rnd), cs->id + 2);
	if (!upload_path(up, cs->id, path)) {
		wa_reply_error(ctx, 500, "internal", "bad upload path", NULL);
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		srv_log(SRV_LOG_ERROR, "webapi: cannot create %s: %s", path, strerror(errno));
		wa_reply_error(ctx, 500, "store_error", "cannot create the upload file", NULL);
		return;
	}
	close(fd);
	cs->file_made = true;
	snprintf(size_text, sizeof(size_text), "%lld", (long long)json_integer_value(size_j));
	snprintf(ttl, sizeof(ttl), "%u", WEBAPI_UPLOAD_TTL_SEC);
	snprintf(max_n, sizeof(max_n), "%u", WEBAPI_UPLOAD_MAX_SESSIONS);
	snprintf(max_total, sizeof(max_total), "%llu",
		 (unsigned long long)WEBAPI_UPLOAD_MAX_TOTAL_BYTES);
	params[0] = cs->id;
	params[1] = NULL;
	params[2] = size_text;
	params[3] = sha_j != NULL ? json_string_value(sha_j) : NULL;
	params[4] = ttl;
	params[5] = max_n;
	params[6] = max_total;
	params[7] = ctx->actor;
	{
		char token[SRV_U64_TEXT_BYTES];

		snprintf(token, sizeof(token), "%lld", ctx->token_id);
		params[1] = token;
		wa_db_stmt(ctx, &stmts[STMT_CREATE], params, create_done);
	}
}

static void wa_h_uploads_create(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};
	struct wa_uploads *up = wa_uploads_of(ctx);
	struct create_state *cs;
	const char *key;
	json_t *value, *size_j, *sha_j;

	if (!wa_query_only(ctx, allowed))
		return;
	json_object_foreach(ctx->json, key, value)
	{
		if (strcmp(key, "size") != 0 && strcmp(key, "sha256") != 0) {
			wa_reply_error(ctx, 400, "bad_request", "unknown field", key);
			return;
		}
	}
	size_j = json_object_get(ctx->json, "size");
	if (!json_is_integer(size_j) || json_integer_value(size_j) < 1) {
		wa_reply_error(ctx, 400, "bad_request",
			       "size: the bundle's bytes, a positive integer", "size");
		return;
	}
	if ((uint64_t)json_integer_value(size_j) > up->max_bundle) {
		char msg[96];

		snprintf(msg, sizeof(msg), "bundles are limited to %llu bytes",
			 (unsigned long long)up->max_bundle);
		wa_reply_error(ctx, 413, "payload_too_large", msg, "size");
		return;
	}
	sha_j = json_object_get(ctx->json, "sha256");
	if (sha_j != NULL) {
		const char *h = json_string_value(sha_j);
		bool ok = h != NULL && strlen(h) == 64;

		for (size_t i = 0; ok && i < 64; i++)
			ok = (h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f');
		if (!ok) {
			wa_reply_error(ctx, 400, "bad_request",
				       "sha256: 64 lowercase hex characters", "sha256");
			return;
		}
	}
	cs = calloc(1, sizeof(*cs));
	if (cs == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	cs->up = up;
	ctx->state = cs;
	ctx->state_free = create_state_free;
	/* expired sessions go first, so they do not count against the bounds */
	wa_db_stmt(ctx, &stmts[STMT_PURGE], NULL, create_purged);
}

/* ---- GET / HEAD /api/v1/uploads/{id} -------------------------------- */

static void offset_headers(struct wa_ctx *ctx, const char *offset, const char *size)
{
	if (offset != NULL)
		wa_add_header(ctx, "Upload-Offset", offset);
	if (size != NULL)
		wa_add_header(ctx, "Upload-Length", size);
}

static void get_done(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1) {
		wa_reply_error(ctx, 404, "not_found", "no such upload session", NULL);
		return;
	}
	offset_headers(ctx, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

static void wa_h_uploads_get(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};
	char token[SRV_U64_TEXT_BYTES];
	const char *params[2] = {ctx->path_arg, token};

	if (!session_arg(ctx, allowed))
		return;
	snprintf(token, sizeof(token), "%lld", ctx->token_id);
	wa_db_stmt(ctx, &stmts[STMT_GET], params, get_done);
}

/* ---- PATCH / PUT /api/v1/uploads/{id}: one chunk -------------------- */

struct chunk_state {
	char offset[SRV_U64_TEXT_BYTES];
	char len[SRV_U64_TEXT_BYTES];
	char token[SRV_U64_TEXT_BYTES];
};

static void chunk_retreated(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	(void)err;
	(void)res;
	wa_reply_error(ctx, 500, "store_error", "cannot write the upload file; retry the chunk",
		       NULL);
}

/* Writes the chunk at offset; OTA_OK or OTA_ERR_STORAGE. */
static enum ota_err chunk_write(struct wa_uploads *up, const char *id, uint64_t offset,
				const uint8_t *data, size_t len)
{
	char path[PATH_MAX];
	size_t done = 0;
	int fd;

	if (!upload_path(up, id, path))
		return OTA_ERR_STORAGE;
	fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return OTA_ERR_STORAGE;
	while (done < len) {
		ssize_t n = pwrite(fd, data + done, len - done, (off_t)(offset + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (done != len || fdatasync(fd) != 0) {
		close(fd);
		return OTA_ERR_STORAGE;
	}
	close(fd);
	return OTA_OK;
}

static void chunk_advanced(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct chunk_state *cs = ctx->state;
	uint64_t offset = 0;
	const char *params[4] = {ctx->path_arg, cs->token, cs->offset, cs->len};

	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQgetisnull(res, 0, 0)) {
		if (PQgetisnull(res, 0, 1)) {
			wa_reply_error(ctx, 404, "not_found", "no such upload session", NULL);
		} else if (strcmp(PQgetvalue(res, 0, 1), cs->offset) != 0) {
			char msg[96];

			offset_headers(ctx, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
			snprintf(msg, sizeof(msg), "the upload is at offset %s, not %s",
				 PQgetvalue(res, 0, 1), cs->offset);
			wa_reply_error(ctx, 409, "conflict", msg, "Upload-Offset");
		} else {
			char msg[96];

			offset_headers(ctx, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
			snprintf(msg, sizeof(msg), "the chunk goes past the declared size %s",
				 PQgetvalue(res, 0, 2));
			wa_reply_error(ctx, 413, "payload_too_large", msg, "body");
		}
		return;
	}
	/* the offset is ours now: write (bounded: one chunk), or give it back */
	wa_parse_u64(cs->offset, 0, UINT64_MAX, &offset);
	if (chunk_write(wa_uploads_of(ctx), ctx->path_arg, offset, ctx->body, ctx->body_len) !=
	    OTA_OK) {
		srv_log(SRV_LOG_ERROR, "webapi: upload %s: chunk write failed: %s", ctx->path_arg,
			strerror(errno));
		wa_db_stmt(ctx, &stmts[STMT_RETREAT], params, chunk_retreated);
		return;
	}
	{
		char next[SRV_U64_TEXT_BYTES];

		snprintf(next, sizeof(next), "%llu",
			 (unsigned long long)(offset + (uint64_t)ctx->body_len));
		offset_headers(ctx, next, NULL);
	}
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

static void wa_h_uploads_append(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"offset", NULL};
	const char *hdr, *q;
	struct chunk_state *cs;
	uint64_t offset;
	const char *params[4];

	if (!session_arg(ctx, allowed))
		return;
	hdr = wa_header(ctx, "Upload-Offset");
	q = wa_query(ctx, "offset");
	if ((hdr == NULL && q == NULL) || (hdr != NULL && q != NULL && strcmp(hdr, q) != 0)) {
		wa_reply_error(
			ctx, 400, "bad_request",
			"the chunk's offset: an Upload-Offset header or ?offset=", "Upload-Offset");
		return;
	}
	if (!wa_parse_u64(hdr != NULL ? hdr : q, 0, WEBAPI_MAX_UPLOAD_CEILING, &offset)) {
		wa_reply_error(ctx, 400, "bad_request", "the offset must be a decimal integer",
			       "Upload-Offset");
		return;
	}
	if (ctx->body_len > WEBAPI_UPLOAD_CHUNK_MAX) {
		wa_reply_error(ctx, 413, "payload_too_large", "a chunk is at most 8 MiB", "body");
		return;
	}
	cs = calloc(1, sizeof(*cs));
	if (cs == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	ctx->state = cs;
	ctx->state_free = free;
	snprintf(cs->offset, sizeof(cs->offset), "%llu", (unsigned long long)offset);
	snprintf(cs->len, sizeof(cs->len), "%zu", ctx->body_len);
	snprintf(cs->token, sizeof(cs->token), "%lld", ctx->token_id);
	params[0] = ctx->path_arg;
	params[1] = cs->token;
	params[2] = cs->offset;
	params[3] = cs->len;
	wa_db_stmt(ctx, &stmts[STMT_ADVANCE], params, chunk_advanced);
}

/* ---- DELETE /api/v1/uploads/{id} ------------------------------------ */

static void delete_done(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1) {
		wa_reply_error(ctx, 404, "not_found", "no such upload session", NULL);
		return;
	}
	upload_unlink(wa_uploads_of(ctx), ctx->path_arg);
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

static void wa_h_uploads_delete(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};
	char token[SRV_U64_TEXT_BYTES];
	const char *params[3] = {ctx->path_arg, token, ctx->actor};

	if (!session_arg(ctx, allowed))
		return;
	snprintf(token, sizeof(token), "%lld", ctx->token_id);
	wa_db_stmt(ctx, &stmts[STMT_DELETE], params, delete_done);
}

/* ---- POST /api/v1/uploads/{id}/artifact ----------------------------- */

/* What finishing keeps beside the bundle (wa_bundle.ext). */
struct finish_state {
	struct wa_uploads *up;
	char upload_id[WA_UPLOAD_ID_LEN + 1];
	int fd;
	uint8_t *header; /* the bundle header, read from the file */
	uint64_t pos, end; /* the image: [pos, end) of the file */
	uint8_t *buf;
	struct ota_sha256_ctx sha; /* the whole bundle, when a sha256 was declared */
	bool sha_live;
	uint8_t expected[OTA_SHA256_BYTES];
};

static void finish_state_free(void *p)
{
	struct finish_state *fs = p;

	if (fs == NULL)
		return;
	if (fs->sha_live)
		ota_sha256_abort(&fs->sha);
	if (fs->fd >= 0)
		close(fs->fd);
	free(fs->header);
	free(fs->buf);
	free(fs);
}

static void finish_created(struct wa_ctx *ctx, struct wa_bundle *b)
{
	struct finish_state *fs = b->ext;

	(void)ctx;
	/* the row went with the artifact's insert; now the bytes */
	upload_unlink(fs->up, fs->upload_id);
}

static void copy_step(struct wa_ctx *ctx);

/* One turn: at most one chunk of the image from the file into the store. */
static void store_from_file(struct wa_ctx *ctx, struct wa_bundle *b)
{
	struct finish_state *fs = b->ext;
	uint64_t budget = WEBAPI_UPLOAD_CHUNK_MAX;

	while (fs->pos < fs->end && budget > 0) {
		uint64_t want = fs->end - fs->pos;
		ssize_t n;

		if (want > WA_UPLOAD_COPY_BUF)
			want = WA_UPLOAD_COPY_BUF;
		n = pread(fs->fd, fs->buf, (size_t)want, (off_t)fs->pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			wa_bundle_refuse(ctx, OTA_ERR_SIZE, "image");
			return;
		}
		if ((fs->sha_live && ota_sha256_update(&fs->sha, fs->buf, (size_t)n) != OTA_OK) ||
		    srv_store_writer_write(b->writer, fs->buf, (size_t)n) != OTA_OK) {
			wa_reply_error(ctx, 500, "store_error", "cannot write the image store",
				       NULL);
			return;
		}
		fs->pos += (uint64_t)n;
		budget -= (uint64_t)n < budget ? (uint64_t)n : budget;
	}
	if (fs->pos < fs->end) {
		wa_defer(ctx, copy_step);
		return;
	}
	if (fs->sha_live) {
		uint8_t digest[OTA_SHA256_BYTES];

		fs->sha_live = false;
		if (ota_sha256_final(&fs->sha, digest) != OTA_OK ||
		    memcmp(digest, fs->expected, sizeof(digest)) != 0) {
			wa_reply_error(ctx, 422, ota_err_name(OTA_ERR_HASH),
				       "bundle: its SHA-256 differs from the session's sha256",
				       "sha256");
			return;
		}
	}
	wa_bundle_commit(ctx, b);
}

static void copy_step(struct wa_ctx *ctx)
{
	struct wa_bundle *b = ctx->state;

	store_from_file(ctx, b);
}

/* ctx->step of a finish: the bundle becomes a delta of the artifact. */
#define FINISH_DELTA 1

static void finish_loaded(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct wa_uploads *up = wa_uploads_of(ctx);
	const char *artifact_id = json_string_value(json_object_get(ctx->json, "artifact_id"));
	struct finish_state *fs;
	struct wa_bundle *b;
	uint8_t prefix[OTA_BUNDLE_PREFIX_BYTES];
	uint64_t size = 0, offset = 0;
	uint32_t header_len = 0;
	char path[PATH_MAX];
	struct stat st;
	bool has_sha;

	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1) {
		wa_reply_error(ctx, 404, "not_found", "no such upload session", NULL);
		return;
	}
	wa_parse_u64(PQgetvalue(res, 0, 1), 0, UINT64_MAX, &offset);
	wa_parse_u64(PQgetvalue(res, 0, 2), 0, UINT64_MAX, &size);
	if (offset != size) {
		char msg[96];

		offset_headers(ctx, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
		snprintf(msg, sizeof(msg), "the upload is incomplete: %llu of %llu bytes",
			 (unsigned long long)offset, (unsigned long long)size);
		wa_reply_error(ctx, 409, "conflict", msg, NULL);
		return;
	}
	fs = calloc(1, sizeof(*fs));
	if (fs == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	fs->fd = -1;
	fs->up = up;
	snprintf(fs->upload_id, sizeof(fs->upload_id), "%.34s", ctx->path_arg);
	/* until the bundle owns it, ctx does */
	ctx->state = fs;
	ctx->state_free = finish_state_free;
	if (!upload_path(up, ctx->path_arg, path) ||
	    (fs->fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fstat(fs->fd, &st) != 0) {
		wa_reply_error(ctx, 500, "store_error", "cannot read the upload file", NULL);
		return;
	}
	if ((uint64_t)st.st_size != size) {
		/* a crash lost a written chunk: the bytes are not all there */
		wa_reply_error(ctx, 409, "conflict",
			       "the upload file lacks bytes (server restart?): upload again", NULL);
		return;
	}
	if (size < OTA_BUNDLE_PREFIX_BYTES ||
	    pread(fs->fd, prefix, sizeof(prefix), 0) != (ssize_t)sizeof(prefix) ||
	    ota_bundle_prefix_parse(prefix, &header_len) != OTA_OK || header_len == 0 ||
	    header_len > OTA_MAX_BUNDLE_HEADER_BYTES ||
	    header_len > size - OTA_BUNDLE_PREFIX_BYTES) {
		wa_bundle_refuse(ctx, OTA_ERR_FORMAT, "bundle");
		return;
	}
	fs->header = malloc(header_len);
	fs->buf = malloc(WA_UPLOAD_COPY_BUF);
	if (fs->header == NULL || fs->buf == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	if (pread(fs->fd, fs->header, header_len, OTA_BUNDLE_PREFIX_BYTES) != (ssize_t)header_len) {
		wa_bundle_refuse(ctx, OTA_ERR_FORMAT, "bundle");
		return;
	}
	fs->pos = OTA_BUNDLE_PREFIX_BYTES + (uint64_t)header_len;
	fs->end = size;
	has_sha = !PQgetisnull(res, 0, 3);
	if (has_sha) {
		if (!hex32_decode(PQgetvalue(res, 0, 3), fs->expected) ||
		    ota_sha256_init(&fs->sha) != OTA_OK) {
			wa_reply_error(ctx, 500, "internal", "bad stored sha256", NULL);
			return;
		}
		fs->sha_live = true;
		if (ota_sha256_update(&fs->sha, prefix, sizeof(prefix)) != OTA_OK ||
		    ota_sha256_update(&fs->sha, fs->header, header_len) != OTA_OK) {
			wa_reply_error(ctx, 500, "internal", "hash failed", NULL);
			return;
		}
	}
	/* hand fs over to the bundle (wa_bundle_begin replaces ctx->state) */
	ctx->state = NULL;
	ctx->state_free = NULL;
	if (!wa_bundle_begin(ctx, artifact_id, fs->header, header_len, fs->end - fs->pos,
			     store_from_file)) {
		finish_state_free(fs);
		return;
	}
	b = ctx->state;
	b->ext = fs;
	b->ext_free = finish_state_free;
	b->created = finish_created;
	b->delta = ctx->step == FINISH_DELTA;
	snprintf(b->upload_id, sizeof(b->upload_id), "%s", fs->upload_id);
	wa_bundle_verify(ctx);
}

static void finish(struct wa_ctx *ctx, bool delta);

static void wa_h_uploads_finish(struct wa_ctx *ctx)
{
	finish(ctx, false);
}

/* POST /api/v1/uploads/{id}/delta: the session's bundle as a delta of an artifact. */
static void wa_h_uploads_finish_delta(struct wa_ctx *ctx)
{
	finish(ctx, true);
}

static void finish(struct wa_ctx *ctx, bool delta)
{
	static const char *const allowed[] = {NULL};
	const char *key, *artifact_id;
	json_t *value;
	char token[SRV_U64_TEXT_BYTES];
	const char *params[2] = {ctx->path_arg, token};

	if (!session_arg(ctx, allowed))
		return;
	json_object_foreach(ctx->json, key, value)
	{
		if (strcmp(key, "artifact_id") != 0) {
			wa_reply_error(ctx, 400, "bad_request", "unknown field", key);
			return;
		}
	}
	artifact_id = json_string_value(json_object_get(ctx->json, "artifact_id"));
	if (artifact_id == NULL || !wa_id_valid(artifact_id, WA_MAX_OBJECT_ID)) {
		wa_reply_error(ctx, 400, "bad_request",
			       "artifact_id: 1..128 of letters, digits and . _ - (first "
			       "alphanumeric)",
			       "artifact_id");
		return;
	}
	snprintf(token, sizeof(token), "%lld", ctx->token_id);
	ctx->step = delta ? FINISH_DELTA : 0;
	wa_db_stmt(ctx, &stmts[STMT_GET], params, finish_loaded);
}

/* ---- the resource ----------------------------------------------------- */

static const struct wa_route routes[] = {
	{EVHTTP_REQ_POST, "/api/v1/uploads", WA_ROLE_OPERATOR, WA_BODY_JSON, wa_h_uploads_create},
	{EVHTTP_REQ_GET, "/api/v1/uploads/*", WA_ROLE_OPERATOR, WA_BODY_NONE, wa_h_uploads_get},
	{EVHTTP_REQ_HEAD, "/api/v1/uploads/*", WA_ROLE_OPERATOR, WA_BODY_NONE, wa_h_uploads_get},
	{EVHTTP_REQ_PATCH, "/api/v1/uploads/*", WA_ROLE_OPERATOR, WA_BODY_CHUNK,
	 wa_h_uploads_append},
	{EVHTTP_REQ_PUT, "/api/v1/uploads/*", WA_ROLE_OPERATOR, WA_BODY_CHUNK, wa_h_uploads_append},
	{EVHTTP_REQ_DELETE, "/api/v1/uploads/*", WA_ROLE_OPERATOR, WA_BODY_NONE,
	 wa_h_uploads_delete},
	{EVHTTP_REQ_POST, "/api/v1/uploads/*/artifact", WA_ROLE_OPERATOR, WA_BODY_JSON,
	 wa_h_uploads_finish},
	{EVHTTP_REQ_POST, "/api/v1/uploads/*/delta", WA_ROLE_OPERATOR, WA_BODY_JSON,
	 wa_h_uploads_finish_delta},
};

const struct wa_resource wa_uploads_resource = {WA_TABLE(routes), WA_TABLE(stmts)};
