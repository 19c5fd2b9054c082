/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_AGENT_H
#define FLEETOTA_AGENT_H

/*
 * libotaagent: the portable device core. It enforces the verification
 * sequence of DESIGN.md section 3 and runs the A/B install state machine
 * over a port (fleetota/port.h). No OS calls, no heap: the struct below and
 * a caller-provided work area are all the memory it uses.
 *
 * Install, offline or online:
 *   ota_agent_begin*()   verify trust updates + manifest (steps 1-2) before
 *                        one image byte; stage or resume into the inactive
 *                        slot; ota_agent_offset() says where to continue
 *   ota_agent_write()    image chunks, hashed as they are written
 *   ota_agent_finish()   size + hash, mark pending
 * Then (after a reboot, in the boot step) ota_agent_boot(), and in the new
 * image ota_agent_confirm() / ota_agent_selftest() / ota_agent_revert().
 *
 * Every function returns OTA_OK or a stable error (fleetota/err.h); a
 * rejection also lands in the event log and in status().last_error. Out
 * parameters are written only on success.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/crypto.h"
#include "fleetota/decrypt.h"
#include "fleetota/delta.h"
#include "fleetota/agent-limits.h"
#include "fleetota/limits.h"
#include "fleetota/port.h"

/* Where the install state machine is. Values are persisted: append-only. */
enum ota_phase {
	OTA_PHASE_IDLE = 0, /* running the confirmed slot, nothing staged */
	OTA_PHASE_STAGING = 1, /* image being written into the target slot */
	OTA_PHASE_PENDING = 2, /* staged and verified, waits for the boot step */
	OTA_PHASE_TRIAL = 3, /* target slot booted in trial, waits for confirm */
};

/* Event kinds; values equal the wire enum fleetota.v1.EventKind. */
enum ota_event_kind {
	OTA_EVENT_INSTALL_STARTED = 1,
	OTA_EVENT_REJECTED = 2,
	OTA_EVENT_VERIFIED = 3,
	OTA_EVENT_PENDING = 4,
	OTA_EVENT_TRIAL_BOOT = 5,
	OTA_EVENT_CONFIRMED = 6,
	OTA_EVENT_REVERTED = 7,
	OTA_EVENT_COUNTER_ADVANCED = 8,
	OTA_EVENT_KEYLIST_UPDATED = 9,
	OTA_EVENT_ROOTLIST_UPDATED = 10,
	OTA_EVENT_DOWNLOAD_FAILED = 11,
	OTA_EVENT_BOOTED = 12,
	OTA_EVENT_FREEZE_SUSPECTED = 20, /* no fresh Timestamp for too long (OTA_ERR_FROZEN) */
	OTA_EVENT_FRESHNESS_RESTORED = 21, /* a fresh Timestamp after a freeze report */
};

/* A value of enum ota_event_kind (record decoders refuse anything else). */
bool ota_event_kind_known(uint32_t kind);

/* What is known about the image in one slot. */
struct ota_slot_info {
	bool valid; /* holds a verified image (pending, trial or confirmed) */
	char version[OTA_AGENT_VERSION_BYTES];
	uint64_t version_code;
	uint64_t security_counter;
	uint64_t size;
	uint8_t sha256[OTA_SHA256_BYTES];
};

/* The persisted install state (record OTA_REC_STATE). */
struct ota_agent_state {
	bool provisioned;
	enum ota_phase phase;
	uint8_t confirmed_slot; /* the slot that boots when nothing is on trial */
	uint8_t target_slot; /* staging / pending / trial slot */
	struct ota_slot_info slots[OTA_SLOT_COUNT];
	uint64_t staged_bytes; /* checkpointed prefix of the target slot */
	uint8_t staging_manifest_sha256[OTA_SHA256_BYTES];
	uint64_t latest_time; /* monotonic latest trusted time, 0 = unknown */
	uint64_t next_event_seq;
	uint32_t last_error; /* enum ota_err of the last failure, 0 = none */
	char last_error_detail[OTA_AGENT_DETAIL_BYTES];
};

