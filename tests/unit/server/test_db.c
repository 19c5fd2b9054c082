/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pool's deadlines against a hung server: a real libpq pool whose
 * "postmaster" is a loopback socket that accepts into its backlog and never
 * answers (what a SIGSTOPped PostgreSQL looks like from outside). No
 * connection ever comes up, so retried queries wait in the queue: each must
 * leave it at its own deadline, unsent, with exactly one OTA_ERR_TIMEOUT.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "db-internal.h"

#define MAX_CALLS 8

struct world {
	struct event_base *base;
	struct srv_metrics metrics;
	struct srv_db *db;
	int listen_fd;
	double started_ms;
	unsigned expected; /* callbacks to wait for */
	unsigned seen;
	/* per query i: how many callbacks, with what, when */
	unsigned calls[MAX_CALLS];
	enum ota_err errs[MAX_CALLS];
	double at_ms[MAX_CALLS];
	unsigned order[MAX_CALLS];
	size_t queued_at_call[MAX_CALLS];
};

struct call_arg {
	struct world *w;
	unsigned index;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void done_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct call_arg *a = arg;
	struct world *w = a->w;

	assert_null(res);
	w->calls[a->index]++;
	w->errs[a->index] = err;
	w->at_ms[a->index] = now_ms() - w->started_ms;
	w->queued_at_call[a->index] = w->db != NULL ? srv_db_queued(w->db) : 0;
	w->order[w->seen++] = a->index;
	if (w->seen == w->expected)
		event_base_loopbreak(w->base);
}

static void safety_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Runs the loop until every expected callback came, or 5 s passed. */
static void run_loop(struct world *w)
{
	struct timeval limit = {5, 0};
	struct event *safety = evtimer_new(w->base, safety_cb, w->base);

	assert_non_null(safety);
	evtimer_add(safety, &limit);
	event_base_dispatch(w->base);
	event_free(safety);
}

