/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server's timestamp role (timestamp-internal.h). Signing runs on the
 * loop (one Ed25519 or P-256 signature per product line per round, bounded
 * by SRV_TS_MAX_PRODUCTS); the database is asked asynchronously; requests
 * are answered from the last round's envelopes, never from the database.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "config-internal.h"
#include "device.h"
#include "db-internal.h"
#include "http-internal.h"
#include "log-internal.h"
#include "server-internal.h"
#include "srv-limits.h"
#include "timestamp-internal.h"
#include "fleetota/sign.h"
#include "fleetota/trust.h"

/*
 * The statements (migrations/code/timestamp.sql), run unprepared: the role
 * starts after the pool, and most servers do not sign.
 */
enum { STMT_RELEASES, STMT_TRUST };
static const struct srv_db_stmt stmts[] = {
	[STMT_RELEASES] = {"ts_releases", "SELECT * FROM timestamp_releases($1)", 1},
	[STMT_TRUST] = {"ts_trust", "SELECT * FROM timestamp_trust($1)", 1},
};
#define TS_MAX_PRODUCT_BYTES OTA_MAX_STRING_BYTES

struct ts_entry {
	char product[TS_MAX_PRODUCT_BYTES + 1];
	uint8_t *bytes; /* the packed Signed envelope */
	size_t len;
};

struct srv_timestamps {
	struct srv_server *srv;
	EVP_PKEY *key;
	uint8_t key_id[OTA_KEY_ID_BYTES];
	unsigned lifetime_s;
	struct event *timer;
	bool busy; /* a round's queries are running */
	bool refused; /* the key is an operational or a root key: never sign */
	struct ts_entry entries[SRV_TS_MAX_PRODUCTS];
	size_t n;
};

static void entries_clear(struct srv_timestamps *ts)
{
	for (size_t i = 0; i < ts->n; i++)
		free(ts->entries[i].bytes);
	ts->n = 0;
}

/* ---- signing ---------------------------------------------------------- */

/* Packs body signed as a Timestamp into a heap buffer. */
static enum ota_err seal(struct srv_timestamps *ts, const uint8_t *body, size_t body_len,
			 uint8_t **ret_bytes, size_t *ret_len)
{
	uint8_t sig[OTA_MAX_SIG_BYTES];
	uint8_t key_id[OTA_KEY_ID_BYTES];
	size_t sig_len = 0;
	enum ota_alg alg;
	enum ota_err err =
		ota_sign(OTA_OBJ_TIMESTAMP, body, body_len, ts->key, &alg, key_id, sig, &sig_len);
	if (err != OTA_OK)
		return err;
	Fleetota__V1__Signature signature = FLEETOTA__V1__SIGNATURE__INIT;
	Fleetota__V1__Signature *sigs[1] = {&signature};
	Fleetota__V1__Signed env = FLEETOTA__V1__SIGNED__INIT;
	signature.key_id.data = key_id;
	signature.key_id.len = sizeof(key_id);
	signature.alg = (Fleetota__V1__Algorithm)alg;
	signature.sig.data = sig;
	signature.sig.len = sig_len;
	env.body.data = (uint8_t *)body;
	env.body.len = body_len;
	env.signatures = sigs;
	env.n_signatures = 1;
	size_t len = fleetota__v1__signed__get_packed_size(&env);
	if (len > OTA_MAX_ENVELOPE_BYTES)
		return OTA_ERR_FORMAT;
	uint8_t *bytes = malloc(len);
	if (!bytes)
		return OTA_ERR_NOMEM;
	fleetota__v1__signed__pack(&env, bytes);
	*ret_bytes = bytes;
	*ret_len = len;
	return OTA_OK;
}

/* A text column of the binary result (NULL or too long: ""). */
static void column_text(const PGresult *res, int row, int col, char *buf, size_t cap)
{
	int len = PQgetisnull(res, row, col) ? 0 : PQgetlength(res, row, col);
	if (len < 0 || (size_t)len >= cap)
		len = 0;
	memcpy(buf, PQgetvalue(res, row, col), (size_t)len);
	buf[len] = '\0';
}

