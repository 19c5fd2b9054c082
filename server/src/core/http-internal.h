/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_HTTP_INTERNAL_H
#define SRV_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "clock-internal.h" /* srv_now, for the listeners' users */
#include "conns-internal.h"
#include "tickets-internal.h"
#include "tls-internal.h" /* the TLS contexts listeners take */
#include "fleetota/err.h"

/*
 * HTTP listeners on the loop: evhttp, over TLS (bufferevent_openssl) or
 * plain, behind the connection guard (conns-internal.h: deadlines, caps). The device listener (delivery.c) is one; the
 * operator REST API (issue 6) adds its own with srv_http_listener_new() and
 * its route table, on its own address, with its own TLS context (or none).
 * Each request is dispatched to the first route whose prefix matches the
 * path; the handler owns the request and must reply exactly once (at once
 * or later from a database callback).
 */

typedef void (*srv_http_handler)(struct evhttp_request *req, const char *path_rest, void *ctx);

struct srv_http_route {
	const char *prefix; /* "/v1/images/": path_rest is what follows */
	unsigned methods; /* EVHTTP_REQ_GET | ... */
	srv_http_handler handler;
};

/*
 * Called for every request before routing (a per-client budget): true to
 * go on; false after it replied.
 */
typedef bool (*srv_http_admit)(struct evhttp_request *req, void *ctx);

struct srv_http_opts {
	const char *addr;
	uint16_t port; /* 0 = any free port (tests); see srv_http_listener_port */
	SSL_CTX *tls; /* borrowed; NULL = plain HTTP */
	unsigned timeout_sec; /* idle keep-alive / stalled writes are closed after this */
	size_t max_header_bytes;
	size_t max_body_bytes;
	struct srv_conns *conns; /* borrowed: the process's connection guard */
	enum srv_listener_kind kind;
	const struct srv_conn_limits *limits; /* deadlines and caps */
	srv_http_admit admit; /* optional */
	const struct srv_http_route *routes; /* borrowed, must outlive the listener */
	size_t n_routes;
	void *ctx; /* passed to handlers */
};

struct srv_http_listener;

enum ota_err srv_http_listener_new(struct event_base *base, const struct srv_http_opts *opts,
				   struct srv_http_listener **ret_listener);
void srv_http_listener_free(struct srv_http_listener *listener);
uint16_t srv_http_listener_port(const struct srv_http_listener *listener);

/*
 * The CN of the verified client certificate of req's connection into out
 * (cap bytes). OTA_OK, or OTA_ERR_NOT_FOUND (plain connection, no
 * certificate, no or oversized CN).
 */
enum ota_err srv_http_peer_cn(struct evhttp_request *req, char *out, size_t cap);

/*
 * Replies with status and a JSON error body {"error":{"code","message"}}
 * (code and message must be plain ASCII without quotes or backslashes).
 */
/*
 * evhttp_send_reply, and a small reply leaves as one TLS record and one
 * write(2): evhttp queues the head and the body as two buffer chains, and
 * the TLS bufferevent encrypts each chain as a record of its own. Up to
 * SRV_HTTP_ONE_RECORD_BYTES (one TLS record's plaintext) the two are made
 * one chain (a copy of a few hundred bytes, against a system call, a
 * record and a wake-up of the peer), and that record is written at once
 * rather than on the next loop turn (docs/server.md, "Per-request system
 * calls"). The request, and even the connection, may be freed by the time
 * this returns: the caller must not touch req afterwards.
 */
#define SRV_HTTP_ONE_RECORD_BYTES 16384u
void srv_http_send_reply(struct evhttp_request *req, int status, const char *reason,
			 struct evbuffer *body);
void srv_http_send_error(struct evhttp_request *req, int status, const char *code,
			 const char *message);

/* true for [A-Za-z0-9][A-Za-z0-9._-]{0,max_len-1}. */
bool srv_id_valid(const char *id, size_t max_len);

#endif
