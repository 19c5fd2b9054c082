/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "log-internal.h"
#include "rollout.h"
#include "server-internal.h"
#include "srv-limits.h"

/* "{" + ids of up to 20 digits and a comma each + "}" + NUL */
#define IDS_BYTES (SRV_ROLLOUT_MAX_NOTIFY * 21u + 3u)
/* a tick row: the Notify fields, then the fencing token */
#define TICK_COLUMNS (SRV_ROLLOUT_TICK_HEALTH_COLUMN + 1)
/* a failpoint first waits this long for the broker to acknowledge the last publish (test hook) */
#define FAILPOINT_WAIT_MS 3000u

struct srv_rollout {
	struct srv_server *srv;
	struct event *ev_timer;
	bool in_flight; /* one database call at a time */
	bool tick_due;
	unsigned tick_ms;
	unsigned lease_s;
	uint64_t tick_sent_ms; /* monotonic: when the running tick was sent */
	char server_id[SRV_ROLLOUT_MAX_SERVER_ID + 1];
	char *ids;
	char *fences;
	/* acknowledged publishes waiting for rollout_published */
	uint64_t *ack_seq;
	uint64_t *ack_fence;
	size_t n_acks;
	uint64_t acks_dropped;
	/* test hook */
	enum srv_rollout_failpoint failpoint;
	unsigned failpoint_n;
	const char *failpoint_arm;
	const char *failpoint_name;
};

/* The statements (migrations/code/rollout_engine.sql), in one table. */
enum { STMT_TICK, STMT_PUBLISHED };
static const struct srv_db_stmt stmts[] = {
	[STMT_TICK] = {"rol_tick",
		       "SELECT notification_id, campaign_id, device_id, kind, artifact_id, version,"
		       " version_code, is_security_update, keylist_version, fence, health_window_s"
		       " FROM rollout_tick($1, NULL, $2::int, 32, $3::int)",
		       3},
	[STMT_PUBLISHED] = {"rol_published",
			    "SELECT rollout_published($1::bigint[], $2::bigint[], $3)", 3},
};

enum ota_err srv_rollout_prepare(struct srv_server *srv)
{
	return srv_db_prepare_stmts(srv->db, stmts, sizeof(stmts) / sizeof(stmts[0]));
}

unsigned srv_rollout_env_uint(const char *name, unsigned def, unsigned min, unsigned max)
{
	const char *text = getenv(name);
	char *end;
	unsigned long value;

	if (text == NULL || text[0] == '\0')
		return def;
	errno = 0;
	value = strtoul(text, &end, 10);
	if (errno != 0 || *end != '\0' || text[0] == '-' || value < min || value > max) {
		srv_log(SRV_LOG_WARN, "%s=%.32s out of range %u..%u, using %u", name, text, min,
			max, def);
		return def;
	}
	return (unsigned)value;
}

static bool parse_u64(const char *text, uint64_t *ret)
{
	char *end;
	unsigned long long value;

	if (text == NULL || text[0] == '\0') {
		*ret = 0;
		return true;
	}
	if (text[0] == '-')
		return false;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*ret = (uint64_t)value;
	return true;
}

static const char *or_empty(const char *s)
{
	return s != NULL ? s : "";
}

enum ota_err srv_rollout_notify_from_row(const char *const fields[SRV_ROLLOUT_TICK_COLUMNS],
					 uint64_t issued_at, Fleetota__V1__Notify *notify)
{
	Fleetota__V1__Notify n = FLEETOTA__V1__NOTIFY__INIT;
	const char *kind = or_empty(fields[3]);

	if (!parse_u64(fields[0], &n.seq) || !parse_u64(fields[6], &n.version_code) ||
	    !parse_u64(fields[8], &n.keylist_version) || n.seq == 0)
		return OTA_ERR_FORMAT;
	if (strcmp(kind, "firmware") == 0)
		n.kind = FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_FIRMWARE;
	else if (strcmp(kind, "keylist") == 0)
		n.kind = FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_KEYLIST;
	else if (strcmp(kind, "rootlist") == 0)
		n.kind = FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_ROOTLIST;
	else
		return OTA_ERR_FORMAT;
	n.campaign_id = (char *)or_empty(fields[1]);
	if (n.kind == FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_FIRMWARE) {
		n.artifact = (char *)or_empty(fields[4]);
		n.version = (char *)or_empty(fields[5]);
		n.is_security_update = fields[7] != NULL && strcmp(fields[7], "t") == 0;
		if (n.artifact[0] == '\0')
			return OTA_ERR_FORMAT;
	} else {
		n.version_code = 0;
	}
	n.issued_at = issued_at;
	*notify = n;
	return OTA_OK;
}