/* One product line's Timestamp from row of timestamp_releases(). */
static enum ota_err sign_row(struct srv_timestamps *ts, const PGresult *res, int row, uint64_t now,
			     struct ts_entry *out)
{
	char version[OTA_MAX_STRING_BYTES + 1], artifact[OTA_MAX_STRING_BYTES + 1];
	uint8_t manifest_sha[OTA_SHA256_BYTES];
	uint8_t mem[OTA_DECODE_ARENA_BYTES / 2];
	Fleetota__V1__Timestamp t = FLEETOTA__V1__TIMESTAMP__INIT;
	struct ota_arena arena;

	column_text(res, row, 0, out->product, sizeof(out->product));
	column_text(res, row, 1, version, sizeof(version));
	column_text(res, row, 4, artifact, sizeof(artifact));
	if (out->product[0] == '\0')
		return OTA_ERR_FORMAT;
	t.product = out->product;
	t.issued_at = now;
	t.expires_at = now + ts->lifetime_s;
	t.version = version;
	t.artifact = artifact;
	if (!PQgetisnull(res, row, 2)) {
		t.version_code = (uint64_t)srv_db_get_int8(res, row, 2);
		t.security_counter = (uint64_t)srv_db_get_int8(res, row, 3);
	}
	if (!PQgetisnull(res, row, 6))
		t.keylist_version = (uint64_t)srv_db_get_int8(res, row, 6);
	if (!PQgetisnull(res, row, 5)) {
		Fleetota__V1__Signed *menv = NULL;
		ota_arena_init(&arena, mem, sizeof(mem));
		if (ota_envelope_decode((const uint8_t *)PQgetvalue(res, row, 5),
					(size_t)PQgetlength(res, row, 5), &arena,
					&menv) != OTA_OK ||
		    ota_sha256(menv->body.data, menv->body.len, manifest_sha) != OTA_OK)
			return OTA_ERR_FORMAT;
		t.manifest_sha256.data = manifest_sha;
		t.manifest_sha256.len = sizeof(manifest_sha);
	}
	size_t body_len = fleetota__v1__timestamp__get_packed_size(&t);
	uint8_t body[OTA_MAX_STRING_BYTES * 3 + 256];
	if (body_len > sizeof(body))
		return OTA_ERR_FORMAT;
	fleetota__v1__timestamp__pack(&t, body);
	return seal(ts, body, body_len, &out->bytes, &out->len);
}

static void releases_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct srv_timestamps *ts = arg;
	ts->busy = false;
	if (err != OTA_OK) {
		/* the last round's Timestamps stay served until they expire */
		srv_log(SRV_LOG_WARN, "timestamp: current releases unavailable: %s",
			ota_err_name(err));
		return;
	}
	uint64_t now = (uint64_t)time(NULL);
	size_t rows = (size_t)PQntuples(res);
	struct ts_entry *fresh = calloc(SRV_TS_MAX_PRODUCTS, sizeof(*fresh));
	size_t n = 0;
	if (!fresh)
		return;
	for (size_t i = 0; i < rows && n < SRV_TS_MAX_PRODUCTS; i++) {
		enum ota_err e = sign_row(ts, res, (int)i, now, &fresh[n]);
		if (e == OTA_OK)
			n++;
		else
			srv_log(SRV_LOG_WARN, "timestamp: product line %zu not signed: %s", i,
				ota_err_name(e));
	}
	entries_clear(ts);
	memcpy(ts->entries, fresh, n * sizeof(*fresh));
	ts->n = n;
	free(fresh);
	ts->srv->metrics.timestamps_signed += n;
	srv_log(SRV_LOG_DEBUG, "timestamp: %zu product lines signed, valid %u s", n,
		ts->lifetime_s);
}

/*
 * The trust lists of one round (timestamp_trust(): the newest KeyList, then
 * the newest RootLists) must not name the server's key as an operational
 * key or a root key: the one key the server holds signs timestamps and
 * nothing else. Row row is checked in arena; true when it forbids the key
 * (logged). *ret_unlisted is set when row is a KeyList without the key.
 */
/* Logs why the server's key may not sign (what: its role in a list); true. */
static bool key_refused(const char *what, uint64_t version)
{
	srv_log(SRV_LOG_ERROR,
		"timestamp: timestamp_key is %s v%llu: refusing to sign (OTA_ERR_KEY_ROLE)", what,
		(unsigned long long)version);
	return true;
}

