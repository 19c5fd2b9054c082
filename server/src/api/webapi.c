/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin listener: evhttp on the server's loop, one route table (the
 * operations of openapi.yaml), bearer-token authentication against the
 * database, role checks, body limits and content types, then the handler.
 * Every request gets exactly one reply (wa_reply_*), which frees its ctx.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config-internal.h"
#include "conns-internal.h"
#include "db-internal.h"
#include "fleetota/utf8.h"
#include "http-internal.h"
#include "log-internal.h"
#include "metrics-internal.h"
#include "ratelimit-internal.h"
#include "webapi-internal.h"

/* Status classes counted by /metrics. */
#define WA_STATUS_CLASSES 6

struct webapi {
	struct event_base *base;
	struct srv_db *db;
	struct srv_metrics *metrics;
	struct evhttp *http;
	SSL_CTX *ssl_ctx;
	struct srv_ratelimit *ratelimit;
	char *store_dir;
	struct wa_uploads *uploads;
	struct wa_console *console; /* NULL: no console_dir */
	uint16_t port;
	unsigned db_timeout_ms; /* each database call of a request */
	unsigned healthz_timeout_ms;
	struct wa_ctx *live; /* requests not answered yet */
	/* API metrics */
	uint64_t requests_by_class[WA_STATUS_CLASSES];
	struct srv_histogram latency;
};

static void h_healthz(struct wa_ctx *ctx);
static void h_metrics(struct wa_ctx *ctx);

/* The listener's own routes and statements; the resources' are theirs. */
static const struct wa_route routes[] = {
	{EVHTTP_REQ_GET, "/healthz", WA_ROLE_NONE, WA_BODY_NONE, h_healthz},
	{EVHTTP_REQ_GET, "/metrics", WA_ROLE_VIEWER, WA_BODY_NONE, h_metrics},
};

/* STRINGIFY for the statement text */
#define WA_STR_(x) #x
#define WA_STR(x) WA_STR_(x)

/*
 * The listener's statements: /healthz's round trip (no function, so that it
 * needs nothing but a database), authentication (api_tokens.sql) and the
 * fleet gauges of /metrics (metrics.sql).
 */
enum { STMT_HEALTH, STMT_AUTH, STMT_FLEET_METRICS };
static const struct srv_db_stmt stmts[] = {
	[STMT_HEALTH] = {"wa_health", "SELECT 1", 0},
	[STMT_AUTH] = {"wa_auth", "SELECT id, role, name FROM api_token_auth($1)", 1},
	[STMT_FLEET_METRICS] = {"wa_fleet_metrics",
				"SELECT kind, label, label2, value FROM metrics_fleet(" WA_STR(
					SRV_METRICS_MAX_CAMPAIGNS) ")",
				0},
};

static const struct wa_resource listener = {WA_TABLE(routes), WA_TABLE(stmts)};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- replies -------------------------------------------------------- */

static void ctx_free(struct wa_ctx *ctx)
{
	if (ctx == NULL)
		return;
	if (!ctx->orphan) {
		if (ctx->live_prev != NULL)
			ctx->live_prev->live_next = ctx->live_next;
		else
			ctx->api->live = ctx->live_next;
		if (ctx->live_next != NULL)
			ctx->live_next->live_prev = ctx->live_prev;
	}
	if (ctx->defer_ev != NULL)
		event_free(ctx->defer_ev);
	if (ctx->state_free != NULL)
		ctx->state_free(ctx->state);
	if (ctx->query_parsed)
		evhttp_clear_headers(&ctx->query);
	json_decref(ctx->json);
	free(ctx);
}

/* Every reply passes here once: the API's metrics and the access log. */
static void account(struct wa_ctx *ctx, int status, size_t bytes)
{
	struct webapi *api = ctx->api;
	double ms = now_ms() - ctx->started_ms;
	int cls = status / 100;

	if (cls < 1 || cls > 5)
		cls = 0;
	api->requests_by_class[cls]++;
	srv_histogram_observe(&api->latency, ms / 1000.0);
	wa_access_log(ctx, status, bytes, ms);
}

