/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_PORT_H
#define FLEETOTA_PORT_H

/*
 * The port contract of the agent core: everything the core needs from a
 * device, as one ops table plus a context pointer. Nothing here is a global
 * link-time symbol, so one process can run many agents (the fleet
 * simulator) each with its own port context.
 *
 * The core calls only these functions and the crypto contract of
 * fleetota/crypto.h (whose backend is chosen at link time). Every function
 * returns OTA_OK or an error; OTA_ERR_STORAGE is the usual answer of a
 * storage failure. The core never retries on its own: a failure aborts the
 * current step and leaves the persisted state as it was before the step's
 * last successful record write.
 *
 * This header is the core of the porting guide (docs/porting.md).
 */

#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"

/* The two image slots of the A/B layout. */
#define OTA_SLOT_COUNT 2u

/* Ring of event records kept in trusted storage. */
#define OTA_AGENT_EVENT_RECORDS 32u

/*
 * Named records of trusted storage. A record is a small blob (at most
 * OTA_MAX_ENVELOPE_BYTES) that only the agent writes. Values are stable:
 * a port may use them as file names or flash offsets.
 */
enum ota_record {
	OTA_REC_STATE = 0, /* install state machine (agent/src/state.c) */
	OTA_REC_COUNTER = 1, /* security counter, only ever increases */
	OTA_REC_ROOTLIST = 2, /* the trusted RootList envelope */
	OTA_REC_KEYLIST = 3, /* the trusted KeyList envelope */
	OTA_REC_MANIFEST_0 = 4, /* manifest envelope of the image in slot 0 */
	OTA_REC_MANIFEST_1 = 5, /* manifest envelope of the image in slot 1 */
	OTA_REC_EVENT_0 = 16, /* event ring: OTA_REC_EVENT_0 + (seq % N) */
	OTA_REC_LAST = OTA_REC_EVENT_0 + OTA_AGENT_EVENT_RECORDS - 1,
};

/* Severity of a log line. */
enum ota_log_level {
	OTA_LOG_ERROR = 0,
	OTA_LOG_WARN = 1,
	OTA_LOG_INFO = 2,
	OTA_LOG_DEBUG = 3,
};

/* What the consent hook is asked about (borrowed, valid during the call). */
struct ota_port_offer {
	const char *version;
	uint64_t version_code;
	uint64_t security_counter;
	int is_security_update;
};

struct ota_port_ops {
	/*
	 * Image slots (0 and 1). Offsets and lengths are bytes.
	 *
	 * slot_size: capacity of the slot. The core refuses an image larger
	 * than this with OTA_ERR_SIZE before writing a byte.
	 */
	enum ota_err (*slot_size)(void *ctx, unsigned slot, uint64_t *ret_size);
	/* slot_read: reads exactly len bytes at off (off + len <= size). */
	enum ota_err (*slot_read)(void *ctx, unsigned slot, uint64_t off, void *buf, size_t len);
	/*
	 * slot_write: writes len bytes at off. May be volatile until
	 * slot_sync; a power cut may tear it (the core re-hashes anything it
	 * reads back, so a torn write is caught by the image hash).
	 */
	enum ota_err (*slot_write)(void *ctx, unsigned slot, uint64_t off, const void *buf,
				   size_t len);
	/* slot_erase: forgets the slot's contents (durable on return). */
	enum ota_err (*slot_erase)(void *ctx, unsigned slot);
	/* slot_sync: every slot_write before it is durable on return. */
	enum ota_err (*slot_sync)(void *ctx, unsigned slot);

	/*
	 * Trusted storage: records only the agent writes, out of reach of
	 * the running application where the hardware allows.
	 *
	 * record_read: copies the record into buf (cap bytes) and writes
	 * *ret_len; OTA_ERR_NOT_FOUND when the record was never written;
	 * OTA_ERR_SIZE when it does not fit.
	 */
	enum ota_err (*record_read)(void *ctx, enum ota_record rec, void *buf, size_t cap,
				    size_t *ret_len);
	/*
	 * record_write: replaces the record ATOMICALLY and DURABLY: after a
	 * power cut at any instant, a later record_read returns either the
	 * complete old value or the complete new value, never a mix, and on
	 * OTA_OK the new value survives a power cut. (Linux: write a temp
	 * file, fsync, rename, fsync the directory. Flash: two copies with a
	 * sequence number and a CRC.)
	 */
	enum ota_err (*record_write)(void *ctx, enum ota_record rec, const void *buf, size_t len);

	/*
	 * Clock: *ret_now = seconds since the Unix epoch, only when the port
	 * TRUSTS its clock (authenticated time, a secure RTC). Return
	 * OTA_ERR_NOT_FOUND when the time is unknown or untrusted; the core
	 * then judges expiry by its latest trusted time. May be NULL.
	 */
	enum ota_err (*clock_now)(void *ctx, uint64_t *ret_now);

	/*
	 * Asks for a reboot into the boot step (ota_agent_boot). A port
	 * whose reboot cannot return may never return. May be NULL.
	 */
	void (*reboot)(void *ctx);

	/* One line for people; msg never holds secrets. May be NULL. */
	void (*log)(void *ctx, enum ota_log_level level, const char *msg);

	/*
	 * Optional (NULL = consent given). Asked before staging an update
	 * that is NOT a security update: OTA_OK to install now,
	 * OTA_ERR_CONSENT to refuse (the owner postpones functional updates).
	 * Security updates never ask (CRA Annex I).
	 */
	enum ota_err (*consent)(void *ctx, const struct ota_port_offer *offer);

	/*
	 * Optional. Runs the application self-test of the image booted in
	 * trial: OTA_OK confirms it (ota_agent_selftest), anything else
	 * reverts. NULL: confirmation comes from outside (ota_agent_confirm)
	 * and a reboot without it reverts.
	 */
	enum ota_err (*selftest)(void *ctx, unsigned slot);
};

/* A port: the ops (static, shared) and one device's context. */
struct ota_port {
	const struct ota_port_ops *ops;
	void *ctx;
};

#endif
