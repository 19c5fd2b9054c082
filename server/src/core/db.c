/* SPDX-License-Identifier: Apache-2.0 */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>

#include "clock-internal.h"
#include "db-internal.h"
#include "log-internal.h"

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
/* At most one warning a second about queries that expired in the queue. */
#define QUEUE_WARN_INTERVAL_SEC 1

struct db_conn;

struct db_query {
	TAILQ_ENTRY(db_query) link;
	struct srv_db *db;
	struct db_conn *conn; /* the connection running it, or NULL: queued */
	struct event *ev_deadline;
	unsigned timeout_ms;
	const char *stmt; /* prepared statement name, or NULL */
	const char *sql; /* SQL text when stmt is NULL */
	int n_params;
	const char **values;
	int binary_result;
	unsigned flags;
	srv_db_cb cb;
	void *arg;
};

TAILQ_HEAD(db_query_list, db_query);

enum conn_state {
	CONN_DOWN,
	CONN_CONNECTING,
	CONN_SETUP, /* session settings (SET ...) */
	CONN_PREPARING,
	CONN_IDLE,
	CONN_BUSY,
};

struct db_conn {
	struct srv_db *db;
	unsigned index;
	PGconn *pg;
	enum conn_state state;
	struct event *ev_io;
	int ev_fd;
	short ev_what;
	struct event *ev_timer; /* reconnect back-off, or the opening deadline */
	unsigned backoff_ms;
	unsigned failures; /* connections lost or failed: the host list's rotation */
	size_t prep_index;
	struct db_query *current;
	PGresult *result;
	bool was_up;
	bool ever_up; /* a later "up" is a reconnect */
	/*
	 * Lost to 25006 (a read-only server): reads still succeed there, so
	 * the back-off keeps growing until the connection has stayed up for
	 * BACKOFF_MAX_MS.
	 */
	bool read_only;
	double up_at; /* srv_now() when it was last up */
};

struct db_stmt {
	char *name;
	char *sql;
};

struct srv_db {
	struct event_base *base;
	char *conninfo;
	struct srv_metrics *metrics;
	unsigned queue_max;
	unsigned timeout_ms; /* default deadline of fail-fast queries */
	unsigned retry_timeout_ms; /* of SRV_DB_RETRY queries */
	size_t queued;
	/* queries that expired in the queue since the last warning */
	unsigned expired_unlogged;
	time_t expired_logged_at;
	struct db_query_list queue;
	struct db_stmt stmts[SRV_DB_MAX_STATEMENTS];
	size_t n_stmts;
	struct db_conn *conns;
	unsigned n_conns;
	bool started;
	bool closing;
	bool unprepared; /* statements sent as SQL text (srv_db_set_prepared) */
};

static void conn_io_cb(evutil_socket_t fd, short what, void *arg);
static void conn_lost(struct db_conn *conn, const char *why);
static void dispatch(struct srv_db *db);
static void query_deadline_cb(evutil_socket_t fd, short what, void *arg);

/* ---- queries -------------------------------------------------------- */

static struct db_query *query_new(struct srv_db *db, const struct srv_db_query *query, srv_db_cb cb,
				  void *arg)
{
	const char *stmt = query->stmt, *sql = query->sql;
	const char *const *values = query->values;
	int n_params = query->n_params;
	size_t size = sizeof(struct db_query) + (size_t)n_params * sizeof(char *);
	size_t text_len = (stmt != NULL ? strlen(stmt) : strlen(sql)) + 1;
	struct db_query *q;
	char *p;

	for (int i = 0; i < n_params; i++)
		size += values[i] != NULL ? strlen(values[i]) + 1 : 0;
	size += text_len;
	q = calloc(1, size);
	if (q == NULL)
		return NULL;
	q->ev_deadline = evtimer_new(db->base, query_deadline_cb, q);
	if (q->ev_deadline == NULL) {
		free(q);
		return NULL;
	}
	q->db = db;
	q->timeout_ms = query->timeout_ms != 0		? query->timeout_ms
			: (query->flags & SRV_DB_RETRY) ? db->retry_timeout_ms
							: db->timeout_ms;
	q->values = (const char **)(void *)(q + 1);
	p = (char *)(q->values + n_params);
	for (int i = 0; i < n_params; i++) {
		if (values[i] == NULL) {
			q->values[i] = NULL;
			continue;
		}
		size_t len = strlen(values[i]) + 1;

		memcpy(p, values[i], len);
		q->values[i] = p;
		p += len;
	}
	memcpy(p, stmt != NULL ? stmt : sql, text_len);
	if (stmt != NULL)
		q->stmt = p;
	else
		q->sql = p;
	q->n_params = n_params;
	q->binary_result = query->binary_result ? 1 : 0;
	q->flags = query->flags;
	q->cb = cb;
	q->arg = arg;
	return q;
}