static void send_buffer(struct wa_ctx *ctx, int status, const char *content_type,
			struct evbuffer *buf)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(ctx->req);

	evhttp_add_header(out, "Content-Type", content_type);
	evhttp_add_header(out, "Cache-Control", "no-store");
	evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	account(ctx, status, evbuffer_get_length(buf));
	srv_http_send_reply(ctx->req, status, NULL, buf);
	ctx_free(ctx);
}

void wa_reply_bytes(struct wa_ctx *ctx, int status, const char *content_type, const char *data,
		    size_t len)
{
	struct evbuffer *buf = evbuffer_new();

	if (buf == NULL || evbuffer_add(buf, data, len) != 0) {
		if (buf != NULL)
			evbuffer_free(buf);
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	send_buffer(ctx, status, content_type, buf);
	evbuffer_free(buf);
}

void wa_reply_text(struct wa_ctx *ctx, int status, const char *json_text)
{
	struct evbuffer *buf;

	if (ctx->etag && status == 200 && wa_etag_not_modified(ctx, json_text)) {
		evhttp_add_header(evhttp_request_get_output_headers(ctx->req), "Cache-Control",
				  "no-cache");
		account(ctx, 304, 0);
		evhttp_send_reply(ctx->req, 304, "Not Modified", NULL);
		ctx_free(ctx);
		return;
	}
	buf = evbuffer_new();
	if (buf == NULL) {
		account(ctx, 500, 0);
		evhttp_send_error(ctx->req, 500, NULL);
		ctx_free(ctx);
		return;
	}
	evbuffer_add(buf, json_text, strlen(json_text));
	evbuffer_add(buf, "\n", 1);
	send_buffer(ctx, status, "application/json", buf);
	evbuffer_free(buf);
}

void wa_reply_json(struct wa_ctx *ctx, int status, json_t *body)
{
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (text == NULL) {
		wa_reply_text(ctx, 500,
			      "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
		return;
	}
	wa_reply_text(ctx, status, text);
	free(text);
}

void wa_reply_error(struct wa_ctx *ctx, int status, const char *code, const char *message,
		    const char *field)
{
	json_t *err = json_pack("{s:s, s:s}", "code", code, "message", message);

	if (err != NULL && field != NULL)
		json_object_set_new(err, "field", json_string(field));
	if (status == 401)
		evhttp_add_header(evhttp_request_get_output_headers(ctx->req), "WWW-Authenticate",
				  "Bearer realm=\"fleetota\"");
	wa_reply_json(ctx, status, err != NULL ? json_pack("{s:o}", "error", err) : NULL);
}

const char *wa_sqlstate(const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return state != NULL ? state : "";
}

void wa_reply_db_error(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err == OTA_ERR_STORAGE) {
		srv_log(SRV_LOG_ERROR, "webapi: %s: statement failed: %s %s",
			ctx->route != NULL ? ctx->route->pattern : "?", wa_sqlstate(res),
			res != NULL ? PQresultErrorMessage(res) : "");
		wa_reply_error(ctx, 500, "internal", "database statement failed", NULL);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(ctx->req), "Retry-After", "1");
	if (err == OTA_ERR_TIMEOUT) {
		char msg[96];

		snprintf(msg, sizeof(msg),
			 "the database did not answer within %u ms (OTA_ERR_TIMEOUT), retry later",
			 ctx->api->db_timeout_ms);
		wa_reply_error(ctx, 503, "timeout", msg, NULL);
		return;
	}
	wa_reply_error(ctx, 503, "unavailable", "database unavailable, retry later", NULL);
}

void wa_reply_db_text(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

/* ---- database ------------------------------------------------------- */

struct db_call {
	struct wa_ctx *ctx;
	void (*cb)(struct wa_ctx *ctx, enum ota_err err, const PGresult *res);
};

static void db_done(void *arg, enum ota_err err, const PGresult *res)
{
	struct db_call *call = arg;
	struct wa_ctx *ctx = call->ctx;
	void (*cb)(struct wa_ctx *, enum ota_err, const PGresult *) = call->cb;

	free(call);
	if (ctx->orphan) {
		/* the listener is gone, and with it the request */
		ctx_free(ctx);
		return;
	}
	cb(ctx, err, res);
}

/*
 * Queues query (fail fast, its deadline set by the caller) with cb to get
 * ctx back. OTA_OK, or the refusal (cb will not be called).
 */
static enum ota_err db_start(struct wa_ctx *ctx, struct srv_db_query *query,
			     void (*cb)(struct wa_ctx *ctx, enum ota_err err, const PGresult *res))
{
	struct db_call *call = malloc(sizeof(*call));
	enum ota_err err;

	if (call == NULL)
		return OTA_ERR_NOMEM;
	call->ctx = ctx;
	call->cb = cb;
	query->flags = SRV_DB_FAIL_FAST;
	err = srv_db_run(ctx->api->db, query, db_done, call);
	if (err != OTA_OK)
		free(call);
	return err;
}

static void db_run(struct wa_ctx *ctx, struct srv_db_query *query,
		   void (*cb)(struct wa_ctx *ctx, enum ota_err err, const PGresult *res))
{
	enum ota_err err;

	query->timeout_ms = ctx->api->db_timeout_ms;
	err = db_start(ctx, query, cb);
	if (err == OTA_OK)
		return;
	if (ctx->req == NULL) /* wa_ctx_internal: no one to reply to */
		cb(ctx, err == OTA_ERR_NOMEM ? err : OTA_ERR_BUSY, NULL);
	else if (err == OTA_ERR_NOMEM)
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
	else
		wa_reply_db_error(ctx, OTA_ERR_BUSY, NULL);
}

void wa_db(struct wa_ctx *ctx, const char *stmt, int n_params, const char *const *values,
	   void (*cb)(struct wa_ctx *ctx, enum ota_err err, const PGresult *res))
{
	struct srv_db_query query = {.stmt = stmt, .n_params = n_params, .values = values};

	db_run(ctx, &query, cb);
}

const char *wa_store_dir(const struct wa_ctx *ctx)
{
	return ctx->api->store_dir;
}

const struct wa_console *wa_console_of(const struct wa_ctx *ctx)
{
	return ctx->api->console;
}

struct wa_uploads *wa_uploads_of(const struct wa_ctx *ctx)
{
	return ctx->api->uploads;
}

static void defer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct wa_ctx *ctx = arg;

	(void)fd;
	(void)what;
	if (ctx->orphan) {
		ctx_free(ctx);
		return;
	}
	ctx->defer_cb(ctx);
}

void wa_defer(struct wa_ctx *ctx, void (*cb)(struct wa_ctx *ctx))
{
	static const struct timeval now = {0, 0};

	if (ctx->defer_ev == NULL) {
		ctx->defer_ev = evtimer_new(ctx->api->base, defer_fire, ctx);
		if (ctx->defer_ev == NULL) {
			wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
			return;
		}
	}
	ctx->defer_cb = cb;
	evtimer_add(ctx->defer_ev, &now);
}

struct wa_ctx *wa_ctx_internal(struct webapi *api)
{
	struct wa_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL)
		return NULL;
	ctx->api = api;
	ctx->live_next = api->live;
	if (api->live != NULL)
		api->live->live_prev = ctx;
	api->live = ctx;
	ctx->started_ms = now_ms();
	snprintf(ctx->actor, sizeof(ctx->actor), "server");
	return ctx;
}

