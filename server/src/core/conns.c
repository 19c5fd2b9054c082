/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The connection guard (conns-internal.h). The guard makes each accepted
 * connection's bufferevent (evhttp_set_bevcb) and watches its input buffer
 * (an evbuffer callback: the bytes of a request head as they arrive). Its
 * per-connection timer carries the admission step, run once right after
 * accept when the socket, its peer and evhttp's connection are known (the
 * bufferevent's callback argument), and then the absolute deadlines.
 * evhttp's close callback tells the guard that a connection is gone; a
 * connection the guard closes is freed with evhttp_connection_free.
 *
 * (A bufferevent filter would see the same bytes, but evhttp would then
 * take "moved into the socket bufferevent" for "written", and lose the
 * tail of a reply it closes the connection after.)
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "clock-internal.h"
#include "conns-internal.h"
#include "hex-internal.h"
#include "log-internal.h"
#include "ratelimit-internal.h"
#include "srv-limits.h"
#include "tls-internal.h"
#include "wbio-internal.h"

/* listen(2) backlog: slow clients must not make good ones wait for a SYN retry. */
#define CONNS_BACKLOG 1024
#define CONNS_PEER_SLOTS 4096u
/*
 * Accepted connections not yet admitted (each holds a descriptor): accept
 * pauses at this many, so a burst cannot overrun the descriptor limit
 * before admission closes the excess.
 */
#define CONNS_MAX_PENDING 16u
/*
 * The guard's timers run below every other event (3 priorities: the rest
 * of the server runs at the middle one), and at most CONNS_SLICE_WORK of
 * them act in a row: the others wait 1 ms. A wave of deadlines (a
 * thousand slow clients connected at once expire at once) is then cut
 * into slices with the requests of good clients in between.
 */
#define CONNS_PRIORITIES 3
#define CONNS_TIMER_PRIORITY 2
/*
 * Admission runs at the listener's (the middle) priority: made active by
 * the accept callback, it runs in the same loop turn, right after it and
 * before anything that turn's epoll_wait did not bring already, so before
 * any read of the new connection (its read event can only come from a
 * later epoll_wait). A higher one would cost a loop turn of its own (an
 * extra epoll_wait per connection) between accept and the first read.
 */
#define CONNS_GATE_PRIORITY 1
#define CONNS_SLICE_WORK 32u
#define CONNS_SLICE_SEC 0.002
/* The by-descriptor table covers descriptors below this. */
#define CONNS_MAX_FDS (1u << 20)
/* read passes of one drain_cb (each takes at least one TLS record) */
#define CONNS_DRAIN_PASSES 64
/*
 * A handshake refused with a fatal alert closes gracefully (linger_start):
 * the alert, a FIN, then what the client still sends is read and dropped
 * for at most CONNS_LINGER_SEC and CONNS_LINGER_BYTES, so its reads find
 * the alert rather than a reset. At most CONNS_LINGER_MAX sockets linger
 * at once, CONNS_LINGER_PER_PEER of one peer; past that the refusal closes
 * at once, as before. Their reads run at the middle priority, with the
 * requests (at the guard's, below them, a busy loop would hold the ones
 * whose clients have closed long enough to fill the per-peer bound).
 */
#define CONNS_LINGER_SEC 2.0
#define CONNS_LINGER_BYTES (64u * 1024u)
#define CONNS_LINGER_MAX 64u
#define CONNS_LINGER_PER_PEER 8u

enum conn_phase {
	CONN_GATE, /* accepted, not yet admitted */
	CONN_HANDSHAKE, /* TLS handshake */
	CONN_HEAD, /* reading a request head */
	CONN_BODY, /* head read, reading the body */
	CONN_BUSY, /* a request is being answered */
	CONN_IDLE, /* keep-alive, between requests */
};

struct conn_key {
	uint8_t kind;
	uint8_t family; /* 4 or 6 */
	uint8_t addr[SRV_CONN_ADDR_BYTES]; /* IPv4, or the /64 of IPv6 */
};

struct srv_conn;
TAILQ_HEAD(conn_list, srv_conn);

struct conn_peer {
	struct conn_peer *next;
	struct conn_key key;
	unsigned count; /* connections of this peer on its listener */
	unsigned lingering; /* its refused sockets being closed (linger_start) */
	struct conn_list idle; /* its idle ones, oldest first */
};

/* A refused connection's socket, closing gracefully (linger_start). */
struct conn_linger {
	struct srv_conns *conns;
	struct conn_peer *peer;
	struct event *ev; /* readable, or the deadline */
	evutil_socket_t fd; /* a duplicate: the bufferevent closes its own */
	double deadline; /* monotonic seconds */
	size_t drained;
	struct conn_linger *prev, *next;
};

struct srv_conns_listener {
	struct srv_conns *conns;
	enum srv_listener_kind kind;
	struct evhttp *http;
	struct evconnlistener *lev;
	SSL_CTX *tls;
	struct srv_conn_limits limits; /* effective */
	unsigned reserve;
	unsigned open;
	unsigned pending; /* accepted, admission not run yet */
	bool paused; /* accept paused for pending admissions */
	struct conn_list idle; /* idle connections, oldest first */
	struct srv_ratelimit *peer_rate; /* new connections per peer */
	struct event *resume_ev;
	void (*gencb)(struct evhttp_request *, void *);
	void *gencb_arg;
};

struct srv_conn {
	struct srv_conns *conns;
	struct srv_conns_listener *lst;
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* set when admitted */
	struct evbuffer_cb_entry *input_cb;
	struct event *timer;
	struct event *drain; /* drain_cb: made when first needed */
	/* a close callback of the connection's user (srv_conns_on_close) */
	void (*user_closecb)(struct evhttp_connection *, void *);
	void *user_closecb_arg;
	struct conn_peer *peer; /* set when admitted */
	TAILQ_ENTRY(srv_conn) idle_link;
	TAILQ_ENTRY(srv_conn) peer_link;
	struct srv_conn *all_prev, *all_next;
	evutil_socket_t fd;
	enum conn_phase phase;
	bool gated; /* admission ran */
	bool in_idle;
	bool replied; /* a reply was done (see drain_cb) */
	int alert; /* the fatal alert this side sent in the handshake ((level << 8) | code), or 0 */
	uint8_t scan; /* head scanner: 0 in a line, 1 after LF, 2 after LF CR */
	double accepted; /* monotonic seconds */
	double origin; /* start of the current request's deadlines */
	double idle_since; /* when it last became idle */
};

