/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device listener: HTTPS with mutual TLS. The device id is the CN of
 * the verified client certificate; a device gets only what is assigned to
 * it. Images stream from the content-addressed store in chunks, the next
 * chunk queued only when the previous one left the output buffer.
 *
 * A chunk is a reference into the store file's mapping, shared by every
 * download of that file and kept while any is running and a while after
 * (image_map.c): SSL_write encrypts straight from the page cache, with no
 * read() into a buffer of ours, and once a file's pages are mapped no
 * chunk costs an mmap, a page fault or an munmap (each did, per 1 MiB
 * chunk, when chunks were evbuffer file segments: a quarter of the
 * server's CPU during delivery). The loop never calls read on the store;
 * what can still wait on the disk is the first fault on a cold page, so
 * each chunk asks the kernel to read the next one ahead (MADV_WILLNEED,
 * asynchronous). Store files are immutable (content-addressed, replaced
 * only by rename), so a mapping never sees a file shrink under it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "assign_cache-internal.h"
#include "device.h"
#include "image_map-internal.h"
#include "fleetota/limits.h"
#include "log-internal.h"
#include "security-internal.h"
#include "range-internal.h"
#include "server-internal.h"
#include "srv-limits.h"
#include "timestamp-internal.h"
#include "store-internal.h"

#define DLV_CHUNK_BYTES (1024u * 1024u)
/* A store file nobody downloads stays mapped this long (a campaign's
 * devices come in waves), and at most this many such files do. */
#define DLV_MAP_IDLE_MS 30000u
#define DLV_MAP_MAX_IDLE 16u
#define DLV_MAX_DEVICE_ID SRV_MAX_DEVICE_ID
#define DLV_MAX_ARTIFACT_ID 128u
/* Longest signed list or manifest served (an envelope). */
#define DLV_MAX_OBJECT_BYTES OTA_MAX_ENVELOPE_BYTES
#define DLV_SHA256_BYTES 32u

enum dlv_kind {
	DLV_MANIFEST,
	DLV_IMAGE,
	DLV_KEYLIST,
	DLV_ROOTLIST,
};

struct dlv_request {
	struct srv_server *srv;
	struct evhttp_request *req;
	enum dlv_kind kind;
	double started;
	char device[DLV_MAX_DEVICE_ID + 1];
	char artifact[DLV_MAX_ARTIFACT_ID + 1];
	bool full; /* manifest ?full=1: no delta (the agent's fallback) */
	char base[2 * DLV_SHA256_BYTES + 1]; /* image ?base=HEX: a delta's payload; "" */
	uint64_t cache_generation; /* the assignment view's, when the query was sent */
};

struct dlv_stream {
	struct srv_server *srv;
	struct evhttp_request *req;
	struct srv_image_map *map; /* NULL: an empty image */
	uint64_t next;
	uint64_t end; /* exclusive */
	bool delta; /* a delta's payload */
	uint64_t saved; /* image size minus delta size, counted when complete */
};

/*
 * The statements, by request kind (enum dlv_kind): functions of
 * migrations/code. Manifest and image (deltas.sql: the delta or the full
 * image for this device); columns, in both: device known, decommissioned,
 * artifact known, assigned, manifest, store file, size, is a delta, bytes
 * it saves, payload found (false: no delta from ?base). KeyList and
 * RootList (delivery.sql): device known, decommissioned, the newest list.
 */
static const struct srv_db_stmt stmts[] = {
	[DLV_MANIFEST] =
		{"dlv_manifest",
		 "SELECT known, decommissioned, artifact_known, assigned, manifest, NULL::text,"
		 " NULL::bigint, is_delta, saved_bytes, true"
		 " FROM delivery_manifest($1, $2, $3::boolean)",
		 3},
	[DLV_IMAGE] =
		{"dlv_image",
		 "SELECT known, decommissioned, artifact_known, assigned, manifest, store_path,"
		 " size, is_delta, saved_bytes, found_payload"
		 " FROM delivery_image($1, $2, decode(NULLIF($3, ''), 'hex'))",
		 3},
	[DLV_KEYLIST] = {"dlv_keylist",
			 "SELECT known, decommissioned, bytes FROM delivery_trust_list($1, false)",
			 1},
	[DLV_ROOTLIST] = {"dlv_rootlist",
			  "SELECT known, decommissioned, bytes FROM delivery_trust_list($1, true)",
			  1},
};

enum ota_err srv_delivery_prepare(struct srv_db *db)
{
	enum ota_err err;

	if ((err = srv_db_prepare_stmts(db, stmts, sizeof(stmts) / sizeof(stmts[0]))) != OTA_OK ||
	    (err = srv_assign_cache_prepare(db)) != OTA_OK)
		return err;
	return OTA_OK;
}

static void reject(struct dlv_request *r, enum srv_reject reason, int status, const char *msg)
{
	srv_metrics_reject(&r->srv->metrics, reason);
	srv_log(SRV_LOG_DEBUG, "device %s: %s -> %d %s", r->device, msg, status,
		srv_reject_name(reason));
	srv_http_send_error(r->req, status, srv_reject_name(reason), msg);
	srv_metrics_latency(&r->srv->metrics, (srv_now() - r->started) * 1000.0);
}

/* ---- image streaming ------------------------------------------------ */

static void stream_free(struct dlv_stream *s)
{
	if (s->map != NULL)
		srv_image_map_release(s->map);
	free(s);
}

/* A chunk left the output buffer (sent, or dropped with the connection). */
static void chunk_done(const void *data, size_t len, void *map)
{
	(void)data;
	(void)len;
	srv_image_map_release(map);
}

/* The client went away mid-stream: evhttp detached the request from it. */
static void stream_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct dlv_stream *s = arg;

	(void)evcon;
	s->srv->metrics.downloads_aborted++;
	srv_log(SRV_LOG_DEBUG, "download aborted at byte %llu of %llu (client gone or stalled)",
		(unsigned long long)s->next, (unsigned long long)s->end);
	if (evhttp_request_get_connection(s->req) == NULL)
		evhttp_request_free(s->req);
	stream_free(s);
}

