/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "clock-internal.h"
#include "db-internal.h"
#include "hex-internal.h"
#include "ingest-internal.h"
#include "journal-internal.h"
#include "log-internal.h"
#include "ratelimit-internal.h"
#include "report-internal.h"

/*
 * The only SQL here: two function calls, on the writer thread's own
 * connection (not the loop's pool): a batch (migrations/code/report_batch.sql)
 * and, when a batch fails, its reports one by one (report.sql).
 */
static const struct srv_db_stmt stmt_ingest = {
	"report_ingest",
	"SELECT outcome, new_events, campaign_changes, suspect, refusal_events"
	" FROM report_ingest($1, $2::jsonb, decode($3, 'hex'), $4::integer)",
	4};
static const struct srv_db_stmt stmt_batch = {
	"report_ingest_batch",
	"SELECT ord, outcome, new_events, campaign_changes, suspect, refusal_events"
	" FROM report_ingest_batch($1::text[], $2::jsonb[], $3::bytea[], $4::integer[])",
	4};

/* A device's reports held over its budget. */
struct held {
	char device[SRV_MAX_DEVICE_ID + 1];
	struct srv_report_doc doc;
	unsigned refused; /* over-budget reports not yet in a flood event */
	double last_flood_event; /* 0: never */
	double last_used;
};

struct srv_ingest {
	pthread_mutex_t lock; /* budget, held, stopping, appended */
	pthread_cond_t wake; /* flusher tick, stop, idle */
	pthread_cond_t work; /* an append, stop: the writer */
	pthread_mutex_t db_lock;
	PGconn *conn; /* under db_lock */
	char *conninfo;
	bool prepared; /* a named statement on each connection */
	bool batch_prepared; /* this connection has stmt_batch */
	unsigned batch_max; /* min(SRV_INGEST_BATCH_MAX, report_batch_max()) */
	unsigned linger_ms;
	struct srv_journal *journal;
	bool journal_full; /* logged once per episode (under lock) */
	pthread_t writer;
	bool writer_started;
	uint64_t *journal_gauge;
	unsigned connect_failures; /* rotates a multi-host conninfo (srv_db_conninfo_rotate) */
	unsigned deadline_ms;
	struct srv_ratelimit *budget;
	struct held held[SRV_INGEST_MAX_HELD];
	bool stopping;
	unsigned busy; /* srv_ingest_message calls inside */
	pthread_t flusher;
	bool flusher_started;
	srv_ingest_result_cb cb;
	void *cb_arg;
	uint8_t *arena_mem; /* Paho's receive thread only */
};

