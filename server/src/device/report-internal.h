/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_REPORT_INTERNAL_H
#define SRV_REPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "fleetota/arena.h"
#include "fleetota/err.h"
#include "ota.pb-c.h"
#include "srv-limits.h"

struct srv_server;

/* Free-text details (error_detail, event detail) a report may carry. */
#define SRV_MAX_DETAIL_BYTES 1024u
/* Most unexpected reboots a health report may claim (StatusReport 31). */
#define SRV_MAX_UNEXPECTED_REBOOTS 1000000u
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

/*
 * A report on its way to report_ingest(): the decoded StatusReport as JSON
 * (the function's p_report), its seq, the SHA-256 of the MQTT payload (a
 * redelivery of the stored report is a duplicate, not a replay), how many
 * reports were coalesced into it and how many events the coalescing bound
 * dropped.
 */
struct srv_report_doc {
	json_t *json;
	uint64_t seq;
	uint8_t digest[OTA_SHA256_BYTES];
	unsigned merged;
	size_t events_dropped;
	/* its events' seqs strictly ascending: a newer report's events that
	 * all follow them are appended without a lookup per held event */
	bool events_ascending;
};

/* Events one coalesced report keeps (the newest by seq). */
#define SRV_REPORT_COALESCE_EVENTS 256u

/* Builds *ret_doc (owns its JSON) from a decoded report and its payload. */
enum ota_err srv_report_doc_new(const Fleetota__V1__StatusReport *r, const uint8_t *payload,
				size_t len, struct srv_report_doc *ret_doc);

/* Frees the JSON and zeroes doc. NULL is fine. */
void srv_report_doc_clear(struct srv_report_doc *doc);

/*
 * Coalesces doc into *into (which may be empty) and empties doc: the fields
 * of the report with the higher seq win, events are the union by seq (the
 * newest SRV_REPORT_COALESCE_EVENTS). OTA_ERR_NOMEM leaves both as they were.
 */
enum ota_err srv_report_merge(struct srv_report_doc *into, struct srv_report_doc *doc);

#endif
