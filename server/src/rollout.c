/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log-internal.h"
#include "mqtt-internal.h"
#include "report-internal.h"
#include "rollout-internal.h"
#include "server-internal.h"

/* "{" + ids of up to 20 digits and a comma each + "}" + NUL */
#define IDS_BYTES (SRV_ROLLOUT_MAX_NOTIFY * 21u + 3u)

struct srv_rollout {
	struct srv_server *srv;
	struct event *ev_timer;
	bool in_flight;
	unsigned tick_ms;
	unsigned lease_s;
	char server_id[SRV_ROLLOUT_MAX_SERVER_ID + 1];
	char *ids;
};

static const char sql_tick[] =
	"SELECT notification_id, campaign_id, device_id, kind, artifact_id, version,"
	" version_code, is_security_update, keylist_version"
	" FROM rollout_tick($1, NULL, $2::int, 32, $3::int)";

static const char sql_published[] = "SELECT rollout_published($1::bigint[])";

static const char sql_report[] =
	"SELECT rollout_report($1, $2, $3::bigint, $4::bigint, $5::bigint, $6, $7)";

enum ota_err srv_rollout_prepare(struct srv_server *srv)
{
	enum ota_err err = srv_db_prepare(srv->db, "rol_tick", sql_tick);

	if (err == OTA_OK)
		err = srv_db_prepare(srv->db, "rol_published", sql_published);
	if (err == OTA_OK)
		err = srv_db_prepare(srv->db, "rol_report", sql_report);
	return err;
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
	char digits[24];
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

static void arm(struct srv_rollout *r)
{
	struct timeval delay = {(time_t)(r->tick_ms / 1000u),
				(suseconds_t)((r->tick_ms % 1000u) * 1000u)};

	evtimer_add(r->ev_timer, &delay);
}

static void published_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct srv_rollout *r = arg;

	r->in_flight = false;
	if (err == OTA_ERR_BUSY)
		return; /* shutting down */
	if (err != OTA_OK)
		srv_log(SRV_LOG_WARN, "rollout: marking notifications published failed: %s",
			res != NULL ? PQresultErrorMessage(res) : ota_err_name(err));
	arm(r);
}

static void tick_done_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct srv_rollout *r = arg;
	uint64_t now = (uint64_t)time(NULL);
	size_t len = 0;
	unsigned published = 0, failed = 0;

	r->in_flight = false;
	if (err == OTA_ERR_BUSY)
		return;
	if (err != OTA_OK) {
		srv_log(SRV_LOG_ERROR, "rollout: tick failed: %s",
			res != NULL ? PQresultErrorMessage(res) : ota_err_name(err));
		arm(r);
		return;
	}
	for (int row = 0; row < PQntuples(res); row++) {
		const char *fields[SRV_ROLLOUT_TICK_COLUMNS];
		Fleetota__V1__Notify notify;
		const char *device;

		if (PQnfields(res) != SRV_ROLLOUT_TICK_COLUMNS)
			break;
		for (int col = 0; col < SRV_ROLLOUT_TICK_COLUMNS; col++)
			fields[col] = PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
		device = or_empty(fields[2]);
		if (srv_rollout_notify_from_row(fields, now, &notify) != OTA_OK) {
			srv_log(SRV_LOG_ERROR, "rollout: unusable tick row for %.64s", device);
			failed++;
			continue;
		}
		/*
		 * A notification not published stays unmarked: the engine issues
		 * it again after the lease (a Notify is only a hint).
		 */
		if (srv_mqtt_notify(r->srv->mqtt, device, &notify) != OTA_OK) {
			failed++;
			continue;
		}
		if (srv_rollout_ids_append(r->ids, IDS_BYTES, &len, notify.seq) != OTA_OK)
			break;
		published++;
		srv_log(SRV_LOG_DEBUG, "rollout: notified %s (%s, campaign %s)", device,
			or_empty(fields[3]), notify.campaign_id);
	}
	if (published + failed > 0)
		srv_log(SRV_LOG_INFO, "rollout: %u notifications published, %u failed", published,
			failed);
	if (len > 0 && srv_rollout_ids_close(r->ids, IDS_BYTES, &len) == OTA_OK) {
		const char *params[1] = {r->ids};

		if (srv_db_exec(r->srv->db, "rol_published", 1, params, false, SRV_DB_RETRY,
				published_cb, r) == OTA_OK) {
			r->in_flight = true;
			return;
		}
		srv_log(SRV_LOG_WARN, "rollout: could not queue rollout_published");
	}
	arm(r);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_rollout *r = arg;
	char lease[16], max_notify[16];
	const char *params[3] = {r->server_id, lease, max_notify};

	(void)fd;
	(void)what;
	if (r->in_flight)
		return;
	/* claim nothing we could not publish */
	if (r->srv->mqtt == NULL || !srv_mqtt_connected(r->srv->mqtt) ||
	    !srv_db_ready(r->srv->db)) {
		arm(r);
		return;
	}
	snprintf(lease, sizeof(lease), "%u", r->lease_s);
	snprintf(max_notify, sizeof(max_notify), "%u", SRV_ROLLOUT_MAX_NOTIFY);
	if (srv_db_exec(r->srv->db, "rol_tick", 3, params, false, SRV_DB_FAIL_FAST, tick_done_cb,
			r) == OTA_OK)
		r->in_flight = true;
	else
		arm(r);
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
		char host[64] = "ota-server";

		if (id != NULL)
			srv_log(SRV_LOG_WARN, "OTA_ROLLOUT_SERVER_ID unusable, using hostname:pid");
		if (gethostname(host, sizeof(host)) != 0 || !server_id_ok(host))
			memcpy(host, "ota-server", sizeof("ota-server"));
		host[sizeof(host) - 1u] = '\0';
		snprintf(r->server_id, sizeof(r->server_id), "%s:%ld", host, (long)getpid());
	}
	r->ids = malloc(IDS_BYTES);
	r->ev_timer = evtimer_new(srv->base, tick_cb, r);
	if (r->ids == NULL || r->ev_timer == NULL) {
		srv_rollout_stop(r);
		return OTA_ERR_NOMEM;
	}
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
	free(r);
}

static void report_cb(void *arg, enum ota_err err, const PGresult *res)
{
	(void)arg;
	if (err != OTA_OK && err != OTA_ERR_BUSY)
		srv_log(SRV_LOG_ERROR, "rollout: report not applied: %s",
			res != NULL ? PQresultErrorMessage(res) : ota_err_name(err));
}

void srv_rollout_report(struct srv_server *srv, const char *device,
			const Fleetota__V1__StatusReport *report)
{
	char version_code[24], kl[24], rl[24];
	const char *params[7];

	if (srv == NULL || srv->db == NULL || device == NULL || report == NULL)
		return;
	snprintf(version_code, sizeof(version_code), "%" PRIu64, report->version_code);
	snprintf(kl, sizeof(kl), "%" PRIu64, report->keylist_version);
	snprintf(rl, sizeof(rl), "%" PRIu64, report->rootlist_version);
	params[0] = device;
	params[1] = srv_report_state_name((int)report->state);
	params[2] = version_code;
	params[3] = kl;
	params[4] = rl;
	params[5] = or_empty(report->error);
	params[6] = or_empty(report->campaign_id);
	if (srv_db_exec(srv->db, "rol_report", 7, params, false, SRV_DB_RETRY, report_cb, NULL) !=
	    OTA_OK)
		srv_log(SRV_LOG_WARN, "rollout: report of %s not queued", device);
}