struct srv_conns {
	struct event_base *base;
	struct srv_conn_metrics *metrics;
	struct srv_conns_listener *listeners[SRV__LISTENER_COUNT];
	struct srv_conn **by_fd;
	size_t n_fds;
	struct conn_peer *peers[CONNS_PEER_SLOTS];
	struct srv_conn *all; /* every connection not finalized yet */
	struct conn_linger *lingering; /* oldest first */
	struct conn_linger *lingering_last;
	unsigned n_lingering;
	unsigned long long nofile;
	double slice_start; /* see CONNS_SLICE_WORK */
	unsigned slice_work;
};

/*
 * The evconnlistener error callback gets evhttp's pointer, not ours: the
 * listeners of the (single) guard are found by their evconnlistener.
 */
static struct srv_conns_listener *guarded[SRV__LISTENER_COUNT * 4];

static const char *const listener_names[SRV__LISTENER_COUNT] = {
	[SRV_LISTENER_DEVICE] = "device",
	[SRV_LISTENER_ADMIN] = "admin",
};

static const char *const close_names[SRV__CONN_CLOSE_COUNT] = {
	[SRV_CONN_CLOSE_HANDSHAKE_DEADLINE] = "handshake_deadline",
	[SRV_CONN_CLOSE_HEADER_DEADLINE] = "header_deadline",
	[SRV_CONN_CLOSE_REQUEST_DEADLINE] = "request_deadline",
	[SRV_CONN_CLOSE_EVICTED] = "evicted_idle",
	[SRV_CONN_CLOSE_PEER_CAP] = "peer_cap",
	[SRV_CONN_CLOSE_TOTAL_CAP] = "total_cap",
	[SRV_CONN_CLOSE_FD_LIMIT] = "fd_limit",
	[SRV_CONN_CLOSE_PEER_RATE] = "peer_rate",
};

const char *srv_listener_name(enum srv_listener_kind kind)
{
	return (unsigned)kind < SRV__LISTENER_COUNT ? listener_names[kind] : "unknown";
}

const char *srv_conn_close_name(enum srv_conn_close reason)
{
	return (unsigned)reason < SRV__CONN_CLOSE_COUNT ? close_names[reason] : "unknown";
}

/* ---- peers ----------------------------------------------------------- */

static bool key_from(const struct sockaddr_storage *ss, enum srv_listener_kind kind,
		     struct conn_key *key)
{
	memset(key, 0, sizeof(*key));
	key->kind = (uint8_t)kind;
	if (ss->ss_family == AF_INET) {
		key->family = 4;
		memcpy(key->addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
		return true;
	}
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			key->family = 4;
			memcpy(key->addr, &a->s6_addr[12], 4);
		} else {
			key->family = 6;
			memcpy(key->addr, a->s6_addr, 8); /* one /64 is one peer */
		}
		return true;
	}
	return false;
}

#define CONNS_KEY_TEXT (2 * sizeof(struct conn_key) + 1)

/* The key as text (hex), for the per-peer rate limiter. */
static const char *key_text(const struct conn_key *key, char out[CONNS_KEY_TEXT])
{
	srv_hex_encode(key, sizeof(*key), out);
	return out;
}

static size_t key_slot(const struct conn_key *key)
{
	const uint8_t *p = (const uint8_t *)key;
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < sizeof(*key); i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return (size_t)(h & (CONNS_PEER_SLOTS - 1));
}

static struct conn_peer *peer_get(struct srv_conns *conns, const struct conn_key *key)
{
	size_t slot = key_slot(key);
	struct conn_peer *peer;

	for (peer = conns->peers[slot]; peer != NULL; peer = peer->next) {
		if (memcmp(&peer->key, key, sizeof(*key)) == 0)
			return peer;
	}
	peer = calloc(1, sizeof(*peer));
	if (peer == NULL)
		return NULL;
	peer->key = *key;
	TAILQ_INIT(&peer->idle);
	peer->next = conns->peers[slot];
	conns->peers[slot] = peer;
	return peer;
}

static void peer_put(struct srv_conns *conns, struct conn_peer *peer)
{
	struct conn_peer **link;

	if (peer->count > 0 || peer->lingering > 0)
		return;
	for (link = &conns->peers[key_slot(&peer->key)]; *link != NULL; link = &(*link)->next) {
		if (*link == peer) {
			*link = peer->next;
			free(peer);
			return;
		}
	}
}

/* ---- idle lists ------------------------------------------------------ */

static void idle_add(struct srv_conn *c)
{
	if (c->in_idle || c->peer == NULL)
		return;
	c->idle_since = srv_now();
	TAILQ_INSERT_TAIL(&c->lst->idle, c, idle_link);
	TAILQ_INSERT_TAIL(&c->peer->idle, c, peer_link);
	c->in_idle = true;
}

static void idle_remove(struct srv_conn *c)
{
	if (!c->in_idle)
		return;
	TAILQ_REMOVE(&c->lst->idle, c, idle_link);
	TAILQ_REMOVE(&c->peer->idle, c, peer_link);
	c->in_idle = false;
}

/* ---- release and close ----------------------------------------------- */

/* c's admission ran (or never will): accept resumes once none is waiting. */
static void gate_done(struct srv_conn *c)
{
	struct srv_conns_listener *lst = c->lst;

	if (c->gated)
		return;
	c->gated = true;
	lst->pending--;
	if (lst->paused && lst->pending == 0) {
		lst->paused = false;
		if (!evtimer_pending(lst->resume_ev, NULL)) /* not resting after EMFILE */
			evconnlistener_enable(lst->lev);
	}
}

/* ---- a refused handshake's graceful close ------------------------------- */