static const char *query_name(const struct db_query *q)
{
	return q->stmt != NULL ? q->stmt : "(sql)";
}

/*
 * SQLSTATE classes that answer a client's input rather than report a
 * failing database: the engine's own refusals (FOxxx: 404, 409, 422), data
 * exceptions (22: a malformed value) and integrity conflicts (23: a
 * duplicate id). They are refusals, not database errors.
 */
static bool is_client_refusal(const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return state != NULL && (strncmp(state, "FO", 2) == 0 || strncmp(state, "22", 2) == 0 ||
				 strncmp(state, "23", 2) == 0);
}

/* Answers q (its one callback) and frees it; q is in no list any more. */
static void query_finish(struct srv_db *db, struct db_query *q, enum ota_err err,
			 const PGresult *res)
{
	event_free(q->ev_deadline);
	if (err == OTA_OK)
		db->metrics->db_queries++;
	else if (is_client_refusal(res))
		db->metrics->db_refusals++;
	else
		db->metrics->db_errors++;
	q->cb(q->arg, err, res);
	free(q);
}

bool srv_db_ready(const struct srv_db *db)
{
	for (unsigned i = 0; i < db->n_conns; i++) {
		if (db->conns[i].state == CONN_IDLE || db->conns[i].state == CONN_BUSY)
			return true;
	}
	return false;
}

size_t srv_db_queued(const struct srv_db *db)
{
	return db->queued;
}

/* Fails every queued fail-fast query (no connection left to run it). */
static void fail_fast_queued(struct srv_db *db)
{
	struct db_query *q, *next;

	for (q = TAILQ_FIRST(&db->queue); q != NULL; q = next) {
		next = TAILQ_NEXT(q, link);
		if (q->flags & SRV_DB_RETRY)
			continue;
		TAILQ_REMOVE(&db->queue, q, link);
		db->queued--;
		query_finish(db, q, OTA_ERR_TRANSPORT, NULL);
	}
}

/* ---- connection events ---------------------------------------------- */

static int conn_watch(struct db_conn *conn, short what)
{
	int fd = PQsocket(conn->pg);

	if (fd < 0)
		return -1;
	if (conn->ev_io != NULL && conn->ev_fd == fd && conn->ev_what == what)
		return 0;
	if (conn->ev_io != NULL)
		event_free(conn->ev_io);
	conn->ev_io = event_new(conn->db->base, fd, what | EV_PERSIST, conn_io_cb, conn);
	if (conn->ev_io == NULL || event_add(conn->ev_io, NULL) != 0)
		return -1;
	conn->ev_fd = fd;
	conn->ev_what = what;
	return 0;
}

static void conn_close(struct db_conn *conn)
{
	if (conn->ev_io != NULL) {
		event_free(conn->ev_io);
		conn->ev_io = NULL;
	}
	evtimer_del(conn->ev_timer);
	if (conn->result != NULL) {
		PQclear(conn->result);
		conn->result = NULL;
	}
	if (conn->pg != NULL) {
		PQfinish(conn->pg);
		conn->pg = NULL;
	}
	conn->state = CONN_DOWN;
}