static bool row_forbids_key(struct srv_timestamps *ts, const PGresult *res, int row,
			    struct ota_arena *arena, bool *ret_unlisted, uint64_t *ret_version)
{
	char kind[SRV_TS_KIND_BYTES];
	Fleetota__V1__Signed *env = NULL;
	column_text(res, row, 0, kind, sizeof(kind));
	if (PQgetisnull(res, row, 1) ||
	    ota_envelope_decode((const uint8_t *)PQgetvalue(res, row, 1),
				(size_t)PQgetlength(res, row, 1), arena, &env) != OTA_OK)
		return false;
	if (strcmp(kind, "rootlist") == 0) {
		Fleetota__V1__RootList *rl = NULL;
		if (ota_rootlist_parse(env, arena, &rl) != OTA_OK)
			return false;
		for (size_t i = 0; i < rl->n_keys; i++) {
			const ProtobufCBinaryData *id = &rl->keys[i]->key_id;
			if (id->len == sizeof(ts->key_id) &&
			    memcmp(id->data, ts->key_id, sizeof(ts->key_id)) == 0)
				return key_refused("a root key of RootList", rl->version);
		}
		return false;
	}
	Fleetota__V1__KeyList *kl = NULL;
	if (ota_keylist_parse(env, arena, &kl) != OTA_OK)
		return false;
	const Fleetota__V1__PublicKey *key = ota_keylist_find(kl, ts->key_id, sizeof(ts->key_id));
	if (key && key->role != FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP)
		return key_refused("an operational key of KeyList", kl->version);
	*ret_unlisted = key == NULL;
	*ret_version = kl->version;
	return false;
}

static void trust_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct srv_timestamps *ts = arg;
	bool unlisted = false;
	uint64_t kl_version = 0;
	uint8_t *mem = NULL;
	if (err != OTA_OK) {
		/* also at shutdown (OTA_ERR_BUSY): no second query from here */
		srv_log(SRV_LOG_WARN, "timestamp: KeyList unavailable: %s", ota_err_name(err));
		ts->busy = false;
		return;
	}
	if ((mem = malloc(OTA_DECODE_ARENA_BYTES)) != NULL) {
		for (int row = 0; row < PQntuples(res) && !ts->refused; row++) {
			struct ota_arena arena;
			ota_arena_init(&arena, mem, OTA_DECODE_ARENA_BYTES);
			ts->refused = row_forbids_key(ts, res, row, &arena, &unlisted, &kl_version);
		}
	}
	free(mem);
	if (ts->refused) {
		entries_clear(ts);
		ts->busy = false;
		return;
	}
	if (unlisted)
		srv_log(SRV_LOG_WARN,
			"timestamp: timestamp_key is not in KeyList v%llu: devices "
			"refuse its Timestamps until a KeyList lists it",
			(unsigned long long)kl_version);
	const char *params[1];
	char limit[SRV_U32_TEXT_BYTES];
	snprintf(limit, sizeof(limit), "%u", SRV_TS_MAX_PRODUCTS);
	params[0] = limit;
	if (srv_db_exec_sql(ts->srv->db, stmts[STMT_RELEASES].sql, stmts[STMT_RELEASES].n_params,
			    params, true, SRV_DB_RETRY, releases_cb, ts) != OTA_OK)
		ts->busy = false;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_timestamps *ts = arg;
	(void)fd;
	(void)what;
	if (ts->busy || ts->refused)
		return;
	const char *params[1];
	char limit[SRV_U32_TEXT_BYTES];
	snprintf(limit, sizeof(limit), "%u", SRV_TS_MAX_ROOTLISTS);
	params[0] = limit;
	ts->busy = true;
	if (srv_db_exec_sql(ts->srv->db, stmts[STMT_TRUST].sql, stmts[STMT_TRUST].n_params, params,
			    true, SRV_DB_RETRY, trust_cb, ts) != OTA_OK)
		ts->busy = false;
}

/* ---- key ---------------------------------------------------------------- */

