/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gathering write BIO (server/src/core/wbio.c) under a real
 * bufferevent_openssl on a loopback TCP connection, in the event base the
 * server uses (3 priorities, epoll's changelist).
 *
 * The double free it once caused (docs/server.md, "Per-record system
 * calls"): evhttp frees a connection inside the bufferevent's deferred
 * callback (the reply's write callback, an EOF or error event) with bytes
 * still in the BIO, after shutdown(SHUT_WR). The last reference is dropped
 * with that deferred callback as the loop's current event, so libevent
 * puts the bufferevent's finalizer on it. If the BIO's flush event runs
 * before that finalizer (here: an event of priority 0 made active by the
 * freeing callback sends the loop back to epoll_wait, and the socket shut
 * for writing is writable at once), its write fails (EPIPE) and the BIO
 * reports the error with bufferevent_trigger_event: a reference taken and
 * dropped on a bufferevent whose count is 0 finalizes it a second time,
 * on its read event, and the second finalizer frees the SSL again.
 * These tests fail under ASan (double free in SSL_free) when the BIO calls
 * the bufferevent after that point.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "wbio-internal.h"

/* What the server sends: enough full records to fill the socket's buffers many times. */
#define PAYLOAD_BYTES (4u << 20)
#define LOOP_PASSES 400

struct fixture {
	struct event_base *base;
	struct event *prio0; /* stands in for another connection's flush event */
	SSL_CTX *sctx, *cctx;
	SSL *ssl, *cli;
	struct bufferevent *bev;
	int sfd, cfd;
	bool connected;
	bool detach; /* the freeing callback detaches the BIO first, as conn_free does */
	int events, frees;
	unsigned char *payload;
};

static int ssl_index;
static int ssl_frees;

/* Counts the SSL objects freed that carried the fixture's mark. */
static void ssl_mark_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			  void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (ptr != NULL)
		ssl_frees++;
}

static void noop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
}

static SSL_CTX *server_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *crt = X509_new();
	X509_NAME *name;

	assert_non_null(ctx);
	assert_non_null(key);
	assert_non_null(crt);
	assert_int_equal(X509_set_version(crt, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(crt), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(crt), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(crt), 3600));
	assert_int_equal(X509_set_pubkey(crt, key), 1);
	name = X509_get_subject_name(crt);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)"wbio-test", -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(crt, name), 1);
	assert_true(X509_sign(crt, key, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, crt), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(crt);
	EVP_PKEY_free(key);
	return ctx;
}