static void conn_connect(struct db_conn *conn)
{
	struct timeval timeout = {SRV_DB_CONNECT_TIMEOUT_MS / 1000,
				  (SRV_DB_CONNECT_TIMEOUT_MS % 1000) * 1000};
	char *conninfo = NULL;

	if (srv_db_conninfo_rotate(conn->db->conninfo, conn->failures, &conninfo) != OTA_OK) {
		conn_lost(conn, "db_conninfo does not parse");
		return;
	}
	conn->pg = PQconnectStart(conninfo);
	free(conninfo);
	if (conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD) {
		conn_lost(conn, conn->pg != NULL ? PQerrorMessage(conn->pg) : "out of memory");
		return;
	}
	PQsetNoticeProcessor(conn->pg, srv_log_pg_notice, NULL);
	conn->state = CONN_CONNECTING;
	if (conn_watch(conn, EV_WRITE) != 0) {
		conn_lost(conn, "cannot watch the connection socket");
		return;
	}
	evtimer_add(conn->ev_timer, &timeout);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *conn = arg;

	(void)fd;
	(void)what;
	if (conn->state == CONN_DOWN)
		conn_connect(conn);
	else if (conn->state == CONN_CONNECTING || conn->state == CONN_SETUP ||
		 conn->state == CONN_PREPARING)
		conn_lost(conn, "opening the connection timed out");
}

/* 25006: the server refused a write as read-only. */
static bool is_read_only(const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return state != NULL && strcmp(state, "25006") == 0;
}

static bool is_connection_error(const PGresult *res, const PGconn *pg)
{
	const char *state;

	if (PQstatus(pg) == CONNECTION_BAD)
		return true;
	if (res == NULL)
		return true;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	/*
	 * 08: connection exception; 57P: operator intervention (shutdown);
	 * 25006: a read-only server (a demoted primary, or a pooler still in
	 * front of one): a new connection is where target_session_attrs finds
	 * the primary.
	 */
	return (state != NULL && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)) ||
	       is_read_only(res);
}

static void conn_lost(struct db_conn *conn, const char *why)
{
	struct srv_db *db = conn->db;
	struct db_query *q = conn->current;
	struct timeval delay;
	char flat[512];
	size_t flat_len = 0;

	/* one line: libpq says why each host of a list failed, a line each */
	for (const char *p = why; *p != '\0' && flat_len + 3 < sizeof(flat); p++) {
		if (*p != '\n')
			flat[flat_len++] = *p;
		else if (p[1] != '\0')
			flat_len += (size_t)snprintf(flat + flat_len, 3, "; ");
	}
	flat[flat_len] = '\0';

	/* Loud when a connection drops, then every BACKOFF_MAX_MS while down. */
	srv_log(conn->was_up || conn->backoff_ms == BACKOFF_MIN_MS ||
				conn->backoff_ms == BACKOFF_MAX_MS
			? SRV_LOG_WARN
			: SRV_LOG_DEBUG,
		"db connection %u %s: %s (retry in %u ms)", conn->index,
		conn->was_up ? "lost" : "failed", flat, conn->backoff_ms);
	conn->was_up = false;
	conn->current = NULL;
	conn->failures++;
	conn_close(conn);
	if (q != NULL) {
		q->conn = NULL;
		if ((q->flags & SRV_DB_RETRY) && !db->closing) {
			TAILQ_INSERT_HEAD(&db->queue, q, link);
			db->queued++;
		} else {
			query_finish(db, q, OTA_ERR_TRANSPORT, NULL);
		}
	}
	delay.tv_sec = conn->backoff_ms / 1000;
	delay.tv_usec = (conn->backoff_ms % 1000) * 1000;
	conn->backoff_ms =
		conn->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : conn->backoff_ms * 2;
	evtimer_add(conn->ev_timer, &delay);
	if (!srv_db_ready(db))
		fail_fast_queued(db);
	else
		dispatch(db);
}

static void conn_flush(struct db_conn *conn)
{
	int r = PQflush(conn->pg);

	if (r < 0)
		conn_lost(conn, PQerrorMessage(conn->pg));
	else if (conn_watch(conn, r == 1 ? EV_READ | EV_WRITE : EV_READ) != 0)
		conn_lost(conn, "cannot watch the connection socket");
}