void wa_ctx_done(struct wa_ctx *ctx)
{
	ctx_free(ctx);
}

const char *wa_header(struct wa_ctx *ctx, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(ctx->req), name);
}

void wa_add_header(struct wa_ctx *ctx, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(ctx->req), name, value);
}

/* ---- query strings -------------------------------------------------- */

static bool parse_query(struct wa_ctx *ctx)
{
	const char *q;

	if (ctx->query_parsed)
		return true;
	TAILQ_INIT(&ctx->query);
	q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(ctx->req));
	if (q != NULL && evhttp_parse_query_str(q, &ctx->query) != 0) {
		evhttp_clear_headers(&ctx->query);
		return false;
	}
	ctx->query_parsed = true;
	return true;
}

const char *wa_query(struct wa_ctx *ctx, const char *name)
{
	if (!parse_query(ctx))
		return NULL;
	return evhttp_find_header(&ctx->query, name);
}

bool wa_query_only(struct wa_ctx *ctx, const char *const *allowed)
{
	struct evkeyval *kv;

	if (!parse_query(ctx)) {
		wa_reply_error(ctx, 400, "bad_request", "malformed query string", NULL);
		return false;
	}
	{
		/* decoding stops at an encoded NUL: "id=fw%00.otab" would read "fw" */
		const char *raw = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(ctx->req));
		const char *nul = raw != NULL ? strstr(raw, "%00") : NULL;

		if (nul != NULL) {
			const char *start = nul;
			char key[WA_QUERY_KEY_BYTES];
			size_t key_len;

			while (start > raw && start[-1] != '&')
				start--;
			key_len = strcspn(start, "=&");
			snprintf(key, sizeof(key), "%.*s", (int)(key_len < 63 ? key_len : 63),
				 start);
			wa_reply_error(ctx, 400, "bad_request", "NUL byte in a query parameter",
				       key);
			return false;
		}
	}
	TAILQ_FOREACH(kv, &ctx->query, next)
	{
		size_t i;
		bool ok = false;
		int count = 0;
		struct evkeyval *other;

		for (i = 0; allowed[i] != NULL && !ok; i++)
			ok = strcmp(kv->key, allowed[i]) == 0;
		TAILQ_FOREACH(other, &ctx->query, next)
		count += strcmp(other->key, kv->key) == 0;
		/* every value reaches SQL as text: PostgreSQL takes UTF-8 only */
		if (!ok || count > 1 || strlen(kv->value) > 256 || !ota_utf8_valid_str(kv->value)) {
			char msg[128];
			const char *why = !ok	      ? "unknown query parameter"
					  : count > 1 ? "query parameter given twice"
					  : strlen(kv->value) > 256
						  ? "query parameter too long"
						  : "query parameter is not valid UTF-8";

			snprintf(msg, sizeof(msg), "%s", why);
			wa_reply_error(ctx, 400, "bad_request", msg, ok ? kv->key : "query");
			return false;
		}
	}
	return true;
}

