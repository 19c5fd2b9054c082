/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEET_MQTT_H
#define FLEET_MQTT_H

/*
 * ota-fleet-sim's MQTT transport: thousands of device sessions on one
 * libevent loop, each a libmosquitto client driven through its external-loop
 * API (mosquitto_socket, mosquitto_loop_read/write/misc). The contract is the
 * agent's (agent/port/linux/mqtt.c, DESIGN.md section 4): MQTT 5, TLS 1.2+
 * with the device's own certificate and the broker's verified against the
 * CA (host name included), a persistent session (clean start off, session
 * expiry OTA_MQTT_SESSION_EXPIRY_S), keep-alive 30 s, subscribed at QoS 1
 * to fleetota/v1/{device}/cmd on every connect, StatusReports published at
 * QoS 1 to fleetota/v1/{device}/status. Lost sessions reconnect with a
 * backoff of 1 s doubling to 30 s; a connect that does not finish in 30 s
 * starts again.
 *
 * Everything runs on the loop's thread except fleet_mq_publish, which any
 * thread may call: it copies the payload and hands it to the loop.
 * Callbacks run on the loop's thread: they must only hand work over.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"
#include "ota_mqtt.h"

struct event_base;
struct fleet_mq;
struct fleet_mq_session;

/* A loop on BASE (made after evthread_use_pthreads()); NULL on failure. */
struct fleet_mq *fleet_mq_new(struct event_base *base);
/* Stops every session still open, drops what was not sent; NULL is fine. */
void fleet_mq_free(struct fleet_mq *mq);

/*
 * Starts a session (on the loop's thread). The broker URL is
 * ssl://HOST:PORT or mqtts://HOST:PORT; the TCP connect of the first
 * attempt blocks (a loopback broker answers at once), the TLS handshake and
 * everything after do not. OTA_ERR_INVALID_ARG for a bad URL or a device id
 * that cannot be a topic level, OTA_ERR_TRANSPORT when libmosquitto refuses
 * (fleet_mq_out_of_descriptors then says whether for want of a descriptor).
 * A first attempt that fails is retried like a lost connection.
 */
enum ota_err fleet_mq_start(struct fleet_mq *mq, const struct ota_mqtt_config *config,
			    ota_mqtt_message_fn on_message, ota_mqtt_connected_fn on_connected,
			    void *arg, struct fleet_mq_session **ret);

/* Any thread: publishes a StatusReport (QoS 1), queued while disconnected. */
enum ota_err fleet_mq_publish(struct fleet_mq_session *s, const uint8_t *payload, size_t len);

/* Loop's thread: disconnects and frees (what was not handed over is dropped). */
void fleet_mq_stop(struct fleet_mq_session *s);

/* Sessions that have a CONNACK now. */
unsigned fleet_mq_connected(const struct fleet_mq *mq);

/*
 * Connect attempts under way (TCP, TLS or CONNACK pending): the ramp
 * keeps this bounded, so a broker slower than the ramp is not handed
 * handshakes that would time out and start over.
 */
unsigned fleet_mq_connecting(const struct fleet_mq *mq);

/*
 * True once a session could not open a socket or a file (its CA,
 * certificate or key) for want of a descriptor (EMFILE, ENFILE): such a
 * session retries in vain, so the caller should stop with an error.
 */
bool fleet_mq_out_of_descriptors(const struct fleet_mq *mq);

#endif