static void conn_send_prepare(struct db_conn *conn)
{
	struct srv_db *db = conn->db;

	if (conn->prep_index == db->n_stmts || db->unprepared) {
		evtimer_del(conn->ev_timer); /* opened in time */
		conn->state = CONN_IDLE;
		if (!conn->read_only)
			conn->backoff_ms = BACKOFF_MIN_MS;
		conn->up_at = srv_now();
		if (conn_watch(conn, EV_READ) != 0) {
			conn_lost(conn, "cannot watch the connection socket");
			return;
		}
		if (conn->was_up)
			return;
		conn->was_up = true;
		if (conn->ever_up)
			db->metrics->db_reconnects++;
		conn->ever_up = true;
		srv_log(SRV_LOG_INFO, "db connection %u up", conn->index);
		dispatch(db);
		return;
	}
	conn->state = CONN_PREPARING;
	if (!PQsendPrepare(conn->pg, db->stmts[conn->prep_index].name,
			   db->stmts[conn->prep_index].sql, 0, NULL)) {
		conn_lost(conn, PQerrorMessage(conn->pg));
		return;
	}
	conn_flush(conn);
}

/*
 * Session settings, before the statements are prepared: a backend whose
 * connection we dropped at a deadline checks for it while it runs.
 */
static void conn_send_setup(struct db_conn *conn)
{
	char sql[96];

	snprintf(sql, sizeof(sql), "SET client_connection_check_interval = %u",
		 SRV_DB_CLIENT_CHECK_MS);
	conn->state = CONN_SETUP;
	if (!PQsendQuery(conn->pg, sql)) {
		conn_lost(conn, PQerrorMessage(conn->pg));
		return;
	}
	conn_flush(conn);
}

/* A whole result arrived (PQgetResult returned NULL after it). */
static void conn_complete(struct db_conn *conn)
{
	struct srv_db *db = conn->db;
	PGresult *res = conn->result;
	ExecStatusType status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	bool ok = status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK;

	conn->result = NULL;
	if (conn->state == CONN_SETUP) {
		if (!ok && is_connection_error(res, conn->pg)) {
			PQclear(res);
			conn_lost(conn, PQerrorMessage(conn->pg));
			return;
		}
		/* before PostgreSQL 14: no such setting; deadlines still hold */
		if (!ok)
			srv_log(SRV_LOG_WARN, "db connection %u: %s", conn->index,
				PQresultErrorMessage(res));
		PQclear(res);
		conn->prep_index = 0;
		conn_send_prepare(conn);
		return;
	}
	if (conn->state == CONN_PREPARING) {
		if (!ok) {
			char why[512];

			snprintf(why, sizeof(why), "preparing %s: %s",
				 db->stmts[conn->prep_index].name,
				 res != NULL ? PQresultErrorMessage(res)
					     : PQerrorMessage(conn->pg));
			PQclear(res);
			srv_log(SRV_LOG_ERROR, "%s", why);
			conn_lost(conn, why);
			return;
		}
		PQclear(res);
		conn->prep_index++;
		conn_send_prepare(conn);
		return;
	}
	if (conn->state != CONN_BUSY || conn->current == NULL) {
		PQclear(res);
		return;
	}
	if (!ok && is_connection_error(res, conn->pg)) {
		char why[256];

		snprintf(why, sizeof(why), "%s",
			 res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn->pg));
		conn->read_only = is_read_only(res);
		PQclear(res);
		conn_lost(conn, why);
		return;
	}
	if (conn->read_only && srv_now() - conn->up_at >= BACKOFF_MAX_MS / 1000.0) {
		conn->read_only = false;
		conn->backoff_ms = BACKOFF_MIN_MS;
	}
	{
		struct db_query *q = conn->current;

		conn->current = NULL;
		q->conn = NULL;
		conn->state = CONN_IDLE;
		if (!ok)
			srv_log(is_client_refusal(res) ? SRV_LOG_DEBUG : SRV_LOG_WARN,
				"db query %s failed: %s", query_name(q), PQresultErrorMessage(res));
		query_finish(db, q, ok ? OTA_OK : OTA_ERR_STORAGE, res);
	}
	PQclear(res);
	dispatch(db);
}