static int setup(void **state)
{
	static struct world w;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sa_len = sizeof(sa);
	char conninfo[160];

	memset(&w, 0, sizeof(w));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	w.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(w.listen_fd >= 0);
	assert_int_equal(bind(w.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(w.listen_fd, 16), 0);
	assert_int_equal(getsockname(w.listen_fd, (struct sockaddr *)&sa, &sa_len), 0);
	snprintf(conninfo, sizeof(conninfo),
		 "host=127.0.0.1 port=%u dbname=none user=none sslmode=disable gssencmode=disable",
		 ntohs(sa.sin_port));
	w.base = event_base_new();
	assert_non_null(w.base);
	assert_int_equal(srv_db_new(w.base, conninfo, 2, 4, &w.metrics, &w.db), OTA_OK);
	assert_int_equal(srv_db_prepare(w.db, "one", "SELECT 1"), OTA_OK);
	assert_int_equal(srv_db_start(w.db), OTA_OK);
	*state = &w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	srv_db_free(w->db);
	event_base_free(w->base);
	close(w->listen_fd);
	return 0;
}

static enum ota_err run_retry(struct world *w, struct call_arg *a, unsigned timeout_ms)
{
	struct srv_db_query q = {.stmt = "one", .flags = SRV_DB_RETRY, .timeout_ms = timeout_ms};

	return srv_db_run(w->db, &q, done_cb, a);
}

static void test_fail_fast_refused_without_connection(void **state)
{
	struct world *w = *state;
	struct call_arg a = {w, 0};

	assert_false(srv_db_ready(w->db));
	assert_int_equal(srv_db_exec(w->db, "one", 0, NULL, false, SRV_DB_FAIL_FAST, done_cb, &a),
			 OTA_ERR_BUSY);
	assert_int_equal(w->calls[0], 0);
}

static void test_bad_deadlines(void **state)
{
	struct world *w = *state;
	struct call_arg a = {w, 0};

	assert_int_equal(srv_db_set_deadlines(w->db, 0, 1000), OTA_ERR_INVALID_ARG);
	assert_int_equal(srv_db_set_deadlines(w->db, 1000, SRV_DB_MAX_TIMEOUT_MS + 1),
			 OTA_ERR_INVALID_ARG);
	assert_int_equal(run_retry(w, &a, SRV_DB_MIN_TIMEOUT_MS - 1), OTA_ERR_INVALID_ARG);
	assert_int_equal(run_retry(w, &a, SRV_DB_MAX_TIMEOUT_MS + 1), OTA_ERR_INVALID_ARG);
	assert_int_equal(srv_db_queued(w->db), 0);
	assert_int_equal(w->calls[0], 0);
}

/*
 * Four queued queries with deadlines out of FIFO order: each leaves the
 * queue at its own deadline (not when the one before it does), once, with
 * OTA_ERR_TIMEOUT; the count bound refuses a fifth meanwhile.
 */
static void test_queue_bounded_by_time(void **state)
{
	struct world *w = *state;
	static const unsigned deadlines[4] = {400, 100, 300, 200};
	struct call_arg args[5];
	uint64_t errors_before = w->metrics.db_errors;

	w->started_ms = now_ms();
	for (unsigned i = 0; i < 5; i++)
		args[i] = (struct call_arg){w, i};
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(run_retry(w, &args[i], deadlines[i]), OTA_OK);
	assert_int_equal(srv_db_queued(w->db), 4);
	/* the count bound still holds: queue_max is 4 */
	assert_int_equal(run_retry(w, &args[4], 100), OTA_ERR_BUSY);
	w->expected = 4;
	run_loop(w);
	assert_int_equal(w->seen, 4);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(w->calls[i], 1);
		assert_int_equal(w->errs[i], OTA_ERR_TIMEOUT);
		fprintf(stderr, "query %u: deadline %u ms, answered after %.1f ms\n", i,
			deadlines[i], w->at_ms[i]);
		/* at its deadline (libevent's coarse clock: a few ms), not much after */
		assert_true(w->at_ms[i] >= (double)deadlines[i] - 10.0);
		assert_true(w->at_ms[i] < (double)deadlines[i] + 250.0);
	}
	assert_int_equal(w->calls[4], 0);
	/* by deadline: 100 (#1), 200 (#3), 300 (#2), 400 (#0) */
	assert_int_equal(w->order[0], 1);
	assert_int_equal(w->order[1], 3);
	assert_int_equal(w->order[2], 2);
	assert_int_equal(w->order[3], 0);
	/* each left the queue before its callback ran */
	assert_int_equal(w->queued_at_call[1], 3);
	assert_int_equal(w->queued_at_call[0], 0);
	assert_int_equal(srv_db_queued(w->db), 0);
	assert_int_equal(w->metrics.db_timeouts, 4);
	assert_int_equal(w->metrics.db_errors - errors_before, 4);
	assert_int_equal(w->metrics.db_queries, 0);
}

/* The pool's default deadline for retried queries applies without one. */
static void test_default_retry_deadline(void **state)
{
	struct world *w = *state;
	struct call_arg a = {w, 0};

	assert_int_equal(srv_db_set_deadlines(w->db, 1000, 150), OTA_OK);
	w->started_ms = now_ms();
	assert_int_equal(srv_db_exec(w->db, "one", 0, NULL, false, SRV_DB_RETRY, done_cb, &a),
			 OTA_OK);
	w->expected = 1;
	run_loop(w);
	assert_int_equal(w->calls[0], 1);
	assert_int_equal(w->errs[0], OTA_ERR_TIMEOUT);
	assert_true(w->at_ms[0] >= 140.0 && w->at_ms[0] < 400.0);
}

/* Shutting down answers what is queued (BUSY) once; its deadline never fires. */
static void test_free_answers_queued_once(void **state)
{
	struct world *w = *state;
	struct call_arg a = {w, 0};

	assert_int_equal(run_retry(w, &a, 100), OTA_OK);
	srv_db_free(w->db);
	w->db = NULL;
	assert_int_equal(w->calls[0], 1);
	assert_int_equal(w->errs[0], OTA_ERR_BUSY);
	/* the loop runs past the old deadline: no second callback */
	w->expected = 2;
	{
		struct timeval t = {0, 300000};

		event_base_loopexit(w->base, &t);
		event_base_dispatch(w->base);
	}
	assert_int_equal(w->calls[0], 1);
}