static void stream_finish(struct dlv_stream *s, bool complete)
{
	srv_conns_on_close(s->srv->conns, s->req, NULL, NULL);
	if (complete) {
		s->srv->metrics.downloads_completed++;
		if (s->delta) {
			s->srv->metrics.delta_downloads_completed++;
			s->srv->metrics.delta_bytes_saved += s->saved;
		}
	}
	evhttp_send_reply_end(s->req);
	stream_free(s);
}

/*
 * Ask for the chunk after the one just queued (asynchronous readahead),
 * unless all its pages are in memory already: a file served again (every
 * device of a campaign fetches the same one) is, and MADV_WILLNEED walks
 * the page cache page by page even then (2-3 % of the server's CPU while it
 * served a resident image), where mincore reads the mapping's page table.
 */
static void readahead_chunk(const struct dlv_stream *s)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t from = s->next / page * page;
	uint64_t to = s->next + DLV_CHUNK_BYTES < s->end ? s->next + DLV_CHUNK_BYTES : s->end;
	void *addr = (void *)(srv_image_map_data(s->map) + from);
	unsigned char resident[DLV_CHUNK_BYTES / 4096u + 2u];
	size_t pages = (size_t)((to - from + page - 1) / page), i;

	if (pages <= sizeof(resident) && mincore(addr, (size_t)(to - from), resident) == 0) {
		for (i = 0; i < pages && (resident[i] & 1u) != 0; i++)
			;
		if (i == pages)
			return;
	}
	(void)madvise(addr, (size_t)(to - from), MADV_WILLNEED);
}