static void conn_read(struct db_conn *conn)
{
	if (!PQconsumeInput(conn->pg)) {
		conn_lost(conn, PQerrorMessage(conn->pg));
		return;
	}
	for (PGnotify *n = PQnotifies(conn->pg); n != NULL; n = PQnotifies(conn->pg))
		PQfreemem(n);
	if (conn->state == CONN_IDLE) {
		/* Nothing asked: EOF or an error means the server went away. */
		PGresult *stray;

		if (PQstatus(conn->pg) == CONNECTION_BAD) {
			conn_lost(conn, PQerrorMessage(conn->pg));
			return;
		}
		while (!PQisBusy(conn->pg) && (stray = PQgetResult(conn->pg)) != NULL) {
			bool conn_err = is_connection_error(stray, conn->pg);

			PQclear(stray);
			if (conn_err) {
				conn_lost(conn, PQerrorMessage(conn->pg));
				return;
			}
		}
		return;
	}
	while (!PQisBusy(conn->pg)) {
		PGresult *res = PQgetResult(conn->pg);

		if (res == NULL) {
			conn_complete(conn);
			return;
		}
		if (conn->result != NULL)
			PQclear(conn->result);
		conn->result = res;
	}
	if (PQstatus(conn->pg) == CONNECTION_BAD)
		conn_lost(conn, PQerrorMessage(conn->pg));
}

static void conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *conn = arg;

	(void)fd;
	if (conn->state == CONN_CONNECTING) {
		switch (PQconnectPoll(conn->pg)) {
		case PGRES_POLLING_FAILED:
			conn_lost(conn, PQerrorMessage(conn->pg));
			return;
		case PGRES_POLLING_READING:
			if (conn_watch(conn, EV_READ) != 0)
				conn_lost(conn, "cannot watch the connection socket");
			return;
		case PGRES_POLLING_WRITING:
			if (conn_watch(conn, EV_WRITE) != 0)
				conn_lost(conn, "cannot watch the connection socket");
			return;
		case PGRES_POLLING_OK:
			/* the opening deadline runs on until the statements are prepared */
			if (PQsetnonblocking(conn->pg, 1) != 0) {
				conn_lost(conn, PQerrorMessage(conn->pg));
				return;
			}
			conn_send_setup(conn);
			return;
		default:
			return;
		}
	}
	if (what & EV_WRITE) {
		int r = PQflush(conn->pg);

		if (r < 0) {
			conn_lost(conn, PQerrorMessage(conn->pg));
			return;
		}
		if (r == 0 && conn_watch(conn, EV_READ) != 0) {
			conn_lost(conn, "cannot watch the connection socket");
			return;
		}
	}
	if (what & EV_READ)
		conn_read(conn);
}

/* ---- dispatch ------------------------------------------------------- */

/* The SQL text of a registered statement, or NULL. */
static const char *stmt_sql(const struct srv_db *db, const char *name)
{
	for (size_t i = 0; i < db->n_stmts; i++) {
		if (strcmp(db->stmts[i].name, name) == 0)
			return db->stmts[i].sql;
	}
	return NULL;
}

static void dispatch(struct srv_db *db)
{
	for (unsigned i = 0; i < db->n_conns && !TAILQ_EMPTY(&db->queue); i++) {
		struct db_conn *conn = &db->conns[i];
		struct db_query *q;
		const char *sql;
		int sent;

		if (conn->state != CONN_IDLE)
			continue;
		q = TAILQ_FIRST(&db->queue);
		TAILQ_REMOVE(&db->queue, q, link);
		db->queued--;
		conn->current = q;
		q->conn = conn;
		conn->state = CONN_BUSY;
		sql = q->stmt != NULL && db->unprepared ? stmt_sql(db, q->stmt) : q->sql;
		if (sql == NULL) /* an unknown name fails in PostgreSQL, as prepared */
			sent = PQsendQueryPrepared(conn->pg, q->stmt, q->n_params, q->values, NULL,
						   NULL, q->binary_result);
		else
			sent = PQsendQueryParams(conn->pg, sql, q->n_params, NULL, q->values, NULL,
						 NULL, q->binary_result);
		if (!sent) {
			conn_lost(conn, PQerrorMessage(conn->pg));
			return; /* conn_lost dispatched again */
		}
		conn_flush(conn);
	}
}

/* Warns about queries that expired unsent, at most once a second. */
static void note_expired_in_queue(struct srv_db *db, const struct db_query *q)
{
	time_t now = time(NULL);

	db->expired_unlogged++;
	if (now - db->expired_logged_at < QUEUE_WARN_INTERVAL_SEC)
		return;
	srv_log(SRV_LOG_WARN,
		"db: %u queries timed out waiting for a connection, not sent (last: %s, %u ms)",
		db->expired_unlogged, query_name(q), q->timeout_ms);
	db->expired_unlogged = 0;
	db->expired_logged_at = now;
}

