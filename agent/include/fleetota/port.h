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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/agent-limits.h"
#include "fleetota/err.h"
#include "fleetota/limits.h"

/* The two image slots of the A/B layout. */
#define OTA_SLOT_COUNT 2u

/*
 * Every record is kept as OTA_RECORD_COPIES copies in the manner of
 * U-Boot's redundant environment: the core frames each copy with the
 * record id, a sequence number and a CRC-32 (docs/formats.md), writes the
 * copy that does not hold the newest value first, then the other, and
 * reads the valid copy with the highest sequence number. A torn, zeroed or
 * lost copy thus falls back to the other one. A copy is at most
 * OTA_RECORD_COPY_MAX_BYTES.
 */
#define OTA_RECORD_COPIES 2u
/* Frame of one copy: 20 bytes of header before the payload, CRC-32 after. */
#define OTA_RECORD_COPY_HEADER_BYTES 20u
#define OTA_RECORD_COPY_OVERHEAD (OTA_RECORD_COPY_HEADER_BYTES + 4u)
#define OTA_RECORD_COPY_MAX_BYTES (OTA_MAX_ENVELOPE_BYTES + OTA_RECORD_COPY_OVERHEAD)

/*
 * Named records of trusted storage. A record is a small blob (at most
 * OTA_MAX_ENVELOPE_BYTES of payload) that only the agent writes. Values
 * are stable: a port may use them (and the copy index) as file names or
 * flash offsets.
 */
enum ota_record {
	OTA_REC_STATE = 0, /* install state machine (agent/src/state.c) */
	OTA_REC_COUNTER = 1, /* security counter, only ever increases */
	OTA_REC_ROOTLIST = 2, /* the trusted RootList envelope */
	OTA_REC_KEYLIST = 3, /* the trusted KeyList envelope */
	OTA_REC_MANIFEST_0 = 4, /* manifest envelope of the image in slot 0 */
	OTA_REC_MANIFEST_1 = 5, /* manifest envelope of the image in slot 1 */
	OTA_REC_BOOT = 6, /* the confirmed slot and its image: the boot step's fallback */
	OTA_REC_FRESHNESS = 7, /* the newest verified Timestamp and the freeze report */
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

/* What the transport fetches: the delivery API of DESIGN.md section 4. */
enum ota_fetch_what {
	OTA_FETCH_MANIFEST = 0, /* the signed manifest of an artifact */
	OTA_FETCH_IMAGE = 1, /* the image of an artifact, from an offset */
	OTA_FETCH_KEYLIST = 2, /* the current signed KeyList */
	OTA_FETCH_ROOTLIST = 3, /* the current signed RootList */
	OTA_FETCH_TIMESTAMP =
		4, /* the current signed Timestamp of the product (artifact = model) */
};

/* One fetch (borrowed, valid during the call). */
struct ota_fetch_request {
	enum ota_fetch_what what;
	const char *artifact; /* the artifact id for MANIFEST and IMAGE, else "" */
	/*
	 * The same object as a path of the HTTPS delivery API
	 * ("/v1/manifests/ID", "/v1/images/ID", "/v1/keylist",
	 * "/v1/rootlist", "/v1/timestamp/MODEL"): an HTTP transport uses it as is, another
	 * transport maps `what` and `artifact` its own way.
	 */
	const char *path;
	/* Resume from this byte (an HTTP Range request); 0 = from the start. */
	uint64_t offset;
	/* More body bytes than this is OTA_ERR_SIZE (also when announced). */
	uint64_t max_bytes;
};

/* What a fetch found out (written in every case, also on failure). */
struct ota_fetch_result {
	int status; /* the protocol's status (HTTP status), 0 if none */
	uint64_t body_bytes; /* bytes handed to the sink */
	unsigned retry_after_s; /* the server asked to retry after this long, 0 = not */
	/*
	 * The device restarted during the transfer and the core was opened
	 * again from its records (only the simulator's power-cut fault,
	 * agent/port/sim, does this): the core starts the attempt over.
	 */
	bool restarted;
	/*
	 * Why the transfer failed before any status, when the transport
	 * knows: the server's TLS alert ("TLS alert certificate revoked
	 * (44)"); "" otherwise.
	 */
	char detail[OTA_FETCH_DETAIL_BYTES];
};

/* Receives body bytes in order; any error aborts the fetch with that error. */
typedef enum ota_err (*ota_port_sink_fn)(void *sink_arg, const uint8_t *data, size_t len);

/* Post-install health, from the port's health hook. */
struct ota_port_health {
	/* the application's health, 0..1000 (1000 = healthy) */
	uint32_t permille;
	/*
	 * Boots over the device's life that the agent did not ask for (no
	 * reboot op before them): a watchdog, a crash, a power failure. The
	 * port knows the cause (a reset-cause register, a marker the reboot op
	 * leaves); the count never decreases.
	 */
	uint64_t unrequested_boots;
};

/* What the consent hook is asked about (borrowed, valid during the call). */
struct ota_port_offer {
	const char *version;
	uint64_t version_code;
	uint64_t security_counter;
	int is_security_update;
};

/*
 * One recipient entry of an encrypted manifest (borrowed during the call;
 * fleetota/crypt.h and docs/formats.md describe the construction).
 */
struct ota_key_unwrap_request {
	const uint8_t *key_id; /* OTA_KEY_ID_BYTES: SHA-256 of the recipient's SPKI DER */
	const uint8_t *ephemeral_public; /* X25519: 32 bytes raw; P-256: 65, uncompressed */
	const uint8_t *wrapped_key; /* 40 bytes, RFC 3394 */
	const uint8_t *context; /* HKDF info: recipient and artifact binding */
	size_t context_len;
	/*
	 * The entry's key agreement (enum ota_recipient_kind of
	 * fleetota/crypt.h: X25519 or P-256) and ephemeral_public's length
	 * (ota_crypt_public_bytes(kind)). A held key of another kind with the
	 * same id cannot exist (the id hashes the algorithm too).
	 */
	unsigned kind;
	size_t ephemeral_public_len;
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
	 * the running application where the hardware allows. Each record has
	 * OTA_RECORD_COPIES copies (copy 0 and 1), stored apart: on flash in
	 * different erase blocks, so that one failing block or one torn write
	 * loses at most one copy.
	 *
	 * record_read: copies copy `copy` of the record into buf (cap bytes)
	 * and writes *ret_len; OTA_ERR_NOT_FOUND when that copy was never
	 * written (or was deleted); OTA_ERR_SIZE when it does not fit. Any
	 * other error means "exists but unreadable".
	 */
	enum ota_err (*record_read)(void *ctx, enum ota_record rec, unsigned copy, void *buf,
				    size_t cap, size_t *ret_len);
	/*
	 * record_write: replaces copy `copy` of the record DURABLY: on OTA_OK
	 * the new bytes survive a power cut (the port syncs before it
	 * returns). It need not be atomic: a cut may leave the copy torn,
	 * zeroed or missing, which the core detects by the copy's CRC and
	 * answers with the other copy. The core writes the two copies of a
	 * record one after the other, never at once, and a reader that finds
	 * neither copy valid reads both once more (a writer in another process
	 * may have been in the middle of them).
	 */
	enum ota_err (*record_write)(void *ctx, enum ota_record rec, unsigned copy, const void *buf,
				     size_t len);

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