const char *srv_ingest_outcome_name(enum srv_ingest_outcome outcome)
{
	static const char *const names[] = {
		[SRV_INGEST_STORED] = "stored",	  [SRV_INGEST_DUPLICATE] = "duplicate",
		[SRV_INGEST_REPLAY] = "replay",	  [SRV_INGEST_DECOMMISSIONED] = "decommissioned",
		[SRV_INGEST_STALE] = "stale",	  [SRV_INGEST_COALESCED] = "coalesced",
		[SRV_INGEST_DROPPED] = "dropped", [SRV_INGEST_REFUSED] = "refused",
		[SRV_INGEST_FAILED] = "failed",	  [SRV_INGEST_ABANDONED] = "abandoned",
	};

	if ((unsigned)outcome >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[outcome];
}

/* ---- the ingest connection (blocking calls, each with a deadline) ------ */

/* A connection that failed or was lost: the next one starts at another host. */
static void db_drop(struct srv_ingest *ing)
{
	if (ing->conn != NULL)
		ing->connect_failures++;
	PQfinish(ing->conn);
	ing->conn = NULL;
}

/* Waits until the socket is ready for events or the deadline passed. */
static bool wait_socket(PGconn *conn, short events, double deadline)
{
	struct pollfd pfd = {.fd = PQsocket(conn), .events = events};
	int rc;

	do {
		double left_ms = (deadline - srv_now()) * 1000.0;

		if (left_ms <= 0 || pfd.fd < 0)
			return false;
		rc = poll(&pfd, 1, left_ms > 1000.0 ? 1000 : (int)left_ms + 1);
	} while (rc == 0 || (rc < 0 && errno == EINTR));
	return rc > 0;
}

/* The last result of the query sent, or NULL (deadline, connection lost). */
static PGresult *wait_result(PGconn *conn, double deadline)
{
	PGresult *last = NULL, *res;
	int flush;

	while ((flush = PQflush(conn)) == 1) {
		if (!wait_socket(conn, POLLIN | POLLOUT, deadline))
			return NULL;
		if (!PQconsumeInput(conn))
			return NULL;
	}
	if (flush < 0)
		return NULL;
	for (;;) {
		while (PQisBusy(conn)) {
			if (!wait_socket(conn, POLLIN, deadline) || !PQconsumeInput(conn)) {
				PQclear(last);
				return NULL;
			}
		}
		res = PQgetResult(conn);
		if (res == NULL)
			return last;
		PQclear(last);
		last = res;
	}
}

/* Prepares stmt on the new connection; false: not prepared (res's error). */
static bool db_prepare(struct srv_ingest *ing, const struct srv_db_stmt *stmt, double deadline)
{
	PGresult *res;
	bool ok;

	if (!PQsendPrepare(ing->conn, stmt->name, stmt->sql, 0, NULL))
		return false;
	res = wait_result(ing->conn, deadline);
	ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		srv_log(SRV_LOG_WARN, "ingest: prepare %s failed: %s", stmt->name,
			res != NULL ? PQresultErrorMessage(res) : "deadline or connection lost");
	PQclear(res);
	return ok;
}

/* report_batch_max() of this database (a schema without it: one by one). */
static void db_batch_max(struct srv_ingest *ing, double deadline)
{
	PGresult *res;
	long max = 0;

	if (!PQsendQuery(ing->conn, "SELECT report_batch_max()"))
		return;
	res = wait_result(ing->conn, deadline);
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		max = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	ing->batch_max = max < 1		      ? 1u
			 : max > SRV_INGEST_BATCH_MAX ? SRV_INGEST_BATCH_MAX
						      : (unsigned)max;
}

static bool db_connect(struct srv_ingest *ing)
{
	static const char *const keys[] = {"dbname", "connect_timeout", "application_name", NULL};
	char timeout[SRV_U32_TEXT_BYTES];
	char *conninfo = NULL;
	const char *values[4] = {NULL, timeout, "ota-server-ingest", NULL};
	double deadline = srv_now() + ing->deadline_ms / 1000.0;

	if (ing->conn != NULL && PQstatus(ing->conn) == CONNECTION_OK)
		return true;
	db_drop(ing);
	snprintf(timeout, sizeof(timeout), "%u", (ing->deadline_ms + 999u) / 1000u);
	if (srv_db_conninfo_rotate(ing->conninfo, ing->connect_failures, &conninfo) != OTA_OK) {
		srv_log(SRV_LOG_WARN, "ingest: db_conninfo does not parse");
		return false;
	}
	values[0] = conninfo;
	ing->conn = PQconnectdbParams(keys, values, 1);
	free(conninfo);
	if (ing->conn == NULL || PQstatus(ing->conn) != CONNECTION_OK ||
	    PQsetnonblocking(ing->conn, 1) != 0) {
		srv_log(SRV_LOG_WARN, "ingest: database connection failed: %s",
			ing->conn != NULL ? PQerrorMessage(ing->conn) : "out of memory");
		db_drop(ing);
		return false;
	}
	db_batch_max(ing, deadline);
	ing->batch_prepared = false;
	if (ing->prepared) {
		if (!db_prepare(ing, &stmt_ingest, deadline)) {
			db_drop(ing);
			return false;
		}
		/* not prepared (a schema without it): sent unnamed, and a batch
		 * that fails is ingested one by one */
		ing->batch_prepared = PQstatus(ing->conn) == CONNECTION_OK &&
				      db_prepare(ing, &stmt_batch, deadline);
	}
	if (PQstatus(ing->conn) != CONNECTION_OK) {
		db_drop(ing);
		return false;
	}
	return true;
}

/*
 * 25006 read_only_sql_transaction: the connection reached a server that
 * takes no writes (a standby, or a demoted primary a pooler still points
 * at). Another connection may reach the primary (target_session_attrs=
 * read-write, the next host of the list): the connection is dropped and
 * the call retried, the reports stay journaled.
 */
static bool sqlstate_read_only(const char *state)
{
	return state != NULL && strcmp(state, "25006") == 0;
}

/* SQLSTATE classes worth another try: connection, transaction rollback
 * (serialization, deadlock), resources, operator intervention, system;
 * and a read-only server (above). */
static bool sqlstate_transient(const char *state)
{
	static const char *const classes[] = {"08", "40", "53", "57", "58"};

	if (state == NULL || sqlstate_read_only(state))
		return true;
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		if (strncmp(state, classes[i], 2) == 0)
			return true;
	}
	return false;
}

enum call_rc { CALL_OK, CALL_RETRY, CALL_FAIL };

/*
 * Connects if needed and sends stmt (by name when prepared on this
 * connection). false: not sent, the connection dropped (retry).
 */
static bool db_send(struct srv_ingest *ing, const struct srv_db_stmt *stmt, bool prepared,
		    const char *const *params)
{
	if (!db_connect(ing))
		return false;
	if (prepared ? !PQsendQueryPrepared(ing->conn, stmt->name, stmt->n_params, params, NULL,
					    NULL, 0)
		     : !PQsendQueryParams(ing->conn, stmt->sql, stmt->n_params, NULL, params, NULL,
					  NULL, 0)) {
		db_drop(ing);
		return false;
	}
	return true;
}