enum ota_err srv_rollout_ids_append(char *buf, size_t cap, size_t *len, uint64_t id)
{
	char digits[SRV_U64_TEXT_BYTES];
	int n = snprintf(digits, sizeof(digits), "%" PRIu64, id);
	size_t need = (size_t)n + 1u; /* '{' or ',' first */

	/* room for the digits, then the closing '}' and the NUL */
	if (n <= 0 || cap < 3u || *len > cap - 2u || need > cap - 2u - *len)
		return OTA_ERR_SIZE;
	buf[*len] = *len == 0 ? '{' : ',';
	memcpy(buf + *len + 1u, digits, (size_t)n);
	*len += need;
	buf[*len] = '\0';
	return OTA_OK;
}

enum ota_err srv_rollout_ids_close(char *buf, size_t cap, size_t *len)
{
	if (*len == 0) {
		if (cap < 3u)
			return OTA_ERR_SIZE;
		memcpy(buf, "{}", 3u);
		*len = 2u;
		return OTA_OK;
	}
	if (*len > cap || cap - *len < 2u)
		return OTA_ERR_SIZE;
	buf[(*len)++] = '}';
	buf[*len] = '\0';
	return OTA_OK;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool srv_rollout_lease_valid(uint64_t now, uint64_t sent_ms, unsigned lease_s)
{
	uint64_t lease_ms = (uint64_t)lease_s * 1000u;
	uint64_t margin = lease_ms / 4u > 500u ? lease_ms / 4u : 500u;

	return now >= sent_ms && now - sent_ms + margin < lease_ms;
}

enum ota_err srv_rollout_failpoint_parse(const char *text, enum srv_rollout_failpoint *ret_fp,
					 unsigned *ret_n)
{
	static const char publish[] = "publish-";
	char *end;
	unsigned long n;

	if (strcmp(text, "tick-sent") == 0) {
		*ret_fp = SRV_ROLLOUT_FP_TICK_SENT;
		*ret_n = 0;
		return OTA_OK;
	}
	if (strcmp(text, "tick-result") == 0) {
		*ret_fp = SRV_ROLLOUT_FP_TICK_RESULT;
		*ret_n = 0;
		return OTA_OK;
	}
	if (strncmp(text, publish, sizeof(publish) - 1u) != 0)
		return OTA_ERR_FORMAT;
	text += sizeof(publish) - 1u;
	if (text[0] < '1' || text[0] > '9')
		return OTA_ERR_FORMAT;
	errno = 0;
	n = strtoul(text, &end, 10);
	if (errno != 0 || *end != '\0' || n > SRV_ROLLOUT_MAX_NOTIFY)
		return OTA_ERR_FORMAT;
	*ret_fp = SRV_ROLLOUT_FP_PUBLISH;
	*ret_n = (unsigned)n;
	return OTA_OK;
}

/* The test hook: stops this process once at the named step (see the header). */
static void failpoint(struct srv_rollout *r, enum srv_rollout_failpoint at)
{
	if (r->failpoint != at || (r->failpoint_arm != NULL && access(r->failpoint_arm, F_OK) != 0))
		return;
	r->failpoint = SRV_ROLLOUT_FP_NONE;
	/*
	 * What was handed to Paho before the stop belongs to the lease we held
	 * then; let the broker take it first, so that what the test sees after
	 * SIGCONT is only what this instance does as a stale one.
	 */
	srv_mqtt_wait_last(r->srv->mqtt, FAILPOINT_WAIT_MS);
	srv_log(SRV_LOG_WARN, "rollout: failpoint %s: stopping", r->failpoint_name);
	raise(SIGSTOP);
	srv_log(SRV_LOG_WARN, "rollout: failpoint %s: resumed", r->failpoint_name);
}

static void arm(struct srv_rollout *r)
{
	struct timeval delay = {(time_t)(r->tick_ms / 1000u),
				(suseconds_t)((r->tick_ms % 1000u) * 1000u)};

	evtimer_add(r->ev_timer, &delay);
}

static void pump(struct srv_rollout *r);

static void published_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct srv_rollout *r = arg;

