/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_CONNS_INTERNAL_H
#define SRV_CONNS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "fleetota/err.h"

/*
 * The connection guard of ota-server's HTTP listeners (the mTLS device
 * listener and the operator REST listener). evhttp alone restarts its
 * timeout on every byte and accepts without bound; the guard makes every
 * connection's bufferevent, watches its input and gives each listener:
 *
 *  - absolute deadlines: the TLS handshake, the request head (from accept
 *    for the first request of a connection, from its first byte for later
 *    ones), and the whole request with its body; a connection that misses
 *    one is closed and counted;
 *  - caps on connections in total and per peer (an IPv4 address, an IPv6
 *    /64); when a cap is reached the oldest idle connection is closed to
 *    make room: the peer's own when it has one, else the listener's; a
 *    connection is idle unless a request of it is being answered. The
 *    last few slots of a table go only to peers that hold no connection
 *    yet;
 *  - a budget of new connections per peer (a token bucket: the per-peer
 *    cap per second, twice that in a burst), so that a peer that
 *    reconnects as fast as it is closed cannot churn the table;
 *  - caps that fit the descriptor limit (RLIMIT_NOFILE), and an accept
 *    that neither spins nor stalls on EMFILE/ENFILE: the oldest idle
 *    connection of any listener is closed and accept() pauses briefly.
 *
 * Loop thread only. One struct srv_conns per process, shared by its
 * listeners; it outlives them (free it after every evhttp it guards).
 */

/* Descriptors kept out of the connection budget (database, MQTT, logs). */
#define SRV_CONNS_FD_RESERVE 64u
/* Descriptors charged per connection: its socket and one file (image, upload). */
#define SRV_CONNS_FDS_PER_CONN 2u
/* A listener's cap is never lowered below this by the descriptor limit. */
#define SRV_CONNS_MIN_CAP 8u
/* Reserved slots: max_conns / this, at least 1, at most SRV_CONNS_MAX_RESERVE. */
#define SRV_CONNS_RESERVE_DIV 32u
#define SRV_CONNS_MAX_RESERVE 64u
/* How long accept() rests after EMFILE/ENFILE. */
#define SRV_CONNS_ACCEPT_PAUSE_MS 100u
/* Bytes handed to the socket layer at a time (keeps writers' back-pressure). */
#define SRV_CONNS_WRITE_HIGH_BYTES (256u * 1024u)

enum srv_listener_kind { SRV_LISTENER_DEVICE, SRV_LISTENER_ADMIN, SRV__LISTENER_COUNT };

/* Why the guard closed or refused a connection (stable metric labels). */
enum srv_conn_close {
	SRV_CONN_CLOSE_HANDSHAKE_DEADLINE,
	SRV_CONN_CLOSE_HEADER_DEADLINE,
	SRV_CONN_CLOSE_REQUEST_DEADLINE,
	SRV_CONN_CLOSE_EVICTED, /* the oldest idle one, to make room */
	SRV_CONN_CLOSE_PEER_CAP, /* refused: the peer's connections are all busy */
	SRV_CONN_CLOSE_TOTAL_CAP, /* refused: the listener's are all busy */
	SRV_CONN_CLOSE_FD_LIMIT, /* accept() failed: EMFILE, ENFILE, ENOBUFS */
	SRV_CONN_CLOSE_PEER_RATE, /* refused: the peer opens connections too fast */
	SRV__CONN_CLOSE_COUNT
};

/* Counters of one listener; they live in struct srv_metrics. */
struct srv_conn_metrics {
	uint64_t accepted;
	uint64_t closed[SRV__CONN_CLOSE_COUNT];
	uint64_t open; /* a gauge */
};

struct srv_conn_limits {
	unsigned handshake_timeout_sec; /* TLS listeners only */
	unsigned header_timeout_sec;
	unsigned request_timeout_sec; /* head and body */
	unsigned max_conns;
	unsigned max_conns_per_peer;
	bool write_gather; /* TLS: several records per write(2) (wbio-internal.h) */
};

struct srv_conns;

/*
 * A guard on base whose counters go to metrics[SRV__LISTENER_COUNT]
 * (borrowed, e.g. struct srv_metrics' conns). Call it right after
 * event_base_new: it gives base three priorities (the guard's timers take
 * the lowest; every event made afterwards defaults to the middle one).
 * OTA_OK and *ret_conns, or OTA_ERR_NOMEM.
 */
enum ota_err srv_conns_new(struct event_base *base, struct srv_conn_metrics *metrics,
			   struct srv_conns **ret_conns);

/*
 * Binds addr:port for http (port 0: any) under the guard: TLS with tls
 * (borrowed, must outlive http) or plain when NULL, the limits of
 * limits (caps lowered to fit the descriptor limit, logged), and gencb
 * for every request (it replaces evhttp_set_gencb). One listener per
 * kind. OTA_OK and *ret_port; OTA_ERR_TRANSPORT (cannot bind),
 * OTA_ERR_INVALID_ARG, OTA_ERR_NOMEM.
 */
enum ota_err srv_conns_listen(struct srv_conns *conns, enum srv_listener_kind kind,
			      struct evhttp *http, const char *addr, uint16_t port, SSL_CTX *tls,
			      const struct srv_conn_limits *limits,
			      void (*gencb)(struct evhttp_request *, void *), void *gencb_arg,
			      uint16_t *ret_port);

/*
 * Sets the close callback of req's connection (instead of
 * evhttp_connection_set_closecb, which the guard uses itself); cb NULL
 * removes it.
 */
void srv_conns_on_close(struct srv_conns *conns, struct evhttp_request *req,
			void (*cb)(struct evhttp_connection *, void *), void *arg);

/* The effective limits of a listener (after the descriptor limit), or NULL. */
const struct srv_conn_limits *srv_conns_limits(const struct srv_conns *conns,
					       enum srv_listener_kind kind);

/*
 * Drops the connections accepted but not admitted yet. Call once the loop
 * has stopped, before the listeners' evhttp are freed.
 */
void srv_conns_stop(struct srv_conns *conns);

/* Frees the guard, after the evhttp of every listener is freed. */
void srv_conns_free(struct srv_conns *conns);

/* Stable labels. */
const char *srv_listener_name(enum srv_listener_kind kind);
const char *srv_conn_close_name(enum srv_conn_close reason);

/* Appends the Prometheus text of metrics[SRV__LISTENER_COUNT] to out. */
void srv_conn_metrics_render(const struct srv_conn_metrics *metrics, struct evbuffer *out);

#endif