static enum ota_err key_load(const char *path, EVP_PKEY **ret_key)
{
	struct stat st;
	FILE *f = fopen(path, "r");
	if (!f) {
		srv_log(SRV_LOG_ERROR, "timestamp_key %s: cannot open", path);
		return OTA_ERR_STORAGE;
	}
	if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077) != 0) {
		fclose(f);
		srv_log(SRV_LOG_ERROR, "timestamp_key %s: readable by group or others (chmod 600)",
			path);
		return OTA_ERR_STORAGE;
	}
	EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!key) {
		srv_log(SRV_LOG_ERROR, "timestamp_key %s: not an unencrypted PEM PKCS#8 key", path);
		return OTA_ERR_FORMAT;
	}
	*ret_key = key;
	return OTA_OK;
}

enum ota_err srv_timestamp_start(struct srv_server *srv, struct srv_timestamps **ret)
{
	const struct srv_config *cfg = srv->config;
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES];
	size_t spki_len = 0;
	enum ota_alg alg;
	*ret = NULL;
	if (!cfg->timestamp_key || cfg->timestamp_key[0] == '\0')
		return OTA_OK;
	struct srv_timestamps *ts = calloc(1, sizeof(*ts));
	if (!ts)
		return OTA_ERR_NOMEM;
	ts->srv = srv;
	ts->lifetime_s = cfg->timestamp_lifetime_sec;
	enum ota_err err = key_load(cfg->timestamp_key, &ts->key);
	if (err == OTA_OK &&
	    (err = ota_pkey_public(ts->key, &alg, spki, &spki_len, ts->key_id)) != OTA_OK)
		srv_log(SRV_LOG_ERROR, "timestamp_key: neither Ed25519 nor ECDSA P-256");
	if (err == OTA_OK) {
		/* re-signed four times per lifetime: a late round still leaves 3/4 */
		struct timeval every = {.tv_sec = ts->lifetime_s / 4 ? ts->lifetime_s / 4 : 1};
		ts->timer = event_new(srv->base, -1, EV_PERSIST, timer_cb, ts);
		if (!ts->timer || event_add(ts->timer, &every) != 0)
			err = OTA_ERR_NOMEM;
	}
	if (err != OTA_OK) {
		srv_timestamp_stop(ts);
		return err;
	}
	srv_log(SRV_LOG_INFO, "timestamp role on: Timestamps valid %u s, re-signed every %u s",
		ts->lifetime_s, ts->lifetime_s / 4 ? ts->lifetime_s / 4 : 1);
	timer_cb(-1, 0, ts); /* the first round now */
	*ret = ts;
	return OTA_OK;
}

void srv_timestamp_stop(struct srv_timestamps *ts)
{
	if (!ts)
		return;
	if (ts->timer)
		event_free(ts->timer);
	EVP_PKEY_free(ts->key); /* OpenSSL clears key material on free */
	entries_clear(ts);
	free(ts);
}

/* ---- the device route ------------------------------------------------- */

void srv_timestamp_handle(struct evhttp_request *req, const char *rest, void *ctx)
{
	struct srv_server *srv = ctx;
	struct srv_timestamps *ts = srv->timestamps;
	srv->metrics.requests++;
	if (!ts || ts->refused) {
		srv_http_send_error(req, 404, "not_found", "no timestamp role on this server");
		return;
	}
	size_t len = strnlen(rest, TS_MAX_PRODUCT_BYTES + 1);
	for (size_t i = 0; len > 0 && len <= TS_MAX_PRODUCT_BYTES && i < ts->n; i++) {
		const struct ts_entry *e = &ts->entries[i];
		if (strcmp(e->product, rest) != 0)
			continue;
		struct evbuffer *body = evbuffer_new();
		if (!body || evbuffer_add(body, e->bytes, e->len) != 0) {
			evbuffer_free(body);
			srv_http_send_error(req, 500, "internal", "out of memory");
			return;
		}
		struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
		evhttp_add_header(headers, "Content-Type", "application/octet-stream");
		evhttp_add_header(headers, "Cache-Control", "no-store");
		srv->metrics.timestamps_served++;
		srv_http_send_reply(req, 200, "OK", body);
		evbuffer_free(body);
		return;
	}
	srv_http_send_error(req, 404, "not_found", "no timestamp for this product line");
}
