/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gathering write BIO (wbio-internal.h). OpenSSL 3.0 builds one TLS
 * record at a time and writes each with its own BIO_write, so a socket BIO
 * makes one write(2) per 16 KiB record, and part of the kernel's cost is
 * per call (a loopback sender: 0.095 s of system time per GB in one-record
 * writes, 0.068 in four-record writes; docs/bench.md, "Image delivery").
 * This filter copies the records of a burst (the ciphertext, hot in cache)
 * and writes up to SRV_WBIO_GATHER_BYTES with one writev(2).
 *
 * When the gathered bytes leave:
 * - at once when the next record would take them past the gather size,
 *   or is not a full record (the end of what the bufferevent writes now):
 *   the buffer and that record go out in one writev;
 * - at once on BIO_flush: OpenSSL flushes at the end of every handshake
 *   flight, after an alert (close_notify), after a post-handshake message;
 * - otherwise when the loop is done with the callback that wrote them: the
 *   first buffered record makes the BIO's event active, at a priority above
 *   every other event of the loop, so it runs right after that callback,
 *   before any other (the bufferevent's deferred write callback; a read
 *   event of the same epoll_wait that finds the client's EOF and frees the
 *   connection). libevent then polls once more (epoll_wait with no wait)
 *   before it runs the rest of that turn's callbacks.
 *
 * The bufferevent counts a record as written once this BIO took it. When
 * the socket is full and bytes stay here, the BIO waits for the socket
 * itself (its event, with the bufferevent's write timeout) and holds the
 * bufferevent's write callback until they are out: evhttp takes that
 * callback for "the reply left", and may close the connection in it (a
 * "Connection: close" reply), which must not lose the reply's tail. The
 * buffer has a fixed size; when it is full the BIO says "retry", so the
 * bufferevent keeps the rest and waits as it would on a full socket.
 *
 * Kernel TLS is refused (the BIO answers no to OpenSSL's KTLS controls):
 * with it OpenSSL would hand the BIO plaintext records with control
 * messages attached, which a plain writev would lose.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <openssl/bio.h>

#include "wbio-internal.h"

/* Room for the gather size plus one largest record (TLS 1.2: 16 KiB + 2 KiB expansion + header). */
#define WBIO_BUF_BYTES (SRV_WBIO_GATHER_BYTES + 20u * 1024u)
/* The smallest record with a full 16 KiB payload (5-byte header; AEAD tag and the like on top). */
#define WBIO_FULL_RECORD_BYTES (16384u + 5u)
/* Buffers kept for reuse (a buffer is taken only while bytes wait in it). */
#define WBIO_SPARE_MAX 64u
/* How long bytes may wait for a socket that takes nothing, when the bufferevent has no write timeout. */
#define WBIO_DEFAULT_TIMEOUT_SEC 60

struct wbio {
	BIO *bio;
	struct bufferevent *bev;
	struct event *ev; /* the socket's write readiness; made active to flush soon */
	int fd;
	unsigned char *buf; /* NULL while nothing waits */
	size_t off, len; /* bytes buf[off, len) wait */
	bool waiting; /* ev is added: the socket was full */
	bool active; /* ev is made active: flush at the end of this callback */
	bool failed; /* a write failed: the connection is broken */
	int failed_errno;
	bool held; /* the bufferevent's write callback is held (held_writecb) */
	bufferevent_data_cb held_cb;
	bool held_called;
	bool detached; /* the bufferevent is being freed: nothing of it is called any more */
};

static BIO_METHOD *wbio_method;
static int wbio_type;
static pthread_once_t wbio_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *spare[WBIO_SPARE_MAX];
static unsigned spare_count;

static unsigned char *buf_take(void)
{
	unsigned char *b = NULL;

	pthread_mutex_lock(&spare_lock);
	if (spare_count > 0)
		b = spare[--spare_count];
	pthread_mutex_unlock(&spare_lock);
	return b != NULL ? b : malloc(WBIO_BUF_BYTES);
}

static void buf_give(unsigned char *b)
{
	if (b == NULL)
		return;
	pthread_mutex_lock(&spare_lock);
	if (spare_count < WBIO_SPARE_MAX) {
		spare[spare_count++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&spare_lock);
	free(b);
}

static size_t waiting_bytes(const struct wbio *w)
{
	return w->len - w->off;
}

static struct wbio *wbio_of_ssl(SSL *ssl)
{
	BIO *b = ssl != NULL ? SSL_get_wbio(ssl) : NULL;

	if (b == NULL || wbio_method == NULL || BIO_method_type(b) != wbio_type)
		return NULL;
	return BIO_get_data(b);
}

static int flush_now(struct wbio *w);

size_t srv_wbio_flush(SSL *ssl)
{
	struct wbio *w = wbio_of_ssl(ssl);

	if (w == NULL)
		return 0;
	if (!w->failed)
		(void)flush_now(w);
	return waiting_bytes(w);
}

static void held_writecb(struct bufferevent *bev, void *arg);

void srv_wbio_detach(SSL *ssl)
{
	struct wbio *w = wbio_of_ssl(ssl);

	if (w == NULL || w->detached)
		return;
	if (!w->failed)
		(void)flush_now(w);
	if (w->waiting || w->active) {
		event_del(w->ev);
		w->waiting = false;
		w->active = false;
	}
	/* the write callback back, not called: the bufferevent is about to be freed */
	if (w->held && w->bev->writecb == held_writecb)
		w->bev->writecb = w->held_cb;
	w->held = false;
	w->held_called = false;
	w->detached = true;
}

/* ---- the held write callback ----------------------------------------- */

/*
 * Whether the BIO may still call the bufferevent (bufferevent_trigger,
 * bufferevent_trigger_event, its write callback). Not once it is being
 * freed: bufferevent_free drops the last reference at once but frees the
 * bufferevent (and the SSL, and this BIO) later, in a finalizer run by the
 * loop. A trigger in between takes a reference and drops it again: the
 * count reaches 0 a second time and libevent finalizes the bufferevent a
 * second time, and its second finalizer runs SSL_free on a freed SSL (the
 * double free of docs/server.md, "Per-record system calls"). The guard
 * says when it lets the connection go (srv_wbio_detach, from conn_free,
 * before evhttp frees it); bufferevent_free clearing the callbacks (all
 * NULL; evhttp clears them otherwise only where its bufferevent_setfd
 * replaces this BIO in the same call) is the second sign, for a free the
 * guard did not see.
 */
static bool bev_alive(const struct wbio *w)
{
	return !w->detached &&
	       (w->bev->readcb != NULL || w->bev->writecb != NULL || w->bev->errorcb != NULL);
}

/* Stands in for the bufferevent's write callback while bytes wait here. */
static void held_writecb(struct bufferevent *bev, void *arg)
{
	struct wbio *w = wbio_of_ssl(bufferevent_openssl_get_ssl(bev));

	(void)arg;
	if (w != NULL)
		w->held_called = true;
}

static void hold(struct wbio *w)
{
	if (w->held || !bev_alive(w) || w->bev->writecb == NULL)
		return;
	w->held = true;
	w->held_called = false;
	w->held_cb = w->bev->writecb;
	w->bev->writecb = held_writecb;
}

/*
 * Gives the write callback back; a call it missed runs (deferred) now when
 * the bytes went out (deliver), not when the connection broke: its error
 * event follows.
 */
static void release(struct wbio *w, bool deliver)
{
	bool called = w->held_called && deliver;

	if (!w->held)
		return;
	w->held = false;
	w->held_called = false;
	/* evhttp may have set callbacks of its own since: those stay */
	if (w->bev->writecb != held_writecb || !bev_alive(w))
		return;
	w->bev->writecb = w->held_cb;
	if (called)
		bufferevent_trigger(w->bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

/* ---- writing ---------------------------------------------------------- */

static void fail(struct wbio *w, int err)
{
	w->failed = true;
	w->failed_errno = err != 0 ? err : EPIPE;
	buf_give(w->buf);
	w->buf = NULL;
	w->off = w->len = 0;
}

/* Writes what waits. 1: all of it is out; 0: the socket is full; -1: failed. */
static int flush_now(struct wbio *w)
{
	while (waiting_bytes(w) > 0) {
		ssize_t n = write(w->fd, w->buf + w->off, waiting_bytes(w));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			fail(w, errno);
			return -1;
		}
		w->off += (size_t)n;
	}
	buf_give(w->buf);
	w->buf = NULL;
	w->off = w->len = 0;
	return 1;
}

static struct timeval write_timeout(const struct wbio *w)
{
	struct timeval tv = w->bev->timeout_write;

	if (tv.tv_sec == 0 && tv.tv_usec == 0)
		tv.tv_sec = WBIO_DEFAULT_TIMEOUT_SEC;
	return tv;
}

/* Bytes wait and the socket is full: wait for it, holding the write callback. */
static void wait_socket(struct wbio *w)
{
	struct timeval tv;

	if (w->detached) /* nobody waits for these bytes: they are dropped with the BIO */
		return;
	hold(w);
	if (w->waiting)
		return;
	tv = write_timeout(w);
	if (event_add(w->ev, &tv) == 0)
		w->waiting = true;
}

/* Bytes wait and the socket may take them: write them once this callback is done. */
static void flush_soon(struct wbio *w)
{
	if (w->waiting || w->active || w->detached)
		return;
	w->active = true;
	event_active(w->ev, EV_WRITE, 1);
}

/* Nothing waits any more (written, or dropped when failed): no event, the write callback back. */
static void settled(struct wbio *w)
{
	if (w->waiting || w->active) { /* an active event that is deleted does not run */
		event_del(w->ev);
		w->waiting = false;
		w->active = false;
	}
	release(w, !w->failed);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wbio *w = arg;
	struct bufferevent *bev = w->bev;
	int r;

	(void)fd;
	w->active = false;
	/* a non-persistent event that fired is no longer added */
	w->waiting = event_pending(w->ev, EV_WRITE | EV_TIMEOUT, NULL) != 0;
	if (w->failed || w->detached)
		return;
	r = flush_now(w);
	if (r > 0) {
		settled(w);
		return;
	}
	if (r == 0 && !(what & EV_TIMEOUT)) {
		wait_socket(w);
		return;
	}
	/* failed, or the socket took nothing for the write timeout: the connection is broken */
	if (r == 0)
		fail(w, ETIMEDOUT);
	settled(w);
	if (bev_alive(w))
		bufferevent_trigger_event(
			bev, BEV_EVENT_WRITING | (r == 0 ? BEV_EVENT_TIMEOUT : BEV_EVENT_ERROR),
			BEV_TRIG_DEFER_CALLBACKS);
}

/* Copies len bytes of data behind what waits (room was checked). */
static bool append(struct wbio *w, const void *data, size_t len)
{
	if (len == 0)
		return true;
	if (w->buf == NULL) {
		w->buf = buf_take();
		if (w->buf == NULL)
			return false;
		w->off = w->len = 0;
	}
	if (w->off > 0 && w->len + len > WBIO_BUF_BYTES) {
		memmove(w->buf, w->buf + w->off, waiting_bytes(w));
		w->len -= w->off;
		w->off = 0;
	}
	memcpy(w->buf + w->len, data, len);
	w->len += len;
	return true;
}

static int wbio_write(BIO *b, const char *data, int len)
{
	struct wbio *w = BIO_get_data(b);
	size_t want = len > 0 ? (size_t)len : 0;
	size_t waiting, sent = 0, take;
	struct iovec iov[2];
	int iovcnt = 0;
	ssize_t n;
	bool full = false;

	BIO_clear_retry_flags(b);
	if (w == NULL || data == NULL || len <= 0)
		return 0;
	if (w->failed) {
		errno = w->failed_errno;
		return -1;
	}
	waiting = waiting_bytes(w);
	/*
	 * Only full records wait for more: a shorter one ends what the
	 * bufferevent has to write now (a reply's head or tail, a small
	 * reply), so it goes out at once with what waits, as before this BIO
	 * (no event, no extra loop turn for a manifest).
	 */
	if (waiting + want < SRV_WBIO_GATHER_BYTES && want >= WBIO_FULL_RECORD_BYTES &&
	    !w->detached) {
		if (!append(w, data, want)) {
			errno = ENOMEM;
			return -1;
		}
		flush_soon(w);
		return len;
	}
	/* the gather size is reached, or a short record: what waits and this record in one call */
	if (waiting > 0) {
		iov[iovcnt].iov_base = w->buf + w->off;
		iov[iovcnt++].iov_len = waiting;
	}
	iov[iovcnt].iov_base = (void *)(uintptr_t)data;
	iov[iovcnt++].iov_len = want;
	do
		n = writev(w->fd, iov, iovcnt);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			int err = errno;

			fail(w, err);
			settled(w);
			errno = err;
			return -1;
		}
		n = 0;
		full = true;
	} else {
		full = (size_t)n < waiting + want;
	}
	if ((size_t)n >= waiting) {
		sent = (size_t)n - waiting;
		w->off = w->len;
	} else {
		w->off += (size_t)n;
	}
	waiting = waiting_bytes(w);
	if (waiting == 0) {
		buf_give(w->buf);
		w->buf = NULL;
		w->off = w->len = 0;
	}
	/* what the socket did not take waits here, as far as there is room */
	take = want - sent;
	if (take > WBIO_BUF_BYTES - waiting)
		take = WBIO_BUF_BYTES - waiting;
	if (take > 0 && !append(w, data + sent, take))
		take = 0;
	if (waiting_bytes(w) == 0)
		settled(w);
	else if (full)
		wait_socket(w);
	else
		flush_soon(w);
	if (sent + take == 0) {
		BIO_set_retry_write(b);
		return -1;
	}
	return (int)(sent + take);
}

static long wbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct wbio *w = BIO_get_data(b);
	BIO *next = BIO_next(b);
	int r;

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		BIO_clear_retry_flags(b);
		if (w == NULL)
			return next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 1;
		if (w->failed)
			return -1;
		r = flush_now(w);
		if (r < 0) {
			settled(w);
			return -1;
		}
		if (r == 0) {
			/*
			 * The socket is full: the bytes stay here and leave when it
			 * takes them (the write callback held meanwhile). No "retry":
			 * OpenSSL's handshake buffer (BIO_f_buffer) does not pass a
			 * retry of its next BIO's flush on, so OpenSSL would take it
			 * for an error and the connection would fail.
			 */
			wait_socket(w);
			return 1;
		}
		settled(w);
		return next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 1;
	case BIO_CTRL_WPENDING:
		return (long)(w != NULL ? waiting_bytes(w) : 0) +
		       (next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 0);
	case BIO_CTRL_GET_KTLS_SEND:
	case BIO_CTRL_GET_KTLS_RECV:
	case 72: /* BIO_CTRL_SET_KTLS (internal to OpenSSL) */
	case 74: /* BIO_CTRL_SET_KTLS_TX_SEND_CTRL_MSG */
	case 75: /* BIO_CTRL_CLEAR_KTLS_TX_CTRL_MSG */
		return 0;
	case BIO_CTRL_DUP:
		return 0; /* a copy would share nothing of this state */
	default:
		return next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 0;
	}
}

