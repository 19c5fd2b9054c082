/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include "fleetota/limits.h"
#include "ota_sim.h"

#define SIM_RECORDS (OTA_REC_LAST + 1)

struct sim_record {
	bool present;
	size_t len;
	uint8_t *data;
};

/*
 * A slot behind a write-back cache: reads and writes see `cache`; `disk`
 * is what survives a power cut. Bytes written since the slot's last sync
 * lie in [dirty_lo, dirty_hi) and are lost (or torn) at a cut.
 */
struct sim_slot {
	uint8_t *cache;
	uint8_t *disk;
	uint64_t dirty_lo;
	uint64_t dirty_hi;
};

struct ota_sim {
	uint64_t slot_bytes;
	struct sim_slot slots[OTA_SLOT_COUNT];
	struct sim_record records[SIM_RECORDS][OTA_RECORD_COPIES];
	enum ota_sim_cache cache_mode;
	uint64_t ops;
	uint64_t cut_at;
	bool off;
	uint64_t clock;
	bool has_selftest;
	bool selftest_passes;
	bool has_consent;
	bool consent_grants;
	unsigned reboots;
	ota_sim_unwrap_fn unwrap;
	void *unwrap_arg;
	uint32_t health_permille;
	uint64_t unrequested_boots;
	uint8_t mapped; /* bit per slot the core has mapped (it must not write it) */
	uint64_t map_len[OTA_SLOT_COUNT];
	struct ota_sim_map_stats map_stats;
};

static void slot_mark_dirty(struct sim_slot *s, uint64_t off, uint64_t len)
{
	if (s->dirty_lo == s->dirty_hi) {
		s->dirty_lo = off;
		s->dirty_hi = off + len;
		return;
	}
	if (off < s->dirty_lo)
		s->dirty_lo = off;
	if (off + len > s->dirty_hi)
		s->dirty_hi = off + len;
}

/* The cache reaches the disk (a sync, or the part of a flush a cut let through). */
static void slot_flush(struct sim_slot *s, uint64_t lo, uint64_t hi)
{
	memcpy(s->disk + lo, s->cache + lo, (size_t)(hi - lo));
}

/* Power is gone: what the cache held and the disk did not is lost or torn. */
static void sim_lose_unsynced(struct ota_sim *sim)
{
	for (unsigned i = 0; i < OTA_SLOT_COUNT; i++) {
		struct sim_slot *s = &sim->slots[i];
		uint64_t lo = s->dirty_lo;
		uint64_t hi = s->dirty_hi;
		if (lo == hi)
			continue;
		if (sim->cache_mode == OTA_SIM_CACHE_TEAR) {
			/* the cache flushed its first half before the power went */
			uint64_t landed = lo + (hi - lo) / 2;
			slot_flush(s, lo, landed);
			lo = landed;
		}
		memcpy(s->cache + lo, s->disk + lo, (size_t)(hi - lo));
		s->dirty_lo = s->dirty_hi = 0;
	}
}

/* The contract of slot_map: a mapped slot is never changed. */
static bool sim_slot_busy(const struct ota_sim *sim, unsigned slot)
{
	return slot < OTA_SLOT_COUNT && (sim->mapped & (1u << slot)) != 0;
}

/* Counts one mutating operation; true when it is the one that is cut. */
static bool sim_cut_now(struct ota_sim *sim)
{
	sim->ops++;
	if (sim->cut_at && sim->ops == sim->cut_at) {
		sim->off = true;
		return true;
	}
	return false;
}

/* The cut operation has done its partial damage: the power goes. */
static enum ota_err sim_power_fails(struct ota_sim *sim)
{
	sim_lose_unsynced(sim);
	return OTA_ERR_STORAGE;
}

static enum ota_err sim_slot_size(void *ctx, unsigned slot, uint64_t *ret_size)
{
	struct ota_sim *sim = ctx;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if (slot >= OTA_SLOT_COUNT)
		return OTA_ERR_INVALID_ARG;
	*ret_size = sim->slot_bytes;
	return OTA_OK;
}

static enum ota_err sim_slot_read(void *ctx, unsigned slot, uint64_t off, void *buf, size_t len)
{
	struct ota_sim *sim = ctx;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if (slot >= OTA_SLOT_COUNT || off > sim->slot_bytes || len > sim->slot_bytes - off)
		return OTA_ERR_INVALID_ARG;
	memcpy(buf, sim->slots[slot].cache + off, len);
	return OTA_OK;
}