static void stream_more_cb(struct evhttp_connection *evcon, void *arg)
{
	struct dlv_stream *s = arg;
	size_t want;
	struct evbuffer *buf;

	(void)evcon;
	if (s->next >= s->end) {
		stream_finish(s, true);
		return;
	}
	want = s->end - s->next > DLV_CHUNK_BYTES ? DLV_CHUNK_BYTES : (size_t)(s->end - s->next);
	buf = evbuffer_new();
	/* the buffer holds the mapping from here on, until the chunk is gone */
	srv_image_map_hold(s->map);
	if (buf == NULL || evbuffer_add_reference(buf, srv_image_map_data(s->map) + s->next, want,
						  chunk_done, s->map) != 0) {
		srv_image_map_release(s->map);
		srv_log(SRV_LOG_ERROR, "image chunk at %llu: out of memory",
			(unsigned long long)s->next);
		srv_metrics_reject(&s->srv->metrics, SRV_REJECT_STORE);
		if (buf != NULL)
			evbuffer_free(buf);
		stream_finish(s, false);
		return;
	}
	s->next += want;
	s->srv->metrics.bytes_served += want;
	if (s->delta)
		s->srv->metrics.delta_bytes_served += want;
	if (s->next < s->end)
		readahead_chunk(s);
	evhttp_send_reply_chunk_with_cb(s->req, buf, stream_more_cb, s);
	evbuffer_free(buf);
}

static void serve_image(struct dlv_request *r, const char *store_name, uint64_t size, bool delta,
			uint64_t saved)
{
	struct srv_server *srv = r->srv;
	struct evkeyvalq *in = evhttp_request_get_input_headers(r->req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
	uint64_t first = 0, last = size == 0 ? 0 : size - 1;
	enum srv_range_result range;
	struct dlv_stream *s;
	char header[96];
	int fd = -1, status = 200;
	enum ota_err err;

	range = srv_range_parse(evhttp_find_header(in, "Range"), size, &first, &last);
	if (range == SRV_RANGE_UNSATISFIABLE) {
		snprintf(header, sizeof(header), "bytes */%llu", (unsigned long long)size);
		evhttp_add_header(out, "Content-Range", header);
		reject(r, SRV_REJECT_RANGE, 416, "range not satisfiable");
		return;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		reject(r, SRV_REJECT_STORE, 500, "out of memory");
		return;
	}
	err = srv_store_open(srv->config->store_dir, store_name, size, &fd);
	if (err == OTA_OK && size > 0)
		err = srv_image_map_get(srv->image_maps, fd, size, &s->map);
	if (fd >= 0)
		close(fd); /* the mapping stays */
	if (err != OTA_OK) {
		srv_log(SRV_LOG_ERROR, "artifact %s: store file %s: %s", r->artifact, store_name,
			ota_err_name(err));
		free(s);
		reject(r, SRV_REJECT_STORE, 500, "image unavailable");
		return;
	}
	s->srv = srv;
	s->req = r->req;
	s->next = first;
	s->end = size == 0 ? 0 : last + 1;
	s->delta = delta;
	/* what the device did not download: counted once, for a whole payload */
	s->saved = range == SRV_RANGE_OK && first > 0 ? 0 : saved;
	if (range == SRV_RANGE_OK) {
		status = 206;
		snprintf(header, sizeof(header), "bytes %llu-%llu/%llu", (unsigned long long)first,
			 (unsigned long long)last, (unsigned long long)size);
		evhttp_add_header(out, "Content-Range", header);
	}
	snprintf(header, sizeof(header), "%llu", (unsigned long long)(s->end - s->next));
	evhttp_add_header(out, "Content-Length", header);
	evhttp_add_header(out, "Content-Type", "application/octet-stream");
	evhttp_add_header(out, "Accept-Ranges", "bytes");
	srv->metrics.downloads_started++;
	srv_metrics_latency(&srv->metrics, (srv_now() - r->started) * 1000.0);
	if (evhttp_request_get_connection(r->req) == NULL) { /* the client left meanwhile */
		evhttp_send_reply(r->req, status, "", NULL);
		stream_free(s);
		return;
	}
	srv_conns_on_close(srv->conns, r->req, stream_closed_cb, s);
	evhttp_send_reply_start(r->req, status, status == 206 ? "Partial Content" : "OK");
	stream_more_cb(evhttp_request_get_connection(r->req), s);
}

/* ---- database answers ------------------------------------------------ */

static void send_object(struct dlv_request *r, const char *data, int len)
{
	struct evbuffer *body = evbuffer_new();
	struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);

	evhttp_add_header(out, "Content-Type", "application/octet-stream");
	evhttp_add_header(out, "Cache-Control", "no-store");
	if (body == NULL || evbuffer_add(body, data, (size_t)len) != 0) {
		if (body != NULL)
			evbuffer_free(body);
		reject(r, SRV_REJECT_STORE, 500, "out of memory");
		return;
	}
	srv_http_send_reply(r->req, 200, "OK", body);
	evbuffer_free(body);
	srv_metrics_latency(&r->srv->metrics, (srv_now() - r->started) * 1000.0);
}