/*
 * A query's deadline: queued, it leaves the queue unsent; running, its
 * connection is dropped (the only way not to block on a hung server) and
 * reopened with back-off. Its callback gets OTA_ERR_TIMEOUT.
 */
static void query_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_query *q = arg;
	struct srv_db *db = q->db;
	struct db_conn *conn = q->conn;

	(void)fd;
	(void)what;
	db->metrics->db_timeouts++;
	if (conn == NULL) {
		TAILQ_REMOVE(&db->queue, q, link);
		db->queued--;
		note_expired_in_queue(db, q);
	} else {
		char why[160];

		snprintf(why, sizeof(why), "query %.64s timed out after %u ms, connection dropped",
			 query_name(q), q->timeout_ms);
		conn->current = NULL;
		q->conn = NULL;
		conn_lost(conn, why);
	}
	query_finish(db, q, OTA_ERR_TIMEOUT, NULL);
}

enum ota_err srv_db_run(struct srv_db *db, const struct srv_db_query *query, srv_db_cb cb,
			void *arg)
{
	struct db_query *q;
	struct timeval deadline;

	if (cb == NULL || query == NULL || (query->stmt == NULL) == (query->sql == NULL) ||
	    query->n_params < 0 || (unsigned)query->n_params > SRV_DB_MAX_PARAMS ||
	    (query->n_params > 0 && query->values == NULL) ||
	    (query->timeout_ms != 0 && (query->timeout_ms < SRV_DB_MIN_TIMEOUT_MS ||
					query->timeout_ms > SRV_DB_MAX_TIMEOUT_MS)))
		return OTA_ERR_INVALID_ARG;
	if (db->closing || db->queued >= db->queue_max)
		return OTA_ERR_BUSY;
	if (!(query->flags & SRV_DB_RETRY) && !srv_db_ready(db))
		return OTA_ERR_BUSY;
	q = query_new(db, query, cb, arg);
	if (q == NULL)
		return OTA_ERR_NOMEM;
	deadline.tv_sec = q->timeout_ms / 1000;
	deadline.tv_usec = (suseconds_t)(q->timeout_ms % 1000) * 1000;
	if (evtimer_add(q->ev_deadline, &deadline) != 0) {
		event_free(q->ev_deadline);
		free(q);
		return OTA_ERR_NOMEM;
	}
	TAILQ_INSERT_TAIL(&db->queue, q, link);
	db->queued++;
	dispatch(db);
	return OTA_OK;
}

enum ota_err srv_db_exec(struct srv_db *db, const char *stmt, int n_params,
			 const char *const *values, bool binary_result, unsigned flags,
			 srv_db_cb cb, void *arg)
{
	struct srv_db_query query = {.stmt = stmt,
				     .n_params = n_params,
				     .values = values,
				     .binary_result = binary_result,
				     .flags = flags};

	if (stmt == NULL)
		return OTA_ERR_INVALID_ARG;
	return srv_db_run(db, &query, cb, arg);
}

enum ota_err srv_db_exec_sql(struct srv_db *db, const char *sql, int n_params,
			     const char *const *values, bool binary_result, unsigned flags,
			     srv_db_cb cb, void *arg)
{
	struct srv_db_query query = {.sql = sql,
				     .n_params = n_params,
				     .values = values,
				     .binary_result = binary_result,
				     .flags = flags};

	if (sql == NULL)
		return OTA_ERR_INVALID_ARG;
	return srv_db_run(db, &query, cb, arg);
}

/* ---- lifecycle ------------------------------------------------------ */