/* One event of the durable log. */
struct ota_event {
	uint64_t seq;
	uint64_t time;
	enum ota_event_kind kind;
	enum ota_err error;
	uint64_t version_code;
	uint64_t security_counter;
	char version[OTA_AGENT_VERSION_BYTES];
	char detail[OTA_AGENT_DETAIL_BYTES];
};

/* Device identity and policy (strings borrowed for the agent's life). */
struct ota_agent_config {
	const char *model;
	const char *hw_revision;
	/* bytes between staging checkpoints; 0 = OTA_AGENT_CHECKPOINT_BYTES */
	uint64_t checkpoint_bytes;
	/*
	 * Signed freshness (fleetota/freshness.h): seconds without a fresh
	 * Timestamp after which the device reports that it may be frozen;
	 * 0 = freeze detection off.
	 */
	uint64_t freshness_max_age_s;
	/*
	 * Work area for delta updates (fleetota/delta.h), borrowed for the
	 * agent's life; NULL = deltas are refused (OTA_ERR_DELTA_UNSUPPORTED).
	 * OTA_DELTA_WORK_BYTES takes any delta; a smaller area takes deltas
	 * whose chunk fits (ota_delta_work_bytes).
	 */
	void *delta_work;
	size_t delta_work_len;
};

/* A snapshot for status reports and `ota-agent status --json`. */
struct ota_agent_status {
	bool provisioned;
	enum ota_phase phase;
	unsigned running_slot; /* what boots now: trial slot or confirmed slot */
	unsigned confirmed_slot;
	struct ota_slot_info confirmed;
	struct ota_slot_info target; /* valid only when phase != IDLE */
	uint64_t security_counter;
	uint64_t keylist_version;
	uint64_t rootlist_version;
	uint64_t staged_bytes;
	uint64_t latest_time;
	uint64_t next_event_seq;
	enum ota_err last_error;
	char last_error_detail[OTA_AGENT_DETAIL_BYTES];
};

/* Verified facts of the manifest being installed (copied, fixed size). */
struct ota_install {
	bool active; /* between a successful begin and finish/abort */
	uint8_t slot;
	uint64_t size;
	uint64_t written; /* bytes hashed and written so far */
	uint64_t since_checkpoint;
	uint8_t sha256[OTA_SHA256_BYTES];
	uint8_t manifest_sha256[OTA_SHA256_BYTES];
	struct ota_slot_info info;
	struct ota_sha256_ctx hash;
	/* an encrypted image: ota_agent_write takes ciphertext (agent/src/decrypt.c) */
	struct ota_decrypt dec;
	/*
	 * A delta install (agent/src/delta_install.c): size and written count
	 * the delta payload; hash, sha256 and info are still the final
	 * image's. A delta is never resumed: it starts over (it is small).
	 */
	bool delta;
	bool base_mapped;
	uint8_t base_slot;
	uint64_t image_written; /* final-image bytes written into the slot */
	uint8_t delta_sha256[OTA_SHA256_BYTES];
	struct ota_sha256_ctx delta_hash;
	struct ota_delta applier;
};

/* The boot record (OTA_REC_BOOT): which slot is confirmed, and its image. */
struct ota_boot_record {
	uint8_t slot;
	struct ota_slot_info image;
};

/*
 * What the agent knows about the two copies of a record it tracks (every
 * record but the event ring, whose copies carry the event's number).
 */
struct ota_record_meta {
	uint64_t seq; /* sequence number of the newest valid copy, 0 = none */
	uint8_t newest; /* the copy that holds seq */
	uint8_t present; /* bit per copy that exists, readable or not */
	uint8_t valid; /* bit per copy whose frame checks */
	bool known; /* read since ota_agent_init */
};

/* Records with a struct ota_record_meta: OTA_REC_STATE .. OTA_REC_FRESHNESS. */
#define OTA_AGENT_TRACKED_RECORDS (OTA_REC_FRESHNESS + 1u)

