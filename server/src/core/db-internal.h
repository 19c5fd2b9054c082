/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_DB_INTERNAL_H
#define SRV_DB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "fleetota/err.h"
#include "metrics-internal.h"

/*
 * PostgreSQL for the event loop: a small pool of non-blocking libpq
 * connections whose sockets live in the loop, one FIFO queue of queries,
 * prepared statements (re-prepared on every new connection) and reconnect
 * with back-off. Nothing here blocks. Loop thread only.
 *
 * Every module (delivery, MQTT reports, the REST API, the rollout engine)
 * registers its statements with srv_db_prepare() before srv_db_start() and
 * runs them with srv_db_exec() or srv_db_run(); the callback gets the result.
 *
 * Every query has a deadline, counted from the call: a query still queued
 * at its deadline is failed without being sent; a query still running is
 * failed and its connection is dropped (libpq 15 has no non-blocking
 * cancel: PQcancel blocks until the server answers, and a hung server never
 * does) and re-opened with back-off. Each connection sets
 * client_connection_check_interval, so a backend whose client went away
 * abandons the statement (a lock wait, a long scan) within about a second
 * once it runs again. Either way the callback gets OTA_ERR_TIMEOUT once.
 */
struct srv_db;

/* Most statements one process prepares; most parameters of one query. */
#define SRV_DB_MAX_STATEMENTS 128u
#define SRV_DB_MAX_PARAMS 32u
/*
 * Default deadlines (ms): fail-fast queries (a client is waiting), retried
 * queries (they may wait in the queue across a reconnect), and the bounds
 * a configured or per-call deadline must stay within.
 */
#define SRV_DB_DEFAULT_TIMEOUT_MS 5000u
#define SRV_DB_DEFAULT_RETRY_TIMEOUT_MS 30000u
#define SRV_DB_MIN_TIMEOUT_MS 10u
#define SRV_DB_MAX_TIMEOUT_MS 3600000u
/* How long opening a connection (connect, SET, prepares) may take. */
#define SRV_DB_CONNECT_TIMEOUT_MS 10000u
/*
 * client_connection_check_interval of every connection (ms): how soon a
 * backend notices that we dropped its connection after a deadline.
 */
#define SRV_DB_CLIENT_CHECK_MS 1000u

enum srv_db_flags {
	/*
	 * Default: fail fast. If no connection is up the call fails with
	 * OTA_ERR_BUSY; if the connection dies mid-query the callback gets
	 * OTA_ERR_TRANSPORT. For requests a client can retry (HTTP: 503).
	 */
	SRV_DB_FAIL_FAST = 0,
	/*
	 * Keep the query queued while the database is away and re-run it on
	 * the next connection (also after a connection died mid-query). Only
	 * for idempotent statements (reports: ON CONFLICT on the event seq).
	 */
	SRV_DB_RETRY = 1u << 0,
};

/*
 * Called exactly once per accepted query, on the loop thread.
 * err: OTA_OK (res is PGRES_TUPLES_OK or PGRES_COMMAND_OK),
 * OTA_ERR_STORAGE (the statement failed; res holds the error),
 * OTA_ERR_TRANSPORT (connection lost, fail-fast query; res NULL),
 * OTA_ERR_TIMEOUT (the deadline passed; res NULL: a query that was sent may
 * or may not have taken effect),
 * OTA_ERR_BUSY (shutting down; res NULL).
 * res is owned by srv_db and valid only during the call.
 */
typedef void (*srv_db_cb)(void *arg, enum ota_err err, const PGresult *res);

/*
 * queue_max bounds the queries waiting for a connection (their deadlines
 * bound how long they wait). Deadlines start at SRV_DB_DEFAULT_*.
 */
enum ota_err srv_db_new(struct event_base *base, const char *conninfo, unsigned pool_size,
			unsigned queue_max, struct srv_metrics *metrics, struct srv_db **ret_db);

/*
 * Sets the default deadlines (ms) of fail-fast and of SRV_DB_RETRY queries
 * (for later calls). OTA_ERR_INVALID_ARG outside SRV_DB_MIN/MAX_TIMEOUT_MS.
 */
enum ota_err srv_db_set_deadlines(struct srv_db *db, unsigned timeout_ms,
				  unsigned retry_timeout_ms);

