/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>

#include <systemd/sd-daemon.h>

#include "log-internal.h"
#include "service-internal.h"

struct srv_service {
	struct event *ready_ev;
	struct event *watchdog_ev;
	srv_service_ready_fn is_ready;
	void *arg;
};

static void ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_service *service = arg;

	(void)fd;
	(void)what;
	if (service->is_ready != NULL && !service->is_ready(service->arg))
		return;
	event_del(service->ready_ev);
	sd_notify(0, "READY=1\nSTATUS=serving");
	srv_log(SRV_LOG_INFO, "ready (service manager notified when there is one)");
}

/* Runs on the loop: a loop stuck anywhere stops these pings. */
static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sd_notify(0, "WATCHDOG=1");
}

enum ota_err srv_service_start(struct event_base *base, srv_service_ready_fn is_ready, void *arg,
			       struct srv_service **ret_service)
{
	struct srv_service *service = calloc(1, sizeof(*service));
	struct timeval poll = {0, SRV_SERVICE_READY_POLL_MS * 1000};
	uint64_t watchdog_usec = 0;

	if (service == NULL)
		return OTA_ERR_NOMEM;
	service->is_ready = is_ready;
	service->arg = arg;
	service->ready_ev = event_new(base, -1, EV_PERSIST, ready_cb, service);
	if (service->ready_ev == NULL || event_add(service->ready_ev, &poll) != 0)
		goto fail;
	/* > 0: systemd set WATCHDOG_USEC for this very process */
	if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
		struct timeval half = {(time_t)(watchdog_usec / 2 / 1000000),
				       (suseconds_t)(watchdog_usec / 2 % 1000000)};

		service->watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, service);
		if (service->watchdog_ev == NULL || event_add(service->watchdog_ev, &half) != 0)
			goto fail;
		srv_log(SRV_LOG_INFO, "watchdog: pinging every %llu ms",
			(unsigned long long)(watchdog_usec / 2 / 1000));
	}
	sd_notify(0, "STATUS=starting: waiting for the database");
	ready_cb(-1, 0, service);
	*ret_service = service;
	return OTA_OK;
fail:
	srv_service_free(service);
	return OTA_ERR_NOMEM;
}

void srv_service_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void srv_service_free(struct srv_service *service)
{
	if (service == NULL)
		return;
	if (service->ready_ev != NULL)
		event_free(service->ready_ev);
	if (service->watchdog_ev != NULL)
		event_free(service->watchdog_ev);
	free(service);
}