/* The persisted freshness (record OTA_REC_FRESHNESS; agent/src/freshness.c). */
struct ota_freshness {
	uint64_t issued_at; /* the newest verified Timestamp, 0 = none yet */
	uint64_t expires_at;
	uint64_t version_code; /* the release it names */
	uint64_t since; /* trusted time of the first check: the clock of a device that saw none */
	bool frozen; /* a freeze report (OTA_ERR_FROZEN) is open */
	char version[OTA_AGENT_VERSION_BYTES];
	uint8_t signer[OTA_KEY_ID_BYTES]; /* key id of its timestamp key */
};

/* One agent. Opaque in spirit: use the functions. */
struct ota_agent {
	struct ota_port port;
	struct ota_agent_config config;
	uint8_t *work;
	size_t work_len;
	struct ota_agent_state state;
	uint64_t counter;
	uint64_t keylist_version;
	uint64_t rootlist_version;
	struct ota_install install;
	struct ota_record_meta records[OTA_AGENT_TRACKED_RECORDS];
	struct ota_freshness freshness;
	bool freshness_loaded; /* freshness read from its record since init */
	/*
	 * Provisioned, but neither copy of the state record is readable:
	 * everything but ota_agent_boot() (which rebuilds the state) and
	 * status is refused with OTA_ERR_STORAGE.
	 */
	bool state_lost;
};

/*
 * Loads the persisted state through the port. work (work_len >=
 * OTA_AGENT_WORK_BYTES) is borrowed scratch memory used only during a call:
 * agents that never run calls concurrently may share one. A device with
 * no copy of any of its records is "not provisioned" (OTA_OK; status says
 * so). A device that holds a trust record (any copy of the state, counter,
 * RootList, KeyList or boot record) is provisioned even when its state is
 * unreadable: then init still succeeds, status reports last_error
 * OTA_ERR_STORAGE, every other step is refused until the boot step has
 * rebuilt the state (agent->state_lost). OTA_ERR_INVALID_ARG only.
 */
enum ota_err ota_agent_init(struct ota_agent *agent, const struct ota_port *port,
			    const struct ota_agent_config *config, void *work, size_t work_len);

/* Releases what a running install holds (a hash context). NULL is fine. */
void ota_agent_close(struct ota_agent *agent);

/*
 * Factory step: stores the first RootList (signed by its own threshold)
 * and a KeyList signed by it. Refused with OTA_ERR_BUSY when any copy of
 * any trust record exists (readable or not), so a lost or damaged state
 * record never lets other roots in.
 */
enum ota_err ota_agent_provision(struct ota_agent *agent, const uint8_t *rootlist,
				 size_t rootlist_len, const uint8_t *keylist, size_t keylist_len);

/*
 * Trust updates outside an install (online /v1/rootlist, /v1/keylist).
 * rootlists[] are serialized RootList envelopes, oldest first; each with a
 * version above the stored one is one verified chain step; the result is
 * stored only when the whole chain verifies. A KeyList must be newer than
 * the stored one (OTA_ERR_KEYLIST_ROLLBACK; the same version is OTA_OK and
 * changes nothing).
 */
enum ota_err ota_agent_update_rootlist(struct ota_agent *agent, const uint8_t *const *rootlists,
				       const size_t *lens, size_t n);
enum ota_err ota_agent_update_keylist(struct ota_agent *agent, const uint8_t *keylist,
				      size_t keylist_len);

/*
 * Begins (or resumes) an install from serialized envelopes: the manifest,
 * optionally a KeyList and a RootList chain (oldest first, may be NULL/0).
 * Runs steps 1-2 of the verification sequence against the trust state
 * (with the carried updates applied in memory); nothing is persisted unless
 * everything passes. On OTA_OK the target slot is ready for
 * ota_agent_write() from ota_agent_offset().
 */
enum ota_err ota_agent_begin(struct ota_agent *agent, const uint8_t *manifest, size_t manifest_len,
			     const uint8_t *keylist, size_t keylist_len,
			     const uint8_t *const *rootlists, const size_t *rootlist_lens,
			     size_t n_rootlists);

/* Same, from the BundleHeader bytes of a .otab (manifest, keylist, roots). */
enum ota_err ota_agent_begin_bundle(struct ota_agent *agent, const uint8_t *header,
				    size_t header_len);

/*
 * After begin: the offset of the bytes to send next (0, or a resumed
 * prefix). Offsets and sizes count the bytes that travel: the image's,
 * or for an encrypted image the ciphertext's (a resume starts at a chunk
 * boundary).
 */