enum ota_err srv_db_new(struct event_base *base, const char *conninfo, unsigned pool_size,
			unsigned queue_max, struct srv_metrics *metrics, struct srv_db **ret_db)
{
	struct srv_db *db;

	if (pool_size == 0 || pool_size > 64 || queue_max == 0)
		return OTA_ERR_INVALID_ARG;
	db = calloc(1, sizeof(*db));
	if (db == NULL)
		return OTA_ERR_NOMEM;
	db->base = base;
	db->metrics = metrics;
	db->queue_max = queue_max;
	db->timeout_ms = SRV_DB_DEFAULT_TIMEOUT_MS;
	db->retry_timeout_ms = SRV_DB_DEFAULT_RETRY_TIMEOUT_MS;
	TAILQ_INIT(&db->queue);
	db->conninfo = strdup(conninfo);
	db->conns = calloc(pool_size, sizeof(*db->conns));
	if (db->conninfo == NULL || db->conns == NULL)
		goto fail;
	db->n_conns = pool_size;
	for (unsigned i = 0; i < pool_size; i++) {
		struct db_conn *conn = &db->conns[i];

		conn->db = db;
		conn->index = i;
		conn->backoff_ms = BACKOFF_MIN_MS;
		conn->ev_timer = evtimer_new(base, conn_timer_cb, conn);
		if (conn->ev_timer == NULL)
			goto fail;
	}
	*ret_db = db;
	return OTA_OK;
fail:
	srv_db_free(db);
	return OTA_ERR_NOMEM;
}

enum ota_err srv_db_set_deadlines(struct srv_db *db, unsigned timeout_ms, unsigned retry_timeout_ms)
{
	if (timeout_ms < SRV_DB_MIN_TIMEOUT_MS || timeout_ms > SRV_DB_MAX_TIMEOUT_MS ||
	    retry_timeout_ms < SRV_DB_MIN_TIMEOUT_MS || retry_timeout_ms > SRV_DB_MAX_TIMEOUT_MS)
		return OTA_ERR_INVALID_ARG;
	db->timeout_ms = timeout_ms;
	db->retry_timeout_ms = retry_timeout_ms;
	return OTA_OK;
}

enum ota_err srv_db_set_prepared(struct srv_db *db, bool prepared)
{
	if (db->started)
		return OTA_ERR_INVALID_ARG;
	db->unprepared = !prepared;
	return OTA_OK;
}

/* Appends " key='value'" (quotes and backslashes escaped) to out. */
static bool conninfo_append(struct evbuffer *out, const char *key, const char *value, size_t len)
{
	if (evbuffer_add_printf(out, "%s%s='", evbuffer_get_length(out) > 0 ? " " : "", key) < 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if ((value[i] == '\\' || value[i] == '\'') && evbuffer_add(out, "\\", 1) != 0)
			return false;
		if (evbuffer_add(out, &value[i], 1) != 0)
			return false;
	}
	return evbuffer_add(out, "'", 1) == 0;
}

/* Entries of a comma-separated list. */
static unsigned list_count(const char *list)
{
	unsigned n = 1;

	for (const char *p = list; *p != '\0'; p++)
		n += *p == ',';
	return n;
}

/* Appends the list rotated by shift entries (it has n entries). */
static bool conninfo_append_rotated(struct evbuffer *out, const char *key, const char *list,
				    unsigned n, unsigned shift)
{
	size_t len = strlen(list), head = 0;
	char *rotated;
	bool ok;

	/* entries shift..n-1, a comma, entries 0..shift-1 */
	for (unsigned i = 0; i < shift % n; i++)
		head += strcspn(list + head, ",") + 1;
	rotated = malloc(len + 1);
	if (rotated == NULL)
		return false;
	memcpy(rotated, list + head, len - head);
	rotated[len - head] = ',';
	memcpy(rotated + len - head + 1, list, head - 1);
	ok = conninfo_append(out, key, rotated, len);
	free(rotated);
	return ok;
}