bool wa_query_limit(struct wa_ctx *ctx, char out[WA_LIMIT_TEXT_BYTES])
{
	const char *s = wa_query(ctx, "limit");
	uint64_t limit = WEBAPI_PAGE_DEFAULT;

	if (s != NULL && !wa_parse_u64(s, 1, WEBAPI_PAGE_MAX, &limit)) {
		wa_reply_error(ctx, 400, "bad_request", "limit must be an integer in 1..500",
			       "limit");
		return false;
	}
	snprintf(out, WA_LIMIT_TEXT_BYTES, "%llu", (unsigned long long)limit);
	return true;
}

/* ---- routing and authentication ------------------------------------- */

/*
 * Matches path against pattern; a "*" segment captures one segment
 * (percent-decoded) into arg. 1 match, 0 no match, -1 bad encoding.
 */
static int match(const char *pattern, const char *path, char *arg, size_t arg_cap)
{
	while (*pattern != '\0' && *path != '\0') {
		if (pattern[0] == '*') {
			const char *end = strchr(path, '/');
			size_t seg_len = end != NULL ? (size_t)(end - path) : strlen(path);
			char raw[WA_PATH_SEGMENT_BYTES];
			size_t dec_len = 0;
			char *dec;

			if (seg_len == 0 || seg_len >= sizeof(raw))
				return seg_len == 0 ? 0 : -1;
			memcpy(raw, path, seg_len);
			raw[seg_len] = '\0';
			dec = evhttp_uridecode(raw, 0, &dec_len);
			if (dec == NULL)
				return -1;
			if (dec_len != strlen(dec) || dec_len >= arg_cap ||
			    !ota_utf8_valid(dec, dec_len)) {
				free(dec);
				return -1;
			}
			memcpy(arg, dec, dec_len + 1);
			free(dec);
			pattern++;
			path += seg_len;
			continue;
		}
		if (*pattern != *path)
			return 0;
		pattern++;
		path++;
	}
	return *pattern == '\0' && *path == '\0';
}

