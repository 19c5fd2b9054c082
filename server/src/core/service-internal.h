/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_SERVICE_INTERNAL_H
#define SRV_SERVICE_INTERNAL_H

#include <stdbool.h>

#include <event2/event.h>

#include "fleetota/err.h"

/*
 * The systemd service protocol (sd_notify) for a Type=notify unit:
 * READY=1 once the process serves, WATCHDOG=1 from the event loop at half
 * of WATCHDOG_USEC (a loop that hangs stops the pings and systemd restarts
 * the process), STOPPING=1 when shutdown begins, STATUS= lines for
 * `systemctl status`. Outside systemd (no NOTIFY_SOCKET) every call is a
 * no-op.
 */
struct srv_service;

/* Returns true once the process is ready to serve (e.g. the database is up). */
typedef bool (*srv_service_ready_fn)(void *arg);

/*
 * Starts watching on base: pings the watchdog when systemd asked for one,
 * polls is_ready every SRV_SERVICE_READY_POLL_MS until it returns true and
 * then sends READY=1. is_ready == NULL: ready at once.
 */
enum ota_err srv_service_start(struct event_base *base, srv_service_ready_fn is_ready, void *arg,
			       struct srv_service **ret_service);

/* STOPPING=1: sent when shutdown begins (needs no state: signal handlers). */
void srv_service_stopping(void);

/* Stops the timers; NULL is fine. */
void srv_service_free(struct srv_service *service);

#define SRV_SERVICE_READY_POLL_MS 100

#endif