/*
 * Closing a socket whose receive buffer holds unread bytes sends a TCP
 * reset, and a client that writes after the reset arrived (a TLS 1.3
 * client's request: its side of the handshake is done before the server
 * has checked its certificate) gets "connection reset" and never reads
 * the alert that tells it why. So a refused handshake's socket is kept a
 * little after the connection is freed: its write side shut (a FIN right
 * behind the alert), and what the client sends read and dropped until its
 * EOF, CONNS_LINGER_BYTES or CONNS_LINGER_SEC, whichever comes first.
 * The socket is a duplicate of the connection's (the bufferevent closes
 * its own when it is freed). Only a socket: no TLS, no evhttp, no slot in
 * the listener's table; on EMFILE the oldest one goes first
 * (accept_error_cb).
 */

/* why: the client's EOF, the deadline... (the debug log) */
static void linger_end(struct conn_linger *l, const char *why)
{
	struct srv_conns *conns = l->conns;

	srv_log(SRV_LOG_DEBUG, "refused connection: socket %d closed after %zu bytes read: %s",
		(int)l->fd, l->drained, why);

	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		conns->lingering = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		conns->lingering_last = l->prev;
	conns->n_lingering--;
	event_free(l->ev);
	close(l->fd);
	l->peer->lingering--;
	peer_put(conns, l->peer);
	free(l);
}

static struct timeval seconds_tv(double sec)
{
	struct timeval tv;

	if (sec < 0)
		sec = 0;
	tv.tv_sec = (time_t)sec;
	tv.tv_usec = (suseconds_t)((sec - floor(sec)) * 1e6);
	return tv;
}

static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn_linger *l = arg;
	char buf[4096];
	const char *why = "byte bound";

	(void)what;
	while (l->drained < CONNS_LINGER_BYTES) {
		double left = l->deadline - srv_now();
		ssize_t n;

		if (left <= 0) {
			why = "deadline";
			break;
		}
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			l->drained += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct timeval tv = seconds_tv(left);

			if (event_add(l->ev, &tv) == 0)
				return;
		}
		why = n == 0 ? "client closed" : "read error";
		break;
	}
	linger_end(l, why);
}

/*
 * c's handshake was refused with a fatal alert (c->alert): its socket
 * lingers (see above). false when it cannot (caps, no descriptor, the
 * alert not out yet): the connection then closes at once.
 */
static bool linger_start(struct srv_conn *c, SSL *ssl)
{
	struct srv_conns *conns = c->conns;
	struct conn_linger *l;
	struct timeval tv = seconds_tv(CONNS_LINGER_SEC);

	if (c->peer == NULL || c->fd < 0 || SSL_is_init_finished(ssl) ||
	    conns->n_lingering >= CONNS_LINGER_MAX || c->peer->lingering >= CONNS_LINGER_PER_PEER ||
	    srv_wbio_flush(ssl) > 0 || BIO_wpending(SSL_get_wbio(ssl)) > 0)
		return false;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return false;
	l->fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
	l->ev = l->fd >= 0 ? event_new(conns->base, l->fd, EV_READ, linger_cb, l) : NULL;
	if (l->ev == NULL || event_priority_set(l->ev, CONNS_GATE_PRIORITY) != 0 ||
	    event_add(l->ev, &tv) != 0) {
		if (l->ev != NULL)
			event_free(l->ev);
		if (l->fd >= 0)
			close(l->fd);
		free(l);
		return false;
	}
	(void)shutdown(l->fd, SHUT_WR);
	l->conns = conns;
	l->peer = c->peer;
	l->deadline = srv_now() + CONNS_LINGER_SEC;
	l->prev = conns->lingering_last;
	if (l->prev != NULL)
		l->prev->next = l;
	else
		conns->lingering = l;
	conns->lingering_last = l;
	conns->n_lingering++;
	c->peer->lingering++;
	return true;
}

/*
 * Forgets c: its slot, its callbacks, its memory. Its connection is about
 * to be freed: when every byte of it was written, TLS ends with a
 * close_notify (a client that sees a bare EOF drops its session); a
 * handshake refused with an alert closes gracefully (linger_start).
 */
static void conn_free(struct srv_conn *c)
{
	struct srv_conns_listener *lst = c->lst;
	struct srv_conns *conns = c->conns;

	if (lst->tls != NULL) {
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
		    srv_wbio_flush(ssl) == 0)
			srv_tls_close_notify(ssl);
		if (ssl != NULL && c->alert != 0) {
			bool graceful = linger_start(c, ssl);

			srv_log(SRV_LOG_DEBUG,
				"%s listener: fd %d: handshake refused (alert %s): %s",
				srv_listener_name(lst->kind), (int)c->fd,
				SSL_alert_desc_string_long(c->alert),
				graceful ? "closing gracefully" : "closed");
		}
		srv_wbio_detach(ssl); /* evhttp frees the bufferevent next */
		if (ssl != NULL) /* its callbacks outlive c (evhttp frees it later) */
			SSL_set_app_data(ssl, NULL);
	}
	gate_done(c);
	idle_remove(c);
	if (c->peer != NULL) {
		c->peer->count--;
		peer_put(conns, c->peer);
		lst->open--;
		conns->metrics[lst->kind].open--;
		if (c->fd >= 0 && (size_t)c->fd < conns->n_fds && conns->by_fd[c->fd] == c)
			conns->by_fd[c->fd] = NULL;
	}
	if (c->input_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->input_cb);
	if (c->evcon != NULL)
		evhttp_connection_set_closecb(c->evcon, NULL, NULL);
	if (c->all_prev != NULL)
		c->all_prev->all_next = c->all_next;
	else
		conns->all = c->all_next;
	if (c->all_next != NULL)
		c->all_next->all_prev = c->all_prev;
	event_free(c->timer);
	if (c->drain != NULL)
		event_free(c->drain);
	free(c);
}

/* evhttp frees the connection (client gone, its timeout, an error reply). */
static void conn_closecb(struct evhttp_connection *evcon, void *arg)
{
	struct srv_conn *c = arg;

	if (c->user_closecb != NULL)
		c->user_closecb(evcon, c->user_closecb_arg);
	c->evcon = NULL; /* it is being freed */
	conn_free(c);
}

/* Closes c now, without a reply (only idle connections: no user callback). */
static void force_close(struct srv_conn *c)
{
	struct evhttp_connection *evcon = c->evcon;

	conn_free(c);
	if (evcon != NULL)
		evhttp_connection_free(evcon);
}