	r->in_flight = false;
	if (err == OTA_ERR_BUSY)
		return; /* shutting down */
	if (err != OTA_OK)
		srv_log(SRV_LOG_WARN, "rollout: marking notifications published failed: %s",
			res != NULL ? PQresultErrorMessage(res) : ota_err_name(err));
	else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		srv_log(SRV_LOG_DEBUG, "rollout: %s acknowledged notifications marked published",
			PQgetvalue(res, 0, 0));
	pump(r);
}

/*
 * Marks what the broker acknowledged, under the fencing tokens the
 * notifications were published with: the database refuses stale ones.
 */
static void flush_acks(struct srv_rollout *r)
{
	size_t ids_len = 0, fences_len = 0;
	const char *params[3] = {r->ids, r->fences, r->server_id};
	size_t n = r->n_acks;

	r->n_acks = 0;
	for (size_t i = 0; i < n; i++)
		if (srv_rollout_ids_append(r->ids, IDS_BYTES, &ids_len, r->ack_seq[i]) != OTA_OK ||
		    srv_rollout_ids_append(r->fences, IDS_BYTES, &fences_len, r->ack_fence[i]) !=
			    OTA_OK)
			return; /* cannot happen: at most SRV_ROLLOUT_MAX_NOTIFY acks */
	if (srv_rollout_ids_close(r->ids, IDS_BYTES, &ids_len) != OTA_OK ||
	    srv_rollout_ids_close(r->fences, IDS_BYTES, &fences_len) != OTA_OK)
		return;
	if (srv_db_exec_stmt(r->srv->db, &stmts[STMT_PUBLISHED], params, false, SRV_DB_RETRY,
			     published_cb, r) == OTA_OK)
		r->in_flight = true;
	else
		srv_log(SRV_LOG_WARN,
			"rollout: could not queue rollout_published (%zu issued again "
			"after the lease)",
			n);
}

/* The broker acknowledged one notification (loop thread, from the MQTT bridge). */
static void on_ack(void *arg, uint64_t seq, uint64_t fence)
{
	struct srv_rollout *r = arg;

	if (r->n_acks == SRV_ROLLOUT_MAX_NOTIFY) {
		/* not marked: issued again after the lease, which is allowed */
		r->acks_dropped++;
		return;
	}
	r->ack_seq[r->n_acks] = seq;
	r->ack_fence[r->n_acks] = fence;
	r->n_acks++;
	pump(r);
}

/*
 * Before publishing: the firmware rows' devices, per artifact, to the
 * delivery's assignment view, which asks once what they will be served
 * (their manifest and image requests follow the Notify).
 */
static void prefill(struct srv_rollout *r, const PGresult *res)
{
	int rows = PQntuples(res);
	const char **devices;
	bool *done;

	if (rows <= 0 || r->srv->assign_cache == NULL)
		return;
	devices = calloc((size_t)rows, sizeof(*devices));
	done = calloc((size_t)rows, sizeof(*done));
	for (int first = 0; devices != NULL && done != NULL && first < rows; first++) {
		const char *artifact = PQgetvalue(res, first, 4);
		size_t n = 0;

		if (done[first] || strcmp(PQgetvalue(res, first, 3), "firmware") != 0 ||
		    PQgetisnull(res, first, 4) || PQgetisnull(res, first, 2))
			continue;
		for (int row = first; row < rows; row++) {
			if (!done[row] && strcmp(PQgetvalue(res, row, 3), "firmware") == 0 &&
			    !PQgetisnull(res, row, 2) &&
			    strcmp(PQgetvalue(res, row, 4), artifact) == 0) {
				done[row] = true;
				devices[n++] = PQgetvalue(res, row, 2);
			}
		}
		srv_delivery_notified(r->srv, artifact, devices, n);
	}
	free(devices);
	free(done);
}