/*
 * Looks for ctx's route among res's: 1 found (ctx->route, ctx->path_arg),
 * 0 not there (*path_known set when the path is, with another method), -1
 * a bad path encoding.
 */
static int route_in(const struct wa_resource *res, struct wa_ctx *ctx, const char *path,
		    bool *path_known)
{
	for (size_t i = 0; i < res->n_routes; i++) {
		int m = match(res->routes[i].pattern, path, ctx->path_arg, sizeof(ctx->path_arg));

		if (m < 0)
			return -1;
		if (m == 0)
			continue;
		*path_known = true;
		if (res->routes[i].method == ctx->method) {
			ctx->route = &res->routes[i];
			return 1;
		}
	}
	return 0;
}

/* route_in over the listener's routes, then each resource's, in order. */
static int route_find(struct wa_ctx *ctx, const char *path, bool *path_known)
{
	int found = route_in(&listener, ctx, path, path_known);

	for (size_t i = 0; found == 0 && wa_resources[i] != NULL; i++)
		found = route_in(wa_resources[i], ctx, path, path_known);
	return found;
}

static void run_handler(struct wa_ctx *ctx)
{
	const struct wa_route *route = ctx->route;
	struct evbuffer *in = evhttp_request_get_input_buffer(ctx->req);
	size_t len = evbuffer_get_length(in);
	const char *ctype =
		evhttp_find_header(evhttp_request_get_input_headers(ctx->req), "Content-Type");

	if (route->body == WA_BODY_JSON) {
		json_error_t jerr;
		char msg[200];

		if (ctype == NULL || strncmp(ctype, "application/json", 16) != 0 ||
		    (ctype[16] != '\0' && ctype[16] != ';')) {
			wa_reply_error(ctx, 415, "unsupported_media_type",
				       "the body must be application/json", NULL);
			return;
		}
		if (len > WEBAPI_MAX_JSON_BODY) {
			wa_reply_error(ctx, 413, "payload_too_large",
				       "JSON bodies are limited to 64 KiB", NULL);
			return;
		}
		ctx->json = json_loadb((const char *)evbuffer_pullup(in, -1), len,
				       JSON_REJECT_DUPLICATES, &jerr);
		if (ctx->json == NULL) {
			snprintf(msg, sizeof(msg), "malformed JSON at byte %d: %.120s",
				 jerr.position, jerr.text);
			wa_reply_error(ctx, 400, "bad_json", msg, NULL);
			return;
		}
		if (!json_is_object(ctx->json)) {
			wa_reply_error(ctx, 400, "bad_json", "the body must be a JSON object",
				       NULL);
			return;
		}
	} else if (route->body == WA_BODY_BINARY || route->body == WA_BODY_CHUNK) {
		if (ctype == NULL || (strcmp(ctype, "application/octet-stream") != 0 &&
				      (route->body != WA_BODY_CHUNK ||
				       strcmp(ctype, "application/offset+octet-stream") != 0))) {
			wa_reply_error(ctx, 415, "unsupported_media_type",
				       "the body must be application/octet-stream", NULL);
			return;
		}
		if (len == 0) {
			wa_reply_error(ctx, 400, "bad_request", "the body is empty", "body");
			return;
		}
		ctx->body = evbuffer_pullup(in, -1);
		if (ctx->body == NULL) {
			wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
			return;
		}
		ctx->body_len = len;
	} else if (len > 0) {
		wa_reply_error(ctx, 400, "bad_request", "this operation takes no body", "body");
		return;
	}
	route->handler(ctx);
}