static void close_counted(struct srv_conn *c, enum srv_conn_close reason)
{
	struct srv_conns_listener *lst = c->lst;

	c->conns->metrics[lst->kind].closed[reason]++;
	srv_log(SRV_LOG_DEBUG, "%s listener: connection fd %d closed: %s",
		srv_listener_name(lst->kind), (int)c->fd, srv_conn_close_name(reason));
	force_close(c);
}

/* ---- deadlines -------------------------------------------------------- */

static void arm(struct srv_conn *c, double deadline)
{
	struct timeval tv = seconds_tv(deadline - srv_now());

	event_add(c->timer, &tv);
}

/* The next deadline of c's phase (0: none) and what missing it means. */
static double next_deadline(const struct srv_conn *c, enum srv_conn_close *ret_reason)
{
	const struct srv_conn_limits *l = &c->lst->limits;
	double head = c->origin + l->header_timeout_sec;

	switch (c->phase) {
	case CONN_HANDSHAKE: {
		double handshake = c->accepted + l->handshake_timeout_sec;

		if (handshake < head) {
			*ret_reason = SRV_CONN_CLOSE_HANDSHAKE_DEADLINE;
			return handshake;
		}
		*ret_reason = SRV_CONN_CLOSE_HEADER_DEADLINE;
		return head;
	}
	case CONN_HEAD:
		*ret_reason = SRV_CONN_CLOSE_HEADER_DEADLINE;
		return head;
	case CONN_BODY:
		*ret_reason = SRV_CONN_CLOSE_REQUEST_DEADLINE;
		return c->origin + l->request_timeout_sec;
	default:
		return 0;
	}
}

static void arm_phase(struct srv_conn *c)
{
	enum srv_conn_close reason;
	double deadline = next_deadline(c, &reason);

	if (deadline > 0)
		arm(c, deadline);
	else
		event_del(c->timer);
}

static bool handshake_done(const struct srv_conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

	return ssl == NULL || SSL_is_init_finished(ssl);
}

static void admit(struct srv_conn *c);

/* true while the current slice of guard work has room (see CONNS_SLICE_WORK). */
static bool slice_take(struct srv_conns *conns)
{
	double now = srv_now();

	if (now - conns->slice_start > CONNS_SLICE_SEC) {
		conns->slice_start = now;
		conns->slice_work = 0;
	}
	return ++conns->slice_work <= CONNS_SLICE_WORK;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_conn *c = arg;
	enum srv_conn_close reason;
	double deadline;

	(void)fd;
	(void)what;
	if (c->phase == CONN_GATE) { /* never deferred: nothing may read before it */
		admit(c);
		return;
	}
	if (!slice_take(c->conns)) {
		arm(c, srv_now() + 0.001);
		return;
	}
	deadline = next_deadline(c, &reason);
	if (deadline <= 0)
		return;
	if (srv_now() < deadline) { /* the phase moved on since the timer was set */
		arm(c, deadline);
		return;
	}
	if (reason == SRV_CONN_CLOSE_HANDSHAKE_DEADLINE && handshake_done(c)) {
		/* the handshake is done; the request head has not started */
		c->phase = CONN_HEAD;
		arm_phase(c);
		return;
	}
	close_counted(c, reason);
}

/* ---- the bytes of a request head -------------------------------------- */

/* Scans len bytes of buf from off; true when they complete a request head. */
static bool scan_head(struct srv_conn *c, struct evbuffer *buf, size_t off, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct evbuffer_iovec vec[8];
		struct evbuffer_ptr pos;
		int n;

		if (evbuffer_ptr_set(buf, &pos, off + done, EVBUFFER_PTR_SET) != 0)
			return false;
		n = evbuffer_peek(buf, (ev_ssize_t)(len - done), &pos, vec, 8);
		if (n <= 0)
			return false;
		for (int i = 0; i < n && i < 8 && done < len; i++) {
			const unsigned char *p = vec[i].iov_base;
			size_t chunk = vec[i].iov_len < len - done ? vec[i].iov_len : len - done;

			for (size_t j = 0; j < chunk; j++) {
				if (p[j] == '\n') {
					if (c->scan != 0) {
						c->scan = 0;
						return true;
					}
					c->scan = 1;
				} else if (p[j] == '\r') {
					c->scan = c->scan == 1 ? 2 : 0;
				} else {
					c->scan = 0;
				}
			}
			done += chunk;
		}
	}
	return false;
}

/* len bytes from off in buf arrived for evhttp. */
static void saw_input(struct srv_conn *c, struct evbuffer *buf, size_t off, size_t len)
{
	switch (c->phase) {
	case CONN_IDLE: /* the next request on a kept-alive connection */
		c->origin = srv_now();
		c->phase = CONN_HEAD;
		c->scan = 0;
		arm_phase(c);
		break;
	case CONN_HANDSHAKE:
		c->phase = CONN_HEAD; /* the timer re-reads the phase */
		break;
	case CONN_HEAD:
		break;
	default:
		return;
	}
	if (scan_head(c, buf, off, len))
		c->phase = CONN_BODY; /* the timer moves to the request deadline */
}

/* Bytes were added to (or drained from) the connection's input buffer. */
static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct srv_conn *c = arg;
	size_t len = evbuffer_get_length(buf);

	if (info->n_added == 0 || info->n_added > len || c->phase == CONN_GATE)
		return;
	/* the new bytes are the last ones: evhttp only drains from the front */
	saw_input(c, buf, len - info->n_added, info->n_added);
}

/* ---- read-ahead during the handshake ---------------------------------- */

