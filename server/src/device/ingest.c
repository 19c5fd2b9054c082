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
#include "log-internal.h"
#include "ratelimit-internal.h"
#include "report-internal.h"

/*
 * The only SQL here: one function call (migrations/code/report.sql), on the
 * ingest thread's own connection (not the loop's pool).
 */
static const struct srv_db_stmt stmt_ingest = {
	"report_ingest",
	"SELECT outcome, new_events, campaign_changes, suspect, refusal_events"
	" FROM report_ingest($1, $2::jsonb, decode($3, 'hex'), $4::integer)",
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
	pthread_mutex_t lock; /* budget, held, stopping */
	pthread_cond_t wake; /* flusher tick, stop, idle */
	pthread_mutex_t db_lock;
	PGconn *conn; /* under db_lock */
	char *conninfo;
	bool prepared; /* a named statement on each connection */
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

static bool db_connect(struct srv_ingest *ing)
{
	static const char *const keys[] = {"dbname", "connect_timeout", "application_name", NULL};
	char timeout[SRV_U32_TEXT_BYTES];
	char *conninfo = NULL;
	const char *values[4] = {NULL, timeout, "ota-server-ingest", NULL};
	double deadline = srv_now() + ing->deadline_ms / 1000.0;
	PGresult *res;
	bool ok;

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
	    PQsetnonblocking(ing->conn, 1) != 0 ||
	    (ing->prepared &&
	     !PQsendPrepare(ing->conn, stmt_ingest.name, stmt_ingest.sql, 0, NULL))) {
		srv_log(SRV_LOG_WARN, "ingest: database connection failed: %s",
			ing->conn != NULL ? PQerrorMessage(ing->conn) : "out of memory");
		db_drop(ing);
		return false;
	}
	if (!ing->prepared)
		return true;
	res = wait_result(ing->conn, deadline);
	ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok) {
		srv_log(SRV_LOG_WARN, "ingest: prepare failed: %s",
			res != NULL ? PQresultErrorMessage(res) : "deadline or connection lost");
		db_drop(ing);
	}
	PQclear(res);
	return ok;
}

/* SQLSTATE classes worth another try: connection, transaction rollback
 * (serialization, deadlock), resources, operator intervention, system. */
static bool sqlstate_transient(const char *state)
{
	static const char *const classes[] = {"08", "40", "53", "57", "58"};

	if (state == NULL)
		return true;
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		if (strncmp(state, classes[i], 2) == 0)
			return true;
	}
	return false;
}

enum call_rc { CALL_OK, CALL_RETRY, CALL_FAIL };

static enum call_rc db_call(struct srv_ingest *ing, const char *const params[4],
			    struct srv_ingest_result *result)
{
	/* in the order of enum srv_ingest_outcome */
	static const char *const outcomes[] = {"stored", "duplicate", "replay", "decommissioned",
					       "stale"};
	double deadline = srv_now() + ing->deadline_ms / 1000.0;
	enum call_rc rc = CALL_RETRY;
	PGresult *res;

	if (!db_connect(ing))
		return CALL_RETRY;
	if (ing->prepared ? !PQsendQueryPrepared(ing->conn, stmt_ingest.name, stmt_ingest.n_params,
						 params, NULL, NULL, 0)
			  : !PQsendQueryParams(ing->conn, stmt_ingest.sql, stmt_ingest.n_params,
					       NULL, params, NULL, NULL, 0)) {
		db_drop(ing);
		return CALL_RETRY;
	}
	res = wait_result(ing->conn, deadline);
	if (res == NULL) {
		/* the call may still commit: a retry of it is a duplicate */
		srv_log(SRV_LOG_WARN, "ingest: report %s seq %llu: no answer within %u ms",
			result->device, (unsigned long long)result->seq, ing->deadline_ms);
		db_drop(ing);
		return CALL_RETRY;
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 5) {
		const char *outcome = PQgetvalue(res, 0, 0);

		rc = CALL_FAIL;
		for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
			if (strcmp(outcome, outcomes[i]) == 0) {
				result->outcome = (enum srv_ingest_outcome)i;
				rc = CALL_OK;
			}
		}
		result->new_events = atoll(PQgetvalue(res, 0, 1));
		result->campaign_changes = atoll(PQgetvalue(res, 0, 2));
		result->suspect = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
		result->refusal_events = atoll(PQgetvalue(res, 0, 4));
	} else {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		rc = sqlstate_transient(state) ? CALL_RETRY : CALL_FAIL;
		srv_log(SRV_LOG_ERROR, "ingest: report %s seq %llu: %s", result->device,
			(unsigned long long)result->seq, PQresultErrorMessage(res));
		if (PQstatus(ing->conn) != CONNECTION_OK)
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

/* Stores doc (until stored, refused by the database, or stopped). */
static void store(struct srv_ingest *ing, const struct srv_report_doc *doc, unsigned refused,
		  struct srv_ingest_result *result)
{
	char digest[SRV_SHA256_HEX_BYTES], refused_text[SRV_U32_TEXT_BYTES];
	char *text = json_dumps(doc->json, JSON_COMPACT);
	const char *params[4] = {result->device, text, digest, refused_text};
	unsigned delay = SRV_INGEST_RETRY_MIN_MS;

	result->merged = doc->merged;
	result->flood_refused = refused;
	if (text == NULL) {
		result->outcome = SRV_INGEST_FAILED;
		return;
	}
	srv_hex_encode(doc->digest, sizeof(doc->digest), digest);
	snprintf(refused_text, sizeof(refused_text), "%u", refused);
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
	free(text);
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

			if (h->doc.json == NULL ||
			    !srv_ratelimit_take(ing->budget, h->device, now, NULL))
				continue;
			refused = held_take(h, &doc, now);
			snprintf(result.device, sizeof(result.device), "%s", h->device);
			result.flushed = true;
			result.seq = doc.seq;
			pthread_mutex_unlock(&ing->lock);
			store(ing, &doc, refused, &result);
			srv_report_doc_clear(&doc);
			ing->cb(ing->cb_arg, &result);
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
		store(ing, &doc, refused, &result);
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

	if (ing == NULL)
		return OTA_ERR_NOMEM;
	pthread_mutex_init(&ing->lock, NULL);
	pthread_mutex_init(&ing->db_lock, NULL);
	pthread_cond_init(&ing->wake, NULL);
	ing->cb = cb;
	ing->cb_arg = cb_arg;
	ing->deadline_ms = config->deadline_ms;
	ing->prepared = config->prepared;
	ing->conninfo = strdup(config->conninfo);
	ing->arena_mem = malloc(SRV_REPORT_ARENA_BYTES);
	if (ing->conninfo == NULL || ing->arena_mem == NULL ||
	    srv_ratelimit_new(config->rate_per_sec, config->burst, SRV_INGEST_MAX_BUCKETS,
			      &ing->budget) != OTA_OK ||
	    pthread_create(&ing->flusher, NULL, flusher_main, ing) != 0) {
		srv_ingest_free(ing);
		return OTA_ERR_NOMEM;
	}
	ing->flusher_started = true;
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
	for (size_t i = 0; i < SRV_INGEST_MAX_HELD; i++)
		srv_report_doc_clear(&ing->held[i].doc);
	db_drop(ing);
	srv_ratelimit_free(ing->budget);
	free(ing->arena_mem);
	free(ing->conninfo);
	pthread_cond_destroy(&ing->wake);
	pthread_mutex_destroy(&ing->db_lock);
	pthread_mutex_destroy(&ing->lock);
	free(ing);
}