static void answer(struct dlv_request *r, enum ota_err err, const PGresult *res)
{
	if (err != OTA_OK || PQntuples(res) != 1) {
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "5");
		reject(r, SRV_REJECT_DB_UNAVAILABLE, 503, "database unavailable");
		return;
	}
	if (!srv_db_get_bool(res, 0, 0)) {
		reject(r, SRV_REJECT_UNKNOWN_DEVICE, 403, "device not provisioned");
		return;
	}
	if (srv_db_get_bool(res, 0, 1)) {
		reject(r, SRV_REJECT_DECOMMISSIONED, 403, "device decommissioned");
		return;
	}
	if (r->kind == DLV_KEYLIST || r->kind == DLV_ROOTLIST) {
		int len = PQgetlength(res, 0, 2);

		if (PQgetisnull(res, 0, 2) || len <= 0 || (size_t)len > DLV_MAX_OBJECT_BYTES) {
			reject(r, SRV_REJECT_NOT_FOUND, 404,
			       r->kind == DLV_KEYLIST ? "no keylist" : "no rootlist");
			return;
		}
		send_object(r, PQgetvalue(res, 0, 2), len);
		return;
	}
	if (!srv_db_get_bool(res, 0, 2)) {
		reject(r, SRV_REJECT_NOT_FOUND, 404, "unknown artifact");
		return;
	}
	if (!srv_db_get_bool(res, 0, 3)) {
		char detail[DLV_MAX_ARTIFACT_ID + 32];

		snprintf(detail, sizeof(detail), "%s of artifact %s",
			 r->kind == DLV_MANIFEST ? "manifest" : "image", r->artifact);
		srv_security_record(r->srv, r->device, SRV_SECURITY_CROSS_DEVICE, detail);
		reject(r, SRV_REJECT_NOT_ASSIGNED, 403, "artifact not assigned to this device");
		return;
	}
	if (r->kind == DLV_MANIFEST) {
		int len = PQgetlength(res, 0, 4);

		if (len <= 0 || (size_t)len > DLV_MAX_OBJECT_BYTES) {
			reject(r, SRV_REJECT_STORE, 500, "bad manifest row");
			return;
		}
		r->srv->metrics.manifests_served++;
		if (srv_db_get_bool(res, 0, 7))
			r->srv->metrics.delta_manifests_served++;
		if (r->full)
			r->srv->metrics.full_manifests_asked++;
		/*
		 * A delta manifest is not kept: it is asked for once per device
		 * and update, and every one counts in the delta metrics.
		 */
		if (!srv_db_get_bool(res, 0, 7))
			srv_assign_cache_put(r->srv->assign_cache, r->device, r->artifact,
					     r->full ? "full" : "", r->cache_generation,
					     PQgetvalue(res, 0, 4), (size_t)len);
		send_object(r, PQgetvalue(res, 0, 4), len);
		return;
	}
	{
		char name[SRV_SHA256_HEX_BYTES];
		int name_len = PQgetlength(res, 0, 5);
		long long size = srv_db_get_int8(res, 0, 6);

		if (!srv_db_get_bool(res, 0, 9)) {
			reject(r, SRV_REJECT_NOT_FOUND, 404, "no delta from this base");
			return;
		}
		if (name_len != 64 || size < 0) {
			reject(r, SRV_REJECT_STORE, 500, "bad artifact row");
			return;
		}
		memcpy(name, PQgetvalue(res, 0, 5), 64);
		name[64] = '\0';
		long long saved = srv_db_get_int8(res, 0, 8);

		serve_image(r, name, (uint64_t)size, srv_db_get_bool(res, 0, 7),
			    saved > 0 ? (uint64_t)saved : 0);
	}
}