static int wbio_puts(BIO *b, const char *str)
{
	return wbio_write(b, str, (int)strlen(str));
}

static int wbio_read(BIO *b, char *out, int len)
{
	BIO *next = BIO_next(b);
	int r;

	BIO_clear_retry_flags(b);
	if (next == NULL)
		return 0;
	r = BIO_read(next, out, len);
	BIO_copy_next_retry(b);
	return r;
}

static int wbio_destroy(BIO *b)
{
	struct wbio *w = BIO_get_data(b);

	/* the bufferevent is going away with it: nothing to give back */
	if (w != NULL) {
		if (w->ev != NULL)
			event_free(w->ev);
		buf_give(w->buf);
		free(w);
	}
	BIO_set_data(b, NULL);
	BIO_set_init(b, 0);
	return 1;
}

static void method_init(void)
{
	BIO_METHOD *m;

	wbio_type = BIO_get_new_index();
	if (wbio_type == -1)
		return;
	wbio_type |= BIO_TYPE_FILTER;
	m = BIO_meth_new(wbio_type, "fleetota gathering write");
	if (m == NULL)
		return;
	if (!BIO_meth_set_write(m, wbio_write) || !BIO_meth_set_read(m, wbio_read) ||
	    !BIO_meth_set_puts(m, wbio_puts) || !BIO_meth_set_ctrl(m, wbio_ctrl) ||
	    !BIO_meth_set_destroy(m, wbio_destroy)) {
		BIO_meth_free(m);
		return;
	}
	wbio_method = m;
}