/* A connected loopback pair with small buffers: the server's socket fills fast. */
static void tcp_pair(int *ret_server, int *ret_client)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int cfd = socket(AF_INET, SOCK_STREAM, 0);
	int small = 8192;
	int sfd;

	assert_true(lfd >= 0 && cfd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	sfd = accept(lfd, NULL, NULL);
	assert_true(sfd >= 0);
	close(lfd);
	assert_int_equal(setsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(evutil_make_socket_nonblocking(sfd), 0);
	assert_int_equal(evutil_make_socket_nonblocking(cfd), 0);
	*ret_server = sfd;
	*ret_client = cfd;
}

static void writecb(struct bufferevent *bev, void *arg)
{
	(void)bev, (void)arg;
}

/*
 * The bufferevent's event callback, run deferred as evhttp's are: on the
 * test's EOF it frees the connection the way evhttp_connection_free does
 * (close callback, bufferevent_free, shutdown(SHUT_WR)), and makes an
 * event of priority 0 active, so the loop polls again before it runs the
 * finalizer.
 */
static void eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct fixture *f = arg;

	f->events++;
	if (what & BEV_EVENT_CONNECTED) {
		f->connected = true;
		return;
	}
	if (f->detach)
		srv_wbio_detach(f->ssl);
	bufferevent_free(bev);
	f->bev = NULL;
	shutdown(f->sfd, SHUT_WR);
	event_active(f->prio0, EV_TIMEOUT, 1);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct event_config *cfg = event_config_new();

	assert_non_null(f);
	assert_non_null(cfg);
	assert_int_equal(event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST), 0);
	f->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	assert_non_null(f->base);
	assert_int_equal(event_base_priority_init(f->base, 3), 0);
	f->prio0 = event_new(f->base, -1, 0, noop_cb, NULL);
	assert_non_null(f->prio0);
	assert_int_equal(event_priority_set(f->prio0, 0), 0);
	f->sctx = server_ctx();
	f->cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(f->cctx);
	SSL_CTX_set_verify(f->cctx, SSL_VERIFY_NONE, NULL);
	tcp_pair(&f->sfd, &f->cfd);
	f->payload = calloc(1, PAYLOAD_BYTES);
	assert_non_null(f->payload);

	/* the server side as the guard makes it (conns.c: conn_bevcb, admit) */
	f->ssl = SSL_new(f->sctx);
	assert_non_null(f->ssl);
	assert_int_equal(SSL_set_ex_data(f->ssl, ssl_index, f), 1);
	f->bev = bufferevent_openssl_socket_new(f->base, -1, f->ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	assert_non_null(f->bev);
	bufferevent_setcb(f->bev, NULL, writecb, eventcb, f);
	assert_int_equal(bufferevent_setfd(f->bev, f->sfd), 0); /* as evhttp does */
	assert_int_equal(bufferevent_enable(f->bev, EV_READ | EV_WRITE), 0);
	assert_true(srv_wbio_attach(f->ssl, f->bev));

	f->cli = SSL_new(f->cctx);
	assert_non_null(f->cli);
	assert_int_equal(SSL_set_fd(f->cli, f->cfd), 1);
	SSL_set_connect_state(f->cli);
	for (int i = 0; i < LOOP_PASSES && !(f->connected && SSL_is_init_finished(f->cli)); i++) {
		(void)SSL_do_handshake(f->cli);
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_true(f->connected);
	assert_true(SSL_is_init_finished(f->cli));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->bev != NULL)
		bufferevent_free(f->bev);
	event_base_loop(f->base, EVLOOP_NONBLOCK); /* the finalizer */
	SSL_free(f->cli);
	close(f->cfd);
	SSL_CTX_free(f->cctx);
	SSL_CTX_free(f->sctx);
	event_free(f->prio0);
	event_base_free(f->base);
	free(f->payload);
	free(f);
	ssl_frees = 0;
	return 0;
}

/* Writes the payload; the client reads nothing: the BIO ends up holding bytes on a full socket. */
static void fill(struct fixture *f)
{
	int events = f->events;

	assert_int_equal(bufferevent_write(f->bev, f->payload, PAYLOAD_BYTES), 0);
	for (int i = 0; i < 20; i++) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_int_equal(f->events, events); /* no error */
	assert_true(srv_wbio_flush(f->ssl) > 0);
	assert_true(evbuffer_get_length(bufferevent_get_output(f->bev)) > 0);
}

/* Frees the connection in its deferred event callback and runs the loop until it is gone. */
static void free_in_deferred_callback(struct fixture *f)
{
	bufferevent_trigger_event(f->bev, BEV_EVENT_READING | BEV_EVENT_EOF,
				  BEV_TRIG_DEFER_CALLBACKS);
	for (int i = 0; i < 10; i++) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_null(f->bev);
	assert_int_equal(ssl_frees, 1); /* freed once, by the one finalizer */
}

/* As the server does it: the guard's conn_free detaches the BIO before evhttp frees. */
static void test_free_detached(void **state)
{
	struct fixture *f = *state;

	f->detach = true;
	fill(f);
	free_in_deferred_callback(f);
}

/* A free the guard did not see: the BIO must find out from the bufferevent itself. */
static void test_free_not_detached(void **state)
{
	struct fixture *f = *state;

	f->detach = false;
	fill(f);
	free_in_deferred_callback(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_free_detached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_not_detached, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, ssl_mark_free);
	assert_true(ssl_index >= 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