static void db_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct dlv_request *r = arg;

	answer(r, err, res);
	free(r);
}

/* ---- handlers ------------------------------------------------------- */

/*
 * The query of a manifest or image request (docs/server.md "Delta
 * updates"): the manifest takes full=1 (the full image's manifest even
 * where a delta exists), the image base=HEX (the payload of the delta
 * from that base image, 64 hex digits). Other names are ignored, as
 * before deltas; a malformed value is refused.
 */
static bool parse_query(struct dlv_request *r)
{
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(r->req));
	struct evkeyvalq params;
	const char *value;
	bool ok = true;

	if (query == NULL || query[0] == '\0')
		return true;
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(query, &params) != 0)
		return false;
	if (r->kind == DLV_MANIFEST && (value = evhttp_find_header(&params, "full")) != NULL) {
		ok = strcmp(value, "1") == 0 || strcmp(value, "0") == 0;
		r->full = strcmp(value, "1") == 0;
	}
	if (r->kind == DLV_IMAGE && (value = evhttp_find_header(&params, "base")) != NULL) {
		ok = strlen(value) == 2 * DLV_SHA256_BYTES &&
		     strspn(value, "0123456789abcdefABCDEF") == 2 * DLV_SHA256_BYTES;
		if (ok)
			memcpy(r->base, value, sizeof(r->base));
	}
	evhttp_clear_headers(&params);
	return ok;
}

/*
 * The per-device budget, for every request on the device listener (an
 * unknown path costs a token too): the device is the certificate's CN.
 */
static bool admit_device(struct evhttp_request *req, void *ctx)
{
	struct dlv_request r = {.srv = ctx, .req = req, .started = srv_now()};
	unsigned retry_after = 1;
	char header[SRV_U32_TEXT_BYTES];

	if (srv_http_peer_cn(req, r.device, sizeof(r.device)) != OTA_OK ||
	    !srv_id_valid(r.device, DLV_MAX_DEVICE_ID)) {
		r.srv->metrics.requests++;
		reject(&r, SRV_REJECT_UNKNOWN_DEVICE, 403, "no usable client certificate");
		return false;
	}
	if (!srv_ratelimit_take(r.srv->ratelimit, r.device, r.started, &retry_after)) {
		r.srv->metrics.requests++;
		snprintf(header, sizeof(header), "%u", retry_after);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", header);
		reject(&r, SRV_REJECT_RATE_LIMITED, 429, "too many requests");
		return false;
	}
	return true;
}

static void handle(struct evhttp_request *req, const char *rest, struct srv_server *srv,
		   enum dlv_kind kind)
{
	struct dlv_request *r;
	const char *params[3];
	enum ota_err err;