uint64_t ota_agent_offset(const struct ota_agent *agent);
/*
 * After begin: the size of what travels: the delta payload's for a delta,
 * the ciphertext's for an encrypted image, else image.size.
 */
uint64_t ota_agent_image_size(const struct ota_agent *agent);

/*
 * After begin: true when the install is a delta; then *ret_base_sha256
 * (may be NULL) is the base image's hash (the delivery path names it).
 */
bool ota_agent_install_is_delta(const struct ota_agent *agent,
				uint8_t ret_base_sha256[OTA_SHA256_BYTES]);

/*
 * Appends payload bytes at ota_agent_offset(): image bytes, ciphertext for
 * an encrypted image (decrypted and authenticated chunk by chunk on the
 * way), or a delta's payload (applied frame by frame). More than the
 * declared size in total is OTA_ERR_SIZE, a chunk that fails its tag
 * OTA_ERR_DECRYPT; both abort the install (slot erased).
 */
enum ota_err ota_agent_write(struct ota_agent *agent, const void *chunk, size_t len);

/*
 * Decryption ahead (optional, for a port that reads the ciphertext on a
 * thread of its own, fleetota/decrypt.h): after begin, an encrypted
 * install's decryptor copied into *ret (OTA_ERR_INVALID_ARG for a plain
 * or delta install or none running; OTA_ERR_UNSUPPORTED where the crypto
 * backend cannot copy a cipher context). The reading thread runs
 * ota_decrypt_ahead with it on each piece it read; the caller closes it
 * (ota_decrypt_close) once that thread is done.
 */
enum ota_err ota_agent_ahead_open(const struct ota_agent *agent, struct ota_decrypt *ret);

/*
 * ota_agent_write(agent, a->in, a->len), taking the plaintext of the
 * whole chunks that ota_decrypt_ahead authenticated instead of
 * decrypting them again: hashed, written, checkpointed as
 * ota_agent_write would. A result that does not continue this install
 * (another offset or artifact, more chunks than the piece holds) or
 * that failed is ignored, and the piece goes through ota_agent_write,
 * which then fails the same way, with the same error and chunk. A
 * result decrypted in place (a->in NULL, ota_decrypt_ahead_in_place) has
 * no ciphertext to fall back on: one that failed authentication fails
 * the staging naming chunk a->bad (OTA_ERR_DECRYPT), one that does not
 * continue this install is refused (OTA_ERR_INVALID_ARG, the install
 * closed, nothing of it staged; a later begin resumes).
 */
enum ota_err ota_agent_write_ahead(struct ota_agent *agent, const struct ota_decrypt_ahead *a);

/*
 * Size and SHA-256 equal the manifest's (else OTA_ERR_SIZE / OTA_ERR_HASH,
 * slot erased): the slot becomes pending for the next boot step.
 */
enum ota_err ota_agent_finish(struct ota_agent *agent);

/*
 * Gives up the running install with err (a transport failure). keep_staged
 * keeps the checkpointed prefix for a later resume; otherwise the slot is
 * erased. OTA_OK once recorded; OTA_ERR_INVALID_ARG when nothing runs.
 */
enum ota_err ota_agent_abort(struct ota_agent *agent, enum ota_err err, const char *detail,
			     bool keep_staged);

/*
 * The boot step (the bootloader's part): a trial that was never confirmed
 * is reverted; a pending slot is verified again (manifest signature,
 * counter, hash) and booted in trial; otherwise the confirmed slot is
 * verified and booted. A pending slot that cannot be verified because a
 * record is unreadable stays pending and the confirmed slot boots. When
 * the state record is lost, the state is rebuilt from the boot record (or,
 * failing that, from the slot whose stored manifest verifies against the
 * trusted KeyList and whose bytes hash to it) and that slot boots. A record
 * copy found damaged is rewritten from the good one. *ret_slot is the slot
 * to run. OTA_ERR_HASH when no slot holds a verified image.
 */
enum ota_err ota_agent_boot(struct ota_agent *agent, unsigned *ret_slot);