/*
 * report_ingest's columns (outcome, new_events, campaign_changes, suspect,
 * refusal_events) of row, from column col on, into r. false: an outcome
 * this server does not know.
 */
static bool row_result(const PGresult *res, int row, int col, struct srv_ingest_result *r)
{
	/* in the order of enum srv_ingest_outcome */
	static const char *const outcomes[] = {"stored", "duplicate", "replay", "decommissioned",
					       "stale"};
	const char *outcome = PQgetvalue(res, row, col);
	bool known = false;

	for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
		if (strcmp(outcome, outcomes[i]) == 0) {
			r->outcome = (enum srv_ingest_outcome)i;
			known = true;
		}
	}
	r->new_events = atoll(PQgetvalue(res, row, col + 1));
	r->campaign_changes = atoll(PQgetvalue(res, row, col + 2));
	r->suspect = strcmp(PQgetvalue(res, row, col + 3), "t") == 0;
	r->refusal_events = atoll(PQgetvalue(res, row, col + 4));
	return known;
}

static enum call_rc db_call(struct srv_ingest *ing, const char *const params[4],
			    struct srv_ingest_result *result)
{
	double deadline = srv_now() + ing->deadline_ms / 1000.0;
	enum call_rc rc = CALL_RETRY;
	PGresult *res;

	if (!db_send(ing, &stmt_ingest, ing->prepared, params))
		return CALL_RETRY;
	res = wait_result(ing->conn, deadline);
	if (res == NULL) {
		/* the call may still commit: a retry of it is a duplicate */
		srv_log(SRV_LOG_WARN, "ingest: report %s seq %llu: no answer within %u ms",
			result->device, (unsigned long long)result->seq, ing->deadline_ms);
		db_drop(ing);
		return CALL_RETRY;
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 5) {
		rc = row_result(res, 0, 0, result) ? CALL_OK : CALL_FAIL;
	} else {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		rc = sqlstate_transient(state) ? CALL_RETRY : CALL_FAIL;
		srv_log(SRV_LOG_ERROR, "ingest: report %s seq %llu: %s", result->device,
			(unsigned long long)result->seq, PQresultErrorMessage(res));
		if (PQstatus(ing->conn) != CONNECTION_OK || sqlstate_read_only(state))
			db_drop(ing);
	}
	PQclear(res);
	return rc;
}

static bool stopping(struct srv_ingest *ing)
{
	bool stop;

	pthread_mutex_lock(&ing->lock);
	stop = ing->stopping;
	pthread_mutex_unlock(&ing->lock);
	return stop;
}

/* The CLOCK_REALTIME instant ms from now (for pthread_cond_timedwait). */
static struct timespec in_ms(unsigned ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000u;
	until.tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	return until;
}

/* Sleeps ms unless stopped. */
static void back_off(struct srv_ingest *ing, unsigned ms)
{
	struct timespec until = in_ms(ms);

	pthread_mutex_lock(&ing->lock);
	if (!ing->stopping)
		pthread_cond_timedwait(&ing->wake, &ing->lock, &until);
	pthread_mutex_unlock(&ing->lock);
}

/* The metrics' view of the journal (read by the loop when it renders). */
static void gauge_update(struct srv_ingest *ing)
{
	uint64_t rows = 0;

	if (ing->journal_gauge == NULL)
		return;
	srv_journal_pending(ing->journal, &rows, NULL);
	__atomic_store_n(ing->journal_gauge, rows, __ATOMIC_RELAXED);
}

/* The result of a journal entry, before its outcome. */
static void entry_result(const struct srv_journal_entry *e, struct srv_ingest_result *result)
{
	memset(result, 0, sizeof(*result));
	snprintf(result->device, sizeof(result->device), "%s", e->device);
	result->seq = e->seq;
	result->merged = e->merged;
	result->flood_refused = e->refused;
	result->flushed = e->flushed;
	result->device_error = (enum ota_err)e->device_error;
}

/* Stores e alone (until stored, refused by the database, or stopped). */
static void store_one(struct srv_ingest *ing, const struct srv_journal_entry *e,
		      struct srv_ingest_result *result)
{
	char digest[SRV_SHA256_HEX_BYTES], refused_text[SRV_U32_TEXT_BYTES];
	const char *params[4] = {e->device, e->report, digest, refused_text};
	unsigned delay = SRV_INGEST_RETRY_MIN_MS;

	entry_result(e, result);
	srv_hex_encode(e->digest, sizeof(e->digest), digest);
	snprintf(refused_text, sizeof(refused_text), "%u", e->refused);
	for (;;) {
		enum call_rc rc;

		pthread_mutex_lock(&ing->db_lock);
		rc = db_call(ing, params, result);
		pthread_mutex_unlock(&ing->db_lock);
		if (rc == CALL_OK)
			break;
		if (rc == CALL_FAIL) {
			result->outcome = SRV_INGEST_FAILED;
			break;
		}
		if (stopping(ing)) {
			result->outcome = SRV_INGEST_ABANDONED;
			break;
		}
		back_off(ing, delay);
		delay = delay * 2u > SRV_INGEST_RETRY_MAX_MS ? SRV_INGEST_RETRY_MAX_MS : delay * 2u;
	}
}

