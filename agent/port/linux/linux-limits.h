/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_LINUX_LIMITS_H
#define OTA_LINUX_LIMITS_H

/*
 * The Linux port's sizes and bounds, in one place (the wire's are in
 * fleetota/limits.h, the agent core's in fleetota/agent-limits.h). Change
 * them here and nowhere else.
 */
#include "fleetota/limits.h"

/* ---- config file (every line, key and value is bounded) ---- */
#define OTA_CONFIG_MAX_BYTES (64u * 1024u)
#define OTA_CONFIG_MAX_LINE 1024u
#define OTA_CONFIG_MAX_PATH 512u
#define OTA_CONFIG_MAX_PINS 8u
#define OTA_CONFIG_ERR_BYTES 160u
/* model, hw_revision: a wire string and its NUL (device_id: OTA_MAX_DEVICE_ID_BYTES) */
#define OTA_CONFIG_MAX_NAME (OTA_MAX_STRING_BYTES + 1u)
/* Default slot size (config slot_size). */
#define OTA_LINUX_DEFAULT_SLOT_SIZE (256ull * 1024ull * 1024ull)

/* ---- storage ---- */
/* Default staging checkpoint of the Linux port (config checkpoint_bytes). */
#define OTA_LINUX_CHECKPOINT_BYTES (32u * 1024u * 1024u)
/*
 * The size of the slot writer's buffers: a read-ahead of pieces of this
 * size can hand its pieces over without a copy.
 */
#define OTA_SLOT_WRITER_BUF_BYTES (1024u * 1024u)
/*
 * The alignment of the slot writer's and the read-ahead's buffers: the
 * slot writer writes whole buffers with O_DIRECT (slot_writer.c).
 */
#define OTA_SLOT_WRITER_BUF_ALIGN 4096u
/*
 * Buffers in flight in the slot writer (the writer thread writes up to
 * OTA_SLOT_WRITER_BATCH of them at once, while the core fills the rest)
 * and in the read-ahead.
 */
#define OTA_SLOT_WRITER_RING 8u
#define OTA_SLOT_WRITER_BATCH 4u
#define OTA_READAHEAD_RING 4u
/*
 * The slot writer writes in pieces of this size: one 1 MiB pwrite makes the
 * page cache take it all at once (see slot_writer.c).
 */
#define OTA_SLOT_WRITER_PWRITE_BYTES (64u * 1024u)
/*
 * The slot writer allocates the slot file's blocks this far ahead of its
 * writes (fallocate, keeping the file's size): see slot_writer.c.
 */
#define OTA_SLOT_WRITER_ALLOC_BYTES (32u * 1024u * 1024u)
/* Paths under the state directory: the directory plus a file name. */
#define OTA_LINUX_STATE_PATH_BYTES (OTA_CONFIG_MAX_PATH + 32u)
#define OTA_LINUX_RECORDS_DIR_BYTES (OTA_CONFIG_MAX_PATH + 16u)
/* A record's file name ("manifest0.1") and its base name ("manifest0"). */
#define OTA_LINUX_RECORD_NAME_BYTES 32u
#define OTA_LINUX_RECORD_BASE_BYTES 16u
/* A slot's file name ("slot1.img"). */
#define OTA_LINUX_SLOT_NAME_BYTES 32u
/* A decimal unsigned (slot number in the self-test's environment). */
#define OTA_LINUX_UINT_TEXT_BYTES 16u
/* Small state files: one counter, two counters, the health text. */
#define OTA_LINUX_COUNTER_TEXT_BYTES 32u
#define OTA_LINUX_WINDOW_TEXT_BYTES 48u
#define OTA_LINUX_HEALTH_TEXT_MAX 64u

/* ---- HTTPS client ---- */
/* Response headers as a whole. */
#define OTA_HTTPS_MAX_HEADER_BYTES (16u * 1024u)
/* Slowest accepted transfer after the first stall_timeout seconds. */
#define OTA_HTTPS_MIN_BYTES_PER_S 1024u
#define OTA_HTTPS_MAX_PINS 8u
/* A PKCS#11 key's CKA_EC_PARAMS (DER OID of the curve; P-256's is 10). */
#define OTA_P11_EC_PARAMS_MAX 32u
/* "host:port" the kept session belongs to. */
#define OTA_HTTPS_SESSION_KEY_BYTES 272u
/* A kept session on disk (a TLS 1.3 ticket with a certificate chain is ~3 KiB). */
#define OTA_HTTPS_SESSION_FILE_MAX_BYTES (16u * 1024u)
/* CA files larger than this are not hashed: their sessions stay in memory. */
#define OTA_HTTPS_CA_FILE_MAX_BYTES (1024u * 1024u)
/* Path of the kept-session file. */
#define OTA_HTTPS_SESSION_PATH_BYTES 512u
/* A base URL's parts: host, port, path prefix. */
#define OTA_HTTPS_HOST_MAX 256u
#define OTA_HTTPS_PORT_TEXT_BYTES 8u
#define OTA_HTTPS_PREFIX_BYTES 256u
/* Longest request path, and the request line with its headers. */
#define OTA_HTTPS_MAX_PATH 512u
#define OTA_HTTPS_REQUEST_BYTES 1024u
/* An OpenSSL error string in an error message. */
#define OTA_HTTPS_SSL_ERR_BYTES 128u
/* Buffered reads over one connection. */
#define OTA_HTTPS_READ_BUF 16384u
/* A status or header line, and a chunk-size line. */
#define OTA_HTTPS_HEADER_LINE_BYTES 1024u
#define OTA_HTTPS_CHUNK_LINE_BYTES 256u

/* ---- MQTT ---- */
/* Session expiry asked of the broker. */
#define OTA_MQTT_SESSION_EXPIRY_S (7u * 24u * 3600u)
/* Longest topic the agent builds or accepts. */
#define OTA_MQTT_TOPIC_MAX 200u

/* ---- ota-agent (the CLI and `run`) ---- */
/* Chunk in which the CLI streams a bundle or an image. */
#define OTA_AGENT_CLI_STREAM_CHUNK (1024u * 1024u)
/* The same for a delta's payload (its RAM is the applier's; docs/porting.md). */
#define OTA_AGENT_CLI_DELTA_CHUNK (64u * 1024u)
/* Health window when the manifest names none. */
#define OTA_LINUX_HEALTH_WINDOW_DEFAULT_S 3600u
/* An error message of `run` setting up. */
#define OTA_LINUX_RUN_ERR_BYTES 256u

#endif
