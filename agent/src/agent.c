/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The install state machine and the verification sequence of DESIGN.md
 * section 3. Memory: the agent struct and the borrowed work area (an arena
 * reset at the start of every call); nothing else.
 */
#include <string.h>

#include "decrypt-internal.h"
#include "fleetota/agent.h"
#include "fleetota/bundle.h"
#include "fleetota/trust.h"
#include "agent-internal.h"
#include "delta-internal.h"
#include "text-internal.h"

/* ---- small text helpers (no stdio in the core) ---------------------- */

/* strnlen is POSIX, not C17: the core stays within the C library of C17 */
static size_t bounded_len(const char *s, size_t max)
{
	size_t len = 0;
	while (len < max && s[len] != '\0')
		len++;
	return len;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t len = src ? bounded_len(src, cap - 1) : 0;
	if (len)
		memcpy(dst, src, len);
	dst[len] = '\0';
}

static void alog(struct ota_agent *agent, enum ota_log_level level, const char *msg)
{
	if (agent->port.ops->log)
		agent->port.ops->log(agent->port.ctx, level, msg);
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

const char *ota_phase_name(enum ota_phase phase)
{
	switch (phase) {
	case OTA_PHASE_IDLE:
		return "idle";
	case OTA_PHASE_STAGING:
		return "staging";
	case OTA_PHASE_PENDING:
		return "pending";
	case OTA_PHASE_TRIAL:
		return "trial";
	}
	return "unknown";
}

/* ---- redundant records ---------------------------------------------- */

/*
 * One copy of a small record, sized for what it holds (the encoders return
 * 0 if that ever stops fitting): the state (about 540 bytes of payload),
 * an event (274), the boot record (196), the counter (17).
 */
#define SMALL_COPY_BYTES (OTA_RECORD_COPY_OVERHEAD + OTA_AGENT_RECORD_BYTES)
#define EVENT_COPY_BYTES (OTA_RECORD_COPY_OVERHEAD + OTA_AGENT_EVENT_RECORD_BYTES)
#define BOOT_COPY_BYTES (OTA_RECORD_COPY_OVERHEAD + OTA_AGENT_BOOT_RECORD_BYTES)
#define COUNTER_COPY_BYTES (OTA_RECORD_COPY_OVERHEAD + OTA_AGENT_COUNTER_RECORD_BYTES)
#define ALL_COPIES ((uint8_t)((1u << OTA_RECORD_COPIES) - 1u))

static bool rec_tracked(enum ota_record rec)
{
	return (unsigned)rec < OTA_AGENT_TRACKED_RECORDS;
}

/* Reads one copy into buf and checks its frame; *present gets its bit if it exists. */
static bool copy_load(struct ota_agent *agent, enum ota_record rec, unsigned copy, uint8_t *buf,
		      size_t cap, struct ota_record_copy *ret_copy, uint8_t *present)
{
	struct ota_record_copy c;
	size_t len = 0;
	enum ota_err err = agent->port.ops->record_read(agent->port.ctx, rec, copy, buf, cap, &len);
	if (err == OTA_ERR_NOT_FOUND)
		return false;
	/* an unreadable copy still exists: it counts for "provisioned" */
	*present |= (uint8_t)(1u << copy);
	if (err != OTA_OK || len > cap)
		return false;
	if (ota_record_copy_decode(buf, len, &c) != OTA_OK || c.rec != rec)
		return false;
	*ret_copy = c;
	return true;
}

/* What one pass over the copies of a record found. */
struct copy_scan {
	struct ota_record_copy best;
	unsigned best_copy;
	bool found;
	uint8_t present;
	uint8_t valid; /* copies that hold best.seq */
};

static void copies_scan(struct ota_agent *agent, enum ota_record rec, uint8_t *buf, size_t cap,
			struct copy_scan *scan)
{
	struct ota_record_copy c;
	uint64_t seqs[OTA_RECORD_COPIES] = {0};
	uint8_t loaded = 0;
	memset(scan, 0, sizeof(*scan));
	for (unsigned copy = 0; copy < OTA_RECORD_COPIES; copy++) {
		if (!copy_load(agent, rec, copy, buf, cap, &c, &scan->present))
			continue;
		loaded |= (uint8_t)(1u << copy);
		seqs[copy] = c.seq;
		/* on a tie the copy read last wins: it is still in buf */
		if (!scan->found || c.seq >= scan->best.seq) {
			scan->best = c;
			scan->best_copy = copy;
			scan->found = true;
		}
	}
	if (scan->found && scan->best_copy != OTA_RECORD_COPIES - 1u) {
		uint8_t ignored = 0;
		uint64_t seq = scan->best.seq;
		if (!copy_load(agent, rec, scan->best_copy, buf, cap, &scan->best, &ignored) ||
		    scan->best.seq != seq)
			scan->found = false; /* it changed under us */
	}
	for (unsigned copy = 0; scan->found && copy < OTA_RECORD_COPIES; copy++) {
		if ((loaded & (1u << copy)) && seqs[copy] == scan->best.seq)
			scan->valid |= (uint8_t)(1u << copy);
	}
}

/*
 * Reads the newest valid copy of rec into buf (a copy's frame, payload at
 * OTA_RECORD_COPY_HEADER_BYTES). OTA_ERR_NOT_FOUND when no copy exists,
 * OTA_ERR_STORAGE when copies exist and none is valid. Tracked records
 * learn their copies' sequence numbers here.
 */
static enum ota_err rec_read(struct ota_agent *agent, enum ota_record rec, uint8_t *buf, size_t cap,
			     struct ota_record_copy *ret_copy)
{
	struct copy_scan scan;
	copies_scan(agent, rec, buf, cap, &scan);
	/*
	 * Copies exist and none checks: a writer of another process may have
	 * been in the middle of each copy as this one read it (it writes one
	 * copy at a time). Once more.
	 */
	if (!scan.found && scan.present)
		copies_scan(agent, rec, buf, cap, &scan);
	if (rec_tracked(rec)) {
		struct ota_record_meta *meta = &agent->records[rec];
		meta->known = true;
		meta->present = scan.present;
		meta->seq = scan.found ? scan.best.seq : 0;
		meta->newest = (uint8_t)scan.best_copy;
		meta->valid = scan.valid;
	}
	if (!scan.found)
		return scan.present ? OTA_ERR_STORAGE : OTA_ERR_NOT_FOUND;
	*ret_copy = scan.best;
	return OTA_OK;
}

/*
 * Stores the payload at buf + OTA_RECORD_COPY_HEADER_BYTES as the new
 * value of rec, in the manner of U-Boot's redundant environment: the copy
 * that does not hold the newest value is written (durably) first, then the
 * other, so a cut tears at most the copy being written and the other one
 * still holds the old or the new value. Tracked records take the next
 * sequence number; event copies carry the event's own (event_seq).
 */
static enum ota_err rec_write_copies(struct ota_agent *agent, enum ota_record rec, uint8_t *buf,
				     size_t cap, size_t payload_len, uint64_t event_seq,
				     unsigned copies)
{
	struct ota_record_meta *meta = rec_tracked(rec) ? &agent->records[rec] : NULL;
	if (meta && !meta->known)
		return OTA_ERR_INTERNAL; /* a write must know which copy is older */
	uint64_t seq = meta ? meta->seq + 1 : event_seq;
	unsigned first = meta && meta->valid ? 1u - meta->newest : 0u;
	size_t len = ota_record_copy_seal(rec, seq, buf, payload_len, cap);
	if (len == 0)
		return OTA_ERR_INTERNAL;
	for (unsigned i = 0; i < copies && i < OTA_RECORD_COPIES; i++) {
		unsigned copy = (first + i) % OTA_RECORD_COPIES;
		uint8_t bit = (uint8_t)(1u << copy);
		enum ota_err err =
			agent->port.ops->record_write(agent->port.ctx, rec, copy, buf, len);
		if (meta && err != OTA_OK) {
			meta->present |= bit;
			meta->valid &= (uint8_t)~bit; /* possibly torn */
		}
		if (err != OTA_OK)
			return OTA_ERR_STORAGE;
		if (!meta)
			continue;
		meta->present |= bit;
		if (i == 0) {
			meta->seq = seq;
			meta->newest = (uint8_t)copy;
			meta->valid = bit;
		} else {
			meta->valid |= bit;
		}
	}
	return OTA_OK;
}

static enum ota_err rec_write(struct ota_agent *agent, enum ota_record rec, uint8_t *buf,
			      size_t cap, size_t payload_len, uint64_t event_seq)
{
	return rec_write_copies(agent, rec, buf, cap, payload_len, event_seq, OTA_RECORD_COPIES);
}

/* A small record: payload encoded into buf + header by the caller (0 = did not fit). */
static enum ota_err small_store(struct ota_agent *agent, enum ota_record rec, uint8_t *buf,
				size_t cap, size_t payload_len, uint64_t event_seq)
{
	if (payload_len == 0)
		return OTA_ERR_INTERNAL;
	return rec_write(agent, rec, buf, cap, payload_len, event_seq);
}

/* ---- persistence ---------------------------------------------------- */

static enum ota_err state_store_copies(struct ota_agent *agent, const struct ota_agent_state *next,
				       unsigned copies)
{
	uint8_t buf[SMALL_COPY_BYTES];
	/* a lost state is written again only by the boot step's rebuild */
	if (agent->state_lost)
		return OTA_ERR_STORAGE;
	size_t len = ota_state_encode(next, buf + OTA_RECORD_COPY_HEADER_BYTES,
				      sizeof(buf) - OTA_RECORD_COPY_OVERHEAD);
	if (len == 0)
		return OTA_ERR_INTERNAL;
	enum ota_err err = rec_write_copies(agent, OTA_REC_STATE, buf, sizeof(buf), len, 0, copies);
	if (err != OTA_OK)
		return err;
	agent->state = *next;
	return OTA_OK;
}

static enum ota_err state_store(struct ota_agent *agent, const struct ota_agent_state *next)
{
	return state_store_copies(agent, next, OTA_RECORD_COPIES);
}

/*
 * A staging checkpoint writes one copy of the state: the one that does
 * not hold the newest value (rec_write's order). The other copy keeps the
 * state before it, which is this same staging at the previous checkpoint
 * (or at its start): as safe to resume from, only further back. A cut
 * that tears the copy being written leaves the device there; a cut after
 * it resumes from here. One fsync instead of two per checkpoint; the
 * next checkpoint writes the other copy, and the final state (pending)
 * both.
 */
static enum ota_err state_checkpoint(struct ota_agent *agent, const struct ota_agent_state *next)
{
	return state_store_copies(agent, next, 1);
}

static enum ota_err counter_store(struct ota_agent *agent, uint64_t counter)
{
	uint8_t buf[COUNTER_COPY_BYTES];
	size_t len = ota_counter_encode(counter, buf + OTA_RECORD_COPY_HEADER_BYTES,
					sizeof(buf) - OTA_RECORD_COPY_OVERHEAD);
	enum ota_err err = small_store(agent, OTA_REC_COUNTER, buf, sizeof(buf), len, 0);
	if (err != OTA_OK)
		return err;
	agent->counter = counter;
	return OTA_OK;
}

static bool same_image(const struct ota_slot_info *a, const struct ota_slot_info *b)
{
	return a->valid == b->valid && a->size == b->size && a->version_code == b->version_code &&
	       a->security_counter == b->security_counter &&
	       memcmp(a->sha256, b->sha256, OTA_SHA256_BYTES) == 0 &&
	       strcmp(a->version, b->version) == 0;
}

/*
 * Keeps the boot record equal to the confirmed slot of the state. It is
 * written only when the confirmed slot changes, so it is rarely torn, and
 * it lets the boot step find the last good slot when the state is lost.
 */
static enum ota_err boot_record_sync(struct ota_agent *agent)
{
	uint8_t buf[BOOT_COPY_BYTES];
	struct ota_record_copy copy;
	struct ota_boot_record have;
	struct ota_boot_record want;
	memset(&want, 0, sizeof(want));
	want.slot = agent->state.confirmed_slot;
	want.image = agent->state.slots[want.slot];
	if (!want.image.valid)
		return OTA_OK;
	if (agent->records[OTA_REC_BOOT].valid == ALL_COPIES &&
	    rec_read(agent, OTA_REC_BOOT, buf, sizeof(buf), &copy) == OTA_OK &&
	    ota_boot_decode(copy.payload, copy.payload_len, &have) == OTA_OK &&
	    have.slot == want.slot && same_image(&have.image, &want.image))
		return OTA_OK;
	size_t len = ota_boot_encode(&want, buf + OTA_RECORD_COPY_HEADER_BYTES,
				     sizeof(buf) - OTA_RECORD_COPY_OVERHEAD);
	return small_store(agent, OTA_REC_BOOT, buf, sizeof(buf), len, 0);
}

/*
 * Writes an event record with the next sequence number of *next. The
 * caller's following state_store() persists the advanced number; a cut in
 * between only lets the next event reuse the ring entry.
 */
static enum ota_err event_add(struct ota_agent *agent, struct ota_agent_state *next,
			      enum ota_event_kind kind, enum ota_err error,
			      const struct ota_slot_info *image, const char *detail)
{
	struct ota_event ev;
	uint8_t buf[EVENT_COPY_BYTES];
	if (agent->state_lost)
		return OTA_ERR_STORAGE; /* the next event number is unknown */
	memset(&ev, 0, sizeof(ev));
	ev.seq = next->next_event_seq;
	ev.time = next->latest_time;
	ev.kind = kind;
	ev.error = error;
	if (image) {
		ev.version_code = image->version_code;
		ev.security_counter = image->security_counter;
		copy_str(ev.version, sizeof(ev.version), image->version);
	}
	copy_str(ev.detail, sizeof(ev.detail), detail);
	size_t len = ota_event_encode(&ev, buf + OTA_RECORD_COPY_HEADER_BYTES,
				      sizeof(buf) - OTA_RECORD_COPY_OVERHEAD);
	enum ota_record rec = (enum ota_record)(OTA_REC_EVENT_0 + ev.seq % OTA_AGENT_EVENT_RECORDS);
	enum ota_err err = small_store(agent, rec, buf, sizeof(buf), len, ev.seq);
	if (err != OTA_OK)
		return err;
	next->next_event_seq++;
	return OTA_OK;
}

/* Records a failure in the log and in last_error; returns err unchanged. */
static enum ota_err note_failure(struct ota_agent *agent, struct ota_agent_state *next,
				 enum ota_event_kind kind, enum ota_err err,
				 const struct ota_slot_info *image, const char *detail)
{
	char line[OTA_AGENT_DETAIL_BYTES + 48];
	struct ota_text t;
	ota_text_init(&t, line, sizeof(line));
	ota_text_str(&t, ota_err_name(err));
	ota_text_str(&t, ": ");
	ota_text_str(&t, detail);
	alog(agent, OTA_LOG_WARN, line);
	next->last_error = (uint32_t)err;
	copy_str(next->last_error_detail, sizeof(next->last_error_detail), detail);
	(void)event_add(agent, next, kind, err, image, detail);
	(void)state_store(agent, next);
	return err;
}

static enum ota_err reject(struct ota_agent *agent, enum ota_err err,
			   const struct ota_slot_info *image, const char *detail)
{
	struct ota_agent_state next = agent->state;
	return note_failure(agent, &next, OTA_EVENT_REJECTED, err, image, detail);
}

/* Reads the newest valid copy of a record into a buffer carved from the arena. */
static enum ota_err record_load(struct ota_agent *agent, struct ota_arena *arena,
				enum ota_record rec, const uint8_t **ret_payload, size_t *ret_len)
{
	struct ota_record_copy copy;
	uint8_t *buf = ota_arena_alloc(arena, OTA_RECORD_COPY_MAX_BYTES);
	if (!buf)
		return OTA_ERR_NOMEM;
	enum ota_err err = rec_read(agent, rec, buf, OTA_RECORD_COPY_MAX_BYTES, &copy);
	if (err != OTA_OK)
		return err;
	*ret_payload = copy.payload;
	*ret_len = copy.payload_len;
	return OTA_OK;
}

static enum ota_err envelope_store(struct ota_agent *agent, struct ota_arena *arena,
				   enum ota_record rec, const Fleetota__V1__Signed *env)
{
	size_t len = fleetota__v1__signed__get_packed_size(env);
	if (len == 0 || len > OTA_MAX_ENVELOPE_BYTES)
		return OTA_ERR_FORMAT;
	if (!agent->records[rec].known) {
		/* learn which copy is older (a manifest is not read at init) */
		const uint8_t *old = NULL;
		size_t old_len = 0;
		if (record_load(agent, arena, rec, &old, &old_len) == OTA_ERR_NOMEM)
			return OTA_ERR_NOMEM;
	}
	uint8_t *buf = ota_arena_alloc(arena, len + OTA_RECORD_COPY_OVERHEAD);
	if (!buf)
		return OTA_ERR_NOMEM;
	fleetota__v1__signed__pack(env, buf + OTA_RECORD_COPY_HEADER_BYTES);
	return rec_write(agent, rec, buf, len + OTA_RECORD_COPY_OVERHEAD, len, 0);
}

static enum ota_err envelope_load(struct ota_agent *agent, struct ota_arena *arena,
				  enum ota_record rec, Fleetota__V1__Signed **ret_env)
{
	const uint8_t *buf = NULL;
	size_t len = 0;
	enum ota_err err = record_load(agent, arena, rec, &buf, &len);
	if (err != OTA_OK)
		return err;
	return ota_envelope_decode(buf, len, arena, ret_env);
}

/*
 * The stored trust anchors. They were verified before they were stored,
 * and trusted storage is trusted, so they are parsed, not re-verified (a
 * KeyList stays valid after the roots that signed it rotate). Both records
 * are read even when the first fails, so init learns of every copy.
 */
static enum ota_err trust_load(struct ota_agent *agent, struct ota_arena *arena,
			       Fleetota__V1__RootList **ret_root, Fleetota__V1__KeyList **ret_kl)
{
	Fleetota__V1__Signed *root_env = NULL;
	Fleetota__V1__Signed *kl_env = NULL;
	Fleetota__V1__RootList *root = NULL;
	Fleetota__V1__KeyList *kl = NULL;
	enum ota_err root_err = envelope_load(agent, arena, OTA_REC_ROOTLIST, &root_env);
	enum ota_err kl_err = envelope_load(agent, arena, OTA_REC_KEYLIST, &kl_env);
	if (root_err == OTA_OK)
		root_err = ota_rootlist_parse(root_env, arena, &root);
	if (kl_err == OTA_OK)
		kl_err = ota_keylist_parse(kl_env, arena, &kl);
	if (root_err == OTA_ERR_NOMEM || kl_err == OTA_ERR_NOMEM)
		return OTA_ERR_NOMEM;
	if (root_err != OTA_OK || kl_err != OTA_OK)
		return OTA_ERR_STORAGE;
	*ret_root = root;
	*ret_kl = kl;
	return OTA_OK;
}

static uint64_t trusted_now(struct ota_agent *agent)
{
	uint64_t now = agent->state.latest_time;
	uint64_t clock = 0;
	if (agent->port.ops->clock_now &&
	    agent->port.ops->clock_now(agent->port.ctx, &clock) == OTA_OK)
		now = max_u64(now, clock);
	return now;
}

static void arena_open(struct ota_agent *agent, struct ota_arena *arena)
{
	ota_arena_init(arena, agent->work, agent->work_len);
}

/* OTA_OK when the device may change: provisioned, and its state readable. */
static enum ota_err agent_usable(const struct ota_agent *agent)
{
	if (!agent->state.provisioned)
		return OTA_ERR_INVALID_ARG;
	return agent->state_lost ? OTA_ERR_STORAGE : OTA_OK;
}

/* ---- init / provision ----------------------------------------------- */

/* Any copy of a record only a provisioned device has (events and manifests aside). */
static bool trust_present(const struct ota_agent *agent)
{
	static const enum ota_record trust[] = {OTA_REC_STATE, OTA_REC_COUNTER, OTA_REC_ROOTLIST,
						OTA_REC_KEYLIST, OTA_REC_BOOT};
	for (size_t i = 0; i < sizeof(trust) / sizeof(trust[0]); i++) {
		if (agent->records[trust[i]].present)
			return true;
	}
	return false;
}

#define STATE_LOST_DETAIL "state record unreadable (both copies); the boot step rebuilds it"

enum ota_err ota_agent_init(struct ota_agent *agent, const struct ota_port *port,
			    const struct ota_agent_config *config, void *work, size_t work_len)
{
	uint8_t buf[SMALL_COPY_BYTES];
	struct ota_record_copy copy;
	if (!agent || !port || !port->ops || !config || !config->model || !config->hw_revision ||
	    !work || work_len < OTA_AGENT_WORK_BYTES)
		return OTA_ERR_INVALID_ARG;
	const struct ota_port_ops *ops = port->ops;
	if (!ops->slot_size || !ops->slot_read || !ops->slot_write || !ops->slot_erase ||
	    !ops->slot_sync || !ops->record_read || !ops->record_write)
		return OTA_ERR_INVALID_ARG;
	memset(agent, 0, sizeof(*agent));
	agent->port = *port;
	agent->config = *config;
	if (agent->config.checkpoint_bytes == 0)
		agent->config.checkpoint_bytes = OTA_AGENT_CHECKPOINT_BYTES;
	agent->work = work;
	agent->work_len = work_len;

	struct ota_agent_state state;
	enum ota_err state_err = rec_read(agent, OTA_REC_STATE, buf, sizeof(buf), &copy);
	if (state_err == OTA_OK &&
	    (ota_state_decode(copy.payload, copy.payload_len, &state) != OTA_OK ||
	     !state.provisioned))
		state_err = OTA_ERR_STORAGE;
	uint64_t counter = 0;
	if (rec_read(agent, OTA_REC_COUNTER, buf, sizeof(buf), &copy) != OTA_OK ||
	    ota_counter_decode(copy.payload, copy.payload_len, &counter) != OTA_OK)
		counter = 0;
	(void)rec_read(agent, OTA_REC_BOOT, buf, sizeof(buf), &copy);
	struct ota_arena arena;
	Fleetota__V1__RootList *root = NULL;
	Fleetota__V1__KeyList *kl = NULL;
	arena_open(agent, &arena);
	if (trust_load(agent, &arena, &root, &kl) == OTA_OK) {
		agent->rootlist_version = root->version;
		agent->keylist_version = kl->version;
	}
	if (state_err == OTA_ERR_NOT_FOUND && !trust_present(agent))
		return OTA_OK; /* a blank device: not provisioned */
	if (state_err != OTA_OK) {
		/* provisioned, state lost: never "blank", never a new set of roots */
		agent->state_lost = true;
		agent->state.provisioned = true;
		agent->state.last_error = OTA_ERR_STORAGE;
		copy_str(agent->state.last_error_detail, sizeof(agent->state.last_error_detail),
			 STATE_LOST_DETAIL);
		alog(agent, OTA_LOG_ERROR, STATE_LOST_DETAIL);
		agent->counter = counter;
		return OTA_OK;
	}
	agent->state = state;
	/* a lost counter record never goes below the confirmed image's counter */
	const struct ota_slot_info *running = &state.slots[state.confirmed_slot];
	agent->counter = running->valid ? max_u64(counter, running->security_counter) : counter;
	return OTA_OK;
}

/* Ends the decryptor and the delta applier of agent->install (either may be off). */
static void install_release(struct ota_agent *agent)
{
	ota_decrypt_close(&agent->install.dec);
	ota_delta_install_close(agent);
}

void ota_agent_close(struct ota_agent *agent)
{
	if (!agent)
		return;
	if (agent->install.active)
		ota_sha256_abort(&agent->install.hash);
	agent->install.active = false;
	install_release(agent);
}

enum ota_err ota_agent_provision(struct ota_agent *agent, const uint8_t *rootlist,
				 size_t rootlist_len, const uint8_t *keylist, size_t keylist_len)
{
	struct ota_arena arena;
	Fleetota__V1__Signed *root_env = NULL;
	Fleetota__V1__Signed *kl_env = NULL;
	Fleetota__V1__RootList *root = NULL;
	Fleetota__V1__KeyList *kl = NULL;
	if (agent->state.provisioned || trust_present(agent))
		return OTA_ERR_BUSY;
	arena_open(agent, &arena);
	enum ota_err err = ota_envelope_decode(rootlist, rootlist_len, &arena, &root_env);
	if (err == OTA_OK)
		err = ota_rootlist_verify_initial(root_env, &arena, &root);
	if (err != OTA_OK)
		return err;
	uint64_t now = trusted_now(agent);
	err = ota_envelope_decode(keylist, keylist_len, &arena, &kl_env);
	if (err == OTA_OK)
		err = ota_keylist_verify(root, kl_env, 0, now, &arena, &kl);
	if (err != OTA_OK)
		return err;
	err = envelope_store(agent, &arena, OTA_REC_ROOTLIST, root_env);
	if (err == OTA_OK)
		err = envelope_store(agent, &arena, OTA_REC_KEYLIST, kl_env);
	if (err == OTA_OK)
		err = counter_store(agent, 0);
	if (err != OTA_OK)
		return err;
	struct ota_agent_state next;
	memset(&next, 0, sizeof(next));
	next.next_event_seq = 1;
	next.provisioned = true;
	next.latest_time = max_u64(now, max_u64(root->issued_at, kl->issued_at));
	(void)event_add(agent, &next, OTA_EVENT_ROOTLIST_UPDATED, OTA_OK, NULL, "provisioned");
	(void)event_add(agent, &next, OTA_EVENT_KEYLIST_UPDATED, OTA_OK, NULL, "provisioned");
	/* the state record is written last: it is what makes the device provisioned */
	err = state_store(agent, &next);
	if (err != OTA_OK)
		return err;
	agent->rootlist_version = root->version;
	agent->keylist_version = kl->version;
	return OTA_OK;
}

/* ---- trust updates -------------------------------------------------- */

/* Trust as it would be after applying carried updates (nothing stored yet). */
struct trust_view {
	Fleetota__V1__RootList *root;
	Fleetota__V1__KeyList *kl;
	const Fleetota__V1__Signed *root_env; /* non-NULL when the RootList advanced */
	const Fleetota__V1__Signed *kl_env; /* non-NULL when the KeyList advanced */
	uint64_t now;
};

static enum ota_err trust_apply(struct ota_agent *agent, struct ota_arena *arena,
				const Fleetota__V1__Signed *const *roots, size_t n_roots,
				const Fleetota__V1__Signed *kl_env, struct trust_view *view,
				struct ota_text *detail)
{
	enum ota_err err = trust_load(agent, arena, &view->root, &view->kl);
	if (err != OTA_OK) {
		ota_text_str(detail, "stored trust anchors unreadable");
		return err;
	}
	view->now = trusted_now(agent);
	if (n_roots > OTA_MAX_ROOT_CHAIN + 1) {
		ota_text_str(detail, "root chain too long");
		return OTA_ERR_FORMAT;
	}
	/* the chain is walked one version at a time; older entries are skipped */
	for (size_t i = 0; i < n_roots; i++) {
		Fleetota__V1__RootList *parsed = NULL;
		Fleetota__V1__RootList *next = NULL;
		err = ota_rootlist_parse(roots[i], arena, &parsed);
		if (err != OTA_OK) {
			ota_text_str(detail, "malformed RootList");
			return err;
		}
		if (parsed->version <= view->root->version)
			continue;
		err = ota_rootlist_verify_next(view->root, roots[i], view->now, arena, &next);
		if (err != OTA_OK) {
			ota_text_str(detail, "RootList ");
			ota_text_u64(detail, parsed->version);
			ota_text_str(detail, " does not follow RootList ");
			ota_text_u64(detail, view->root->version);
			return err;
		}
		view->root = next;
		view->root_env = roots[i];
		view->now = max_u64(view->now, next->issued_at);
	}
	if (kl_env) {
		Fleetota__V1__KeyList *parsed = NULL;
		Fleetota__V1__KeyList *next = NULL;
		err = ota_keylist_parse(kl_env, arena, &parsed);
		if (err != OTA_OK) {
			ota_text_str(detail, "malformed KeyList");
			return err;
		}
		if (parsed->version < view->kl->version) {
			ota_text_str(detail, "KeyList ");
			ota_text_u64(detail, parsed->version);
			ota_text_str(detail, " < trusted ");
			ota_text_u64(detail, view->kl->version);
			return OTA_ERR_KEYLIST_ROLLBACK;
		}
		if (parsed->version > view->kl->version) {
			err = ota_keylist_verify(view->root, kl_env, view->kl->version, view->now,
						 arena, &next);
			/* the trusted timestamp key signed it: name the role, not the count */
			if (err == OTA_ERR_THRESHOLD &&
			    ota_keylist_signed_by_role(view->kl, kl_env,
						       FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP))
				err = OTA_ERR_KEY_ROLE;
			if (err != OTA_OK) {
				ota_text_str(detail, "KeyList ");
				ota_text_u64(detail, parsed->version);
				ota_text_str(detail, " not signed by the roots");
				return err;
			}
			view->kl = next;
			view->kl_env = kl_env;
			view->now = max_u64(view->now, next->issued_at);
		}
	}
	if (view->kl->expires_at && view->now >= view->kl->expires_at) {
		ota_text_str(detail, "trusted KeyList expired");
		return OTA_ERR_EXPIRED;
	}
	return OTA_OK;
}

/* Stores what trust_apply() advanced: roots first, then keys, then state. */
static enum ota_err trust_persist(struct ota_agent *agent, struct ota_arena *arena,
				  const struct trust_view *view, struct ota_agent_state *next)
{
	enum ota_err err;
	if (view->root_env) {
		err = envelope_store(agent, arena, OTA_REC_ROOTLIST, view->root_env);
		if (err != OTA_OK)
			return err;
		agent->rootlist_version = view->root->version;
		(void)event_add(agent, next, OTA_EVENT_ROOTLIST_UPDATED, OTA_OK, NULL, "");
	}
	if (view->kl_env) {
		err = envelope_store(agent, arena, OTA_REC_KEYLIST, view->kl_env);
		if (err != OTA_OK)
			return err;
		agent->keylist_version = view->kl->version;
		(void)event_add(agent, next, OTA_EVENT_KEYLIST_UPDATED, OTA_OK, NULL, "");
	}
	next->latest_time = max_u64(next->latest_time, view->now);
	return OTA_OK;
}

static enum ota_err trust_update(struct ota_agent *agent, struct ota_arena *arena,
				 const Fleetota__V1__Signed *const *roots, size_t n_roots,
				 const Fleetota__V1__Signed *kl_env)
{
	char detail_buf[OTA_AGENT_DETAIL_BYTES];
	struct ota_text detail;
	struct trust_view view;
	memset(&view, 0, sizeof(view));
	ota_text_init(&detail, detail_buf, sizeof(detail_buf));
	enum ota_err err = agent_usable(agent);
	if (err != OTA_OK)
		return err;
	err = trust_apply(agent, arena, roots, n_roots, kl_env, &view, &detail);
	if (err != OTA_OK)
		return reject(agent, err, NULL, detail_buf);
	struct ota_agent_state next = agent->state;
	err = trust_persist(agent, arena, &view, &next);
	if (err == OTA_OK)
		err = state_store(agent, &next);
	return err;
}

enum ota_err ota_agent_update_rootlist(struct ota_agent *agent, const uint8_t *const *rootlists,
				       const size_t *lens, size_t n)
{
	struct ota_arena arena;
	const Fleetota__V1__Signed *envs[OTA_MAX_ROOT_CHAIN + 1];
	if (n == 0 || n > OTA_MAX_ROOT_CHAIN + 1)
		return OTA_ERR_FORMAT;
	arena_open(agent, &arena);
	for (size_t i = 0; i < n; i++) {
		Fleetota__V1__Signed *env = NULL;
		enum ota_err err = ota_envelope_decode(rootlists[i], lens[i], &arena, &env);
		if (err != OTA_OK)
			return reject(agent, err, NULL, "malformed RootList envelope");
		envs[i] = env;
	}
	return trust_update(agent, &arena, envs, n, NULL);
}

enum ota_err ota_agent_update_keylist(struct ota_agent *agent, const uint8_t *keylist,
				      size_t keylist_len)
{
	struct ota_arena arena;
	Fleetota__V1__Signed *env = NULL;
	arena_open(agent, &arena);
	enum ota_err err = ota_envelope_decode(keylist, keylist_len, &arena, &env);
	if (err != OTA_OK)
		return reject(agent, err, NULL, "malformed KeyList envelope");
	return trust_update(agent, &arena, NULL, 0, env);
}

/* ---- install -------------------------------------------------------- */

static unsigned inactive_slot(const struct ota_agent *agent)
{
	return agent->state.confirmed_slot == 0 ? 1u : 0u;
}

static enum ota_record manifest_record(unsigned slot)
{
	return slot == 0 ? OTA_REC_MANIFEST_0 : OTA_REC_MANIFEST_1;
}

/* Hashes slot[0..len) into ctx, through a chunk buffer from the arena. */
static enum ota_err slot_hash(struct ota_agent *agent, struct ota_arena *arena, unsigned slot,
			      uint64_t len, struct ota_sha256_ctx *ctx)
{
	uint8_t *chunk = ota_arena_alloc(arena, OTA_AGENT_HASH_CHUNK_BYTES);
	if (!chunk)
		return OTA_ERR_NOMEM;
	for (uint64_t off = 0; off < len;) {
		size_t n = len - off > OTA_AGENT_HASH_CHUNK_BYTES ? OTA_AGENT_HASH_CHUNK_BYTES
								  : (size_t)(len - off);
		if (agent->port.ops->slot_read(agent->port.ctx, slot, off, chunk, n) != OTA_OK)
			return OTA_ERR_STORAGE;
		enum ota_err err = ota_sha256_update(ctx, chunk, n);
		if (err != OTA_OK)
			return err;
		off += n;
	}
	return OTA_OK;
}

/* OTA_OK when slot[0..info.size) hashes to info.sha256, else OTA_ERR_HASH. */
static enum ota_err slot_verify_hash(struct ota_agent *agent, struct ota_arena *arena,
				     unsigned slot, const struct ota_slot_info *info)
{
	struct ota_sha256_ctx ctx;
	uint8_t digest[OTA_SHA256_BYTES];
	uint64_t cap = 0;
	enum ota_err verdict = OTA_ERR_HASH;
	if (!info->valid || info->size == 0)
		return OTA_ERR_HASH;
	if (agent->port.ops->slot_size(agent->port.ctx, slot, &cap) != OTA_OK)
		return OTA_ERR_STORAGE;
	if (info->size > cap)
		return OTA_ERR_SIZE;
	enum ota_err err = ota_sha256_init(&ctx);
	if (err != OTA_OK)
		return err;
	err = slot_hash(agent, arena, slot, info->size, &ctx);
	if (err != OTA_OK) {
		ota_sha256_abort(&ctx);
		return err;
	}
	err = ota_sha256_final(&ctx, digest);
	if (err != OTA_OK)
		return err;
	if (memcmp(digest, info->sha256, sizeof(digest)) == 0)
		verdict = OTA_OK;
	return verdict;
}

static void slot_info_from_manifest(const Fleetota__V1__Manifest *m, struct ota_slot_info *info)
{
	memset(info, 0, sizeof(*info));
	info->valid = true;
	copy_str(info->version, sizeof(info->version), m->version);
	info->version_code = m->version_code;
	info->security_counter = m->security_counter;
	info->size = m->image->size;
	memcpy(info->sha256, m->image->sha256.data, OTA_SHA256_BYTES);
}

/*
 * Step 2 of the sequence: the manifest's fields against this device and its
 * state. Order is the contract: model/revision, expiry,
 * min_installed_version, security counter, version.
 */
static enum ota_err manifest_fields_check(struct ota_agent *agent, const Fleetota__V1__Manifest *m,
					  uint64_t now, struct ota_text *detail)
{
	const struct ota_slot_info *installed = &agent->state.slots[agent->state.confirmed_slot];
	uint64_t installed_code = installed->valid ? installed->version_code : 0;

	if (strcmp(m->product, agent->config.model) != 0) {
		ota_text_str(detail, "model ");
		ota_text_str(detail, m->product);
		ota_text_str(detail, " is not ");
		ota_text_str(detail, agent->config.model);
		return OTA_ERR_HW_MISMATCH;
	}
	if (m->n_hw_revisions > 0) {
		bool listed = false;
		for (size_t i = 0; i < m->n_hw_revisions; i++) {
			if (strcmp(m->hw_revisions[i], agent->config.hw_revision) == 0)
				listed = true;
		}
		if (!listed) {
			ota_text_str(detail, "hw revision ");
			ota_text_str(detail, agent->config.hw_revision);
			ota_text_str(detail, " not listed");
			return OTA_ERR_HW_MISMATCH;
		}
	}
	if (m->expires_at && now >= m->expires_at) {
		ota_text_str(detail, "manifest expired at ");
		ota_text_u64(detail, m->expires_at);
		ota_text_str(detail, ", trusted time ");
		ota_text_u64(detail, now);
		return OTA_ERR_EXPIRED;
	}
	if (m->min_installed_version > installed_code) {
		ota_text_str(detail, "needs installed version ");
		ota_text_u64(detail, m->min_installed_version);
		ota_text_str(detail, ", running ");
		ota_text_u64(detail, installed_code);
		return OTA_ERR_MIN_VERSION;
	}
	if (m->security_counter < agent->counter) {
		ota_text_str(detail, "security counter ");
		ota_text_u64(detail, m->security_counter);
		ota_text_str(detail, " < ");
		ota_text_u64(detail, agent->counter);
		return OTA_ERR_ROLLBACK;
	}
	if (m->version_code <= installed_code && !m->allow_downgrade) {
		ota_text_str(detail, "version ");
		ota_text_u64(detail, m->version_code);
		ota_text_str(detail, " <= installed ");
		ota_text_u64(detail, installed_code);
		return OTA_ERR_DOWNGRADE;
	}
	return OTA_OK;
}

/* Starts a fresh staging of the verified manifest into slot. */
static enum ota_err staging_start(struct ota_agent *agent, struct ota_arena *arena, unsigned slot,
				  const Fleetota__V1__Signed *menv, struct ota_agent_state *next)
{
	/* first forget whatever the slot held, so no state points at it */
	next->phase = OTA_PHASE_IDLE;
	next->slots[slot].valid = false;
	next->staged_bytes = 0;
	enum ota_err err = state_store(agent, next);
	if (err != OTA_OK)
		return err;
	if (agent->port.ops->slot_erase(agent->port.ctx, slot) != OTA_OK)
		return OTA_ERR_STORAGE;
	err = envelope_store(agent, arena, manifest_record(slot), menv);
	if (err != OTA_OK)
		return err;
	next->phase = OTA_PHASE_STAGING;
	next->target_slot = (uint8_t)slot;
	memcpy(next->staging_manifest_sha256, agent->install.manifest_sha256, OTA_SHA256_BYTES);
	return state_store(agent, next);
}

static enum ota_err install_begin(struct ota_agent *agent, struct ota_arena *arena,
				  const Fleetota__V1__Signed *menv,
				  const Fleetota__V1__Signed *kl_env,
				  const Fleetota__V1__Signed *const *roots, size_t n_roots)
{
	char detail_buf[OTA_AGENT_DETAIL_BYTES];
	struct ota_text detail;
	struct trust_view view;
	Fleetota__V1__Manifest *m = NULL;
	struct ota_slot_info info;
	/* the verdict starts as failure and becomes OTA_OK in one place */
	enum ota_err verdict = OTA_ERR_INTERNAL;
	enum ota_err err;

	memset(&view, 0, sizeof(view));
	memset(&info, 0, sizeof(info));
	ota_text_init(&detail, detail_buf, sizeof(detail_buf));
	ota_agent_close(agent);
	err = agent_usable(agent);
	if (err != OTA_OK)
		return err;
	if (agent->state.phase == OTA_PHASE_TRIAL)
		return reject(agent, OTA_ERR_BUSY, NULL, "an update is on trial");

	/* step 1: trust updates carried along, then the manifest signature */
	err = trust_apply(agent, arena, roots, n_roots, kl_env, &view, &detail);
	if (err != OTA_OK)
		return reject(agent, err, NULL, detail_buf);
	const Fleetota__V1__PublicKey *signer = NULL;
	err = ota_manifest_verify(view.kl, menv, arena, &m, &signer);
	if (err != OTA_OK) {
		ota_text_str(&detail, "manifest not signed by a trusted key");
		return reject(agent, err, NULL, detail_buf);
	}
	slot_info_from_manifest(m, &info);
	/* a verified issued_at raises the latest trusted time */
	view.now = max_u64(view.now, m->issued_at);

	/* step 2: the fields */
	err = manifest_fields_check(agent, m, view.now, &detail);
	if (err != OTA_OK)
		return reject(agent, err, &info, detail_buf);
	if (!m->is_security_update && agent->port.ops->consent) {
		struct ota_port_offer offer = {.version = m->version,
					       .version_code = m->version_code,
					       .security_counter = m->security_counter,
					       .is_security_update = 0};
		if (agent->port.ops->consent(agent->port.ctx, &offer) != OTA_OK)
			return reject(agent, OTA_ERR_CONSENT, &info, "owner consent not given");
	}
	unsigned slot = inactive_slot(agent);
	uint64_t cap = 0;
	if (agent->port.ops->slot_size(agent->port.ctx, slot, &cap) != OTA_OK)
		return reject(agent, OTA_ERR_STORAGE, &info, "slot size unknown");
	if (m->image->size > cap) {
		ota_text_str(&detail, "image of ");
		ota_text_u64(&detail, m->image->size);
		ota_text_str(&detail, " bytes exceeds the slot");
		return reject(agent, OTA_ERR_SIZE, &info, detail_buf);
	}
	/*
	 * an encrypted image: this device's key unwraps it, or no byte is
	 * fetched. First: a delta that is also encrypted is refused here
	 * (OTA_ERR_UNSUPPORTED), whatever its base, before the delta checks.
	 */
	struct ota_decrypt dec;
	err = ota_decrypt_prepare(&agent->port, m, &dec, &detail);
	if (err != OTA_OK)
		return reject(agent, err, &info, detail_buf);
	if (m->delta) {
		err = ota_delta_install_check(agent, m, &detail);
		if (err != OTA_OK) {
			ota_decrypt_close(&dec);
			return reject(agent, err, &info, detail_buf);
		}
	}
	verdict = OTA_OK;

	/* persist: trust first, then the staging state */
	struct ota_install *inst = &agent->install;
	memset(inst, 0, sizeof(*inst));
	inst->dec = dec;
	err = ota_sha256(menv->body.data, menv->body.len, inst->manifest_sha256);
	inst->slot = (uint8_t)slot;
	inst->info = info;
	if (err == OTA_OK && m->delta) {
		err = ota_delta_install_open(agent, m);
		if (err != OTA_OK) {
			install_release(agent);
			return reject(agent, err, &info, "cannot open the delta base");
		}
	}
	struct ota_agent_state next = agent->state;
	if (err == OTA_OK)
		err = trust_persist(agent, arena, &view, &next);
	if (err != OTA_OK) {
		install_release(agent);
		return err;
	}
	next.last_error = OTA_OK;
	next.last_error_detail[0] = '\0';
	(void)event_add(agent, &next, OTA_EVENT_INSTALL_STARTED, OTA_OK, &info, "");

	if (!inst->delta)
		inst->size = m->image->size;
	memcpy(inst->sha256, m->image->sha256.data, OTA_SHA256_BYTES);
	err = ota_sha256_init(&inst->hash);
	if (err != OTA_OK) {
		install_release(agent);
		return err;
	}

	/*
	 * a delta starts over: its output is only as good as every frame before
	 * it; an encrypted image resumes at a chunk boundary (checkpoints are at one)
	 */
	bool resume = !inst->delta && agent->state.phase == OTA_PHASE_STAGING &&
		      agent->state.target_slot == slot && agent->state.staged_bytes <= inst->size &&
		      memcmp(agent->state.staging_manifest_sha256, inst->manifest_sha256,
			     OTA_SHA256_BYTES) == 0 &&
		      (!inst->dec.on ||
		       ota_decrypt_seek(&inst->dec, agent->state.staged_bytes) == OTA_OK);
	if (resume) {
		/* never trust a prefix we did not hash: hash it again from the slot */
		err = slot_hash(agent, arena, slot, agent->state.staged_bytes, &inst->hash);
		if (err == OTA_OK) {
			inst->written = agent->state.staged_bytes;
			err = state_store(agent, &next);
		}
	} else {
		err = staging_start(agent, arena, slot, menv, &next);
	}
	if (err != OTA_OK) {
		ota_sha256_abort(&inst->hash);
		install_release(agent);
		return err;
	}
	inst->active = verdict == OTA_OK;
	return verdict;
}

enum ota_err ota_agent_begin(struct ota_agent *agent, const uint8_t *manifest, size_t manifest_len,
			     const uint8_t *keylist, size_t keylist_len,
			     const uint8_t *const *rootlists, const size_t *rootlist_lens,
			     size_t n_rootlists)
{
	struct ota_arena arena;
	Fleetota__V1__Signed *menv = NULL;
	Fleetota__V1__Signed *kl_env = NULL;
	const Fleetota__V1__Signed *roots[OTA_MAX_ROOT_CHAIN + 1];
	if (!agent || !manifest)
		return OTA_ERR_INVALID_ARG;
	ota_agent_close(agent);
	if (agent->state_lost)
		return OTA_ERR_STORAGE;
	if (n_rootlists > OTA_MAX_ROOT_CHAIN + 1)
		return reject(agent, OTA_ERR_FORMAT, NULL, "root chain too long");
	arena_open(agent, &arena);
	if (ota_envelope_decode(manifest, manifest_len, &arena, &menv) != OTA_OK)
		return reject(agent, OTA_ERR_FORMAT, NULL, "malformed manifest envelope");
	if (keylist && ota_envelope_decode(keylist, keylist_len, &arena, &kl_env) != OTA_OK)
		return reject(agent, OTA_ERR_FORMAT, NULL, "malformed KeyList envelope");
	for (size_t i = 0; i < n_rootlists; i++) {
		Fleetota__V1__Signed *env = NULL;
		if (ota_envelope_decode(rootlists[i], rootlist_lens[i], &arena, &env) != OTA_OK)
			return reject(agent, OTA_ERR_FORMAT, NULL, "malformed RootList envelope");
		roots[i] = env;
	}
	return install_begin(agent, &arena, menv, kl_env, roots, n_rootlists);
}

enum ota_err ota_agent_begin_bundle(struct ota_agent *agent, const uint8_t *header,
				    size_t header_len)
{
	struct ota_arena arena;
	Fleetota__V1__BundleHeader *hdr = NULL;
	const Fleetota__V1__Signed *roots[OTA_MAX_ROOT_CHAIN + 1];
	size_t n_roots = 0;
	if (!agent || !header)
		return OTA_ERR_INVALID_ARG;
	ota_agent_close(agent);
	if (agent->state_lost)
		return OTA_ERR_STORAGE;
	arena_open(agent, &arena);
	if (ota_bundle_header_decode(header, header_len, &arena, &hdr) != OTA_OK)
		return reject(agent, OTA_ERR_FORMAT, NULL, "malformed bundle header");
	/* intermediates oldest first, then the newest */
	for (size_t i = 0; i < hdr->n_rootlist_chain; i++)
		roots[n_roots++] = hdr->rootlist_chain[i];
	if (hdr->rootlist)
		roots[n_roots++] = hdr->rootlist;
	return install_begin(agent, &arena, hdr->manifest, hdr->keylist, roots, n_roots);
}

uint64_t ota_agent_offset(const struct ota_agent *agent)
{
	const struct ota_install *inst = &agent->install;
	if (!inst->active)
		return 0;
	return inst->dec.on ? inst->dec.wire_done : inst->written;
}

uint64_t ota_agent_image_size(const struct ota_agent *agent)
{
	const struct ota_install *inst = &agent->install;
	if (!inst->active)
		return 0;
	return inst->dec.on ? inst->dec.wire_size : inst->size;
}

bool ota_agent_install_is_delta(const struct ota_agent *agent,
				uint8_t ret_base_sha256[OTA_SHA256_BYTES])
{
	if (!agent->install.active || !agent->install.delta)
		return false;
	if (ret_base_sha256)
		memcpy(ret_base_sha256, agent->state.slots[agent->install.base_slot].sha256,
		       OTA_SHA256_BYTES);
	return true;
}

/* Ends a staging that failed verification: slot erased, state idle. */
static enum ota_err staging_fail(struct ota_agent *agent, enum ota_err err, const char *detail)
{
	struct ota_slot_info info = agent->install.info;
	unsigned slot = agent->install.slot;
	ota_agent_close(agent);
	struct ota_agent_state next = agent->state;
	next.phase = OTA_PHASE_IDLE;
	next.slots[slot].valid = false;
	next.staged_bytes = 0;
	memset(next.staging_manifest_sha256, 0, OTA_SHA256_BYTES);
	(void)agent->port.ops->slot_erase(agent->port.ctx, slot);
	return note_failure(agent, &next, OTA_EVENT_REJECTED, err, &info, detail);
}

/* staging_fail with the detail "<before><n><after>". */
static enum ota_err staging_fail_n(struct ota_agent *agent, enum ota_err err, const char *before,
				   uint64_t n, const char *after)
{
	char buf[OTA_AGENT_DETAIL_BYTES];
	struct ota_text detail;
	ota_text_init(&detail, buf, sizeof(buf));
	ota_text_str(&detail, before);
	ota_text_u64(&detail, n);
	ota_text_str(&detail, after);
	return staging_fail(agent, err, buf);
}

/* Delta payload bytes: a payload that is not the signed one fails the staging. */
static enum ota_err delta_write(struct ota_agent *agent, const void *chunk, size_t len)
{
	char buf[OTA_AGENT_DETAIL_BYTES];
	struct ota_text detail;
	ota_text_init(&detail, buf, sizeof(buf));
	enum ota_err err = ota_delta_install_write(agent, chunk, len, &detail);
	if (err == OTA_OK) {
		agent->install.written += len;
		return OTA_OK;
	}
	if (err == OTA_ERR_HASH)
		return staging_fail(agent, err, buf);
	ota_agent_close(agent);
	return err;
}

/*
 * Plaintext at inst->written: into the slot, and into the hash unless
 * the caller hashed it already. A checkpoint (slot sync, then the state)
 * when one is due and allowed here: an encrypted image checkpoints only
 * where a chunk authenticated.
 */
static enum ota_err plain_write(struct ota_agent *agent, const void *data, size_t len,
				bool may_checkpoint, bool hashed)
{
	struct ota_install *inst = &agent->install;
	if (len > 0) {
		if (agent->port.ops->slot_write(agent->port.ctx, inst->slot, inst->written, data,
						len) != OTA_OK) {
			ota_agent_close(agent);
			return OTA_ERR_STORAGE;
		}
		enum ota_err err = hashed ? OTA_OK : ota_sha256_update(&inst->hash, data, len);
		if (err != OTA_OK) {
			ota_agent_close(agent);
			return err;
		}
		inst->written += len;
		inst->since_checkpoint += len;
	}
	if (may_checkpoint && inst->since_checkpoint >= agent->config.checkpoint_bytes &&
	    inst->written < inst->size) {
		/* the prefix is durable before the state says it is there */
		if (agent->port.ops->slot_sync(agent->port.ctx, inst->slot) != OTA_OK) {
			ota_agent_close(agent);
			return OTA_ERR_STORAGE;
		}
		struct ota_agent_state next = agent->state;
		next.staged_bytes = inst->written;
		enum ota_err err = state_checkpoint(agent, &next);
		if (err != OTA_OK) {
			ota_agent_close(agent);
			return err;
		}
		inst->since_checkpoint = 0;
	}
	return OTA_OK;
}

/* One job of run_beside: n whole chunks decrypted from chunk index (dec set), or hashed (dec NULL). */
struct chunk_run {
	const struct ota_decrypt *dec; /* NULL: only hash */
	struct ota_gcm_ctx *gcm;
	struct ota_sha256_ctx *hash; /* NULL: only decrypt */
	uint64_t index;
	const uint8_t *in;
	size_t n;
	uint8_t *out;
	size_t chunk_bytes;
	uint64_t bad; /* the chunk that failed */
	enum ota_err err;
};

static void chunk_run(void *arg)
{
	struct chunk_run *r = arg;
	r->err = OTA_OK;
	if (r->dec && r->n > 0)
		r->err = ota_decrypt_chunks(r->dec, r->gcm, r->index, r->in, r->n, r->out, &r->bad);
	if (r->err == OTA_OK && r->hash && r->n > 0)
		r->err = ota_sha256_update(r->hash, r->out, r->n * r->chunk_bytes);
}

/*
 * Whole chunks on two threads (the port's run_beside), as a pipeline:
 * this thread decrypts and hashes the first chunk while the other
 * decrypts the next few; then, step by step, this thread hashes what the
 * other decrypted in the step before while the other decrypts the next
 * ones, about twice as many as this thread hashes (AES-GCM costs about
 * a third of SHA-256 here, docs/bench.md), so this thread rarely waits
 * and decrypts one chunk a run itself. Only chunks whose tags checked
 * are hashed; a failing step ends the run, and *ret_index is the first
 * chunk that failed (a step's chunks all come after those checked
 * before it). The run ends at the chunk that makes a checkpoint due.
 */
static enum ota_err decrypt_beside(struct ota_agent *agent, const uint8_t *in, size_t whole,
				   uint8_t *out, size_t have, size_t *ret_used, size_t *ret_made,
				   uint64_t *ret_index)
{
	struct ota_install *inst = &agent->install;
	struct ota_decrypt *dec = &inst->dec;
	size_t chunk = dec->chunk_bytes;
	size_t sealed = chunk + OTA_CRYPT_TAG_BYTES;
	uint64_t done = inst->since_checkpoint + have;
	uint64_t room =
		agent->config.checkpoint_bytes > done ? agent->config.checkpoint_bytes - done : 0;
	uint64_t upto = (room + chunk - 1) / chunk;
	if (upto < whole)
		whole = upto > 1 ? (size_t)upto : 1;
	out += have;
	/* own: decrypted and hashed here; ahead: decrypted beside, not yet hashed */
	struct chunk_run own = {
		.dec = dec,
		.gcm = &dec->gcm,
		.hash = &inst->hash,
		.index = dec->index,
		.in = in,
		.n = 1,
		.out = out,
		.chunk_bytes = chunk,
	};
	size_t next = 1; /* the first chunk not yet handed to a job */
	enum ota_err err = OTA_OK;
	while (err == OTA_OK && (own.n > 0 || next < whole)) {
		size_t want = 2 * own.n + 1;
		struct chunk_run ahead = {
			.dec = dec,
			.gcm = &dec->gcm_beside,
			.index = dec->index + next,
			.in = in + next * sealed,
			.n = whole - next < want ? whole - next : want,
			.out = out + next * chunk,
			.chunk_bytes = chunk,
		};
		if (ahead.n > 0)
			agent->port.ops->run_beside(agent->port.ctx, chunk_run, &ahead, chunk_run,
						    &own);
		else
			chunk_run(&own);
		/* own's chunks come first: its failure is the first one */
		err = own.err != OTA_OK ? own.err : ahead.err;
		*ret_index = own.err != OTA_OK ? own.bad : ahead.bad;
		next += ahead.n;
		/* the next step hashes what was just decrypted beside */
		own = ahead;
		own.dec = NULL;
		own.hash = &inst->hash;
	}
	if (err != OTA_OK)
		return err;
	ota_decrypt_skip(dec, whole);
	*ret_used = whole * sealed;
	*ret_made = whole * chunk;
	return OTA_OK;
}

/*
 * Ciphertext through the decryptor. The plaintext of one call collects in
 * the work area and goes to the slot in one write at the end of the call,
 * or sooner where the work area is full or a checkpoint is due at a chunk
 * end: an encrypted install makes about as many slot writes as a plain
 * one fed the same pieces (before, every chunk boundary split a write in
 * two, docs/bench.md). A port that lends its own buffer (slot_buffer)
 * gets the plaintext decrypted straight into it: no copy in slot_write.
 * The plaintext is hashed as it is made, while it is in the cache. Two
 * or more whole chunks in a call, with a port that runs a job on another
 * thread (run_beside), are decrypted on both threads (decrypt_beside).
 */
static enum ota_err decrypt_write(struct ota_agent *agent, const uint8_t *in, size_t len)
{
	struct ota_install *inst = &agent->install;
	size_t have = 0; /* plaintext in out, not yet written */
	uint8_t *out = NULL;
	size_t cap = 0;
	while (len > 0) {
		size_t used = 0, made = 0;
		bool chunk_end = false;
		uint64_t index = inst->dec.index;
		enum ota_err err = OTA_OK;
		if (have == 0) {
			out = agent->port.ops->slot_buffer
				      ? agent->port.ops->slot_buffer(agent->port.ctx, inst->slot,
								     inst->written, &cap)
				      : NULL;
			if (!out || cap == 0) {
				out = agent->work;
				cap = agent->work_len;
			}
		}
		size_t whole = inst->dec.beside && agent->port.ops->run_beside && have < cap
				       ? ota_decrypt_whole(&inst->dec, len, cap - have)
				       : 0;
		if (whole >= 2) {
			err = decrypt_beside(agent, in, whole, out, have, &used, &made, &index);
			chunk_end = err == OTA_OK;
		} else if (have < cap) {
			err = ota_decrypt_feed(&inst->dec, in, len, out + have, cap - have, &used,
					       &made, &chunk_end);
			if (err == OTA_OK && made > 0)
				err = ota_sha256_update(&inst->hash, out + have, made);
		}
		have += made;
		bool due = chunk_end &&
			   inst->since_checkpoint + have >= agent->config.checkpoint_bytes;
		if (err == OTA_OK && (len == used || have == cap || due)) {
			err = plain_write(agent, out, have, due, true);
			have = 0;
		}
		if (err == OTA_ERR_DECRYPT)
			return staging_fail_n(agent, err, "chunk ", index,
					      " of the encrypted image fails authentication");
		if (err != OTA_OK) {
			ota_agent_close(agent);
			return err;
		}
		in += used;
		len -= used;
	}
	return OTA_OK;
}

enum ota_err ota_agent_write(struct ota_agent *agent, const void *chunk, size_t len)
{
	struct ota_install *inst = &agent->install;
	if (!inst->active)
		return OTA_ERR_INVALID_ARG;
	if (len == 0)
		return OTA_OK;
	if (!chunk)
		return OTA_ERR_INVALID_ARG;
	uint64_t declared = inst->dec.on ? inst->dec.wire_size : inst->size;
	if (len > declared - ota_agent_offset(agent))
		return staging_fail_n(agent, OTA_ERR_SIZE,
				      inst->delta ? "delta longer than the declared "
						  : "image longer than the declared ",
				      declared, " bytes");
	if (inst->delta)
		return delta_write(agent, chunk, len);
	if (inst->dec.on)
		return decrypt_write(agent, chunk, len);
	return plain_write(agent, chunk, len, true, false);
}

enum ota_err ota_agent_ahead_open(const struct ota_agent *agent, struct ota_decrypt *ret)
{
	const struct ota_install *inst = &agent->install;
	memset(ret, 0, sizeof(*ret));
	if (!inst->active || inst->delta || !inst->dec.on)
		return OTA_ERR_INVALID_ARG;
	return ota_decrypt_copy(ret, &inst->dec);
}

/* a is a decryption ahead of the bytes this install takes next (whatever its verdict) */
static bool ahead_at(const struct ota_install *inst, const struct ota_decrypt_ahead *a)
{
	return inst->active && !inst->delta && inst->dec.on && a->chunks > 0 && a->out &&
	       a->wire_off == inst->dec.wire_done &&
	       memcmp(a->prefix, inst->dec.prefix, sizeof(a->prefix)) == 0 &&
	       a->chunks <= ota_decrypt_whole(&inst->dec, a->len, SIZE_MAX) &&
	       a->len <= inst->dec.wire_size - inst->dec.wire_done;
}

/*
 * A result decrypted in place (no ciphertext left): taken as it is when
 * it continues the install and its whole length is its chunks, a failed
 * tag fails the staging as decrypt_write would, naming the chunk.
 */
static enum ota_err ahead_in_place(struct ota_agent *agent, const struct ota_decrypt_ahead *a)
{
	struct ota_install *inst = &agent->install;
	size_t sealed = (size_t)inst->dec.chunk_bytes + OTA_CRYPT_TAG_BYTES;
	if (!ahead_at(inst, a) || a->len != a->chunks * sealed) {
		ota_agent_close(agent);
		return OTA_ERR_INVALID_ARG;
	}
	if (a->err == OTA_ERR_DECRYPT && a->bad >= inst->dec.index &&
	    a->bad - inst->dec.index < a->chunks)
		return staging_fail_n(agent, a->err, "chunk ", a->bad,
				      " of the encrypted image fails authentication");
	if (a->err != OTA_OK) {
		ota_agent_close(agent);
		return a->err == OTA_ERR_DECRYPT ? OTA_ERR_INVALID_ARG : a->err;
	}
	return OTA_OK;
}

enum ota_err ota_agent_write_ahead(struct ota_agent *agent, const struct ota_decrypt_ahead *a)
{
	struct ota_install *inst = &agent->install;
	if (!a)
		return OTA_ERR_INVALID_ARG;
	if (!inst->active)
		return OTA_ERR_INVALID_ARG;
	if (!a->in) {
		enum ota_err err = ahead_in_place(agent, a);
		if (err != OTA_OK)
			return err;
	} else if (a->err != OTA_OK || !ahead_at(inst, a)) {
		return ota_agent_write(agent, a->in, a->len);
	}
	size_t made = a->chunks * inst->dec.chunk_bytes;
	size_t used = a->chunks * (inst->dec.chunk_bytes + (size_t)OTA_CRYPT_TAG_BYTES);
	/* authenticated on the reading thread: hashed and written here, as decrypt_write does */
	enum ota_err err = ota_sha256_update(&inst->hash, a->out, made);
	if (err != OTA_OK) {
		ota_agent_close(agent);
		return err;
	}
	ota_decrypt_skip(&inst->dec, a->chunks);
	err = plain_write(agent, a->out, made, true, true);
	if (err != OTA_OK || used == a->len)
		return err;
	return decrypt_write(agent, a->in + used, a->len - used);
}

enum ota_err ota_agent_finish(struct ota_agent *agent)
{
	struct ota_install *inst = &agent->install;
	uint8_t digest[OTA_SHA256_BYTES];
	enum ota_err verdict = OTA_ERR_HASH;
	if (!inst->active)
		return OTA_ERR_INVALID_ARG;
	if (inst->dec.on && !ota_decrypt_done(&inst->dec)) {
		char buf[OTA_AGENT_DETAIL_BYTES];
		struct ota_text detail;
		ota_text_init(&detail, buf, sizeof(buf));
		ota_text_str(&detail, "encrypted image ends at byte ");
		ota_text_u64(&detail, inst->dec.wire_done);
		ota_text_str(&detail, " of ");
		ota_text_u64(&detail, inst->dec.wire_size);
		return staging_fail(agent, OTA_ERR_SIZE, buf);
	}
	if (inst->written != inst->size) {
		char buf[OTA_AGENT_DETAIL_BYTES];
		struct ota_text detail;
		ota_text_init(&detail, buf, sizeof(buf));
		ota_text_str(&detail, "image of ");
		ota_text_u64(&detail, inst->written);
		ota_text_str(&detail, " bytes, declared ");
		ota_text_u64(&detail, inst->size);
		return staging_fail(agent, OTA_ERR_SIZE, buf);
	}
	if (inst->delta) {
		char buf[OTA_AGENT_DETAIL_BYTES];
		struct ota_text detail;
		ota_text_init(&detail, buf, sizeof(buf));
		enum ota_err derr = ota_delta_install_finish(agent, &detail);
		if (derr != OTA_OK)
			return staging_fail(agent, derr, buf);
	}
	enum ota_err err = ota_sha256_final(&inst->hash, digest);
	if (err != OTA_OK) {
		ota_agent_close(agent);
		return err;
	}
	if (memcmp(digest, inst->sha256, sizeof(digest)) == 0)
		verdict = OTA_OK;
	if (verdict != OTA_OK)
		return staging_fail(agent, verdict, "image SHA-256 differs from the manifest");
	inst->active = false;
	install_release(agent);
	if (agent->port.ops->slot_sync(agent->port.ctx, inst->slot) != OTA_OK)
		return OTA_ERR_STORAGE;
	struct ota_agent_state next = agent->state;
	next.phase = OTA_PHASE_PENDING;
	next.target_slot = inst->slot;
	next.slots[inst->slot] = inst->info;
	next.staged_bytes = inst->info.size;
	(void)event_add(agent, &next, OTA_EVENT_VERIFIED, OTA_OK, &inst->info, "");
	(void)event_add(agent, &next, OTA_EVENT_PENDING, OTA_OK, &inst->info, "");
	return state_store(agent, &next);
}

enum ota_err ota_agent_abort(struct ota_agent *agent, enum ota_err err, const char *detail,
			     bool keep_staged)
{
	if (!agent->install.active)
		return OTA_ERR_INVALID_ARG;
	if (!keep_staged) {
		(void)staging_fail(agent, err, detail);
		return OTA_OK;
	}
	struct ota_slot_info info = agent->install.info;
	ota_agent_close(agent);
	struct ota_agent_state next = agent->state;
	(void)note_failure(agent, &next, OTA_EVENT_DOWNLOAD_FAILED, err, &info, detail);
	return OTA_OK;
}

/* ---- boot, confirm, revert ------------------------------------------ */

/*
 * A pending slot is verified as if it were new: its stored manifest
 * against the trusted KeyList, the counter, then every byte of the slot.
 */
static enum ota_err pending_verify(struct ota_agent *agent, struct ota_arena *arena, unsigned slot,
				   struct ota_text *detail)
{
	Fleetota__V1__RootList *root = NULL;
	Fleetota__V1__KeyList *kl = NULL;
	Fleetota__V1__Signed *menv = NULL;
	Fleetota__V1__Manifest *m = NULL;
	const struct ota_slot_info *info = &agent->state.slots[slot];
	enum ota_err err = trust_load(agent, arena, &root, &kl);
	if (err != OTA_OK) {
		ota_text_str(detail, "trust anchors unreadable");
		return err;
	}
	err = envelope_load(agent, arena, manifest_record(slot), &menv);
	if (err != OTA_OK) {
		ota_text_str(detail, "pending manifest unreadable");
		return OTA_ERR_STORAGE;
	}
	err = ota_manifest_verify(kl, menv, arena, &m, NULL);
	if (err != OTA_OK) {
		ota_text_str(detail, "pending manifest no longer verifies");
		return err;
	}
	if (m->image->size != info->size ||
	    memcmp(m->image->sha256.data, info->sha256, OTA_SHA256_BYTES) != 0) {
		ota_text_str(detail, "pending manifest does not match the slot");
		return OTA_ERR_HASH;
	}
	if (m->security_counter < agent->counter) {
		ota_text_str(detail, "pending image below the security counter");
		return OTA_ERR_ROLLBACK;
	}
	err = slot_verify_hash(agent, arena, slot, info);
	if (err != OTA_OK)
		ota_text_str(detail, "pending slot hash mismatch");
	return err;
}

/* After a cut inside confirm: the confirmed image's counter is applied. */
static enum ota_err counter_catch_up(struct ota_agent *agent)
{
	const struct ota_slot_info *running = &agent->state.slots[agent->state.confirmed_slot];
	/* neither copy readable: init took the confirmed image's counter; store it */
	if (agent->records[OTA_REC_COUNTER].valid == 0 && agent->state.provisioned)
		(void)counter_store(agent, agent->counter);
	if (!running->valid || running->security_counter <= agent->counter)
		return OTA_OK;
	enum ota_err err = counter_store(agent, running->security_counter);
	if (err != OTA_OK)
		return err;
	struct ota_agent_state next = agent->state;
	(void)event_add(agent, &next, OTA_EVENT_COUNTER_ADVANCED, OTA_OK, running, "");
	return state_store(agent, &next);
}

static enum ota_err trial_revert(struct ota_agent *agent, enum ota_err reason, const char *detail)
{
	struct ota_agent_state next = agent->state;
	unsigned slot = next.target_slot;
	struct ota_slot_info info = next.slots[slot];
	next.phase = OTA_PHASE_IDLE;
	next.slots[slot].valid = false;
	next.staged_bytes = 0;
	next.last_error = (uint32_t)reason;
	copy_str(next.last_error_detail, sizeof(next.last_error_detail), detail);
	(void)event_add(agent, &next, OTA_EVENT_REVERTED, reason, &info, detail);
	alog(agent, OTA_LOG_WARN, "trial reverted");
	return state_store(agent, &next);
}

/*
 * Rewrites every record whose two copies do not both hold its newest
 * value, from the good copy: one bad copy is repaired before a second one
 * can go bad. Failures leave things as they were.
 */
static void records_scrub(struct ota_agent *agent)
{
	for (unsigned i = 0; i < OTA_AGENT_TRACKED_RECORDS; i++) {
		enum ota_record rec = (enum ota_record)i;
		const struct ota_record_meta *meta = &agent->records[rec];
		struct ota_record_copy copy;
		struct ota_arena arena;
		if (!meta->known || meta->valid == 0 || meta->valid == ALL_COPIES)
			continue;
		arena_open(agent, &arena);
		uint8_t *buf = ota_arena_alloc(&arena, OTA_RECORD_COPY_MAX_BYTES);
		if (!buf || rec_read(agent, rec, buf, OTA_RECORD_COPY_MAX_BYTES, &copy) != OTA_OK)
			continue;
		/* the payload is in place after the header: seal it again with seq + 1 */
		if (rec_write(agent, rec, buf, OTA_RECORD_COPY_MAX_BYTES, copy.payload_len, 0) ==
		    OTA_OK)
			alog(agent, OTA_LOG_WARN, "record copy repaired from the other copy");
	}
}

/* The next event number after a lost state: one past the newest event in the ring. */
static uint64_t events_next_seq(struct ota_agent *agent)
{
	uint64_t next = 1;
	for (unsigned i = 0; i < OTA_AGENT_EVENT_RECORDS; i++) {
		uint8_t buf[EVENT_COPY_BYTES];
		struct ota_record_copy copy;
		struct ota_event ev;
		enum ota_record rec = (enum ota_record)(OTA_REC_EVENT_0 + i);
		if (rec_read(agent, rec, buf, sizeof(buf), &copy) == OTA_OK &&
		    ota_event_decode(copy.payload, copy.payload_len, &ev) == OTA_OK &&
		    ev.seq % OTA_AGENT_EVENT_RECORDS == i && ev.seq >= next)
			next = ev.seq + 1;
	}
	return next;
}

/* A slot whose stored manifest verifies against kl and whose bytes hash to it. */
static enum ota_err manifest_candidate(struct ota_agent *agent, struct ota_arena *arena,
				       const Fleetota__V1__KeyList *kl, unsigned slot,
				       struct ota_slot_info *ret_info, uint64_t *ret_issued_at)
{
	Fleetota__V1__Signed *menv = NULL;
	Fleetota__V1__Manifest *m = NULL;
	struct ota_slot_info info;
	enum ota_err err = envelope_load(agent, arena, manifest_record(slot), &menv);
	if (err == OTA_OK)
		err = ota_manifest_verify(kl, menv, arena, &m, NULL);
	if (err != OTA_OK)
		return err;
	if (strcmp(m->product, agent->config.model) != 0)
		return OTA_ERR_HW_MISMATCH;
	if (m->security_counter < agent->counter)
		return OTA_ERR_ROLLBACK;
	slot_info_from_manifest(m, &info);
	err = slot_verify_hash(agent, arena, slot, &info);
	if (err != OTA_OK)
		return err;
	*ret_info = info;
	*ret_issued_at = m->issued_at;
	return OTA_OK;
}

/*
 * The boot step when neither copy of the state is readable. The last good
 * slot comes from the boot record (written when the confirmed slot
 * changes) when its image still hashes and is not below the counter;
 * failing that, from the slots' stored manifests: a slot whose manifest
 * verifies against the trusted KeyList, is for this model, is not below
 * the counter and whose bytes hash to it (the higher version if both do).
 * The state is rebuilt around that slot (idle, the other slot forgotten)
 * and stored; the slot boots even when the store fails.
 */
static enum ota_err state_rebuild(struct ota_agent *agent, unsigned *ret_slot)
{
	uint8_t buf[BOOT_COPY_BYTES];
	struct ota_record_copy copy;
	struct ota_boot_record boot;
	struct ota_arena arena;
	Fleetota__V1__RootList *root = NULL;
	Fleetota__V1__KeyList *kl = NULL;
	struct ota_slot_info found;
	unsigned slot = 0;
	uint64_t latest = 0;
	const char *source = "boot record";
	/* the verdict starts as failure and becomes OTA_OK in one place */
	enum ota_err verdict = OTA_ERR_HASH;
	memset(&found, 0, sizeof(found));
	arena_open(agent, &arena);
	bool trusted = trust_load(agent, &arena, &root, &kl) == OTA_OK;
	if (trusted)
		latest = max_u64(root->issued_at, kl->issued_at);
	if (rec_read(agent, OTA_REC_BOOT, buf, sizeof(buf), &copy) == OTA_OK &&
	    ota_boot_decode(copy.payload, copy.payload_len, &boot) == OTA_OK &&
	    boot.image.security_counter >= agent->counter &&
	    slot_verify_hash(agent, &arena, boot.slot, &boot.image) == OTA_OK) {
		slot = boot.slot;
		found = boot.image;
	}
	bool from_boot_record = found.valid;
	for (unsigned s = 0; !from_boot_record && trusted && s < OTA_SLOT_COUNT; s++) {
		struct ota_slot_info info;
		uint64_t issued_at = 0;
		if (manifest_candidate(agent, &arena, kl, s, &info, &issued_at) != OTA_OK)
			continue;
		if (found.valid && info.version_code <= found.version_code)
			continue;
		slot = s;
		found = info;
		latest = max_u64(latest, issued_at);
		source = "slot manifests";
	}
	/* found is set only from an image that hashed right */
	if (found.valid)
		verdict = OTA_OK;
	if (verdict != OTA_OK) {
		alog(agent, OTA_LOG_ERROR, "state lost and no slot holds a verified image");
		return OTA_ERR_HASH;
	}
	struct ota_agent_state next;
	char detail_buf[OTA_AGENT_DETAIL_BYTES];
	struct ota_text detail;
	ota_text_init(&detail, detail_buf, sizeof(detail_buf));
	ota_text_str(&detail, "state record lost; rebuilt from the ");
	ota_text_str(&detail, source);
	memset(&next, 0, sizeof(next));
	next.provisioned = true;
	next.phase = OTA_PHASE_IDLE;
	next.confirmed_slot = (uint8_t)slot;
	next.target_slot = (uint8_t)slot;
	next.slots[slot] = found;
	next.latest_time = max_u64(latest, trusted_now(agent));
	next.next_event_seq = events_next_seq(agent);
	agent->state_lost = false;
	agent->state.next_event_seq = next.next_event_seq;
	(void)note_failure(agent, &next, OTA_EVENT_REJECTED, OTA_ERR_STORAGE, &found, detail_buf);
	/* memory follows the rebuilt state even if storage refused it */
	agent->state = next;
	(void)boot_record_sync(agent);
	(void)counter_catch_up(agent);
	*ret_slot = slot;
	return OTA_OK;
}

enum ota_err ota_agent_boot(struct ota_agent *agent, unsigned *ret_slot)
{
	char detail_buf[OTA_AGENT_DETAIL_BYTES];
	struct ota_text detail;
	struct ota_arena arena;
	enum ota_err err;
	if (!agent || !ret_slot)
		return OTA_ERR_INVALID_ARG;
	ota_agent_close(agent);
	if (!agent->state.provisioned)
		return OTA_ERR_INVALID_ARG;
	if (agent->state_lost)
		return state_rebuild(agent, ret_slot);
	ota_text_init(&detail, detail_buf, sizeof(detail_buf));
	records_scrub(agent);
	/*
	 * Nothing below may keep the last good slot from booting: a record
	 * that cannot be written or read only postpones what needed it.
	 */
	(void)counter_catch_up(agent);
	(void)boot_record_sync(agent);

	if (agent->state.phase == OTA_PHASE_TRIAL)
		(void)trial_revert(agent, OTA_ERR_SELFTEST, "trial image rebooted without confirm");
	if (agent->state.phase == OTA_PHASE_PENDING) {
		unsigned slot = agent->state.target_slot;
		arena_open(agent, &arena);
		/* the verdict starts as failure and becomes OTA_OK in one place */
		enum ota_err verdict = OTA_ERR_INTERNAL;
		err = pending_verify(agent, &arena, slot, &detail);
		if (err == OTA_OK)
			verdict = OTA_OK;
		struct ota_agent_state next = agent->state;
		if (verdict == OTA_OK) {
			next.phase = OTA_PHASE_TRIAL;
			(void)event_add(agent, &next, OTA_EVENT_TRIAL_BOOT, OTA_OK,
					&next.slots[slot], "");
			/* a trial that is not on record would never revert */
			if (state_store(agent, &next) == OTA_OK) {
				*ret_slot = slot;
				return OTA_OK;
			}
		} else if (err != OTA_ERR_STORAGE && err != OTA_ERR_NOMEM) {
			next.phase = OTA_PHASE_IDLE;
			next.slots[slot].valid = false;
			struct ota_slot_info info = agent->state.slots[slot];
			(void)note_failure(agent, &next, OTA_EVENT_REJECTED, err, &info,
					   detail_buf);
		}
		/* else cannot tell: it stays pending for the next boot */
	}

	/* the confirmed slot, or the other one if it still verifies */
	unsigned slot = agent->state.confirmed_slot;
	arena_open(agent, &arena);
	enum ota_err verdict = OTA_ERR_HASH;
	if (slot_verify_hash(agent, &arena, slot, &agent->state.slots[slot]) == OTA_OK)
		verdict = OTA_OK;
	if (verdict == OTA_OK) {
		*ret_slot = slot;
		return OTA_OK;
	}
	unsigned other = slot == 0 ? 1u : 0u;
	const struct ota_slot_info *alt = &agent->state.slots[other];
	if (agent->state.phase == OTA_PHASE_IDLE && alt->valid &&
	    alt->security_counter >= agent->counter &&
	    slot_verify_hash(agent, &arena, other, alt) == OTA_OK) {
		struct ota_agent_state next = agent->state;
		next.confirmed_slot = (uint8_t)other;
		next.slots[slot].valid = false;
		next.last_error = OTA_ERR_HASH;
		copy_str(next.last_error_detail, sizeof(next.last_error_detail),
			 "confirmed slot corrupt, fell back");
		(void)event_add(agent, &next, OTA_EVENT_REVERTED, OTA_ERR_HASH, alt,
				"confirmed slot corrupt, fell back");
		err = state_store(agent, &next);
		if (err != OTA_OK)
			return err;
		(void)boot_record_sync(agent);
		*ret_slot = other;
		return OTA_OK;
	}
	alog(agent, OTA_LOG_ERROR, "no slot holds a verified image");
	return OTA_ERR_HASH;
}

enum ota_err ota_agent_confirm(struct ota_agent *agent)
{
	enum ota_err err = agent_usable(agent);
	if (err != OTA_OK)
		return err;
	if (agent->state.phase != OTA_PHASE_TRIAL)
		return OTA_OK;
	struct ota_agent_state next = agent->state;
	unsigned slot = next.target_slot;
	next.confirmed_slot = (uint8_t)slot;
	next.phase = OTA_PHASE_IDLE;
	next.staged_bytes = 0;
	next.last_error = OTA_OK;
	next.last_error_detail[0] = '\0';
	(void)event_add(agent, &next, OTA_EVENT_CONFIRMED, OTA_OK, &next.slots[slot], "");
	/* the slot is permanent first; only then may the counter move */
	err = state_store(agent, &next);
	if (err != OTA_OK)
		return err;
	/* a failure here is repaired by the next boot step */
	(void)boot_record_sync(agent);
	return counter_catch_up(agent);
}

enum ota_err ota_agent_revert(struct ota_agent *agent, enum ota_err reason, const char *detail)
{
	if (agent->state.phase != OTA_PHASE_TRIAL)
		return OTA_ERR_INVALID_ARG;
	return trial_revert(agent, reason, detail ? detail : "");
}

enum ota_err ota_agent_selftest(struct ota_agent *agent)
{
	if (agent->state.phase != OTA_PHASE_TRIAL || !agent->port.ops->selftest)
		return OTA_ERR_INVALID_ARG;
	enum ota_err verdict = OTA_ERR_SELFTEST;
	if (agent->port.ops->selftest(agent->port.ctx, agent->state.target_slot) == OTA_OK)
		verdict = OTA_OK;
	if (verdict == OTA_OK)
		return ota_agent_confirm(agent);
	enum ota_err err = trial_revert(agent, OTA_ERR_SELFTEST, "self-test failed");
	return err == OTA_OK ? OTA_ERR_SELFTEST : err;
}

enum ota_err ota_agent_record_failure(struct ota_agent *agent, enum ota_err err, const char *detail)
{
	if (!agent->state.provisioned)
		return err;
	return reject(agent, err, NULL, detail ? detail : "");
}

void ota_agent_request_reboot(struct ota_agent *agent)
{
	if (agent->port.ops->reboot)
		agent->port.ops->reboot(agent->port.ctx);
}

void ota_agent_status(const struct ota_agent *agent, struct ota_agent_status *ret_status)
{
	struct ota_agent_status s;
	const struct ota_agent_state *st = &agent->state;
	memset(&s, 0, sizeof(s));
	s.provisioned = st->provisioned;
	s.phase = st->phase;
	s.confirmed_slot = st->confirmed_slot;
	s.running_slot = st->phase == OTA_PHASE_TRIAL ? st->target_slot : st->confirmed_slot;
	s.confirmed = st->slots[st->confirmed_slot];
	if (st->phase != OTA_PHASE_IDLE)
		s.target = st->slots[st->target_slot];
	s.security_counter = agent->counter;
	s.keylist_version = agent->keylist_version;
	s.rootlist_version = agent->rootlist_version;
	s.staged_bytes = agent->install.active ? agent->install.written : st->staged_bytes;
	s.latest_time = st->latest_time;
	s.next_event_seq = st->next_event_seq;
	s.last_error = (enum ota_err)st->last_error;
	copy_str(s.last_error_detail, sizeof(s.last_error_detail), st->last_error_detail);
	*ret_status = s;
}

enum ota_err ota_agent_event(struct ota_agent *agent, uint64_t seq, struct ota_event *ret_event)
{
	uint8_t buf[EVENT_COPY_BYTES];
	struct ota_record_copy copy;
	struct ota_event ev;
	if (seq == 0 || seq >= agent->state.next_event_seq)
		return OTA_ERR_NOT_FOUND;
	enum ota_record rec = (enum ota_record)(OTA_REC_EVENT_0 + seq % OTA_AGENT_EVENT_RECORDS);
	enum ota_err err = rec_read(agent, rec, buf, sizeof(buf), &copy);
	if (err != OTA_OK)
		return err;
	if (ota_event_decode(copy.payload, copy.payload_len, &ev) != OTA_OK)
		return OTA_ERR_FORMAT;
	if (ev.seq != seq)
		return OTA_ERR_NOT_FOUND;
	*ret_event = ev;
	return OTA_OK;
}

enum ota_err ota_agent_keylist_key_ids(struct ota_agent *agent, uint8_t (*ids)[OTA_KEY_ID_BYTES],
				       size_t cap, size_t *ret_n)
{
	struct ota_arena arena;
	Fleetota__V1__RootList *root = NULL;
	Fleetota__V1__KeyList *kl = NULL;
	if (!agent->state.provisioned)
		return OTA_ERR_INVALID_ARG;
	arena_open(agent, &arena);
	enum ota_err err = trust_load(agent, &arena, &root, &kl);
	if (err != OTA_OK)
		return err;
	size_t n = 0;
	for (size_t i = 0; i < kl->n_keys && n < cap; i++)
		memcpy(ids[n++], kl->keys[i]->key_id.data, OTA_KEY_ID_BYTES);
	*ret_n = n;
	return OTA_OK;
}

/* ---- for the other modules of the core (agent-internal.h) ----------- */

enum ota_err ota_core_record_read(struct ota_agent *agent, enum ota_record rec, uint8_t *buf,
				  size_t cap, struct ota_record_copy *ret_copy)
{
	return rec_read(agent, rec, buf, cap, ret_copy);
}

enum ota_err ota_core_record_store(struct ota_agent *agent, enum ota_record rec, uint8_t *buf,
				   size_t cap, size_t payload_len)
{
	return small_store(agent, rec, buf, cap, payload_len, 0);
}

enum ota_err ota_core_event(struct ota_agent *agent, struct ota_agent_state *next,
			    enum ota_event_kind kind, enum ota_err error, const char *detail)
{
	return event_add(agent, next, kind, error, NULL, detail);
}

enum ota_err ota_core_state_store(struct ota_agent *agent, const struct ota_agent_state *next)
{
	return state_store(agent, next);
}

enum ota_err ota_core_trust(struct ota_agent *agent, struct ota_arena *arena,
			    Fleetota__V1__KeyList **ret_kl)
{
	Fleetota__V1__RootList *root = NULL;
	arena_open(agent, arena);
	enum ota_err err = agent_usable(agent);
	if (err == OTA_OK)
		err = trust_load(agent, arena, &root, ret_kl);
	return err;
}

uint64_t ota_core_now(struct ota_agent *agent)
{
	return trusted_now(agent);
}

bool ota_core_clock(struct ota_agent *agent, uint64_t *ret_now)
{
	return agent->port.ops->clock_now &&
	       agent->port.ops->clock_now(agent->port.ctx, ret_now) == OTA_OK;
}

enum ota_err ota_core_reject(struct ota_agent *agent, enum ota_err err, const char *detail)
{
	return reject(agent, err, NULL, detail);
}

void ota_core_log(struct ota_agent *agent, enum ota_log_level level, const char *msg)
{
	alog(agent, level, msg);
}