/* ---- batches ---------------------------------------------------------- */

/* A PostgreSQL array literal being written (capacity computed up front). */
struct array_text {
	char *text;
	size_t len;
};

/* Appends one quoted element ("..." with " and \ escaped). */
static void array_add(struct array_text *a, const char *prefix, const char *value, size_t len)
{
	char sep = a->len == 0 ? '{' : ',';

	a->text[a->len++] = sep;
	a->text[a->len++] = '"';
	for (const char *p = prefix; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			a->text[a->len++] = '\\';
		a->text[a->len++] = *p;
	}
	for (size_t i = 0; i < len; i++) {
		if (value[i] == '"' || value[i] == '\\')
			a->text[a->len++] = '\\';
		a->text[a->len++] = value[i];
	}
	a->text[a->len++] = '"';
}

static void array_end(struct array_text *a)
{
	if (a->len == 0)
		a->text[a->len++] = '{';
	a->text[a->len++] = '}';
	a->text[a->len] = '\0';
}

/* The batch's four array parameters; false: out of memory. */
static bool batch_params(const struct srv_journal_entry *e, size_t n, struct array_text arrays[4])
{
	size_t caps[4] = {3, 3, 3, 3};
	char digest[SRV_SHA256_HEX_BYTES], number[SRV_U32_TEXT_BYTES];

	for (size_t i = 0; i < n; i++) {
		caps[0] += 2u * strlen(e[i].device) + 3u;
		caps[1] += 2u * e[i].report_len + 3u;
		caps[2] += 2u * (SRV_SHA256_HEX_BYTES + 2u) + 3u;
		caps[3] += SRV_U32_TEXT_BYTES + 3u;
	}
	for (size_t k = 0; k < 4; k++) {
		arrays[k].len = 0;
		arrays[k].text = malloc(caps[k]);
		if (arrays[k].text == NULL)
			return false;
	}
	for (size_t i = 0; i < n; i++) {
		array_add(&arrays[0], "", e[i].device, strlen(e[i].device));
		array_add(&arrays[1], "", e[i].report, e[i].report_len);
		srv_hex_encode(e[i].digest, sizeof(e[i].digest), digest);
		array_add(&arrays[2], "\\x", digest, strlen(digest));
		snprintf(number, sizeof(number), "%u", e[i].refused);
		array_add(&arrays[3], "", number, strlen(number));
	}
	for (size_t k = 0; k < 4; k++)
		array_end(&arrays[k]);
	return true;
}

/* One report_ingest_batch() call: results[i] for entries[i] on CALL_OK. */
static enum call_rc db_call_batch(struct srv_ingest *ing, const char *const params[4],
				  const struct srv_journal_entry *e, size_t n,
				  struct srv_ingest_result *results)
{
	double deadline = srv_now() + ing->deadline_ms / 1000.0;
	enum call_rc rc = CALL_RETRY;
	PGresult *res;

	if (!db_send(ing, &stmt_batch, ing->batch_prepared, params))
		return CALL_RETRY;
	res = wait_result(ing->conn, deadline);
	if (res == NULL) {
		/* the call may still commit: a retry of it gives duplicates */
		srv_log(SRV_LOG_WARN, "ingest: batch of %zu reports: no answer within %u ms", n,
			ing->deadline_ms);
		db_drop(ing);
		return CALL_RETRY;
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == (int)n &&
	    PQnfields(res) == 6) {
		bool seen[SRV_INGEST_BATCH_MAX] = {false};

		rc = CALL_OK;
		for (int row = 0; row < (int)n && rc == CALL_OK; row++) {
			long ord = strtol(PQgetvalue(res, row, 0), NULL, 10);

			if (ord < 1 || ord > (long)n || seen[ord - 1]) {
				rc = CALL_FAIL;
				break;
			}
			seen[ord - 1] = true;
			entry_result(&e[ord - 1], &results[ord - 1]);
			if (!row_result(res, row, 1, &results[ord - 1]))
				rc = CALL_FAIL;
		}
		if (rc != CALL_OK)
			srv_log(SRV_LOG_ERROR, "ingest: batch of %zu reports: an unexpected answer",
				n);
	} else {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		rc = PQresultStatus(res) != PGRES_TUPLES_OK && sqlstate_transient(state)
			     ? CALL_RETRY
			     : CALL_FAIL;
		srv_log(rc == CALL_RETRY ? SRV_LOG_WARN : SRV_LOG_ERROR,
			"ingest: batch of %zu reports: %s", n,
			PQresultStatus(res) == PGRES_TUPLES_OK ? "wrong row count"
							       : PQresultErrorMessage(res));
		if (PQstatus(ing->conn) != CONNECTION_OK || sqlstate_read_only(state))
			db_drop(ing);
	}
	PQclear(res);
	return rc;
}