	/*
	 * Transport, for the online install policy (fleetota/online.h);
	 * NULL in a port that installs bundles only. Like SWUpdate's channel:
	 * the core decides what to fetch, in which order, what to believe
	 * and when to retry; the port only moves bytes.
	 *
	 * fetch: gets req->what from offset req->offset and hands the body to
	 * sink in order, in pieces of any size. The port bounds what it
	 * reads (never more than req->max_bytes of body, OTA_ERR_SIZE
	 * otherwise; bounded headers) and gives every fetch a deadline: no
	 * byte for the port's stall timeout, or a transfer slower than its
	 * minimum rate, is OTA_ERR_TIMEOUT. Errors: OTA_ERR_TRANSPORT
	 * (connect, protocol, a status other than success: status set),
	 * OTA_ERR_PIN (the server is not who it must be), OTA_ERR_TIMEOUT,
	 * OTA_ERR_SIZE, or the sink's error. An offset the server does not
	 * resume from exactly is OTA_ERR_TRANSPORT. *ret is written in every
	 * case. Authenticity is NOT the transport's job: the core verifies
	 * every byte it keeps.
	 */
	enum ota_err (*fetch)(void *ctx, const struct ota_fetch_request *req, ota_port_sink_fn sink,
			      void *sink_arg, struct ota_fetch_result *ret);
	/*
	 * wait: the back-off between download attempts: returns after
	 * seconds, or earlier when the device is asked to stop. May be NULL
	 * (no wait).
	 */
	void (*wait)(void *ctx, unsigned seconds);