static enum ota_err sim_slot_write(void *ctx, unsigned slot, uint64_t off, const void *buf,
				   size_t len)
{
	struct ota_sim *sim = ctx;
	if (sim_slot_busy(sim, slot))
		return OTA_ERR_INVALID_ARG;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if (slot >= OTA_SLOT_COUNT || off > sim->slot_bytes || len > sim->slot_bytes - off)
		return OTA_ERR_INVALID_ARG;
	struct sim_slot *s = &sim->slots[slot];
	/* the write lands in the cache only; slot_sync makes it durable */
	size_t landed = sim_cut_now(sim) ? len / 2 : len;
	memcpy(s->cache + off, buf, landed);
	slot_mark_dirty(s, off, landed);
	if (sim->off)
		return sim_power_fails(sim);
	return OTA_OK;
}

static enum ota_err sim_slot_erase(void *ctx, unsigned slot)
{
	struct ota_sim *sim = ctx;
	if (sim_slot_busy(sim, slot))
		return OTA_ERR_INVALID_ARG;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if (slot >= OTA_SLOT_COUNT)
		return OTA_ERR_INVALID_ARG;
	struct sim_slot *s = &sim->slots[slot];
	/* durable on return; a cut tears it (its first half is erased) */
	size_t erased = sim_cut_now(sim) ? (size_t)(sim->slot_bytes / 2) : (size_t)sim->slot_bytes;
	memset(s->cache, 0xff, erased);
	memset(s->disk, 0xff, erased);
	if (sim->off)
		return sim_power_fails(sim);
	s->dirty_lo = s->dirty_hi = 0;
	return OTA_OK;
}

static enum ota_err sim_slot_sync(void *ctx, unsigned slot)
{
	struct ota_sim *sim = ctx;
	if (sim_slot_busy(sim, slot))
		return OTA_ERR_INVALID_ARG;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if (slot >= OTA_SLOT_COUNT)
		return OTA_ERR_INVALID_ARG;
	if (sim_cut_now(sim))
		return sim_power_fails(sim);
	struct sim_slot *s = &sim->slots[slot];
	if (s->dirty_lo != s->dirty_hi)
		slot_flush(s, s->dirty_lo, s->dirty_hi);
	s->dirty_lo = s->dirty_hi = 0;
	return OTA_OK;
}

/* The simulated slots are RAM: the running view (cache) is the mapping. */
static enum ota_err sim_slot_map(void *ctx, unsigned slot, uint64_t len, const uint8_t **ret_base)
{
	struct ota_sim *sim = ctx;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if (slot >= OTA_SLOT_COUNT || len > sim->slot_bytes)
		return OTA_ERR_INVALID_ARG;
	*ret_base = sim->slots[slot].cache;
	sim->mapped |= (uint8_t)(1u << slot);
	sim->map_len[slot] = len;
	sim->map_stats.maps++;
	return OTA_OK;
}

static void sim_slot_unmap(void *ctx, unsigned slot)
{
	struct ota_sim *sim = ctx;
	if (slot < OTA_SLOT_COUNT)
		sim->mapped &= (uint8_t) ~(1u << slot);
}

/* RAM needs no hint: counted, and checked against the contract. */
static void sim_slot_map_advise(void *ctx, unsigned slot, uint64_t off, uint64_t len)
{
	struct ota_sim *sim = ctx;
	sim->map_stats.advises++;
	if (!sim_slot_busy(sim, slot) ||
	    (len > 0 && (off >= sim->map_len[slot] || len > sim->map_len[slot] - off)))
		sim->map_stats.advise_misuses++;
}

static bool sim_record_valid(enum ota_record rec, unsigned copy)
{
	return (unsigned)rec < SIM_RECORDS && copy < OTA_RECORD_COPIES;
}

static enum ota_err sim_record_read(void *ctx, enum ota_record rec, unsigned copy, void *buf,
				    size_t cap, size_t *ret_len)
{
	struct ota_sim *sim = ctx;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if (!sim_record_valid(rec, copy))
		return OTA_ERR_INVALID_ARG;
	const struct sim_record *r = &sim->records[rec][copy];
	if (!r->present)
		return OTA_ERR_NOT_FOUND;
	if (r->len > cap)
		return OTA_ERR_SIZE;
	memcpy(buf, r->data, r->len);
	*ret_len = r->len;
	return OTA_OK;
}