bool srv_wbio_attach(SSL *ssl, struct bufferevent *bev)
{
	BIO *sock = ssl != NULL ? SSL_get_wbio(ssl) : NULL;
	struct wbio *w;
	BIO *b;
	int fd;

	pthread_once(&wbio_once, method_init);
	if (wbio_method == NULL || sock == NULL || bev == NULL ||
	    BIO_method_type(sock) != BIO_TYPE_SOCKET || (fd = (int)BIO_get_fd(sock, NULL)) < 0)
		return false;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return false;
	w->bev = bev;
	w->fd = fd;
	w->ev = event_new(bufferevent_get_base(bev), fd, EV_WRITE, flush_cb, w);
	/* above every other callback: none may see the connection before its bytes left */
	if (w->ev != NULL && event_priority_set(w->ev, 0) != 0) {
		event_free(w->ev);
		w->ev = NULL;
	}
	b = w->ev != NULL ? BIO_new(wbio_method) : NULL;
	if (b == NULL) {
		if (w->ev != NULL)
			event_free(w->ev);
		free(w);
		return false;
	}
	BIO_set_data(b, w);
	BIO_set_init(b, 1);
	w->bio = b;
	if (!BIO_up_ref(sock)) {
		BIO_free(b); /* its destroy frees w */
		return false;
	}
	/* b holds the reference just taken; the SSL gives up its write one */
	BIO_push(b, sock);
	SSL_set0_wbio(ssl, b);
	return true;
}