static void auth_done(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	enum wa_role role;

	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1) {
		wa_reply_error(ctx, 401, "unauthorized", "unknown or revoked token", NULL);
		return;
	}
	role = wa_role_from_name(PQgetvalue(res, 0, 1));
	ctx->token_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	ctx->role = role;
	snprintf(ctx->actor, sizeof(ctx->actor), "token:%lld:%.64s", ctx->token_id,
		 PQgetvalue(res, 0, 2));
	if (role < ctx->route->role) {
		char msg[96];

		snprintf(msg, sizeof(msg), "this operation needs the %s role",
			 wa_role_name(ctx->route->role));
		wa_reply_error(ctx, 403, "forbidden", msg, NULL);
		return;
	}
	run_handler(ctx);
}

static void gencb(struct evhttp_request *req, void *arg)
{
	struct webapi *api = arg;
	struct wa_ctx *ctx = calloc(1, sizeof(*ctx));
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	bool path_known = false;
	const char *auth, *peer = "?";
	char hash[SRV_SHA256_HEX_BYTES];
	const char *params[1];
	ev_uint16_t peer_port = 0;
	char *peer_addr = NULL;
	unsigned retry = 1;

	if (ctx == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	ctx->api = api;
	ctx->req = req;
	ctx->live_next = api->live;
	if (api->live != NULL)
		api->live->live_prev = ctx;
	api->live = ctx;
	ctx->method = method;
	ctx->started_ms = now_ms();
	if (path == NULL || path[0] != '/') {
		wa_reply_error(ctx, 400, "bad_request", "bad request target", NULL);
		return;
	}
	if (route_find(ctx, path, &path_known) < 0) {
		wa_reply_error(ctx, 400, "bad_request", "bad path encoding", "path");
		return;
	}
	if (ctx->route == NULL) {
		if (path_known)
			wa_reply_error(ctx, 405, "method_not_allowed",
				       "method not allowed on this path", NULL);
		else
			wa_reply_error(ctx, 404, "not_found", "no such path", NULL);
		return;
	}
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer_addr, &peer_port);
	if (peer_addr != NULL)
		peer = peer_addr;
	if (!srv_ratelimit_take(api->ratelimit, peer, ctx->started_ms / 1000.0, &retry)) {
		char value[SRV_U32_TEXT_BYTES];

		snprintf(value, sizeof(value), "%u", retry);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", value);
		wa_reply_error(ctx, 429, "rate_limited", "too many requests, retry later", NULL);
		return;
	}
	if (ctx->route->role == WA_ROLE_NONE) {
		run_handler(ctx);
		return;
	}
	auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (auth == NULL) {
		wa_reply_error(ctx, 401, "unauthorized", "missing bearer token", NULL);
		return;
	}
	if (wa_token_hash_header(auth, hash) != OTA_OK) {
		wa_reply_error(ctx, 401, "unauthorized", "malformed bearer token", NULL);
		return;
	}
	params[0] = hash;
	wa_db_stmt(ctx, &stmts[STMT_AUTH], params, auth_done);
}

/* ---- /healthz and /metrics ------------------------------------------ */

static void health_reply(struct wa_ctx *ctx, bool up)
{
	if (!up)
		evhttp_add_header(evhttp_request_get_output_headers(ctx->req), "Retry-After", "1");
	wa_reply_json(ctx, up ? 200 : 503,
		      json_pack("{s:s, s:b}", "status", up ? "ok" : "degraded", "database", up));
}

static void health_done(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	(void)res;
	health_reply(ctx, err == OTA_OK);
}

/*
 * A real round trip through the pool (a connection that is up but whose
 * server hangs does not count), with its own short deadline.
 */
static void h_healthz(struct wa_ctx *ctx)
{
	struct srv_db_query query = {.stmt = stmts[STMT_HEALTH].name,
				     .timeout_ms = ctx->api->healthz_timeout_ms};

	if (db_start(ctx, &query, health_done) != OTA_OK)
		health_reply(ctx, false);
}

