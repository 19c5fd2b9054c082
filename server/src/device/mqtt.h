/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_MQTT_H
#define SRV_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"
#include "ota.pb-c.h"

struct srv_server;
struct srv_mqtt;

/*
 * The MQTT bridge: Paho MQTT C async (MQTT 5, TLS with the server's client
 * certificate), automatic reconnect, shared subscription
 * $share/{group}/fleetota/v1/+/status re-made on every connect. Paho calls
 * us on its own threads. A status report is stored on Paho's receive thread
 * before its QoS 1 acknowledgement (ingest-internal.h says why it cannot
 * wait for the loop); the other callbacks and every ingest result are
 * copied into a locked queue and wake the loop (event_active), which keeps
 * the metrics and logs.
 */

/* Most results waiting for the loop (beyond: dropped and counted). */
#define SRV_MQTT_QUEUE_MAX 100000u
/* Deadline of one report_ingest_batch() or report_ingest() call. */
#define SRV_MQTT_INGEST_DEADLINE_MS 5000u

/* Longest MQTT client id (= the CN of mqtt_cert) taken. */
#define SRV_MQTT_MAX_CLIENT_ID 64u

/*
 * Tracked publishes are keyed by their Paho delivery token (the QoS 1
 * packet id, 1..65535, never reused while the publish waits for its
 * PUBACK): one slot per possible token.
 */
#define SRV_MQTT_ACK_SLOTS 65536u

/*
 * What the transport does with status messages: it knows no report (main.c
 * passes srv_report_receiver, device.h). start runs in srv_mqtt_start before
 * the first connect and returns the receiver's state (NULL: failed); message
 * runs on a Paho thread for each status message within the size limit
 * (topic NUL-terminated, clipped to SRV_MAX_TOPIC_BYTES) and returns false
 * when shutting down and not taken (never acknowledged); result runs on the
 * loop thread for each srv_mqtt_post_result; stop, idle (waits up to
 * timeout_ms for message calls to return; false: one is still inside) and
 * free run in srv_mqtt_stop. Every one but start takes a NULL state.
 */
struct srv_mqtt_receiver {
	void *(*start)(struct srv_server *srv, struct srv_mqtt *mqtt);
	bool (*message)(void *state, const char *topic, const uint8_t *payload, size_t len);
	void (*result)(void *state, const void *result, size_t len);
	void (*stop)(void *state);
	bool (*idle)(void *state, unsigned timeout_ms);
	void (*free)(void *state);
};

enum ota_err srv_mqtt_start(struct srv_server *srv, const struct srv_mqtt_receiver *receiver,
			    struct srv_mqtt **ret_mqtt);
void srv_mqtt_stop(struct srv_mqtt *mqtt);

/*
 * Any thread: copies result (len bytes) for the receiver's result callback
 * on the loop thread. Beyond SRV_MQTT_QUEUE_MAX queued it is dropped and
 * counted (rejections "queue_full").
 */
void srv_mqtt_post_result(struct srv_mqtt *mqtt, const void *result, size_t len);
bool srv_mqtt_connected(const struct srv_mqtt *mqtt);
/* The MQTT client id (the CN of mqtt_cert); set before the receiver starts. */
const char *srv_mqtt_client_id(const struct srv_mqtt *mqtt);

/*
 * Publishes a Notify (QoS 1) to fleetota/v1/{device}/cmd. OTA_OK when Paho
 * took it (it buffers while disconnected), OTA_ERR_TRANSPORT otherwise.
 * Taken is not delivered: callers that must know use srv_mqtt_notify_tracked.
 */
enum ota_err srv_mqtt_notify(struct srv_mqtt *mqtt, const char *device,
			     const Fleetota__V1__Notify *notify);

/*
 * Called on the loop thread once the broker acknowledged (QoS 1 PUBACK with
 * a reason code below 0x80) a tracked Notify: its seq and the fencing token
 * it was published under. A publish that fails or is never acknowledged
 * produces no call.
 */
typedef void (*srv_mqtt_ack_fn)(void *arg, uint64_t seq, uint64_t fence);
void srv_mqtt_set_ack_handler(struct srv_mqtt *mqtt, srv_mqtt_ack_fn fn, void *arg);

/*
 * srv_mqtt_notify, tracked: the publish carries the fencing token (MQTT 5
 * user property "fleetota-fence") and its PUBACK reaches the ack handler.
 * OTA_ERR_TRANSPORT when Paho did not take it.
 */
enum ota_err srv_mqtt_notify_tracked(struct srv_mqtt *mqtt, const char *device,
				     const Fleetota__V1__Notify *notify, uint64_t fence);

/*
 * Test hook (rollout failpoints): waits up to timeout_ms for the last
 * tracked publish to complete. Blocks the calling thread; never used on a
 * normal path.
 */
void srv_mqtt_wait_last(struct srv_mqtt *mqtt, unsigned timeout_ms);

#endif
