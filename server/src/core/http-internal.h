/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_HTTP_INTERNAL_H
#define SRV_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "conns-internal.h"
#include "tickets-internal.h"
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

#define SRV_TLS_ERR_BYTES 256u

/*
 * A TLS server context (TLS 1.2+): cert chain and key; when client_ca is
 * set, a client certificate is required and verified against it (and
 * against the CRL file crl when not NULL/empty). OTA_OK and *ret_ctx, or
 * OTA_ERR_STORAGE/OTA_ERR_FORMAT with a message in err.
 */
enum ota_err srv_tls_server_ctx(const char *cert, const char *key, const char *client_ca,
				const char *crl, SSL_CTX **ret_ctx, char err[SRV_TLS_ERR_BYTES]);

/*
 * Reloads a live context made by srv_tls_server_ctx from the same kind of
 * files: a complete new context is built and checked first, then its
 * certificate chain, key, client CA list and verify store (CA + CRL) replace
 * live's; only new handshakes use them (open connections keep going, and
 * srv_tls_peer_verified checks them again). Sessions from before do not
 * resume. On error live is unchanged: OTA_ERR_STORAGE/FORMAT/NOMEM and err.
 */
enum ota_err srv_tls_server_reload(SSL_CTX *live, const char *cert, const char *key,
				   const char *client_ca, const char *crl,
				   char err[SRV_TLS_ERR_BYTES]);

/*
 * true when ssl's client certificate verified at the handshake and still
 * verifies against its context's current store (checked again, once, after
 * each srv_tls_server_reload): a certificate revoked since is refused.
 */
bool srv_tls_peer_verified(SSL *ssl);

/*
 * Sessions on a context made by srv_tls_server_ctx: resumption through
 * tickets only (keys: srv_tickets_load), sessions valid lifetime_sec, a
 * resumed client certificate checked against the current CA and CRL when
 * they changed since the ticket was issued, handshakes counted in metrics
 * (borrowed, must outlive ctx). OTA_OK or OTA_ERR_NOMEM.
 */
enum ota_err srv_tls_sessions_enable(SSL_CTX *ctx, unsigned lifetime_sec,
				     struct srv_tls_metrics *metrics);

/*
 * Sends ssl's close_notify when its handshake is done and it has not sent
 * one: one non-blocking try (a full socket buffer means none), so that
 * clients keep their session. Call just before the connection is freed,
 * only when every byte of the reply was written.
 */
void srv_tls_close_notify(SSL *ssl);

/*
 * The subject CN of the first certificate in the PEM file path into out
 * (cap bytes): exactly one CN, printable ASCII without spaces. OTA_OK, or
 * OTA_ERR_STORAGE/OTA_ERR_FORMAT with a message in err.
 */
enum ota_err srv_tls_cert_cn(const char *path, char *out, size_t cap, char err[SRV_TLS_ERR_BYTES]);

/* HTTP methods a route accepts (evhttp's EVHTTP_REQ_* bits). */
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
void srv_http_send_error(struct evhttp_request *req, int status, const char *code,
			 const char *message);

/* true for [A-Za-z0-9][A-Za-z0-9._-]{0,max_len-1}. */
bool srv_id_valid(const char *id, size_t max_len);

/* Seconds on the monotonic clock. */
double srv_now(void);

#endif