	srv->metrics.requests++;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		srv_http_send_error(req, 503, "out_of_memory", "try later");
		return;
	}
	r->srv = srv;
	r->req = req;
	r->kind = kind;
	r->started = srv_now();
	/* admit_device checked the certificate and took the device's token */
	if (srv_http_peer_cn(req, r->device, sizeof(r->device)) != OTA_OK) {
		reject(r, SRV_REJECT_UNKNOWN_DEVICE, 403, "no usable client certificate");
		goto done;
	}
	if (kind == DLV_MANIFEST || kind == DLV_IMAGE) {
		if (!srv_id_valid(rest, DLV_MAX_ARTIFACT_ID)) {
			reject(r, SRV_REJECT_NOT_FOUND, 404, "bad artifact id");
			goto done;
		}
		snprintf(r->artifact, sizeof(r->artifact), "%s", rest);
		if (!parse_query(r)) {
			reject(r, SRV_REJECT_NOT_FOUND, 404, "bad query");
			goto done;
		}
	} else if (rest[0] != '\0') {
		reject(r, SRV_REJECT_NOT_FOUND, 404, "no such resource");
		goto done;
	}
	if (kind == DLV_MANIFEST) {
		const char *data;
		size_t len;

		if (srv_assign_cache_get(srv->assign_cache, r->device, r->artifact,
					 r->full ? "full" : "", &data, &len)) {
			srv->metrics.manifests_served++;
			if (r->full)
				srv->metrics.full_manifests_asked++;
			send_object(r, data, (int)len);
			goto done;
		}
		r->cache_generation = srv_assign_cache_generation(srv->assign_cache);
	}
	if (kind == DLV_IMAGE && r->base[0] == '\0') {
		const char *store_name;
		uint64_t size;

		/* prefilled with the manifest (the device was just notified) */
		if (srv_assign_cache_get_image(srv->assign_cache, r->device, r->artifact,
					       &store_name, &size)) {
			serve_image(r, store_name, size, false, 0);
			goto done;
		}
	}
	params[0] = r->device;
	params[1] = r->artifact;
	params[2] = kind == DLV_MANIFEST ? (r->full ? "true" : "false") : r->base;
	err = srv_db_exec_stmt(srv->db, &stmts[kind], params, true, SRV_DB_FAIL_FAST, db_cb, r);
	if (err == OTA_OK)
		return; /* db_cb replies and frees r */
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
	reject(r, err == OTA_ERR_BUSY ? SRV_REJECT_DB_UNAVAILABLE : SRV_REJECT_STORE, 503,
	       "database unavailable");
done:
	free(r);
}

void srv_delivery_notified(struct srv_server *srv, const char *artifact, const char *const *devices,
			   size_t n)
{
	srv_assign_cache_prefill(srv->assign_cache, artifact, devices, n);
}

static void handle_manifest(struct evhttp_request *req, const char *rest, void *ctx)
{
	handle(req, rest, ctx, DLV_MANIFEST);
}

static void handle_image(struct evhttp_request *req, const char *rest, void *ctx)
{
	handle(req, rest, ctx, DLV_IMAGE);
}

static void handle_keylist(struct evhttp_request *req, const char *rest, void *ctx)
{
	handle(req, rest, ctx, DLV_KEYLIST);
}

static void handle_rootlist(struct evhttp_request *req, const char *rest, void *ctx)
{
	handle(req, rest, ctx, DLV_ROOTLIST);
}

static const struct srv_http_route device_routes[] = {
	{"/v1/manifests/", EVHTTP_REQ_GET, handle_manifest},
	{"/v1/images/", EVHTTP_REQ_GET, handle_image},
	{"/v1/keylist", EVHTTP_REQ_GET, handle_keylist},
	{"/v1/rootlist", EVHTTP_REQ_GET, handle_rootlist},
	{"/v1/timestamp/", EVHTTP_REQ_GET, srv_timestamp_handle},
};