/*
 * Without read-ahead OpenSSL reads each TLS record with two read(2), its
 * 5-byte header and then its body: 14 reads per full TLS 1.2 handshake,
 * where the client's second flight alone (certificate, key exchange,
 * certificate verify, change cipher spec, finished) is 10. A handshake
 * therefore reads ahead (one read takes a whole flight) and stops reading
 * ahead once it is done (conn_info_cb), so a connection reads as before
 * from then on. What the handshake read past its last message (a
 * request sent with the client's Finished: TLS 1.3, a TLS 1.2
 * resumption) sits in OpenSSL's buffer, where the socket bufferevent does
 * not look (it waits for the socket, which has nothing more): drain_cb
 * reads it, after the handshake and after each reply (evhttp does not
 * read while it answers a request, so a request pipelined behind the
 * first one waits there). The bufferevent's read event is reached through
 * event2/bufferevent_struct.h (libevent 2.1's public layout of struct
 * bufferevent; there is no call that makes a bufferevent_openssl read).
 */

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_conn *c = arg;
	struct bufferevent *bev = c->bev;
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	struct evbuffer *in = bufferevent_get_input(bev);
	event_callback_fn read_pass = event_get_callback(&bev->ev_read);

	(void)fd;
	(void)what;
	/*
	 * The bufferevent's own read callback (consider_reading), as when
	 * the socket is readable; a pass may stop after one record. Once a
	 * reply is done, only into an empty input buffer: evhttp may have
	 * the bytes there queued for itself (its read_more callback), and a
	 * read pass would queue evhttp's read callback again behind it,
	 * which then finds the connection answering the request (libevent
	 * exits on that: "illegal connection state"). An emptied buffer
	 * brings the next reply, and request_done_cb calls again.
	 */
	for (int i = 0; i < CONNS_DRAIN_PASSES; i++) {
		size_t before = evbuffer_get_length(in);

		if (ssl == NULL || read_pass == NULL || !SSL_has_pending(ssl) ||
		    !(bufferevent_get_enabled(bev) & EV_READ) || (c->replied && before > 0))
			return;
		read_pass(event_get_fd(&bev->ev_read), EV_READ,
			  event_get_callback_arg(&bev->ev_read));
		/*
		 * Nothing read: reading is suspended, the rest of a record is
		 * still in the socket (its read event brings it), or an error
		 * the bufferevent reports.
		 */
		if (evbuffer_get_length(in) == before)
			return;
	}
	event_active(c->drain, EV_TIMEOUT, 1); /* each pass took a record: more may wait */
}

/* Runs drain_cb on the next loop turn if OpenSSL holds bytes c has not read. */
static void drain_later(struct srv_conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

	if (ssl == NULL || !SSL_has_pending(ssl))
		return;
	if (c->drain == NULL)
		c->drain = event_new(c->conns->base, -1, 0, drain_cb, c);
	if (c->drain != NULL)
		event_active(c->drain, EV_TIMEOUT, 1);
}

/*
 * The connection's TLS info callback: the context's (handshake counts,
 * tls.c), then, when the handshake is done, no more read-ahead.
 */
static void conn_info_cb(const SSL *ssl, int where, int ret)
{
	void (*ctx_cb)(const SSL *, int, int) = SSL_CTX_get_info_callback(SSL_get_SSL_CTX(ssl));
	/* the callback gets a const SSL; changing its mode needs a writable one */
	SSL *mutable_ssl = (SSL *)(uintptr_t)ssl;
	struct srv_conn *c;

	if (ctx_cb != NULL)
		ctx_cb(ssl, where, ret);
	if ((where & SSL_CB_WRITE_ALERT) && (ret >> 8) == SSL3_AL_FATAL) {
		/* a refusal: the connection closes gracefully (conn_free) */
		c = SSL_get_app_data(ssl);
		if (c != NULL)
			c->alert = ret;
		return;
	}
	if (!(where & SSL_CB_HANDSHAKE_DONE))
		return;
	if (SSL_get_read_ahead(ssl))
		SSL_set_read_ahead(mutable_ssl, 0);
	/*
	 * Every time (a TLS 1.3 server is done again once its ticket is
	 * written, which a full socket could have delayed to a later call):
	 * drain_cb runs after libevent has switched to its read callbacks.
	 */
	c = SSL_get_app_data(ssl);
	if (c != NULL)
		drain_later(c);
}

/* ---- accept, admission ------------------------------------------------ */

static struct srv_conn *oldest_idle(struct srv_conns *conns)
{
	struct srv_conn *oldest = NULL;

	for (int k = 0; k < SRV__LISTENER_COUNT; k++) {
		struct srv_conns_listener *lst = conns->listeners[k];
		struct srv_conn *c = lst != NULL ? TAILQ_FIRST(&lst->idle) : NULL;

		if (c != NULL && (oldest == NULL || c->idle_since < oldest->idle_since))
			oldest = c;
	}
	return oldest;
}

static void refuse(struct srv_conn *c, enum srv_conn_close reason)
{
	struct srv_conns_listener *lst = c->lst;

	c->conns->metrics[lst->kind].closed[reason]++;
	srv_log(SRV_LOG_DEBUG, "%s listener: connection refused: %s", srv_listener_name(lst->kind),
		srv_conn_close_name(reason));
	force_close(c);
}

/*
 * Closes victim to make room for c, or, when there is no idle connection
 * to close, refuses c (for reason) and returns false.
 */
static bool make_room(struct srv_conn *c, struct conn_peer *peer, struct srv_conn *victim,
		      enum srv_conn_close reason)
{
	if (victim == NULL) {
		peer->count--;
		peer_put(c->conns, peer);
		refuse(c, reason);
		return false;
	}
	close_counted(victim, SRV_CONN_CLOSE_EVICTED);
	return true;
}

/*
 * The peer's address into ss: the one accept(2) gave evhttp (kept on the
 * connection), else getpeername(2); false when there is none.
 */
static bool peer_addr(struct evhttp_connection *evcon, evutil_socket_t fd,
		      struct sockaddr_storage *ss)
{
	const struct sockaddr *sa = evhttp_connection_get_addr(evcon);
	socklen_t len = sizeof(*ss);

	memset(ss, 0, sizeof(*ss));
	if (sa != NULL && sa->sa_family == AF_INET) {
		memcpy(ss, sa, sizeof(struct sockaddr_in));
		return true;
	}
	if (sa != NULL && sa->sa_family == AF_INET6) {
		memcpy(ss, sa, sizeof(struct sockaddr_in6));
		return true;
	}
	return getpeername(fd, (struct sockaddr *)ss, &len) == 0;
}

/*
 * Right after accept: a slot for the peer and in the listener's table,
 * made by closing the oldest idle connection when a cap is reached.
 */
