/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The encryption block of a manifest (ota_encryption_check) and the agent
 * core's streaming decryptor over any ciphertext, fed in pieces of any
 * size. Input: uint32be plaintext size, uint16be length L, L bytes of an
 * Encryption message, then the ciphertext; the content key is fixed
 * (0x42 * 32) so the committed seeds decrypt to the end. The whole chunks
 * at the start are also decrypted ahead, from the ciphertext as it lies
 * and in place from the chunks read apart (ota_decrypt_ahead,
 * ota_decrypt_ahead_in_place): both must give the same verdict, the same
 * failing chunk and, when it authenticated, the same plaintext.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleetota/arena.h"
#include "fleetota/decrypt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The whole chunks within the first 4 KiB of plaintext, decrypted ahead both ways. */
static void ahead_both(const struct ota_decrypt *d, const uint8_t *data, size_t size)
{
	static uint8_t plain_a[4096], apart[4096], tags[16 * OTA_CRYPT_TAG_BYTES];
	struct ota_decrypt a, b;
	struct ota_decrypt_ahead ra, rb;
	size_t sealed = (size_t)d->chunk_bytes + OTA_CRYPT_TAG_BYTES;
	size_t n = ota_decrypt_ahead_whole(d, 0, sizeof(apart));
	if (n * sealed > size)
		n = size / sealed;
	if (n == 0 || ota_decrypt_copy(&a, d) != OTA_OK)
		return;
	if (ota_decrypt_copy(&b, d) != OTA_OK) {
		ota_decrypt_close(&a);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		memcpy(apart + i * d->chunk_bytes, data + i * sealed, d->chunk_bytes);
		memcpy(tags + i * OTA_CRYPT_TAG_BYTES, data + i * sealed + d->chunk_bytes,
		       OTA_CRYPT_TAG_BYTES);
	}
	ota_decrypt_ahead(&a, 0, data, n * sealed, plain_a, sizeof(plain_a), &ra);
	ota_decrypt_ahead_in_place(&b, 0, apart, tags, n, &rb);
	if (ra.chunks != n || rb.chunks != n || rb.in || rb.len != n * sealed || ra.err != rb.err)
		abort();
	if (ra.err == OTA_OK && memcmp(plain_a, apart, n * d->chunk_bytes) != 0)
		abort();
	if (rb.err == OTA_ERR_DECRYPT && rb.bad >= n)
		abort();
	ota_decrypt_close(&a);
	ota_decrypt_close(&b);
}

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
	ahead_both(&d, data, size);
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
