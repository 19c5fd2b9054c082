/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_DEVICE_H
#define SRV_DEVICE_H

#include <stddef.h>

#include "fleetota/err.h"
#include "mqtt.h"

/*
 * The device component (server/src/device): what main.c and the rollout
 * pump may use. The MQTT transport (mqtt.h) knows no report: main.c hands
 * it srv_report_receiver, which feeds the report ingest. Everything else
 * here is private to the component (its *-internal.h headers).
 */

struct srv_server;
struct srv_db;
struct srv_notifier;
struct srv_timestamps;

/* ---- delivery.c: the device listener ---------------------------------- */

/* Registers the delivery statements (before srv_db_start). */
enum ota_err srv_delivery_prepare(struct srv_db *db);

/* Starts the mTLS device listener from srv->config. */
enum ota_err srv_delivery_start(struct srv_server *srv);

void srv_delivery_stop(struct srv_server *srv);

/*
 * The rollout pump is about to publish firmware Notifies of artifact to
 * devices[0..n): the assignment view asks once what they will be served
 * and keeps it (assign_cache-internal.h, srv_assign_cache_prefill). The
 * strings are copied before this returns. No view (manifest_cache off,
 * no listener): nothing.
 */
void srv_delivery_notified(struct srv_server *srv, const char *artifact, const char *const *devices,
			   size_t n);

/* ---- notify.c ----------------------------------------------------------- */

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

/* ---- timestamp.c: the timestamp role (timestamp-internal.h) ------------ */

/*
 * Loads timestamp_key (a PEM PKCS#8 file, not readable by group or others)
 * and starts the signing timer. *ret is NULL when timestamp_key is not set.
 */
enum ota_err srv_timestamp_start(struct srv_server *srv, struct srv_timestamps **ret);

/* Stops the timer, wipes the key. NULL is fine. */
void srv_timestamp_stop(struct srv_timestamps *ts);

/* ---- report.c, receiver.c: status reports ------------------------------ */

/* Registers the loop's statements of the report module (before srv_db_start). */
enum ota_err srv_report_prepare(struct srv_server *srv);

/* The report ingest as an MQTT receiver (srv_mqtt_start). */
extern const struct srv_mqtt_receiver srv_report_receiver;

#endif