static void admit(struct srv_conn *c)
{
	struct srv_conns_listener *lst = c->lst;
	struct srv_conns *conns = c->conns;
	const struct srv_conn_limits *l = &lst->limits;
	struct sockaddr_storage ss;
	struct conn_key key;
	char key_buf[CONNS_KEY_TEXT];
	struct conn_peer *peer;
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	void *cbarg = NULL;

	gate_done(c);
	/* evhttp's connection is the argument of the callbacks it gave the bufferevent */
	bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
	if (cbarg == NULL) { /* evhttp gave up on it already */
		conn_free(c);
		return;
	}
	c->evcon = cbarg;
	evhttp_connection_set_closecb(c->evcon, conn_closecb, c);
	c->input_cb = evbuffer_add_cb(bufferevent_get_input(c->bev), input_cb, c);
	if (c->input_cb == NULL || fd < 0 || (size_t)fd >= conns->n_fds ||
	    !peer_addr(c->evcon, fd, &ss) || !key_from(&ss, lst->kind, &key) ||
	    (peer = peer_get(conns, &key)) == NULL) {
		force_close(c);
		return;
	}
	c->fd = fd;
	if (!srv_ratelimit_take(lst->peer_rate, key_text(&key, key_buf), c->accepted, NULL)) {
		peer_put(conns, peer);
		refuse(c, SRV_CONN_CLOSE_PEER_RATE);
		return;
	}
	peer->count++; /* holds the peer while others are closed */
	if (peer->count > l->max_conns_per_peer &&
	    !make_room(c, peer, TAILQ_FIRST(&peer->idle), SRV_CONN_CLOSE_PEER_CAP))
		return;
	if (lst->open >= l->max_conns ||
	    (lst->open + lst->reserve >= l->max_conns && peer->count > 1)) {
		/* a peer that holds connections gives up its own oldest first */
		struct srv_conn *victim = TAILQ_FIRST(&peer->idle);

		if (!make_room(c, peer, victim != NULL ? victim : TAILQ_FIRST(&lst->idle),
			       SRV_CONN_CLOSE_TOTAL_CAP))
			return;
	}
	c->peer = peer;
	lst->open++;
	conns->metrics[lst->kind].open++;
	conns->by_fd[fd] = c;
	c->phase = lst->tls != NULL ? CONN_HANDSHAKE : CONN_HEAD;
	/* TLS records leave several per write(2) (wbio.c); without it, one each */
	if (lst->tls != NULL && lst->limits.write_gather &&
	    !srv_wbio_attach(bufferevent_openssl_get_ssl(c->bev), c->bev))
		srv_log(SRV_LOG_DEBUG, "%s listener: fd %d: records not gathered (no memory?)",
			srv_listener_name(lst->kind), (int)fd);
	idle_add(c);
	event_priority_set(c->timer, CONNS_TIMER_PRIORITY);
	arm_phase(c);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) /* not yet, but cheap */
		saw_input(c, bufferevent_get_input(c->bev), 0,
			  evbuffer_get_length(bufferevent_get_input(c->bev)));
}

static struct bufferevent *conn_bevcb(struct event_base *base, void *arg)
{
	struct srv_conns_listener *lst = arg;
	struct srv_conns *conns = lst->conns;
	struct srv_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (lst->tls != NULL) {
		SSL *ssl = SSL_new(lst->tls);

		if (ssl == NULL) {
			free(c);
			return NULL;
		}
		/* read-ahead until the handshake is done (conn_info_cb) */
		SSL_set_app_data(ssl, c);
		SSL_set_info_callback(ssl, conn_info_cb);
		SSL_set_read_ahead(ssl, 1);
		c->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
							BEV_OPT_CLOSE_ON_FREE |
								BEV_OPT_DEFER_CALLBACKS);
		if (c->bev == NULL)
			SSL_free(ssl);
		else
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	c->timer = c->bev != NULL ? event_new(base, -1, 0, timer_cb, c) : NULL;
	if (c->timer != NULL) /* admission runs before any read of the connection */
		event_priority_set(c->timer, CONNS_GATE_PRIORITY);
	if (c->timer == NULL) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		free(c);
		return NULL;
	}
	c->conns = conns;
	c->lst = lst;
	c->fd = -1;
	c->phase = CONN_GATE;
	c->accepted = srv_now();
	c->origin = c->accepted;
	c->all_next = conns->all;
	if (conns->all != NULL)
		conns->all->all_prev = c;
	conns->all = c;
	conns->metrics[lst->kind].accepted++;
	/* evhttp sets the socket once this returns: admission runs right after */
	event_active(c->timer, EV_TIMEOUT, 1);
	if (++lst->pending >= CONNS_MAX_PENDING && lst->lev != NULL) {
		lst->paused = true;
		evconnlistener_disable(lst->lev);
	}
	return c->bev;
}

static struct srv_conn *conn_of(struct srv_conns *conns, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;
	struct srv_conn *c;

	if (fd < 0 || (size_t)fd >= conns->n_fds)
		return NULL;
	c = conns->by_fd[fd];
	return c != NULL && c->evcon == evcon ? c : NULL;
}