/*
 * Stores the n entries: one batch (retried while the database is away),
 * one by one when the batch fails. Returns how many were dealt with (their
 * results posted): n, or fewer when stopped (the rest stay journaled).
 */
static size_t ingest_batch(struct srv_ingest *ing, const struct srv_journal_entry *e, size_t n,
			   struct srv_ingest_result *results)
{
	struct array_text arrays[4] = {{NULL, 0}};
	const char *params[4];
	unsigned delay = SRV_INGEST_RETRY_MIN_MS;
	enum call_rc rc = CALL_FAIL;
	size_t done = 0;
	double started = srv_now();

	if (n > 1 && batch_params(e, n, arrays)) {
		for (size_t k = 0; k < 4; k++)
			params[k] = arrays[k].text;
		for (;;) {
			pthread_mutex_lock(&ing->db_lock);
			rc = db_call_batch(ing, params, e, n, results);
			pthread_mutex_unlock(&ing->db_lock);
			if (rc != CALL_RETRY || stopping(ing))
				break;
			back_off(ing, delay);
			delay = delay * 2u > SRV_INGEST_RETRY_MAX_MS ? SRV_INGEST_RETRY_MAX_MS
								     : delay * 2u;
		}
	}
	for (size_t k = 0; k < 4; k++)
		free(arrays[k].text);
	if (rc == CALL_RETRY)
		return 0; /* stopped: all of it stays journaled */
	if (rc == CALL_OK) {
		srv_log(SRV_LOG_DEBUG, "ingest: batch of %zu reports stored in %.1f ms", n,
			(srv_now() - started) * 1000.0);
		results[0].batch_first = true;
		results[0].call_reports = (unsigned)n;
		for (size_t i = 0; i < n; i++)
			ing->cb(ing->cb_arg, &results[i]);
		return n;
	}
	/* one report (or a failed batch, as report_batch.sql says): one by one */
	for (; done < n; done++) {
		store_one(ing, &e[done], &results[done]);
		results[done].call_reports = 1;
		if (results[done].outcome == SRV_INGEST_ABANDONED)
			break;
		ing->cb(ing->cb_arg, &results[done]);
	}
	return done;
}

/*
 * Reads the journal's oldest reports (up to batch_max and
 * SRV_INGEST_BATCH_BYTES), stores them and deletes them from the journal.
 * true: all of them were dealt with; false: a read failed or the writer
 * stopped before (what is left stays journaled).
 */
static bool writer_step(struct srv_ingest *ing, struct srv_journal_entry *entries,
			struct srv_ingest_result *results)
{
	size_t n = 0, done;

	/* a bound on one call's size and on what is read: the rest next time */
	if (srv_journal_read(ing->journal, entries, ing->batch_max, SRV_INGEST_BATCH_BYTES, &n,
			     NULL) != OTA_OK)
		return false;
	done = n > 0 ? ingest_batch(ing, entries, n, results) : 0;
	if (done > 0)
		(void)srv_journal_consume(ing->journal, entries[done - 1].id);
	gauge_update(ing);
	srv_journal_entries_clear(entries, n);
	return done == n;
}

/*
 * Stopping: what the journal holds is stored while the database answers,
 * for up to SRV_INGEST_DRAIN_MS, one attempt a batch (a replica that is
 * scaled away leaves as little as it can); the rest stays for the next
 * start.
 */
static void writer_drain(struct srv_ingest *ing, struct srv_journal_entry *entries,
			 struct srv_ingest_result *results)
{
	double until = srv_now() + SRV_INGEST_DRAIN_MS / 1000.0;
	uint64_t rows = 0;

	for (;;) {
		srv_journal_pending(ing->journal, &rows, NULL);
		if (rows == 0 || srv_now() >= until || !writer_step(ing, entries, results))
			break;
	}
	srv_journal_pending(ing->journal, &rows, NULL);
	if (rows > 0)
		srv_log(SRV_LOG_WARN, "ingest: %llu reports stay in the journal for the next start",
			(unsigned long long)rows);
}