/* Nothing but the startup packets reached the hung server: no query was sent. */
static void test_nothing_sent(void **state)
{
	struct world *w = *state;
	struct call_arg a = {w, 0};
	unsigned connections = 0;

	/* the pool dials and sends its startup packets while a query waits */
	assert_int_equal(run_retry(w, &a, 300), OTA_OK);
	w->expected = 1;
	run_loop(w);
	assert_int_equal(w->errs[0], OTA_ERR_TIMEOUT);
	srv_db_free(w->db);
	w->db = NULL;
	for (;;) {
		uint8_t buf[4096];
		ssize_t got;
		struct timeval tv = {0, 100000};
		int fd;
		fd_set rd;

		FD_ZERO(&rd);
		FD_SET(w->listen_fd, &rd);
		if (select(w->listen_fd + 1, &rd, NULL, NULL, &tv) <= 0)
			break;
		fd = accept(w->listen_fd, NULL, NULL);
		assert_true(fd >= 0);
		connections++;
		got = recv(fd, buf, sizeof(buf), 0);
		if (got > 0) {
			uint32_t len = ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) |
				       ((uint32_t)buf[2] << 8) | buf[3];

			/* one StartupMessage (protocol 3.0), nothing after it */
			assert_true(got >= 8);
			assert_int_equal(len, (uint32_t)got);
			assert_int_equal(buf[4], 0);
			assert_int_equal(buf[5], 3);
		}
		close(fd);
	}
	assert_true(connections >= 1);
}

/* rotate CONNINFO SHIFT: the rotated conninfo (static buffer) */
static const char *rotate(const char *conninfo, unsigned shift)
{
	static char buf[512];
	char *out = NULL;

	assert_int_equal(srv_db_conninfo_rotate(conninfo, shift, &out), OTA_OK);
	snprintf(buf, sizeof(buf), "%s", out);
	free(out);
	return buf;
}

/* Each reconnect starts one host further: host and port lists together. */
static void test_conninfo_rotate(void **state)
{
	const char *two = "host=10.0.0.1,10.0.0.2 port=6432,6433 dbname=fleetota "
			  "target_session_attrs=read-write";
	char *out = NULL;

	(void)state;
	/* shift 0 (and multiples of the host count): unchanged, byte for byte */
	assert_string_equal(rotate(two, 0), two);
	assert_string_equal(rotate(two, 4), two);
	/* (the options come out in libpq's order) */
	assert_string_equal(rotate(two, 1), "dbname='fleetota' host='10.0.0.2,10.0.0.1' "
					    "port='6433,6432' target_session_attrs='read-write'");
	assert_string_equal(rotate(two, 3), rotate(two, 1));
	/* three hosts, one port for all: the port stays */
	assert_string_equal(rotate("host=a,b,c port=5432 user=o'k", 2),
			    "user='o\\'k' host='c,a,b' port='5432'");
	/* a URI, and hostaddr with host */
	assert_string_equal(rotate("postgresql://a:1,b:2/db", 1),
			    "dbname='db' host='b,a' port='2,1'");
	assert_string_equal(rotate("host=x,y hostaddr=127.0.0.1,127.0.0.2", 1),
			    "host='y,x' hostaddr='127.0.0.2,127.0.0.1'");
	/* one host, or none (the default socket): unchanged */
	assert_string_equal(rotate("host=/tmp/pg port=5432", 7), "host=/tmp/pg port=5432");
	assert_string_equal(rotate("dbname=x", 1), "dbname=x");
	/* what libpq cannot parse is refused, nothing written */
	assert_int_equal(srv_db_conninfo_rotate("host=a b", 1, &out), OTA_ERR_INVALID_ARG);
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fail_fast_refused_without_connection, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_deadlines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_bounded_by_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_retry_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_answers_queued_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_sent, setup, teardown),
		cmocka_unit_test(test_conninfo_rotate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