/*
 * Durable on return, like a flash write followed by its sync. A cut tears
 * the copy: the first half of the new bytes over the old ones.
 */
static enum ota_err sim_record_write(void *ctx, enum ota_record rec, unsigned copy, const void *buf,
				     size_t len)
{
	struct ota_sim *sim = ctx;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if (!sim_record_valid(rec, copy) || len > OTA_RECORD_COPY_MAX_BYTES)
		return OTA_ERR_INVALID_ARG;
	struct sim_record *r = &sim->records[rec][copy];
	bool cut = sim_cut_now(sim);
	uint8_t *data = malloc(len ? len : 1);
	if (!data)
		return OTA_ERR_STORAGE;
	size_t landed = cut ? len / 2 : len;
	memset(data, 0xff, len);
	if (cut && r->present)
		memcpy(data, r->data, r->len < len ? r->len : len);
	memcpy(data, buf, landed);
	free(r->data);
	r->data = data;
	r->len = len;
	r->present = true;
	if (cut)
		return sim_power_fails(sim);
	return OTA_OK;
}

static enum ota_err sim_clock_now(void *ctx, uint64_t *ret_now)
{
	struct ota_sim *sim = ctx;
	if (sim->clock == 0)
		return OTA_ERR_NOT_FOUND;
	*ret_now = sim->clock;
	return OTA_OK;
}

static void sim_reboot(void *ctx)
{
	struct ota_sim *sim = ctx;
	sim->reboots++;
}

static enum ota_err sim_consent(void *ctx, const struct ota_port_offer *offer)
{
	struct ota_sim *sim = ctx;
	(void)offer;
	if (!sim->has_consent || sim->consent_grants)
		return OTA_OK;
	return OTA_ERR_CONSENT;
}

static enum ota_err sim_health(void *ctx, struct ota_port_health *ret)
{
	struct ota_sim *sim = ctx;
	ret->permille = sim->health_permille;
	ret->unrequested_boots = sim->unrequested_boots;
	return OTA_OK;
}

static enum ota_err sim_selftest(void *ctx, unsigned slot)
{
	struct ota_sim *sim = ctx;
	(void)slot;
	return sim->selftest_passes ? OTA_OK : OTA_ERR_SELFTEST;
}

/* The device's recipient keys live with the test (a secure element's role). */
static enum ota_err sim_key_unwrap(void *ctx, const struct ota_key_unwrap_request *req,
				   uint8_t ret_key[OTA_AES256_KEY_BYTES])
{
	struct ota_sim *sim = ctx;
	if (!sim->unwrap)
		return OTA_ERR_NOT_FOUND;
	return sim->unwrap(sim->unwrap_arg, req, ret_key);
}

static const struct ota_port_ops sim_ops = {
	.slot_size = sim_slot_size,
	.slot_read = sim_slot_read,
	.slot_write = sim_slot_write,
	.slot_erase = sim_slot_erase,
	.slot_sync = sim_slot_sync,
	.record_read = sim_record_read,
	.record_write = sim_record_write,
	.clock_now = sim_clock_now,
	.reboot = sim_reboot,
	.log = NULL,
	.consent = sim_consent,
	.selftest = sim_selftest,
	.key_unwrap = sim_key_unwrap,
	.health = sim_health,
	.slot_map = sim_slot_map,
	.slot_unmap = sim_slot_unmap,
	.slot_map_advise = sim_slot_map_advise,
};

/* Same table without the self-test hook (confirm comes from outside). */
static const struct ota_port_ops sim_ops_no_selftest = {
	.slot_size = sim_slot_size,
	.slot_read = sim_slot_read,
	.slot_write = sim_slot_write,
	.slot_erase = sim_slot_erase,
	.slot_sync = sim_slot_sync,
	.record_read = sim_record_read,
	.record_write = sim_record_write,
	.clock_now = sim_clock_now,
	.reboot = sim_reboot,
	.log = NULL,
	.consent = sim_consent,
	.selftest = NULL,
	.key_unwrap = sim_key_unwrap,
	.health = sim_health,
	.slot_map = sim_slot_map,
	.slot_unmap = sim_slot_unmap,
	.slot_map_advise = sim_slot_map_advise,
};