static void metrics_done(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct webapi *api = ctx->api;
	struct evbuffer *out;
	static const char *const class_names[WA_STATUS_CLASSES] = {"other", "1xx", "2xx",
								   "3xx",   "4xx", "5xx"};

	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	out = evbuffer_new();
	if (out == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	srv_metrics_render(api->metrics, out);
	srv_metrics_render_fleet(res, out);
	evbuffer_add_printf(out, "# HELP fleetota_api_requests_total REST API requests by "
				 "status class.\n# TYPE fleetota_api_requests_total counter\n");
	for (int i = 0; i < WA_STATUS_CLASSES; i++)
		evbuffer_add_printf(out, "fleetota_api_requests_total{class=\"%s\"} %llu\n",
				    class_names[i], (unsigned long long)api->requests_by_class[i]);
	srv_histogram_render(&api->latency, "api_request_duration_seconds", "REST API latency.",
			     out);
	send_buffer(ctx, 200, "text/plain; version=0.0.4; charset=utf-8", out);
	evbuffer_free(out);
}

static void h_metrics(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};

	if (!wa_query_only(ctx, allowed))
		return;
	wa_db_stmt(ctx, &stmts[STMT_FLEET_METRICS], NULL, metrics_done);
}

/* ---- lifecycle ------------------------------------------------------ */

