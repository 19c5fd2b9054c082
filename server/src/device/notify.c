/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log-internal.h"
#include "device.h"
#include "server-internal.h"
#include "srv-limits.h"

struct srv_notifier {
	struct srv_server *srv;
	struct event *ev_timer;
	bool in_flight;
	uint64_t seq;
};

/* The statement (migrations/code/notify.sql). */
static const struct srv_db_stmt stmt_claim = {
	"ntf_claim",
	"SELECT device_id, artifact_id, campaign_id, version, version_code, is_security_update"
	" FROM notify_claim($1::int)",
	1,
};

enum ota_err srv_notifier_prepare(struct srv_server *srv)
{
	return srv_db_prepare_stmts(srv->db, &stmt_claim, 1);
}

static void arm(struct srv_notifier *n)
{
	unsigned ms = n->srv->config->notify_poll_ms;
	struct timeval delay = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	evtimer_add(n->ev_timer, &delay);
}

static void claimed_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct srv_notifier *n = arg;

	n->in_flight = false;
	if (err == OTA_ERR_BUSY)
		return; /* shutting down */
	if (err == OTA_OK) {
		for (int row = 0; row < PQntuples(res); row++) {
			Fleetota__V1__Notify notify = FLEETOTA__V1__NOTIFY__INIT;
			const char *device = PQgetvalue(res, row, 0);

			notify.seq = ++n->seq;
			notify.kind = FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_FIRMWARE;
			notify.artifact = PQgetvalue(res, row, 1);
			notify.campaign_id = PQgetvalue(res, row, 2);
			notify.version = PQgetvalue(res, row, 3);
			notify.version_code = strtoull(PQgetvalue(res, row, 4), NULL, 10);
			notify.is_security_update = strcmp(PQgetvalue(res, row, 5), "t") == 0;
			notify.issued_at = (uint64_t)time(NULL);
			if (srv_mqtt_notify(n->srv->mqtt, device, &notify) == OTA_OK)
				srv_log(SRV_LOG_INFO, "notified %s of %s", device, notify.artifact);
		}
	}
	arm(n);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_notifier *n = arg;
	char batch[SRV_U32_TEXT_BYTES];
	const char *params[1] = {batch};

	(void)fd;
	(void)what;
	if (n->in_flight)
		return;
	if (!srv_mqtt_connected(n->srv->mqtt) || !srv_db_ready(n->srv->db)) {
		arm(n);
		return;
	}
	snprintf(batch, sizeof(batch), "%u", n->srv->config->notify_batch);
	if (srv_db_exec_stmt(n->srv->db, &stmt_claim, params, false, SRV_DB_FAIL_FAST, claimed_cb,
			     n) == OTA_OK)
		n->in_flight = true;
	else
		arm(n);
}

enum ota_err srv_notifier_start(struct srv_server *srv, struct srv_notifier **ret_notifier)
{
	struct srv_notifier *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return OTA_ERR_NOMEM;
	n->srv = srv;
	/* Notify seqs only need to grow per server; start from the clock. */
	n->seq = (uint64_t)time(NULL) * 1000u;
	n->ev_timer = evtimer_new(srv->base, tick_cb, n);
	if (n->ev_timer == NULL) {
		free(n);
		return OTA_ERR_NOMEM;
	}
	arm(n);
	*ret_notifier = n;
	return OTA_OK;
}

void srv_notifier_stop(struct srv_notifier *n)
{
	if (n == NULL)
		return;
	event_free(n->ev_timer);
	free(n);
}