/* The writer: the journal's oldest reports into the database, in batches. */
static void *writer_main(void *arg)
{
	struct srv_ingest *ing = arg;
	struct srv_journal_entry *entries = calloc(SRV_INGEST_BATCH_MAX, sizeof(*entries));
	struct srv_ingest_result *results = calloc(SRV_INGEST_BATCH_MAX, sizeof(*results));
	uint64_t rows = 0;

	if (entries == NULL || results == NULL) {
		srv_log(SRV_LOG_ERROR, "ingest: writer: out of memory; reports stay journaled");
		goto out;
	}
	srv_journal_pending(ing->journal, &rows, NULL);
	if (rows > 0)
		srv_log(SRV_LOG_INFO, "ingest: %llu reports left in the journal: stored first",
			(unsigned long long)rows);
	pthread_mutex_lock(&ing->lock);
	while (!ing->stopping) {
		struct timespec until;

		srv_journal_pending(ing->journal, &rows, NULL);
		if (rows == 0) {
			until = in_ms(1000u);
			pthread_cond_timedwait(&ing->work, &ing->lock, &until);
			continue;
		}
		/* a short linger gathers a batch at a low rate; under load the
		 * batch gathers while the previous one is stored */
		if (rows < ing->batch_max && ing->linger_ms > 0) {
			until = in_ms(ing->linger_ms);
			while (!ing->stopping && rows < ing->batch_max &&
			       pthread_cond_timedwait(&ing->work, &ing->lock, &until) == 0)
				srv_journal_pending(ing->journal, &rows, NULL);
		}
		pthread_mutex_unlock(&ing->lock);
		if (!writer_step(ing, entries, results) && !stopping(ing))
			back_off(ing, SRV_INGEST_RETRY_MIN_MS); /* a read failed */
		pthread_mutex_lock(&ing->lock);
	}
	pthread_mutex_unlock(&ing->lock);
	writer_drain(ing, entries, results);
out:
	free(entries);
	free(results);
	return NULL;
}

/* ---- the journal (receive and flusher threads) ------------------------ */

/*
 * Appends doc to the journal and wakes the writer. While the journal is
 * full or failing, waits (nothing is acknowledged meanwhile) until it takes
 * the report or srv_ingest_stop: then OTA_ERR_TIMEOUT. OTA_ERR_SIZE,
 * OTA_ERR_NOMEM: never journaled (the caller reports it failed).
 */
static enum ota_err journal_put(struct srv_ingest *ing, const struct srv_report_doc *doc,
				unsigned refused, bool flushed,
				const struct srv_ingest_result *about)
{
	struct srv_journal_entry e = {0};
	unsigned delay = SRV_INGEST_RETRY_MIN_MS;
	enum ota_err err;

	e.report = json_dumps(doc->json, JSON_COMPACT);
	if (e.report == NULL)
		return OTA_ERR_NOMEM;
	e.report_len = strlen(e.report);
	snprintf(e.device, sizeof(e.device), "%s", about->device);
	e.seq = doc->seq;
	memcpy(e.digest, doc->digest, sizeof(e.digest));
	e.refused = refused;
	e.merged = doc->merged;
	e.device_error = (int)about->device_error;
	e.flushed = flushed;
	while ((err = srv_journal_append(ing->journal, &e)) == OTA_ERR_BUSY ||
	       err == OTA_ERR_STORAGE) {
		bool first;

		pthread_mutex_lock(&ing->lock);
		first = !ing->journal_full;
		ing->journal_full = true;
		pthread_mutex_unlock(&ing->lock);
		if (first)
			srv_log(SRV_LOG_ERROR,
				"ingest: the report journal %s: reports are not acknowledged "
				"until it takes them",
				err == OTA_ERR_BUSY ? "is full" : "fails");
		if (stopping(ing)) {
			err = OTA_ERR_TIMEOUT;
			break;
		}
		back_off(ing, delay);
		delay = delay * 2u > SRV_INGEST_RETRY_MAX_MS ? SRV_INGEST_RETRY_MAX_MS : delay * 2u;
	}
	free(e.report);
	pthread_mutex_lock(&ing->lock);
	if (err == OTA_OK) {
		if (ing->journal_full)
			srv_log(SRV_LOG_INFO, "ingest: the report journal takes reports again");
		ing->journal_full = false;
		pthread_cond_signal(&ing->work);
	}
	pthread_mutex_unlock(&ing->lock);
	if (err == OTA_OK)
		gauge_update(ing);
	return err;
}

/* ---- held reports (under lock) ----------------------------------------- */

static struct held *held_find(struct srv_ingest *ing, const char *device, bool create, double now)
{
	struct held *free_slot = NULL, *idle = NULL;

	for (size_t i = 0; i < SRV_INGEST_MAX_HELD; i++) {
		struct held *h = &ing->held[i];

		if (h->device[0] == '\0') {
			if (free_slot == NULL)
				free_slot = h;
		} else if (strcmp(h->device, device) == 0) {
			h->last_used = now;
			return h;
		} else if (h->doc.json == NULL && h->refused == 0 &&
			   now - h->last_flood_event >= SRV_INGEST_FLOOD_EVENT_S &&
			   (idle == NULL || h->last_used < idle->last_used)) {
			idle = h; /* holds nothing worth keeping */
		}
	}
	if (!create)
		return NULL;
	if (free_slot == NULL)
		free_slot = idle;
	if (free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(*free_slot));
	snprintf(free_slot->device, sizeof(free_slot->device), "%s", device);
	free_slot->last_used = now;
	return free_slot;
}