enum ota_err srv_delivery_start(struct srv_server *srv)
{
	const struct srv_config *cfg = srv->config;
	struct srv_http_opts opts = {0};
	struct srv_conn_limits limits;
	char addr[SRV_LISTEN_ADDR_BYTES], err_msg[SRV_TLS_ERR_BYTES];
	uint16_t port;
	enum ota_err err;

	err = srv_config_split_listen(cfg->device_listen, addr, sizeof(addr), &port);
	if (err != OTA_OK)
		return err;
	err = srv_tls_server_ctx(cfg->tls_cert, cfg->tls_key, cfg->device_ca, cfg->device_crl,
				 &srv->device_tls, err_msg);
	if (err != OTA_OK) {
		srv_log(SRV_LOG_ERROR, "device listener TLS: %s", err_msg);
		return err;
	}
	err = srv_tickets_load(srv->device_tls, cfg->device_ticket_keys, err_msg, sizeof(err_msg));
	if (err == OTA_OK &&
	    (err = srv_tls_sessions_enable(srv->device_tls, cfg->device_session_sec,
					   &srv->metrics.tls)) != OTA_OK)
		snprintf(err_msg, sizeof(err_msg), "out of memory");
	if (err != OTA_OK) {
		srv_log(SRV_LOG_ERROR, "device listener TLS sessions: %s", err_msg);
		return err;
	}
	err = srv_ratelimit_new(cfg->rate_per_sec, cfg->rate_burst, 1u << 20, &srv->ratelimit);
	if (err != OTA_OK)
		return err;
	err = srv_image_maps_new(srv->base, DLV_MAP_IDLE_MS, DLV_MAP_MAX_IDLE, &srv->image_maps);
	if (err != OTA_OK)
		return err;
	if (cfg->manifest_cache) {
		struct srv_assign_cache_config cache = {
			.poll_ms = cfg->manifest_cache_poll_ms,
			.stale_ms = cfg->manifest_cache_stale_ms,
			.ttl_ms = cfg->manifest_cache_ttl_sec * 1000u,
			.max_entries = cfg->manifest_cache_max,
		};

		err = srv_assign_cache_new(srv->base, srv->db, &cache, &srv->metrics,
					   &srv->assign_cache);
		if (err != OTA_OK) {
			srv_log(SRV_LOG_ERROR,
				"manifest_cache: stale_ms below poll_ms, or no memory");
			return err;
		}
	}
	opts.addr = addr;
	opts.port = port;
	opts.tls = srv->device_tls;
	opts.timeout_sec = cfg->http_timeout_sec;
	opts.max_header_bytes = cfg->http_max_header_bytes;
	opts.max_body_bytes = 0; /* GET only: a body is refused */
	srv_config_conn_limits(cfg, SRV_LISTENER_DEVICE, &limits);
	opts.conns = srv->conns;
	opts.kind = SRV_LISTENER_DEVICE;
	opts.limits = &limits;
	opts.admit = admit_device;
	opts.routes = device_routes;
	opts.n_routes = sizeof(device_routes) / sizeof(device_routes[0]);
	opts.ctx = srv;
	err = srv_http_listener_new(srv->base, &opts, &srv->device_listener);
	if (err != OTA_OK)
		return err;
	srv_log(SRV_LOG_INFO, "device listener on %s:%u (mTLS%s)", addr,
		srv_http_listener_port(srv->device_listener),
		cfg->device_write_gather ? ", TLS records gathered per write: device_write_gather"
					 : "");
	return OTA_OK;
}

void srv_delivery_stop(struct srv_server *srv)
{
	srv_http_listener_free(srv->device_listener);
	srv->device_listener = NULL;
	srv_ratelimit_free(srv->ratelimit);
	srv->ratelimit = NULL;
	srv_assign_cache_free(srv->assign_cache);
	srv->assign_cache = NULL;
	srv_image_maps_free(srv->image_maps); /* after the listener: no download left */
	srv->image_maps = NULL;
	SSL_CTX_free(srv->device_tls);
	srv->device_tls = NULL;
}