	/*
	 * Optional (NULL: encrypted images are refused, OTA_ERR_UNSUPPORTED).
	 * key_unwrap: the device's recipient keys (a device key, a product
	 * line's key) stay behind this call, so a secure element, a TPM or
	 * a PKCS#11 token may hold them and do the ECDH step inside.
	 * OTA_ERR_NOT_FOUND when the device holds no private key with
	 * req->key_id (the core tries the next entry); OTA_OK with the
	 * 32-byte content key in ret_key; OTA_ERR_KEY_UNWRAP when the key is
	 * held and the entry does not unwrap with it; OTA_ERR_KEY_ACCESS
	 * when the key store cannot be used (token absent, login refused,
	 * a wrong PIN): the core stops there and refuses the update with it.
	 * The core wipes ret_key as soon as the cipher holds it; the port
	 * wipes its own copies.
	 */
	enum ota_err (*key_unwrap)(void *ctx, const struct ota_key_unwrap_request *req,
				   uint8_t ret_key[OTA_AES256_KEY_BYTES]);

	/*
	 * Optional (NULL = no health signal: permille 1000, no unrequested
	 * boots). The device's health after an update: the online policy
	 * reports it while the health window after a confirm is open
	 * (docs/campaigns.md, "Halting on health"), and a campaign halts
	 * when too many devices report unexpected reboots or a low value.
	 */
	enum ota_err (*health)(void *ctx, struct ota_port_health *ret);

	/*
	 * Optional (NULL = this device takes no delta updates,
	 * OTA_ERR_DELTA_UNSUPPORTED). Delta updates read the running slot as
	 * the base image, in place: zstd's decoder needs it as one
	 * contiguous read-only span. slot_map: *ret_base = slot[0..len),
	 * readable until slot_unmap (an mmap of the slot file on Linux,
	 * the flash address on a microcontroller with memory-mapped flash);
	 * the core never writes, erases or syncs a slot while it is mapped,
	 * and maps only the running slot. A read error of the mapping may
	 * kill the process (SIGBUS on Linux): the port checks the slot holds
	 * len bytes before it maps. slot_unmap: ends the mapping (NULL ok
	 * when mappings need no end). The core maps the base once per apply
	 * and unmaps it when the apply ends (done, failed or aborted).
	 */
	enum ota_err (*slot_map)(void *ctx, unsigned slot, uint64_t len, const uint8_t **ret_base);
	void (*slot_unmap)(void *ctx, unsigned slot);

	/*
	 * Optional (NULL: none). slot_buffer lends the core the port's own
	 * memory for the next bytes of slot at off: up to *ret_cap (>= 1)
	 * bytes at the returned address, which the core fills and then
	 * passes unchanged to slot_write(slot, off, buf, n <= *ret_cap), so
	 * that a port that queues its writes (the Linux port's writer
	 * thread) need not copy them. The loan ends at that slot_write or
	 * at the next other port call; NULL: no loan now, the core uses its
	 * work area. The core borrows only to decrypt an encrypted image
	 * into (docs/porting.md).
	 */
	uint8_t *(*slot_buffer)(void *ctx, unsigned slot, uint64_t off, size_t *ret_cap);

	/*
	 * Optional (NULL: the core runs both jobs itself, one after the
	 * other). run_beside runs beside(beside_arg) on another thread while
	 * the calling thread runs own(own_arg), and returns when both have
	 * returned; a port that cannot start its thread now runs beside
	 * itself after own. The jobs are the core's and touch disjoint
	 * memory; the port makes beside's writes visible to the caller when
	 * it returns (a mutex or a join does). The core uses it in steps to
	 * decrypt the next chunks of one write call while it hashes those
	 * decrypted in the step before, and checks both jobs' results itself
	 * (docs/porting.md).
	 */
	void (*run_beside)(void *ctx, void (*beside)(void *arg), void *beside_arg,
			   void (*own)(void *arg), void *own_arg);

	/*
	 * Optional (NULL = nothing to do: XIP flash, RAM). Between two frames
	 * of a delta, while slot is mapped: the core is done with what it
	 * read of the mapping so far, and the next frame makes the image's
	 * bytes [off, off + len), which a delta of a similar image mostly
	 * copies from about the same offsets of the base (len 0: the image
	 * has grown past the base, no range to name). The mapping stays
	 * valid at the same address. A port may read that range ahead (the
	 * Linux port: MADV_WILLNEED) and may give back what the mapping
	 * holds (a port that pages the base into RAM of its own); reads of
	 * the mapping must keep working either way (docs/porting.md).
	 */
	void (*slot_map_advise)(void *ctx, unsigned slot, uint64_t off, uint64_t len);
};

/* A port: the ops (static, shared) and one device's context. */
struct ota_port {
	const struct ota_port_ops *ops;
	void *ctx;
};

#endif
