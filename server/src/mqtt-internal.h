/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_MQTT_INTERNAL_H
#define SRV_MQTT_INTERNAL_H

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
/* Deadline of one report_ingest() call. */
#define SRV_MQTT_INGEST_DEADLINE_MS 5000u

/* Longest MQTT client id (= the CN of mqtt_cert) taken. */
#define SRV_MQTT_MAX_CLIENT_ID 64u

enum ota_err srv_mqtt_start(struct srv_server *srv, struct srv_mqtt **ret_mqtt);
void srv_mqtt_stop(struct srv_mqtt *mqtt);

bool srv_mqtt_connected(const struct srv_mqtt *mqtt);

/*
 * Publishes a Notify (QoS 1) to fleetota/v1/{device}/cmd. OTA_OK when Paho
 * took it (it buffers while disconnected), OTA_ERR_TRANSPORT otherwise.
 */
enum ota_err srv_mqtt_notify(struct srv_mqtt *mqtt, const char *device,
			     const Fleetota__V1__Notify *notify);

#endif
