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

struct ota_sim {
	uint64_t slot_bytes;
	uint8_t *slots[OTA_SLOT_COUNT];
	struct sim_record records[SIM_RECORDS];
	uint64_t ops;
	uint64_t cut_at;
	bool off;
	uint64_t clock;
	bool has_selftest;
	bool selftest_passes;
	bool has_consent;
	bool consent_grants;
	unsigned reboots;
};

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
	memcpy(buf, sim->slots[slot] + off, len);
	return OTA_OK;
}

static enum ota_err sim_slot_write(void *ctx, unsigned slot, uint64_t off, const void *buf,
				   size_t len)
{
	struct ota_sim *sim = ctx;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if (slot >= OTA_SLOT_COUNT || off > sim->slot_bytes || len > sim->slot_bytes - off)
		return OTA_ERR_INVALID_ARG;
	if (sim_cut_now(sim)) {
		memcpy(sim->slots[slot] + off, buf, len / 2); /* torn */
		return OTA_ERR_STORAGE;
	}
	memcpy(sim->slots[slot] + off, buf, len);
	return OTA_OK;
}

static enum ota_err sim_slot_erase(void *ctx, unsigned slot)
{
	struct ota_sim *sim = ctx;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if (slot >= OTA_SLOT_COUNT)
		return OTA_ERR_INVALID_ARG;
	if (sim_cut_now(sim)) {
		memset(sim->slots[slot], 0xff, sim->slot_bytes / 2); /* torn */
		return OTA_ERR_STORAGE;
	}
	memset(sim->slots[slot], 0xff, sim->slot_bytes);
	return OTA_OK;
}

static enum ota_err sim_slot_sync(void *ctx, unsigned slot)
{
	struct ota_sim *sim = ctx;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if (slot >= OTA_SLOT_COUNT)
		return OTA_ERR_INVALID_ARG;
	if (sim_cut_now(sim))
		return OTA_ERR_STORAGE;
	return OTA_OK;
}

static enum ota_err sim_record_read(void *ctx, enum ota_record rec, void *buf, size_t cap,
				    size_t *ret_len)
{
	struct ota_sim *sim = ctx;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if ((unsigned)rec >= SIM_RECORDS)
		return OTA_ERR_INVALID_ARG;
	const struct sim_record *r = &sim->records[rec];
	if (!r->present)
		return OTA_ERR_NOT_FOUND;
	if (r->len > cap)
		return OTA_ERR_SIZE;
	memcpy(buf, r->data, r->len);
	*ret_len = r->len;
	return OTA_OK;
}

static enum ota_err sim_record_write(void *ctx, enum ota_record rec, const void *buf, size_t len)
{
	struct ota_sim *sim = ctx;
	if (sim->off)
		return OTA_ERR_STORAGE;
	if ((unsigned)rec >= SIM_RECORDS || len > OTA_MAX_ENVELOPE_BYTES)
		return OTA_ERR_INVALID_ARG;
	if (sim_cut_now(sim))
		return OTA_ERR_STORAGE; /* atomic: the old value stays */
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return OTA_ERR_STORAGE;
	memcpy(copy, buf, len);
	struct sim_record *r = &sim->records[rec];
	free(r->data);
	r->data = copy;
	r->len = len;
	r->present = true;
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

static enum ota_err sim_selftest(void *ctx, unsigned slot)
{
	struct ota_sim *sim = ctx;
	(void)slot;
	return sim->selftest_passes ? OTA_OK : OTA_ERR_SELFTEST;
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
};

struct ota_sim *ota_sim_new(uint64_t slot_bytes)
{
	struct ota_sim *sim = calloc(1, sizeof(*sim));
	if (!sim || slot_bytes == 0 || slot_bytes > SIZE_MAX)
		goto fail;
	sim->slot_bytes = slot_bytes;
	for (unsigned i = 0; i < OTA_SLOT_COUNT; i++) {
		sim->slots[i] = malloc((size_t)slot_bytes);
		if (!sim->slots[i])
			goto fail;
		memset(sim->slots[i], 0xff, (size_t)slot_bytes);
	}
	sim->selftest_passes = true;
	return sim;
fail:
	ota_sim_free(sim);
	return NULL;
}

void ota_sim_free(struct ota_sim *sim)
{
	if (!sim)
		return;
	for (unsigned i = 0; i < OTA_SLOT_COUNT; i++)
		free(sim->slots[i]);
	for (unsigned i = 0; i < SIM_RECORDS; i++)
		free(sim->records[i].data);
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

unsigned ota_sim_reboots(const struct ota_sim *sim)
{
	return sim->reboots;
}

uint8_t *ota_sim_slot(struct ota_sim *sim, unsigned slot)
{
	return slot < OTA_SLOT_COUNT ? sim->slots[slot] : NULL;
}