struct ota_sim *ota_sim_new(uint64_t slot_bytes)
{
	struct ota_sim *sim = calloc(1, sizeof(*sim));
	if (!sim || slot_bytes == 0 || slot_bytes > SIZE_MAX)
		goto fail;
	sim->slot_bytes = slot_bytes;
	for (unsigned i = 0; i < OTA_SLOT_COUNT; i++) {
		sim->slots[i].cache = malloc((size_t)slot_bytes);
		sim->slots[i].disk = malloc((size_t)slot_bytes);
		if (!sim->slots[i].cache || !sim->slots[i].disk)
			goto fail;
		memset(sim->slots[i].cache, 0xff, (size_t)slot_bytes);
		memset(sim->slots[i].disk, 0xff, (size_t)slot_bytes);
	}
	sim->selftest_passes = true;
	sim->health_permille = 1000;
	return sim;
fail:
	ota_sim_free(sim);
	return NULL;
}

void ota_sim_free(struct ota_sim *sim)
{
	if (!sim)
		return;
	for (unsigned i = 0; i < OTA_SLOT_COUNT; i++) {
		free(sim->slots[i].cache);
		free(sim->slots[i].disk);
	}
	for (unsigned i = 0; i < SIM_RECORDS; i++) {
		for (unsigned c = 0; c < OTA_RECORD_COPIES; c++)
			free(sim->records[i][c].data);
	}
	free(sim);
}

struct ota_port ota_sim_port(struct ota_sim *sim)
{
	struct ota_port port = {.ops = sim->has_selftest ? &sim_ops : &sim_ops_no_selftest,
				.ctx = sim};
	return port;
}

void ota_sim_cut_at(struct ota_sim *sim, uint64_t n)
{
	sim->cut_at = n;
	sim->ops = 0;
}

uint64_t ota_sim_ops(const struct ota_sim *sim)
{
	return sim->ops;
}

bool ota_sim_is_off(const struct ota_sim *sim)
{
	return sim->off;
}

void ota_sim_power_on(struct ota_sim *sim)
{
	sim->off = false;
	sim->cut_at = 0;
	sim->ops = 0;
}

void ota_sim_set_clock(struct ota_sim *sim, uint64_t now)
{
	sim->clock = now;
}

void ota_sim_set_selftest(struct ota_sim *sim, bool has_selftest, bool passes)
{
	sim->has_selftest = has_selftest;
	sim->selftest_passes = passes;
}

void ota_sim_set_consent(struct ota_sim *sim, bool has_consent, bool grants)
{
	sim->has_consent = has_consent;
	sim->consent_grants = grants;
}

void ota_sim_set_key_unwrap(struct ota_sim *sim, ota_sim_unwrap_fn unwrap, void *arg)
{
	sim->unwrap = unwrap;
	sim->unwrap_arg = arg;
}

void ota_sim_set_health(struct ota_sim *sim, uint32_t permille, uint64_t unrequested_boots)
{
	sim->health_permille = permille;
	sim->unrequested_boots = unrequested_boots;
}

unsigned ota_sim_reboots(const struct ota_sim *sim)
{
	return sim->reboots;
}

void ota_sim_map_stats(const struct ota_sim *sim, struct ota_sim_map_stats *ret)
{
	*ret = sim->map_stats;
	ret->mapped = sim->mapped;
}

uint8_t *ota_sim_slot(struct ota_sim *sim, unsigned slot)
{
	return slot < OTA_SLOT_COUNT ? sim->slots[slot].cache : NULL;
}

void ota_sim_slot_damage(struct ota_sim *sim, unsigned slot, uint64_t off, uint8_t xor_mask)
{
	if (slot >= OTA_SLOT_COUNT || off >= sim->slot_bytes)
		return;
	sim->slots[slot].cache[off] ^= xor_mask;
	sim->slots[slot].disk[off] ^= xor_mask;
}

void ota_sim_set_cache(struct ota_sim *sim, enum ota_sim_cache mode)
{
	sim->cache_mode = mode;
}

uint8_t *ota_sim_record(struct ota_sim *sim, enum ota_record rec, unsigned copy, size_t *ret_len)
{
	if (!sim_record_valid(rec, copy) || !sim->records[rec][copy].present)
		return NULL;
	*ret_len = sim->records[rec][copy].len;
	return sim->records[rec][copy].data;
}

void ota_sim_record_delete(struct ota_sim *sim, enum ota_record rec, unsigned copy)
{
	if (!sim_record_valid(rec, copy))
		return;
	struct sim_record *r = &sim->records[rec][copy];
	free(r->data);
	memset(r, 0, sizeof(*r));
}