/*
 * In the trial image: makes it permanent, THEN advances the security
 * counter to its value. OTA_OK without effect when nothing is on trial.
 */
enum ota_err ota_agent_confirm(struct ota_agent *agent);

/* Reverts a trial to the confirmed slot (the counter is untouched). */
enum ota_err ota_agent_revert(struct ota_agent *agent, enum ota_err reason, const char *detail);

/*
 * Runs the port's self-test hook on the trial image and confirms or
 * reverts. OTA_OK when confirmed, OTA_ERR_SELFTEST when reverted.
 */
enum ota_err ota_agent_selftest(struct ota_agent *agent);

/*
 * Records a failure the port met outside the core (a malformed bundle
 * frame, a transport or pin error) in the event log and last_error, as a
 * rejection. Returns err.
 */
enum ota_err ota_agent_record_failure(struct ota_agent *agent, enum ota_err err,
				      const char *detail);

/* Asks the port to reboot (a no-op when the port has no reboot). */
void ota_agent_request_reboot(struct ota_agent *agent);

/* A snapshot of the state (always succeeds on an initialised agent). */
void ota_agent_status(const struct ota_agent *agent, struct ota_agent_status *ret_status);

/*
 * Reads event seq from the ring. OTA_ERR_NOT_FOUND when it was never
 * written or has been overwritten (older than next_event_seq - N).
 */
enum ota_err ota_agent_event(struct ota_agent *agent, uint64_t seq, struct ota_event *ret_event);

/*
 * The key ids of the trusted KeyList (for reports: the server notifies a
 * device only for keys it trusts). Writes up to cap ids and *ret_n.
 */
enum ota_err ota_agent_keylist_key_ids(struct ota_agent *agent, uint8_t (*ids)[OTA_KEY_ID_BYTES],
				       size_t cap, size_t *ret_n);

/* "idle", "staging", "pending", "trial". */
const char *ota_phase_name(enum ota_phase phase);

/* ---- persisted record formats (agent/src/record.c; fuzzed) ---------- */

/* Encoders return the length written into buf (cap bytes), 0 if it is too small. */
size_t ota_state_encode(const struct ota_agent_state *state, uint8_t *buf, size_t cap);
/* OTA_OK, or OTA_ERR_FORMAT for anything but a well-formed record. */
enum ota_err ota_state_decode(const uint8_t *buf, size_t len, struct ota_agent_state *ret_state);
size_t ota_counter_encode(uint64_t counter, uint8_t *buf, size_t cap);
enum ota_err ota_counter_decode(const uint8_t *buf, size_t len, uint64_t *ret_counter);
size_t ota_event_encode(const struct ota_event *event, uint8_t *buf, size_t cap);
enum ota_err ota_event_decode(const uint8_t *buf, size_t len, struct ota_event *ret_event);
size_t ota_freshness_encode(const struct ota_freshness *f, uint8_t *buf, size_t cap);
enum ota_err ota_freshness_decode(const uint8_t *buf, size_t len, struct ota_freshness *ret_f);
size_t ota_boot_encode(const struct ota_boot_record *boot, uint8_t *buf, size_t cap);
enum ota_err ota_boot_decode(const uint8_t *buf, size_t len, struct ota_boot_record *ret_boot);

/* One stored copy of a record, decoded; payload points into the input. */
struct ota_record_copy {
	enum ota_record rec;
	uint64_t seq;
	const uint8_t *payload;
	size_t payload_len;
};

/*
 * Frames one copy in place: the payload already sits at buf +
 * OTA_RECORD_COPY_HEADER_BYTES; the header goes before it and the CRC-32
 * after. Returns the copy's length, 0 when cap is too small, the payload
 * longer than OTA_MAX_ENVELOPE_BYTES or rec unknown.
 */
size_t ota_record_copy_seal(enum ota_record rec, uint64_t seq, uint8_t *buf, size_t payload_len,
			    size_t cap);
/* OTA_OK for a well-formed copy of a known record, else OTA_ERR_FORMAT. */
enum ota_err ota_record_copy_decode(const uint8_t *buf, size_t len,
				    struct ota_record_copy *ret_copy);

#endif
