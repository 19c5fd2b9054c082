/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Delta installs: the hooks agent.c calls for a manifest that carries a
 * DeltaInfo. Everything a full image is checked for still holds (agent.c
 * runs those checks first); this file adds the base and the payload.
 */
#include <string.h>

#include "delta-internal.h"

enum ota_err ota_delta_install_check(const struct ota_agent *agent, const Fleetota__V1__Manifest *m,
				     struct ota_text *detail)
{
	const Fleetota__V1__DeltaInfo *d = m->delta;
	const struct ota_slot_info *running = &agent->state.slots[agent->state.confirmed_slot];
	if (!running->valid || running->size != d->base_size ||
	    memcmp(running->sha256, d->base_sha256.data, OTA_SHA256_BYTES) != 0) {
		ota_text_str(detail, "delta base is not the running image");
		return OTA_ERR_DELTA_BASE;
	}
	if (d->algorithm != FLEETOTA__V1__DELTA_ALGORITHM__DELTA_ALGORITHM_ZSTD_CHUNKED) {
		ota_text_str(detail, "delta algorithm ");
		ota_text_u64(detail, (uint64_t)d->algorithm);
		ota_text_str(detail, " unknown");
		return OTA_ERR_DELTA_UNSUPPORTED;
	}
	size_t need = ota_delta_work_bytes(d->chunk_bytes);
	if (need == 0 || !agent->config.delta_work || agent->config.delta_work_len < need ||
	    !agent->port.ops->slot_map) {
		ota_text_str(detail, "no room for delta chunks of ");
		ota_text_u64(detail, d->chunk_bytes);
		ota_text_str(detail, " bytes");
		return OTA_ERR_DELTA_UNSUPPORTED;
	}
	return OTA_OK;
}

enum ota_err ota_delta_install_open(struct ota_agent *agent, const Fleetota__V1__Manifest *m)
{
	struct ota_install *inst = &agent->install;
	const Fleetota__V1__DeltaInfo *d = m->delta;
	const uint8_t *base = NULL;
	unsigned base_slot = agent->state.confirmed_slot;
	if (base_slot == inst->slot)
		return OTA_ERR_INTERNAL;
	if (agent->port.ops->slot_map(agent->port.ctx, base_slot, d->base_size, &base) != OTA_OK ||
	    !base)
		return OTA_ERR_STORAGE;
	inst->base_mapped = true;
	inst->base_slot = (uint8_t)base_slot;
	enum ota_err err = ota_delta_open(&inst->applier, agent->config.delta_work,
					  agent->config.delta_work_len, base, d->base_size,
					  d->chunk_bytes, m->image->size);
	if (err == OTA_OK)
		err = ota_sha256_init(&inst->delta_hash);
	if (err != OTA_OK) {
		ota_delta_install_close(agent);
		return err;
	}
	inst->delta = true;
	inst->size = d->size;
	memcpy(inst->delta_sha256, d->sha256.data, OTA_SHA256_BYTES);
	return OTA_OK;
}

/*
 * Between frames: the base stays mapped for the whole apply (one mapping,
 * no fault storm after a remap); the port hears which image range the
 * next frame makes, so it can give back the pages read so far and read
 * that range ahead (port.h, slot_map_advise).
 */
static void base_advise(struct ota_agent *agent)
{
	struct ota_install *inst = &agent->install;
	const struct ota_port *port = &agent->port;
	uint64_t base_size = inst->applier.base_size;
	uint64_t off = inst->image_written;
	uint64_t len = inst->applier.chunk_bytes;
	if (!port->ops->slot_map_advise || off >= inst->info.size)
		return;
	if (off >= base_size)
		off = len = 0; /* the image has grown past the base: no range to name */
	else if (len > base_size - off)
		len = base_size - off;
	port->ops->slot_map_advise(port->ctx, inst->base_slot, off, len);
}

struct out_ctx {
	struct ota_agent *agent;
	bool storage_failed;
};

/* One decoded chunk of the final image: into the slot and its hash. */
static enum ota_err out_chunk(void *arg, const uint8_t *data, size_t len)
{
	struct out_ctx *o = arg;
	struct ota_install *inst = &o->agent->install;
	const struct ota_port *port = &o->agent->port;
	if (len > inst->info.size - inst->image_written)
		return OTA_ERR_HASH;
	if (port->ops->slot_write(port->ctx, inst->slot, inst->image_written, data, len) !=
	    OTA_OK) {
		o->storage_failed = true;
		return OTA_ERR_STORAGE;
	}
	enum ota_err err = ota_sha256_update(&inst->hash, data, len);
	if (err != OTA_OK)
		return err;
	inst->image_written += len;
	base_advise(o->agent);
	return OTA_OK;
}

enum ota_err ota_delta_install_write(struct ota_agent *agent, const void *chunk, size_t len,
				     struct ota_text *detail)
{
	struct ota_install *inst = &agent->install;
	struct out_ctx o = {.agent = agent};
	enum ota_err err = ota_sha256_update(&inst->delta_hash, chunk, len);
	if (err != OTA_OK)
		return err;
	err = ota_delta_feed(&inst->applier, chunk, len, out_chunk, &o);
	if (err == OTA_ERR_HASH) {
		ota_text_str(detail, "delta does not decode against the base (frame ");
		ota_text_u64(detail, inst->applier.frames);
		ota_text_str(detail, ")");
	}
	return err;
}

enum ota_err ota_delta_install_finish(struct ota_agent *agent, struct ota_text *detail)
{
	struct ota_install *inst = &agent->install;
	uint8_t digest[OTA_SHA256_BYTES];
	enum ota_err verdict = OTA_ERR_HASH;
	enum ota_err err = ota_sha256_final(&inst->delta_hash, digest);
	if (err != OTA_OK)
		return err;
	if (memcmp(digest, inst->delta_sha256, OTA_SHA256_BYTES) != 0) {
		ota_text_str(detail, "delta SHA-256 differs from the manifest");
		return OTA_ERR_HASH;
	}
	if (!ota_delta_complete(&inst->applier) || inst->image_written != inst->info.size) {
		ota_text_str(detail, "delta made ");
		ota_text_u64(detail, inst->image_written);
		ota_text_str(detail, " image bytes, declared ");
		ota_text_u64(detail, inst->info.size);
		return OTA_ERR_SIZE;
	}
	verdict = OTA_OK;
	return verdict;
}

void ota_delta_install_close(struct ota_agent *agent)
{
	struct ota_install *inst = &agent->install;
	ota_sha256_abort(&inst->delta_hash); /* safe on a zeroed or finished one */
	ota_delta_close(&inst->applier);
	if (inst->base_mapped && agent->port.ops->slot_unmap)
		agent->port.ops->slot_unmap(agent->port.ctx, inst->base_slot);
	inst->base_mapped = false;
	inst->delta = false;
}