/* Publishes a tick's rows while the lease is surely ours, re-checked before each. */
static void publish_rows(struct srv_rollout *r, const PGresult *res)
{
	uint64_t now = (uint64_t)time(NULL);
	unsigned published = 0, failed = 0, fenced = 0;
	int rows = PQntuples(res);

	if (PQnfields(res) != TICK_COLUMNS) {
		srv_log(SRV_LOG_ERROR, "rollout: tick returned %d columns, expected %d",
			PQnfields(res), TICK_COLUMNS);
		return;
	}
	if (rows > 0)
		failpoint(r, SRV_ROLLOUT_FP_TICK_RESULT);
	prefill(r, res);
	for (int row = 0; row < rows; row++) {
		const char *fields[TICK_COLUMNS];
		Fleetota__V1__Notify notify;
		uint64_t fence, health_window;
		char *end;
		const char *device;

		if (r->failpoint == SRV_ROLLOUT_FP_PUBLISH && published == r->failpoint_n)
			failpoint(r, SRV_ROLLOUT_FP_PUBLISH);
		/* re-checked before every publish: a stopped process resumes here */
		if (!srv_rollout_lease_valid(now_ms(), r->tick_sent_ms, r->lease_s)) {
			fenced = (unsigned)(rows - row);
			break;
		}
		for (int col = 0; col < TICK_COLUMNS; col++)
			fields[col] = PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
		device = or_empty(fields[2]);
		if (srv_rollout_notify_from_row(fields, now, &notify) != OTA_OK ||
		    fields[SRV_ROLLOUT_TICK_FENCE_COLUMN] == NULL) {
			srv_log(SRV_LOG_ERROR, "rollout: unusable tick row for %.64s", device);
			failed++;
			continue;
		}
		errno = 0;
		fence = strtoull(fields[SRV_ROLLOUT_TICK_FENCE_COLUMN], &end, 10);
		if (errno != 0 || *end != '\0' ||
		    !parse_u64(fields[SRV_ROLLOUT_TICK_HEALTH_COLUMN], &health_window) ||
		    health_window > UINT32_MAX) {
			failed++;
			continue;
		}
		notify.health_window_seconds = (uint32_t)health_window;
		/* not published: stays unacknowledged and is issued again after the lease */
		if (srv_mqtt_notify_tracked(r->srv->mqtt, device, &notify, fence) != OTA_OK) {
			failed++;
			continue;
		}
		published++;
		srv_log(SRV_LOG_DEBUG,
			"rollout: publish %" PRIu64 " to %s (%s, campaign %s, fence %" PRIu64 ")",
			notify.seq, device, or_empty(fields[3]), notify.campaign_id, fence);
	}
	if (published + failed + fenced > 0)
		srv_log(SRV_LOG_INFO, "rollout: %u notifications published, %u failed", published,
			failed);
	if (fenced > 0)
		srv_log(SRV_LOG_WARN,
			"rollout: lease no longer surely ours (%u ms since the tick): %u "
			"notifications not published (fenced)",
			(unsigned)(now_ms() - r->tick_sent_ms), fenced);
}

static void tick_done_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct srv_rollout *r = arg;

	r->in_flight = false;
	r->tick_due = false;
	if (err == OTA_ERR_BUSY)
		return;
	if (err != OTA_OK)
		srv_log(SRV_LOG_ERROR, "rollout: tick failed: %s",
			res != NULL ? PQresultErrorMessage(res) : ota_err_name(err));
	else
		publish_rows(r, res);
	if (r->acks_dropped > 0) {
		srv_log(SRV_LOG_WARN,
			"rollout: %" PRIu64 " acknowledgements not recorded (queue full)",
			r->acks_dropped);
		r->acks_dropped = 0;
	}
	arm(r);
	pump(r);
}

static void start_tick(struct srv_rollout *r)
{
	char lease[SRV_U32_TEXT_BYTES], max_notify[SRV_U32_TEXT_BYTES];
	const char *params[3] = {r->server_id, lease, max_notify};

	/* claim nothing we could not publish */
	if (r->srv->mqtt == NULL || !srv_mqtt_connected(r->srv->mqtt) ||
	    !srv_db_ready(r->srv->db)) {
		r->tick_due = false;
		arm(r);
		return;
	}
	snprintf(lease, sizeof(lease), "%u", r->lease_s);
	snprintf(max_notify, sizeof(max_notify), "%u", SRV_ROLLOUT_MAX_NOTIFY);
	r->tick_sent_ms = now_ms();
	if (srv_db_exec_stmt(r->srv->db, &stmts[STMT_TICK], params, false, SRV_DB_FAIL_FAST,
			     tick_done_cb, r) != OTA_OK) {
		r->tick_due = false;
		arm(r);
		return;
	}
	r->in_flight = true;
	failpoint(r, SRV_ROLLOUT_FP_TICK_SENT);
}

