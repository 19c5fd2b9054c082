/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A stub port for a Cortex-M build of the agent core (scripts/mcu-build.sh).
 * It proves that the core and its policy compile and link for a
 * microcontroller with no operating system: slots and records live in RAM
 * here, where a real port would map them to flash areas (docs/porting.md).
 * Nothing in this file calls an OS or a C library function beyond memcpy
 * and memset.
 */
#include <string.h>

#include "fleetota/agent.h"
#include "mcu_port.h"

#define MCU_SLOT_BYTES (4u * 1024u)
#define MCU_RECORD_BYTES 1024u
#define MCU_RECORDS (OTA_REC_LAST + 1)

/* Each record's two copies: on real flash, in two different erase blocks. */
struct mcu_flash {
	uint8_t slots[OTA_SLOT_COUNT][MCU_SLOT_BYTES];
	uint8_t records[MCU_RECORDS][OTA_RECORD_COPIES][MCU_RECORD_BYTES];
	size_t record_len[MCU_RECORDS][OTA_RECORD_COPIES]; /* 0 = never written */
};

static struct mcu_flash flash;

static enum ota_err slot_size(void *ctx, unsigned slot, uint64_t *ret_size)
{
	(void)ctx;
	if (slot >= OTA_SLOT_COUNT)
		return OTA_ERR_INVALID_ARG;
	*ret_size = MCU_SLOT_BYTES;
	return OTA_OK;
}

static enum ota_err slot_read(void *ctx, unsigned slot, uint64_t off, void *buf, size_t len)
{
	(void)ctx;
	if (slot >= OTA_SLOT_COUNT || off > MCU_SLOT_BYTES || len > MCU_SLOT_BYTES - off)
		return OTA_ERR_INVALID_ARG;
	memcpy(buf, &flash.slots[slot][off], len);
	return OTA_OK;
}

static enum ota_err slot_write(void *ctx, unsigned slot, uint64_t off, const void *buf, size_t len)
{
	(void)ctx;
	if (slot >= OTA_SLOT_COUNT || off > MCU_SLOT_BYTES || len > MCU_SLOT_BYTES - off)
		return OTA_ERR_INVALID_ARG;
	memcpy(&flash.slots[slot][off], buf, len);
	return OTA_OK;
}

static enum ota_err slot_erase(void *ctx, unsigned slot)
{
	(void)ctx;
	if (slot >= OTA_SLOT_COUNT)
		return OTA_ERR_INVALID_ARG;
	memset(flash.slots[slot], 0xff, MCU_SLOT_BYTES);
	return OTA_OK;
}

static enum ota_err slot_sync(void *ctx, unsigned slot)
{
	(void)ctx;
	return slot < OTA_SLOT_COUNT ? OTA_OK : OTA_ERR_INVALID_ARG;
}

static enum ota_err record_read(void *ctx, enum ota_record rec, unsigned copy, void *buf,
				size_t cap, size_t *ret_len)
{
	(void)ctx;
	if ((unsigned)rec >= MCU_RECORDS || copy >= OTA_RECORD_COPIES)
		return OTA_ERR_INVALID_ARG;
	size_t len = flash.record_len[rec][copy];
	if (len == 0)
		return OTA_ERR_NOT_FOUND;
	if (len > cap)
		return OTA_ERR_SIZE;
	memcpy(buf, flash.records[rec][copy], len);
	*ret_len = len;
	return OTA_OK;
}

static enum ota_err record_write(void *ctx, enum ota_record rec, unsigned copy, const void *buf,
				 size_t len)
{
	(void)ctx;
	if ((unsigned)rec >= MCU_RECORDS || copy >= OTA_RECORD_COPIES || len == 0)
		return OTA_ERR_INVALID_ARG;
	if (len > MCU_RECORD_BYTES)
		return OTA_ERR_SIZE;
	memcpy(flash.records[rec][copy], buf, len);
	flash.record_len[rec][copy] = len;
	return OTA_OK;
}

/*
 * The transport: a real port moves bytes here (a cellular modem's HTTPS,
 * CoAP over a radio, a UART to a gateway), bounded by req->max_bytes and
 * with a deadline. The stub has no link.
 */
static enum ota_err fetch(void *ctx, const struct ota_fetch_request *req, ota_port_sink_fn sink,
			  void *sink_arg, struct ota_fetch_result *ret)
{
	(void)ctx;
	(void)req;
	(void)sink;
	(void)sink_arg;
	memset(ret, 0, sizeof(*ret));
	return OTA_ERR_TRANSPORT;
}

/* Back-off: a real port sleeps on a timer (low power) here. */
static void wait(void *ctx, unsigned seconds)
{
	(void)ctx;
	(void)seconds;
}

/*
 * A delta's base, read in place: on a part with memory-mapped (XIP) flash
 * the slot's address; here the stub flash in RAM.
 */
static enum ota_err slot_map(void *ctx, unsigned slot, uint64_t len, const uint8_t **ret_base)
{
	(void)ctx;
	if (slot >= OTA_SLOT_COUNT || len > MCU_SLOT_BYTES)
		return OTA_ERR_INVALID_ARG;
	*ret_base = flash.slots[slot];
	return OTA_OK;
}

static const struct ota_port_ops mcu_ops = {
	.slot_size = slot_size,
	.slot_read = slot_read,
	.slot_write = slot_write,
	.slot_erase = slot_erase,
	.slot_sync = slot_sync,
	.record_read = record_read,
	.record_write = record_write,
	.fetch = fetch,
	.wait = wait,
	.slot_map = slot_map,
	.slot_unmap = NULL,
	.slot_map_advise = NULL, /* XIP flash: nothing to read ahead, nothing held in RAM */
};

void ota_mcu_port(struct ota_port *ret_port)
{
	ret_port->ops = &mcu_ops;
	ret_port->ctx = &flash;
}