enum ota_err srv_db_conninfo_rotate(const char *conninfo, unsigned shift, char **ret_conninfo)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	struct evbuffer *out = NULL;
	const char *hosts = NULL;
	enum ota_err err = OTA_ERR_NOMEM;
	unsigned n = 1;
	char *copy;

	if (opts == NULL)
		return OTA_ERR_INVALID_ARG;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val != NULL && o->val[0] != '\0' &&
		    (strcmp(o->keyword, "host") == 0 ||
		     (hosts == NULL && strcmp(o->keyword, "hostaddr") == 0)))
			hosts = o->val;
	}
	if (hosts != NULL)
		n = list_count(hosts);
	if (n < 2 || shift % n == 0) {
		copy = strdup(conninfo);
		if (copy != NULL) {
			*ret_conninfo = copy;
			err = OTA_OK;
		}
		goto out;
	}
	out = evbuffer_new();
	if (out == NULL)
		goto out;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		bool listed = strcmp(o->keyword, "host") == 0 ||
			      strcmp(o->keyword, "hostaddr") == 0 ||
			      strcmp(o->keyword, "port") == 0;

		if (o->val == NULL)
			continue;
		if (listed && list_count(o->val) == n
			    ? !conninfo_append_rotated(out, o->keyword, o->val, n, shift)
			    : !conninfo_append(out, o->keyword, o->val, strlen(o->val)))
			goto out;
	}
	if (evbuffer_add(out, "", 1) != 0)
		goto out;
	copy = strdup((const char *)evbuffer_pullup(out, -1));
	if (copy != NULL) {
		*ret_conninfo = copy;
		err = OTA_OK;
	}
out:
	if (out != NULL)
		evbuffer_free(out);
	PQconninfoFree(opts);
	return err;
}

enum ota_err srv_db_prepare(struct srv_db *db, const char *name, const char *sql)
{
	if (db->started || db->n_stmts == SRV_DB_MAX_STATEMENTS)
		return OTA_ERR_INVALID_ARG;
	for (size_t i = 0; i < db->n_stmts; i++) {
		if (strcmp(db->stmts[i].name, name) == 0)
			return OTA_ERR_INVALID_ARG;
	}
	db->stmts[db->n_stmts].name = strdup(name);
	db->stmts[db->n_stmts].sql = strdup(sql);
	if (db->stmts[db->n_stmts].name == NULL || db->stmts[db->n_stmts].sql == NULL) {
		free(db->stmts[db->n_stmts].name);
		free(db->stmts[db->n_stmts].sql);
		return OTA_ERR_NOMEM;
	}
	db->n_stmts++;
	return OTA_OK;
}

enum ota_err srv_db_prepare_stmts(struct srv_db *db, const struct srv_db_stmt *stmts, size_t n)
{
	enum ota_err err = OTA_OK;

	for (size_t i = 0; i < n && err == OTA_OK; i++)
		err = srv_db_prepare(db, stmts[i].name, stmts[i].sql);
	return err;
}

enum ota_err srv_db_exec_stmt(struct srv_db *db, const struct srv_db_stmt *stmt,
			      const char *const *values, bool binary_result, unsigned flags,
			      srv_db_cb cb, void *arg)
{
	return srv_db_exec(db, stmt->name, stmt->n_params, values, binary_result, flags, cb, arg);
}

enum ota_err srv_db_start(struct srv_db *db)
{
	if (db->started)
		return OTA_ERR_INVALID_ARG;
	db->started = true;
	for (unsigned i = 0; i < db->n_conns; i++)
		conn_connect(&db->conns[i]);
	return OTA_OK;
}

void srv_db_free(struct srv_db *db)
{
	struct db_query *q;

	if (db == NULL)
		return;
	db->closing = true;
	for (unsigned i = 0; i < db->n_conns; i++) {
		struct db_conn *conn = &db->conns[i];

		if (conn->current != NULL) {
			q = conn->current;
			conn->current = NULL;
			query_finish(db, q, OTA_ERR_BUSY, NULL);
		}
		if (conn->ev_timer != NULL) {
			conn_close(conn);
			event_free(conn->ev_timer);
		}
	}
	while ((q = TAILQ_FIRST(&db->queue)) != NULL) {
		TAILQ_REMOVE(&db->queue, q, link);
		db->queued--;
		query_finish(db, q, OTA_ERR_BUSY, NULL);
	}
	for (size_t i = 0; i < db->n_stmts; i++) {
		free(db->stmts[i].name);
		free(db->stmts[i].sql);
	}
	free(db->conns);
	free(db->conninfo);
	free(db);
}

long long srv_db_get_int8(const PGresult *res, int row, int col)
{
	uint64_t v;

	if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
		return 0;
	memcpy(&v, PQgetvalue(res, row, col), 8);
	return (long long)be64toh(v);
}

bool srv_db_get_bool(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 1)
		return false;
	return PQgetvalue(res, row, col)[0] != 0;
}