/*
 * Moves h's held report into *doc (coalesced; doc may be empty) and returns
 * the count for a flood event (0 when one was recorded less than
 * SRV_INGEST_FLOOD_EVENT_S ago: it is carried to a later one).
 */
static unsigned held_take(struct held *h, struct srv_report_doc *doc, double now)
{
	unsigned refused = 0;

	if (h->doc.json != NULL) {
		if (srv_report_merge(&h->doc, doc) == OTA_OK)
			*doc = h->doc;
		else
			srv_report_doc_clear(&h->doc); /* out of memory: keep the newest */
		memset(&h->doc, 0, sizeof(h->doc));
	}
	if (h->refused > 0 &&
	    (h->last_flood_event == 0 || now - h->last_flood_event >= SRV_INGEST_FLOOD_EVENT_S)) {
		refused = h->refused;
		h->refused = 0;
		h->last_flood_event = now;
	}
	return refused;
}

static void *flusher_main(void *arg)
{
	struct srv_ingest *ing = arg;

	pthread_mutex_lock(&ing->lock);
	while (!ing->stopping) {
		struct timespec until = in_ms(SRV_INGEST_FLUSH_MS);
		double now;

		pthread_cond_timedwait(&ing->wake, &ing->lock, &until);
		now = srv_now();
		for (size_t i = 0; i < SRV_INGEST_MAX_HELD && !ing->stopping; i++) {
			struct held *h = &ing->held[i];
			struct srv_ingest_result result = {0};
			struct srv_report_doc doc = {0};
			unsigned refused;
			enum ota_err err;

			if (h->doc.json == NULL ||
			    !srv_ratelimit_take(ing->budget, h->device, now, NULL))
				continue;
			refused = held_take(h, &doc, now);
			snprintf(result.device, sizeof(result.device), "%s", h->device);
			result.flushed = true;
			result.seq = doc.seq;
			result.merged = doc.merged;
			result.flood_refused = refused;
			pthread_mutex_unlock(&ing->lock);
			/* journaled: the writer stores it and reports the result */
			err = journal_put(ing, &doc, refused, true, &result);
			srv_report_doc_clear(&doc);
			if (err != OTA_OK) {
				result.outcome = err == OTA_ERR_TIMEOUT ? SRV_INGEST_ABANDONED
									: SRV_INGEST_FAILED;
				ing->cb(ing->cb_arg, &result);
			}
			pthread_mutex_lock(&ing->lock);
		}
	}
	pthread_mutex_unlock(&ing->lock);
	return NULL;
}

/* ---- the receive path ------------------------------------------------- */

static void busy_done(struct srv_ingest *ing)
{
	pthread_mutex_lock(&ing->lock);
	ing->busy--;
	pthread_cond_broadcast(&ing->wake);
	pthread_mutex_unlock(&ing->lock);
}

bool srv_ingest_message(struct srv_ingest *ing, const char *topic, const uint8_t *payload,
			size_t len)
{
	struct srv_ingest_result result = {0};
	struct srv_report_doc doc = {0};
	Fleetota__V1__StatusReport *r = NULL;
	struct ota_arena arena;
	unsigned refused = 0;
	struct held *h;
	double now;
	bool allowed;

	pthread_mutex_lock(&ing->lock);
	ing->busy++;
	pthread_mutex_unlock(&ing->lock);
	ota_arena_init(&arena, ing->arena_mem, SRV_REPORT_ARENA_BYTES);
	result.err = srv_report_decode(payload, len, topic, &arena, &r, result.device);
	if (result.err == OTA_OK) {
		result.seq = r->seq;
		if (r->error[0] != '\0' &&
		    ota_err_from_name(r->error, &result.device_error) != OTA_OK)
			result.device_error = OTA_OK;
		result.err = srv_report_doc_new(r, payload, len, &doc);
	}
	if (result.err != OTA_OK) {
		snprintf(result.topic, sizeof(result.topic), "%s", topic);
		result.outcome =
			result.err == OTA_ERR_NOMEM ? SRV_INGEST_FAILED : SRV_INGEST_REFUSED;
		if (result.err != OTA_ERR_SIZE && result.err != OTA_ERR_NOMEM)
			result.err = OTA_ERR_FORMAT;
		goto out;
	}
	now = srv_now();
	pthread_mutex_lock(&ing->lock);
	allowed = srv_ratelimit_take(ing->budget, result.device, now, NULL);
	h = held_find(ing, result.device, !allowed, now);
	if (allowed) {
		if (h != NULL)
			refused = held_take(h, &doc, now);
		pthread_mutex_unlock(&ing->lock);
		result.seq = doc.seq;
		result.merged = doc.merged;
		result.flood_refused = refused;
		switch (journal_put(ing, &doc, refused, false, &result)) {
		case OTA_OK:
			/* durable: acknowledged now, stored by the writer, which
			 * reports the result */
			srv_report_doc_clear(&doc);
			busy_done(ing);
			return true;
		case OTA_ERR_TIMEOUT:
			result.outcome = SRV_INGEST_ABANDONED;
			break;
		default:
			result.outcome = SRV_INGEST_FAILED;
			break;
		}
	} else {
		result.outcome = SRV_INGEST_DROPPED;
		if (h != NULL) {
			h->refused++;
			if (srv_report_merge(&h->doc, &doc) == OTA_OK)
				result.outcome = SRV_INGEST_COALESCED;
		}
		pthread_mutex_unlock(&ing->lock);
	}
out:
	srv_report_doc_clear(&doc);
	ing->cb(ing->cb_arg, &result);
	if (result.outcome == SRV_INGEST_ABANDONED)
		return false; /* stays busy: the caller never acknowledges it */
	busy_done(ing);
	return true;
}

