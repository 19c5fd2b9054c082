/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_LIMITS_H
#define SRV_LIMITS_H

/*
 * The server's own limits, shared by its components (the wire limits that
 * agent and server share are in proto/include/fleetota/limits.h). Named
 * srv-limits.h, not limits.h: an -I directory would shadow <limits.h>.
 */
#include "fleetota/limits.h"

/* Longest device id (certificate CN, MQTT username, topic level). */
#define SRV_MAX_DEVICE_ID OTA_MAX_DEVICE_ID_BYTES
/* Longest MQTT topic we look at. */
#define SRV_MAX_TOPIC_BYTES 256u
/* A SHA-256 digest as lowercase hex (store names, token hashes), NUL included. */
#define SRV_SHA256_HEX_BYTES (2u * OTA_SHA256_BYTES + 1u)
/* A number as decimal text for a statement parameter or a header, NUL included. */
#define SRV_U32_TEXT_BYTES 16u /* an int or unsigned */
#define SRV_U64_TEXT_BYTES 24u /* a 64-bit one, signed or not */
/* A port number as text, NUL included. */
#define SRV_PORT_TEXT_BYTES 8u
/* The host part of a *_LISTEN address (config, device and API listeners). */
#define SRV_LISTEN_ADDR_BYTES 256u
/* An OTA_SERVER_* environment variable's name. */
#define SRV_CONFIG_ENV_NAME_BYTES 96u
/* "line N" in a config error. */
#define SRV_CONFIG_WHERE_BYTES 32u
/* A migration's file name (NNNN_name.sql). */
#define SRV_MIGRATION_NAME_BYTES 256u
/* This host's name as the rollout server id. */
#define SRV_HOST_NAME_BYTES 64u
/* The MQTT topic filter the server subscribes to. */
#define SRV_MQTT_SUB_TOPIC_BYTES 128u
/* An assignment cache key: device, artifact and variant. */
#define SRV_ASSIGN_KEY_BYTES 512u
/* A connection's rate-limit address: IPv4, or the /64 of IPv6. */
#define SRV_CONN_ADDR_BYTES 16u
/* A timestamp row's kind column. */
#define SRV_TS_KIND_BYTES 16u
/* Log time stamps: seconds part, and the whole with milliseconds. */
#define SRV_LOG_SECS_BYTES 24u
#define SRV_LOG_STAMP_BYTES 40u
/* Read chunks: hashing a TLS file, copying a file into the store. */
#define SRV_TLS_FILE_CHUNK_BYTES (16u * 1024u)
#define SRV_STORE_COPY_CHUNK_BYTES (64u * 1024u)
/*
 * TLS 1.2 sessions the device listener keeps to resume without decoding
 * their tickets (a power of two; a slot taken by a newer session leaves the
 * older one to its ticket; ~4.2 KB of heap each with its client
 * certificate, so ~34 MB when all are taken), and what names one: a
 * ticket's key name and IV.
 */
#define SRV_TLS_SESSION_CACHE_SLOTS 8192u
#define SRV_TLS_TICKET_ID_BYTES 32u
/*
 * Client certificate chains the device listener remembers as verified
 * (a power of two; docs/server.md "Verified client certificates"), and the
 * largest chain (DER, every certificate the client sent) it remembers:
 * a larger one is verified every time. ~2.3 MB when every slot holds a
 * ~500-byte device certificate, at most ~17 MB.
 */
#define SRV_TLS_VERIFY_CACHE_SLOTS 4096u
#define SRV_TLS_VERIFY_CACHE_MAX_DER (4u * 1024u)

#endif
