/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_NOTIFY_INTERNAL_H
#define SRV_NOTIFY_INTERNAL_H

#include "fleetota/err.h"

struct srv_server;
struct srv_notifier;

/*
 * The assignment notifier: every notify_poll_ms it claims up to
 * notify_batch assignments that were never notified (UPDATE ... FROM
 * (SELECT ... FOR UPDATE SKIP LOCKED), so several servers share the work
 * and none notifies twice) and publishes a firmware Notify for each. The
 * rollout engine (issue 7) decides *which* assignments exist and when
 * (notify_after); this only delivers the hint.
 */
enum ota_err srv_notifier_prepare(struct srv_server *srv);
enum ota_err srv_notifier_start(struct srv_server *srv, struct srv_notifier **ret_notifier);
void srv_notifier_stop(struct srv_notifier *notifier);

#endif