/*
 * Named (protocol-level) prepared statements, the default, or not: with
 * prepared = false every statement is sent as its SQL text in an unnamed
 * statement (parsed and planned each time; the statement tables stay the
 * same). For a pooler that does not keep prepared statements across
 * transactions: PgBouncer before 1.21 in transaction mode (Debian 12 ships
 * 1.18; docs/scaling.md). Only before srv_db_start().
 */
enum ota_err srv_db_set_prepared(struct srv_db *db, bool prepared);

/*
 * conninfo (a key=value string or a URI) with its host list started at
 * entry shift modulo the number of hosts: the host, hostaddr and port lists
 * rotated together (a single port stays), as a key='value' string in
 * *ret_conninfo (the caller frees it). libpq tries hosts in order and gives
 * up when one accepts the connection and then drops it (a pooler whose
 * PostgreSQL is gone) instead of trying the next: every reconnect starts
 * one host further, so target_session_attrs=read-write finds the primary
 * behind any of them. OTA_ERR_INVALID_ARG: conninfo does not parse.
 */
enum ota_err srv_db_conninfo_rotate(const char *conninfo, unsigned shift, char **ret_conninfo);

/* Registers a statement (copied). Only before srv_db_start(). */
enum ota_err srv_db_prepare(struct srv_db *db, const char *name, const char *sql);

/*
 * A module's statements in one table: name, SQL (a call of a function of
 * migrations/code), number of parameters. The table is registered with
 * srv_db_prepare_stmts and an entry run with srv_db_exec_stmt, so a name
 * and its parameter count are written once.
 */
struct srv_db_stmt {
	const char *name;
	const char *sql;
	int n_params;
};

/* srv_db_prepare for each of the n statements; stops at the first error. */
enum ota_err srv_db_prepare_stmts(struct srv_db *db, const struct srv_db_stmt *stmts, size_t n);

/* Starts connecting every pooled connection (asynchronously). */
enum ota_err srv_db_start(struct srv_db *db);

/*
 * Queues the prepared statement stmt with n_params text parameters
 * (values[i] NULL = SQL NULL; copied, the caller may free them at once).
 * binary_result asks for binary result columns. OTA_OK: cb will be called
 * exactly once. Any error return (OTA_ERR_BUSY: queue full, no connection
 * for a fail-fast query, shutting down; OTA_ERR_INVALID_ARG): cb is never
 * called.
 */
enum ota_err srv_db_exec(struct srv_db *db, const char *stmt, int n_params,
			 const char *const *values, bool binary_result, unsigned flags,
			 srv_db_cb cb, void *arg);

/* srv_db_exec of a table entry (its name and n_params). */
enum ota_err srv_db_exec_stmt(struct srv_db *db, const struct srv_db_stmt *stmt,
			      const char *const *values, bool binary_result, unsigned flags,
			      srv_db_cb cb, void *arg);

/* Same with SQL text (one statement, $1.. parameters), not prepared. */
enum ota_err srv_db_exec_sql(struct srv_db *db, const char *sql, int n_params,
			     const char *const *values, bool binary_result, unsigned flags,
			     srv_db_cb cb, void *arg);

/* One query for srv_db_run(): srv_db_exec's arguments plus a deadline. */
struct srv_db_query {
	const char *stmt; /* a prepared statement's name, or NULL */
	const char *sql; /* SQL text when stmt is NULL */
	int n_params;
	const char *const *values;
	bool binary_result;
	unsigned flags;
	unsigned timeout_ms; /* 0: the pool's default deadline for flags */
};

/* Like srv_db_exec, with the query's own deadline. */
enum ota_err srv_db_run(struct srv_db *db, const struct srv_db_query *query, srv_db_cb cb,
			void *arg);

/* true when at least one connection is up (prepared and usable). */
bool srv_db_ready(const struct srv_db *db);

/* Queries waiting for a connection (not counting those running). */
size_t srv_db_queued(const struct srv_db *db);

/*
 * Stops: every running and queued query's callback gets OTA_ERR_BUSY,
 * connections close. NULL is fine.
 */
void srv_db_free(struct srv_db *db);

/* Binary result helpers (network byte order). */
long long srv_db_get_int8(const PGresult *res, int row, int col);
bool srv_db_get_bool(const PGresult *res, int row, int col);

#endif
