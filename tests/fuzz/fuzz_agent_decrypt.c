/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The encryption block of a manifest (ota_encryption_check) and the agent
 * core's streaming decryptor over any ciphertext, fed in pieces of any
 * size. Input: uint32be plaintext size, uint16be length L, L bytes of an
 * Encryption message, then the ciphertext; the content key is fixed
 * (0x42 * 32) so the committed seeds decrypt to the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleetota/arena.h"
#include "fleetota/decrypt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mem[OTA_DECODE_ARENA_BYTES];
	static uint8_t out[4096];
	struct ota_arena arena;
	struct ota_decrypt d;
	uint8_t key[OTA_CEK_BYTES];
	if (size < 6)
		return 0;
	uint64_t plain = (uint64_t)data[0] << 24 | (uint64_t)data[1] << 16 |
			 (uint64_t)data[2] << 8 | data[3];
	size_t enc_len = (size_t)data[4] << 8 | data[5];
	data += 6;
	size -= 6;
	if (enc_len > size || plain == 0)
		return 0;
	ota_arena_init(&arena, mem, sizeof(mem));
	Fleetota__V1__Encryption *enc =
		fleetota__v1__encryption__unpack(&arena.allocator, enc_len, data);
	if (!enc || ota_encryption_check(enc, plain) != OTA_OK)
		return 0;
	data += enc_len;
	size -= enc_len;
	memset(key, 0x42, sizeof(key));
	if (ota_decrypt_open(&d, enc, plain, key) != OTA_OK)
		return 0;
	/* piece sizes from the data itself: 1 .. 1000 bytes */
	size_t at = 0;
	while (at < size) {
		size_t piece = 1 + (data[at] * 7u) % 1000u;
		if (piece > size - at)
			piece = size - at;
		while (piece > 0) {
			size_t used = 0, made = 0;
			bool end = false;
			enum ota_err err = ota_decrypt_feed(&d, data + at, piece, out, sizeof(out),
							    &used, &made, &end);
			if (err != OTA_OK)
				goto done;
			if (made > used || used > piece || d.wire_done > d.wire_size)
				abort();
			at += used;
			piece -= used;
		}
	}
	if (ota_decrypt_done(&d) && d.wire_done != enc->ciphertext_size)
		abort();
done:
	ota_decrypt_close(&d);
	return 0;
}
