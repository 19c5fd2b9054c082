/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_MQTT_H
#define OTA_MQTT_H

/*
 * The device side of MQTT (DESIGN.md section 4) over Paho MQTT C async:
 * MQTT 5, TLS with the device certificate, a persistent session (QoS 1
 * notifications wait at the broker while the device is away), subscribed
 * to fleetota/v1/{device}/cmd, publishing to fleetota/v1/{device}/status.
 * Callbacks run on Paho's thread: they must only hand work over.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"

struct ota_mqtt;

/* Keep-alive of a device's session (seconds). */
#define OTA_MQTT_KEEPALIVE_S 30

/* True when S can be one level of a topic (1..128 bytes, no '/', '+', '#', blank). */
bool ota_mqtt_topic_level_ok(const char *s);

/* The device's topics: fleetota/v1/{device}/cmd and .../status (OTA_MQTT_TOPIC_MAX each). */
void ota_mqtt_topics(const char *device_id, char *cmd, char *status);

struct ota_mqtt_config {
	const char *url; /* ssl://host:port */
	const char *device_id;
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
};

/* A cmd payload arrived (payload bounded by OTA_MAX_MQTT_PAYLOAD_BYTES). */
typedef void (*ota_mqtt_message_fn)(void *arg, const uint8_t *payload, size_t len);
/* The connection came up (first time or again). */
typedef void (*ota_mqtt_connected_fn)(void *arg);

/*
 * Creates the client and starts connecting (with automatic reconnect).
 * OTA_ERR_INVALID_ARG for a device id that cannot be a topic level.
 */
enum ota_err ota_mqtt_start(const struct ota_mqtt_config *config, ota_mqtt_message_fn on_message,
			    ota_mqtt_connected_fn on_connected, void *arg,
			    struct ota_mqtt **ret_mqtt);

/* Publishes a StatusReport (QoS 1); queued while disconnected. */
enum ota_err ota_mqtt_publish_status(struct ota_mqtt *mqtt, const uint8_t *payload, size_t len);

bool ota_mqtt_is_connected(struct ota_mqtt *mqtt);

/* Disconnects and frees; NULL is fine. */
void ota_mqtt_stop(struct ota_mqtt *mqtt);

#endif
