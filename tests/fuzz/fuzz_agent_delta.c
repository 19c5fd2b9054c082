/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The delta applier (fleetota/delta.h), the parser of the one input the
 * device reads beside signed envelopes before a hash has judged it: frame
 * length prefixes and zstd frames against a fixed base. Input: 2 bytes of
 * final size (big-endian), 1 byte of piece size, then the payload, fed in
 * pieces. Whatever it is, the applier never hands out more than the final
 * size, never more than a chunk at once, and "complete" means exactly the
 * final size.
 */
#include <stdint.h>
#include <string.h>

#include "fleetota/delta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_BASE_BYTES 16384u
#define FZ_CHUNK 4096u

static uint8_t base[FZ_BASE_BYTES];
static uint8_t work[2u * FZ_CHUNK + 512u * 1024u];

/* The base the corpus was made against (tests/fuzz/corpus/agent_delta/README). */
static void base_fill(void)
{
	uint32_t seed = 7;
	for (size_t i = 0; i < sizeof(base); i++) {
		seed = seed * 1103515245u + 12345u;
		base[i] = (uint8_t)(seed >> 16);
	}
}

struct out_seen {
	uint64_t total;
};

static enum ota_err out(void *arg, const uint8_t *chunk, size_t len)
{
	struct out_seen *o = arg;
	(void)chunk;
	if (len == 0 || len > FZ_CHUNK)
		__builtin_trap();
	o->total += len;
	return OTA_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct ota_delta d;
	struct out_seen seen = {0};
	if (!ready) {
		base_fill();
		ready = 1;
	}
	if (size < 3)
		return 0;
	uint64_t final_size = ((uint64_t)data[0] << 8) | data[1];
	size_t piece = (size_t)data[2] + 1u;
	data += 3;
	size -= 3;
	if (ota_delta_work_bytes(FZ_CHUNK) > sizeof(work))
		__builtin_trap();
	if (ota_delta_open(&d, work, sizeof(work), base, sizeof(base), FZ_CHUNK, final_size) !=
	    OTA_OK)
		return 0;
	enum ota_err err = OTA_OK;
	while (size > 0 && err == OTA_OK) {
		size_t n = size < piece ? size : piece;
		err = ota_delta_feed(&d, data, n, out, &seen);
		data += n;
		size -= n;
	}
	if (seen.total > final_size)
		__builtin_trap();
	if (err == OTA_OK && ota_delta_complete(&d) && seen.total != final_size)
		__builtin_trap();
	if (err != OTA_OK && err != OTA_ERR_HASH)
		__builtin_trap();
	ota_delta_close(&d);
	return 0;
}