void srv_conns_on_close(struct srv_conns *conns, struct evhttp_request *req,
			void (*cb)(struct evhttp_connection *, void *), void *arg)
{
	struct srv_conn *c = conn_of(conns, req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (c != NULL) {
		c->user_closecb = cb;
		c->user_closecb_arg = arg;
	} else if (evcon != NULL) {
		evhttp_connection_set_closecb(evcon, cb, arg);
	}
}

/* A reply went out completely: the connection is idle until its next request. */
static void request_done_cb(struct evhttp_request *req, void *arg)
{
	struct srv_conn *c = arg;
	struct evbuffer *pending;

	(void)req;
	if (c->phase != CONN_BUSY)
		return;
	c->phase = CONN_IDLE;
	c->replied = true;
	c->scan = 0;
	idle_add(c);
	pending = bufferevent_get_input(c->bev);
	if (evbuffer_get_length(pending) > 0)
		saw_input(c, pending, 0, evbuffer_get_length(pending)); /* pipelined */
	if (c->lst->tls != NULL)
		drain_later(c); /* pipelined, still in OpenSSL's buffer */
}

static void conn_gencb(struct evhttp_request *req, void *arg)
{
	struct srv_conns_listener *lst = arg;
	struct srv_conn *c = conn_of(lst->conns, req);

	if (c != NULL) {
		c->phase = CONN_BUSY;
		idle_remove(c);
		event_del(c->timer);
		evhttp_request_set_on_complete_cb(req, request_done_cb, c);
	}
	lst->gencb(req, lst->gencb_arg);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_conns_listener *lst = arg;

	(void)fd;
	(void)what;
	if (!lst->paused)
		evconnlistener_enable(lst->lev);
}

/*
 * accept() failed with something other than EAGAIN/EINTR/ECONNABORTED:
 * out of descriptors, most likely. The oldest idle connection goes (its
 * descriptor is closed on the next loop turn) and accept rests a moment,
 * so the loop neither spins on a readable listener nor stops accepting.
 */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct srv_conns_listener *lst = NULL;
	struct srv_conn *victim;
	struct timeval pause = {0, (suseconds_t)SRV_CONNS_ACCEPT_PAUSE_MS * 1000};

	(void)arg;
	for (size_t i = 0; i < sizeof(guarded) / sizeof(guarded[0]); i++) {
		if (guarded[i] != NULL && guarded[i]->lev == lev)
			lst = guarded[i];
	}
	if (lst == NULL)
		return;
	lst->conns->metrics[lst->kind].closed[SRV_CONN_CLOSE_FD_LIMIT]++;
	srv_log(SRV_LOG_WARN, "%s listener: accept: %s; closing the oldest idle connection",
		srv_listener_name(lst->kind), strerror(err));
	/* a refused connection's lingering socket first: it only waits to close */
	victim = lst->conns->lingering == NULL ? oldest_idle(lst->conns) : NULL;
	if (lst->conns->lingering != NULL)
		linger_end(lst->conns->lingering, "descriptor limit");
	else if (victim != NULL)
		close_counted(victim, SRV_CONN_CLOSE_EVICTED);
	evconnlistener_disable(lev);
	event_add(lst->resume_ev, &pause);
}

/* ---- setup ------------------------------------------------------------ */

enum ota_err srv_conns_new(struct event_base *base, struct srv_conn_metrics *metrics,
			   struct srv_conns **ret_conns)
{
	struct srv_conns *conns;
	struct rlimit rl;

	conns = calloc(1, sizeof(*conns));
	if (conns == NULL)
		return OTA_ERR_NOMEM;
	conns->base = base;
	conns->metrics = metrics;
	/* before any other event of the server exists: they get the middle one */
	if (event_base_priority_init(base, CONNS_PRIORITIES) != 0)
		srv_log(SRV_LOG_WARN, "connection guard: no event priorities");
	conns->nofile = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		conns->nofile = rl.rlim_cur == RLIM_INFINITY ? CONNS_MAX_FDS
							     : (unsigned long long)rl.rlim_cur;
	conns->n_fds = conns->nofile < CONNS_MAX_FDS ? (size_t)conns->nofile : CONNS_MAX_FDS;
	conns->by_fd = calloc(conns->n_fds, sizeof(*conns->by_fd));
	if (conns->by_fd == NULL) {
		free(conns);
		return OTA_ERR_NOMEM;
	}
	*ret_conns = conns;
	return OTA_OK;
}

/* The caps of cfg, lowered so that every listener's connections fit the descriptor limit. */
static void fit_limits(const struct srv_conns *conns, enum srv_listener_kind kind,
		       const struct srv_conn_limits *cfg, struct srv_conn_limits *out)
{
	unsigned long long budget = 0, share;

	*out = *cfg;
	if (conns->nofile > SRV_CONNS_FD_RESERVE)
		budget = (conns->nofile - SRV_CONNS_FD_RESERVE) / SRV_CONNS_FDS_PER_CONN;
	/* the device listener gets three quarters, the REST API one */
	share = kind == SRV_LISTENER_DEVICE ? budget * 3 / 4 : budget / 4;
	if (share < SRV_CONNS_MIN_CAP)
		share = SRV_CONNS_MIN_CAP;
	if (out->max_conns > share) {
		srv_log(SRV_LOG_WARN,
			"%s listener: at most %llu connections fit the descriptor limit (%llu), "
			"not %u",
			srv_listener_name(kind), share, conns->nofile, out->max_conns);
		out->max_conns = (unsigned)share;
	}
	if (out->max_conns_per_peer > out->max_conns)
		out->max_conns_per_peer = out->max_conns;
	if (out->max_conns_per_peer == 0)
		out->max_conns_per_peer = 1;
}

static evutil_socket_t bind_listen(const char *addr, uint16_t port)
{
	struct addrinfo hints, *res = NULL;
	char port_text[SRV_PORT_TEXT_BYTES];
	evutil_socket_t fd = -1;
	int one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port_text, sizeof(port_text), "%u", port);
	if (getaddrinfo(addr, port_text, &hints, &res) != 0 || res == NULL)
		return -1;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* accepted sockets inherit it: no Nagle delay between TLS records */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
		    listen(fd, CONNS_BACKLOG) != 0) {
			int saved = errno;

			close(fd);
			fd = -1;
			errno = saved;
		}
	}
	freeaddrinfo(res);
	return fd;
}

