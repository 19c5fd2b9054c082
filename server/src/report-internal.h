/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_REPORT_INTERNAL_H
#define SRV_REPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fleetota/arena.h"
#include "fleetota/err.h"
#include "ota.pb-c.h"

struct srv_server;

/* Longest device id (certificate CN, MQTT username, topic level). */
#define SRV_MAX_DEVICE_ID 64u
/* Longest MQTT topic we look at. */
#define SRV_MAX_TOPIC_BYTES 256u
/* Free-text details (error_detail, event detail) a report may carry. */
#define SRV_MAX_DETAIL_BYTES 1024u
/* Arena for one decoded StatusReport of OTA_MAX_MQTT_PAYLOAD_BYTES. */
#define SRV_REPORT_ARENA_BYTES (256u * 1024u)

/*
 * Decodes a StatusReport received on topic ("fleetota/v1/{device}/status")
 * into arena and checks it: the topic names a valid device id, the report's
 * device_id is empty or the same, every string and list is within its
 * limit, error names are ours, numbers fit PostgreSQL's bigint, events have
 * a seq. Writes the device id (from the topic, which the broker's ACL ties
 * to the certificate) into ret_device. OTA_OK and *ret_report; OTA_ERR_SIZE
 * (payload too big), OTA_ERR_FORMAT (anything else).
 */
enum ota_err srv_report_decode(const uint8_t *payload, size_t len, const char *topic,
			       struct ota_arena *arena, Fleetota__V1__StatusReport **ret_report,
			       char ret_device[SRV_MAX_DEVICE_ID + 1]);

/* "idle", "downloading", ... for a DeviceState; "unknown" otherwise. */
const char *srv_report_state_name(int state);
/* "install_started", ... for an EventKind; "unknown" otherwise. */
const char *srv_report_event_name(int kind);

/* Registers the statements of report storage (before srv_db_start). */
enum ota_err srv_report_prepare(struct srv_server *srv);

/*
 * Decodes and stores one report on the loop thread: device registry upsert
 * (never a decommissioned device; stale seqs do not overwrite newer state)
 * and its events (idempotent on (device, seq)). Queued with SRV_DB_RETRY,
 * so it survives a database restart.
 */
void srv_report_handle(struct srv_server *srv, const char *topic, const uint8_t *payload,
		       size_t len);

#endif