/* ---- life cycle --------------------------------------------------------- */

enum ota_err srv_ingest_new(const struct srv_ingest_config *config, srv_ingest_result_cb cb,
			    void *cb_arg, struct srv_ingest **ret_ingest)
{
	struct srv_ingest *ing = calloc(1, sizeof(*ing));
	enum ota_err err;

	if (ing == NULL)
		return OTA_ERR_NOMEM;
	pthread_mutex_init(&ing->lock, NULL);
	pthread_mutex_init(&ing->db_lock, NULL);
	pthread_cond_init(&ing->wake, NULL);
	pthread_cond_init(&ing->work, NULL);
	ing->batch_max = SRV_INGEST_BATCH_MAX;
	ing->linger_ms = config->linger_ms;
	ing->journal_gauge = config->journal_gauge;
	ing->cb = cb;
	ing->cb_arg = cb_arg;
	ing->deadline_ms = config->deadline_ms;
	ing->prepared = config->prepared;
	ing->conninfo = strdup(config->conninfo);
	ing->arena_mem = malloc(SRV_REPORT_ARENA_BYTES);
	if (ing->conninfo == NULL || ing->arena_mem == NULL ||
	    srv_ratelimit_new(config->rate_per_sec, config->burst, SRV_INGEST_MAX_BUCKETS,
			      &ing->budget) != OTA_OK) {
		srv_ingest_free(ing);
		return OTA_ERR_NOMEM;
	}
	err = srv_journal_open(config->journal_dir, config->journal_sync, config->journal_max_bytes,
			       &ing->journal);
	if (err != OTA_OK) {
		srv_ingest_free(ing);
		return err;
	}
	if (pthread_create(&ing->flusher, NULL, flusher_main, ing) != 0) {
		srv_ingest_free(ing);
		return OTA_ERR_NOMEM;
	}
	ing->flusher_started = true;
	if (pthread_create(&ing->writer, NULL, writer_main, ing) != 0) {
		srv_ingest_free(ing);
		return OTA_ERR_NOMEM;
	}
	ing->writer_started = true;
	*ret_ingest = ing;
	return OTA_OK;
}

void srv_ingest_stop(struct srv_ingest *ing)
{
	if (ing == NULL)
		return;
	pthread_mutex_lock(&ing->lock);
	ing->stopping = true;
	pthread_cond_broadcast(&ing->wake);
	pthread_cond_broadcast(&ing->work);
	pthread_mutex_unlock(&ing->lock);
}

bool srv_ingest_idle(struct srv_ingest *ing, unsigned timeout_ms)
{
	double deadline = srv_now() + timeout_ms / 1000.0;
	bool idle;

	pthread_mutex_lock(&ing->lock);
	while (ing->busy > 0 && srv_now() < deadline) {
		struct timespec until = in_ms(50u);

		pthread_cond_timedwait(&ing->wake, &ing->lock, &until);
	}
	idle = ing->busy == 0;
	pthread_mutex_unlock(&ing->lock);
	return idle;
}

void srv_ingest_free(struct srv_ingest *ing)
{
	if (ing == NULL)
		return;
	srv_ingest_stop(ing);
	if (ing->flusher_started)
		pthread_join(ing->flusher, NULL);
	if (ing->writer_started)
		pthread_join(ing->writer, NULL);
	srv_journal_close(ing->journal);
	for (size_t i = 0; i < SRV_INGEST_MAX_HELD; i++)
		srv_report_doc_clear(&ing->held[i].doc);
	db_drop(ing);
	srv_ratelimit_free(ing->budget);
	free(ing->arena_mem);
	free(ing->conninfo);
	pthread_cond_destroy(&ing->wake);
	pthread_cond_destroy(&ing->work);
	pthread_mutex_destroy(&ing->db_lock);
	pthread_mutex_destroy(&ing->lock);
	free(ing);
}