enum ota_err srv_conns_listen(struct srv_conns *conns, enum srv_listener_kind kind,
			      struct evhttp *http, const char *addr, uint16_t port, SSL_CTX *tls,
			      const struct srv_conn_limits *limits,
			      void (*gencb)(struct evhttp_request *, void *), void *gencb_arg,
			      uint16_t *ret_port)
{
	struct srv_conns_listener *lst;
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage ss;
	socklen_t ss_len = sizeof(ss);
	evutil_socket_t fd;
	size_t slot = 0;

	if ((unsigned)kind >= SRV__LISTENER_COUNT || conns->listeners[kind] != NULL ||
	    limits->max_conns == 0 || limits->header_timeout_sec == 0 ||
	    limits->request_timeout_sec < limits->header_timeout_sec || gencb == NULL)
		return OTA_ERR_INVALID_ARG;
	while (slot < sizeof(guarded) / sizeof(guarded[0]) && guarded[slot] != NULL)
		slot++;
	if (slot == sizeof(guarded) / sizeof(guarded[0]))
		return OTA_ERR_INVALID_ARG;
	lst = calloc(1, sizeof(*lst));
	if (lst == NULL)
		return OTA_ERR_NOMEM;
	lst->conns = conns;
	lst->kind = kind;
	lst->http = http;
	lst->tls = tls;
	lst->gencb = gencb;
	lst->gencb_arg = gencb_arg;
	TAILQ_INIT(&lst->idle);
	fit_limits(conns, kind, limits, &lst->limits);
	lst->reserve = lst->limits.max_conns / SRV_CONNS_RESERVE_DIV;
	if (lst->reserve < 1)
		lst->reserve = 1;
	if (lst->reserve > SRV_CONNS_MAX_RESERVE)
		lst->reserve = SRV_CONNS_MAX_RESERVE;
	lst->resume_ev = evtimer_new(conns->base, resume_cb, lst);
	if (lst->resume_ev == NULL ||
	    srv_ratelimit_new(lst->limits.max_conns_per_peer, 2.0 * lst->limits.max_conns_per_peer,
			      2u * lst->limits.max_conns, &lst->peer_rate) != OTA_OK) {
		if (lst->resume_ev != NULL)
			event_free(lst->resume_ev);
		srv_ratelimit_free(lst->peer_rate);
		free(lst);
		return OTA_ERR_NOMEM;
	}
	conns->listeners[kind] = lst; /* freed with the guard from here on */
	guarded[slot] = lst;
	evhttp_set_bevcb(http, conn_bevcb, lst);
	evhttp_set_gencb(http, conn_gencb, lst);
	fd = bind_listen(addr, port);
	bound = fd >= 0 ? evhttp_accept_socket_with_handle(http, fd) : NULL;
	if (bound == NULL) {
		srv_log(SRV_LOG_ERROR, "%s listener: cannot listen on %s:%u: %s",
			srv_listener_name(kind), addr, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return OTA_ERR_TRANSPORT;
	}
	lst->lev = evhttp_bound_socket_get_listener(bound);
	evconnlistener_set_error_cb(lst->lev, accept_error_cb);
	*ret_port = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &ss_len) == 0) {
		if (ss.ss_family == AF_INET)
			*ret_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			*ret_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	srv_log(SRV_LOG_INFO,
		"%s listener: at most %u connections (%u per peer), deadlines: handshake %u s, "
		"head %u s, request %u s",
		srv_listener_name(kind), lst->limits.max_conns, lst->limits.max_conns_per_peer,
		lst->limits.handshake_timeout_sec, lst->limits.header_timeout_sec,
		lst->limits.request_timeout_sec);
	return OTA_OK;
}

const struct srv_conn_limits *srv_conns_limits(const struct srv_conns *conns,
					       enum srv_listener_kind kind)
{
	if (conns == NULL || (unsigned)kind >= SRV__LISTENER_COUNT ||
	    conns->listeners[kind] == NULL)
		return NULL;
	return &conns->listeners[kind]->limits;
}

void srv_conns_stop(struct srv_conns *conns)
{
	struct srv_conn *c, *next;

	if (conns == NULL)
		return;
	/* admitted ones go with their evhttp (close callback); these would not */
	for (c = conns->all; c != NULL; c = next) {
		next = c->all_next;
		if (c->phase == CONN_GATE)
			conn_free(c);
	}
}

void srv_conns_free(struct srv_conns *conns)
{
	if (conns == NULL)
		return;
	/* evhttp_free freed the listeners' connections; these never got that far */
	while (conns->all != NULL)
		conn_free(conns->all);
	while (conns->lingering != NULL)
		linger_end(conns->lingering, "shutdown");
	for (int k = 0; k < SRV__LISTENER_COUNT; k++) {
		struct srv_conns_listener *lst = conns->listeners[k];

		if (lst == NULL)
			continue;
		for (size_t i = 0; i < sizeof(guarded) / sizeof(guarded[0]); i++) {
			if (guarded[i] == lst)
				guarded[i] = NULL;
		}
		event_free(lst->resume_ev);
		srv_ratelimit_free(lst->peer_rate);
		free(lst);
	}
	for (size_t i = 0; i < CONNS_PEER_SLOTS; i++) {
		while (conns->peers[i] != NULL) {
			struct conn_peer *next = conns->peers[i]->next;

			free(conns->peers[i]);
			conns->peers[i] = next;
		}
	}
	free(conns->by_fd);
	free(conns);
}

/* ---- metrics ---------------------------------------------------------- */

void srv_conn_metrics_render(const struct srv_conn_metrics *m, struct evbuffer *out)
{
	evbuffer_add_printf(out, "# HELP fleetota_connections_accepted_total Connections accepted "
				 "by a listener.\n"
				 "# TYPE fleetota_connections_accepted_total counter\n");
	for (int k = 0; k < SRV__LISTENER_COUNT; k++)
		evbuffer_add_printf(out,
				    "fleetota_connections_accepted_total{listener=\"%s\"} %llu\n",
				    listener_names[k], (unsigned long long)m[k].accepted);
	evbuffer_add_printf(out, "# HELP fleetota_connections_closed_total Connections the guard "
				 "closed or refused (deadline, cap, descriptor limit).\n"
				 "# TYPE fleetota_connections_closed_total counter\n");
	for (int k = 0; k < SRV__LISTENER_COUNT; k++) {
		for (int r = 0; r < SRV__CONN_CLOSE_COUNT; r++)
			evbuffer_add_printf(
				out,
				"fleetota_connections_closed_total{listener=\"%s\",reason=\"%s\"} "
				"%llu\n",
				listener_names[k], close_names[r],
				(unsigned long long)m[k].closed[r]);
	}
	evbuffer_add_printf(out, "# HELP fleetota_connections_open Connections open now.\n"
				 "# TYPE fleetota_connections_open gauge\n");
	for (int k = 0; k < SRV__LISTENER_COUNT; k++)
		evbuffer_add_printf(out, "fleetota_connections_open{listener=\"%s\"} %llu\n",
				    listener_names[k], (unsigned long long)m[k].open);
}
