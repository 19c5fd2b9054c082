/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_AGENT_LIMITS_H
#define FLEETOTA_AGENT_LIMITS_H

/*
 * The agent core's own sizes and bounds, in one place (the wire's are in
 * fleetota/limits.h, the delta applier's in fleetota/delta.h). Change them
 * here and nowhere else.
 */
#include "fleetota/limits.h"

/* Work area the core decodes into during one call (see ota_agent_init). */
#define OTA_AGENT_WORK_BYTES (1024u * 1024u)
/* Default bytes between staging checkpoints (slot sync + state write). */
#define OTA_AGENT_CHECKPOINT_BYTES (1024u * 1024u)
/* Fixed text fields of the persisted state. */
#define OTA_AGENT_VERSION_BYTES (OTA_MAX_STRING_BYTES + 1u)
#define OTA_AGENT_DETAIL_BYTES 96u
/* struct ota_fetch_result's detail (a TLS alert's name and number). */
#define OTA_FETCH_DETAIL_BYTES 48u
/* A u64 in decimal: 20 digits + NUL. */
#define OTA_AGENT_U64_TEXT_BYTES 21u
/* Chunk used to re-hash a slot (resume, boot verification). */
#define OTA_AGENT_HASH_CHUNK_BYTES 4096u

/* Ring of event records kept in trusted storage. */
#define OTA_AGENT_EVENT_RECORDS 32u
/* Big enough for any encoded state or event record. */
#define OTA_AGENT_RECORD_BYTES 1024u
/*
 * The payload of one record as the core reads it, sized for what it holds
 * (the encoders return 0 if that ever stops fitting): an event (274 bytes),
 * the boot record (196), the counter (17), the freshness record (about 180).
 */
#define OTA_AGENT_EVENT_RECORD_BYTES 320u
#define OTA_AGENT_BOOT_RECORD_BYTES 224u
#define OTA_AGENT_COUNTER_RECORD_BYTES 32u
#define OTA_AGENT_FRESHNESS_RECORD_BYTES 256u

/* Longest artifact and campaign id. */
#define OTA_ONLINE_ARTIFACT_MAX 128u
/* Longest back-off between two download attempts. */
#define OTA_ONLINE_MAX_BACKOFF_S 60u
/* The work area: the manifest, a KeyList and one packed StatusReport. */
#define OTA_ONLINE_WORK_BYTES (2u * OTA_MAX_ENVELOPE_BYTES + OTA_MAX_MQTT_PAYLOAD_BYTES)
/* "GET " + at most this much of the path, as the detail of a failed fetch. */
#define OTA_ONLINE_DETAIL_PATH_MAX 48u

#endif