static enum ota_err tls_setup(struct webapi *api, const struct webapi_config *cfg)
{
	api->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (api->ssl_ctx == NULL)
		return OTA_ERR_NOMEM;
	SSL_CTX_set_min_proto_version(api->ssl_ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(api->ssl_ctx, cfg->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(api->ssl_ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(api->ssl_ctx) != 1) {
		srv_log(SRV_LOG_ERROR, "webapi: cannot load TLS certificate %s / key",
			cfg->tls_cert);
		ERR_clear_error();
		return OTA_ERR_STORAGE;
	}
	return OTA_OK;
}

static enum ota_err resource_prepare(struct srv_db *db, const struct wa_resource *res)
{
	enum ota_err err = OTA_OK;

	if (res->n_stmts > 0)
		err = srv_db_prepare_stmts(db, res->stmts, res->n_stmts);
	if (err == OTA_OK && res->prepare != NULL)
		err = res->prepare(db);
	return err;
}

enum ota_err webapi_new(struct event_base *base, struct srv_db *db, struct srv_metrics *metrics,
			const struct webapi_config *cfg, struct webapi **ret_api)
{
	struct webapi *api;
	char addr[SRV_LISTEN_ADDR_BYTES];
	uint16_t port;
	struct stat st;
	enum ota_err err;
	uint64_t max_upload =
		cfg->max_upload_bytes != 0 ? cfg->max_upload_bytes : WEBAPI_DEFAULT_MAX_UPLOAD;

	if (base == NULL || db == NULL || metrics == NULL || cfg->listen == NULL ||
	    cfg->store_dir == NULL || max_upload > WEBAPI_MAX_UPLOAD_CEILING ||
	    cfg->conns == NULL || cfg->conn_limits == NULL)
		return OTA_ERR_INVALID_ARG;
	if (srv_config_split_listen(cfg->listen, addr, sizeof(addr), &port) != OTA_OK &&
	    !(strrchr(cfg->listen, ':') != NULL && strcmp(strrchr(cfg->listen, ':'), ":0") == 0))
		return OTA_ERR_INVALID_ARG;
	if (strrchr(cfg->listen, ':') != NULL && strcmp(strrchr(cfg->listen, ':'), ":0") == 0) {
		size_t host_len = (size_t)(strrchr(cfg->listen, ':') - cfg->listen);

		if (host_len == 0 || host_len >= sizeof(addr))
			return OTA_ERR_INVALID_ARG;
		memcpy(addr, cfg->listen, host_len);
		addr[host_len] = '\0';
		port = 0;
	}
	if (stat(cfg->store_dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return OTA_ERR_STORAGE;
	api = calloc(1, sizeof(*api));
	if (api == NULL)
		return OTA_ERR_NOMEM;
	api->base = base;
	api->db = db;
	api->metrics = metrics;
	api->db_timeout_ms =
		cfg->db_timeout_ms != 0 ? cfg->db_timeout_ms : WEBAPI_DEFAULT_DB_TIMEOUT_MS;
	api->healthz_timeout_ms = cfg->healthz_timeout_ms != 0 ? cfg->healthz_timeout_ms
							       : WEBAPI_DEFAULT_HEALTHZ_TIMEOUT_MS;
	err = OTA_ERR_NOMEM;
	api->store_dir = strdup(cfg->store_dir);
	if (api->store_dir == NULL)
		goto out;
	err = srv_ratelimit_new(cfg->rate_per_sec > 0 ? cfg->rate_per_sec : 50.0,
				cfg->rate_burst >= 1 ? cfg->rate_burst : 200.0, 4096,
				&api->ratelimit);
	if (err != OTA_OK)
		goto out;
	err = resource_prepare(db, &listener);
	for (size_t i = 0; err == OTA_OK && wa_resources[i] != NULL; i++)
		err = resource_prepare(db, wa_resources[i]);
	if (err == OTA_OK && cfg->console_dir != NULL && cfg->console_dir[0] != '\0')
		err = wa_console_new(cfg->console_dir, &api->console);
	if (err != OTA_OK)
		goto out;
	err = wa_uploads_new(api, base, cfg->store_dir, max_upload, &api->uploads);
	if (err != OTA_OK)
		goto out;
	err = OTA_ERR_NOMEM;
	api->http = evhttp_new(base);
	if (api->http == NULL)
		goto out;
	evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						      EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
						      EVHTTP_REQ_HEAD);
	/* no request body above one chunk is ever buffered */
	evhttp_set_max_body_size(api->http, (ev_ssize_t)WEBAPI_UPLOAD_CHUNK_MAX);
	evhttp_set_max_headers_size(api->http,
				    cfg->max_header_bytes != 0 ? cfg->max_header_bytes : 8192);
	evhttp_set_timeout(api->http, cfg->timeout_sec != 0 ? (int)cfg->timeout_sec : 30);
	if (cfg->tls_cert != NULL && cfg->tls_cert[0] != '\0') {
		err = tls_setup(api, cfg);
		if (err != OTA_OK)
			goto out;
	}
	/* the guard binds, owns the TLS bufferevents and calls gencb */
	err = srv_conns_listen(cfg->conns, SRV_LISTENER_ADMIN, api->http, addr, port, api->ssl_ctx,
			       cfg->conn_limits, gencb, api, &api->port);
	if (err != OTA_OK)
		goto out;
	srv_log(SRV_LOG_INFO,
		"webapi: listening on %s:%u (%s), bundles up to %llu bytes, bodies up to %u", addr,
		api->port, api->ssl_ctx != NULL ? "https" : "http", (unsigned long long)max_upload,
		WEBAPI_UPLOAD_CHUNK_MAX);
	*ret_api = api;
	return OTA_OK;
out:
	webapi_free(api);
	return err;
}

uint16_t webapi_port(const struct webapi *api)
{
	return api->port;
}

void webapi_free(struct webapi *api)
{
	if (api == NULL)
		return;
	for (struct wa_ctx *ctx = api->live, *next; ctx != NULL; ctx = next) {
		next = ctx->live_next;
		ctx->orphan = true;
		ctx->api = NULL;
		ctx->req = NULL;
		/* a deferred step would never run again: nobody else frees it */
		if (ctx->defer_ev != NULL && evtimer_pending(ctx->defer_ev, NULL))
			ctx_free(ctx);
	}
	wa_uploads_free(api->uploads);
	wa_console_free(api->console);
	if (api->http != NULL)
		evhttp_free(api->http);
	if (api->ssl_ctx != NULL)
		SSL_CTX_free(api->ssl_ctx);
	srv_ratelimit_free(api->ratelimit);
	free(api->store_dir);
	free(api);
}