/* One database call at a time: acknowledgements first, then a due tick. */
static void pump(struct srv_rollout *r)
{
	if (r->in_flight)
		return;
	if (r->n_acks > 0)
		flush_acks(r);
	if (!r->in_flight && r->tick_due)
		start_tick(r);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_rollout *r = arg;

	(void)fd;
	(void)what;
	r->tick_due = true;
	pump(r);
}

static bool server_id_ok(const char *id)
{
	size_t len = strnlen(id, SRV_ROLLOUT_MAX_SERVER_ID + 1u);

	if (len == 0 || len > SRV_ROLLOUT_MAX_SERVER_ID)
		return false;
	for (size_t i = 0; i < len; i++)
		if (id[i] <= 0x20 || id[i] >= 0x7f)
			return false;
	return true;
}

enum ota_err srv_rollout_start(struct srv_server *srv, struct srv_rollout **ret_rollout)
{
	struct srv_rollout *r = calloc(1, sizeof(*r));
	const char *id = getenv("OTA_ROLLOUT_SERVER_ID");
	const char *fp;

	if (r == NULL)
		return OTA_ERR_NOMEM;
	r->srv = srv;
	r->tick_ms = srv_rollout_env_uint("OTA_ROLLOUT_TICK_MS", SRV_ROLLOUT_TICK_MS_DEFAULT,
					  SRV_ROLLOUT_TICK_MS_MIN, SRV_ROLLOUT_TICK_MS_MAX);
	r->lease_s = srv_rollout_env_uint("OTA_ROLLOUT_LEASE_S", SRV_ROLLOUT_LEASE_S_DEFAULT,
					  SRV_ROLLOUT_LEASE_S_MIN, SRV_ROLLOUT_LEASE_S_MAX);
	if (id != NULL && server_id_ok(id)) {
		memcpy(r->server_id, id, strlen(id) + 1u);
	} else {
		char host[SRV_HOST_NAME_BYTES] = "ota-server";

		if (id != NULL)
			srv_log(SRV_LOG_WARN, "OTA_ROLLOUT_SERVER_ID unusable, using hostname:pid");
		if (gethostname(host, sizeof(host)) != 0 || !server_id_ok(host))
			memcpy(host, "ota-server", sizeof("ota-server"));
		host[sizeof(host) - 1u] = '\0';
		snprintf(r->server_id, sizeof(r->server_id), "%s:%ld", host, (long)getpid());
	}
	fp = getenv("OTA_ROLLOUT_FAILPOINT");
	if (fp != NULL && fp[0] != '\0') {
		if (srv_rollout_failpoint_parse(fp, &r->failpoint, &r->failpoint_n) != OTA_OK) {
			srv_log(SRV_LOG_ERROR, "OTA_ROLLOUT_FAILPOINT=%.32s unknown", fp);
			free(r);
			return OTA_ERR_INVALID_ARG;
		}
		r->failpoint_name = fp;
		r->failpoint_arm = getenv("OTA_ROLLOUT_FAILPOINT_ARM");
		srv_log(SRV_LOG_WARN, "rollout: test failpoint %s armed", fp);
	}
	r->ids = malloc(IDS_BYTES);
	r->fences = malloc(IDS_BYTES);
	r->ack_seq = calloc(SRV_ROLLOUT_MAX_NOTIFY, sizeof(*r->ack_seq));
	r->ack_fence = calloc(SRV_ROLLOUT_MAX_NOTIFY, sizeof(*r->ack_fence));
	r->ev_timer = evtimer_new(srv->base, tick_cb, r);
	if (r->ids == NULL || r->fences == NULL || r->ack_seq == NULL || r->ack_fence == NULL ||
	    r->ev_timer == NULL) {
		srv_rollout_stop(r);
		return OTA_ERR_NOMEM;
	}
	srv_mqtt_set_ack_handler(srv->mqtt, on_ack, r);
	srv_log(SRV_LOG_INFO, "rollout: server id %s, tick %u ms, lease %u s", r->server_id,
		r->tick_ms, r->lease_s);
	arm(r);
	*ret_rollout = r;
	return OTA_OK;
}

void srv_rollout_stop(struct srv_rollout *r)
{
	if (r == NULL)
		return;
	if (r->ev_timer != NULL)
		event_free(r->ev_timer);
	free(r->ids);
	free(r->fences);
	free(r->ack_seq);
	free(r->ack_fence);
	free(r);
}
