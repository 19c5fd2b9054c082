/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_DECRYPT_H
#define FLEETOTA_DECRYPT_H

/*
 * The agent core's streaming decryptor for encrypted images
 * (agent/src/decrypt.c; format in fleetota/crypt.h). It turns the
 * ciphertext stream, in pieces of any size, into plaintext, checks every
 * chunk's tag as the chunk ends, and can start at any chunk boundary (a
 * resumed download). No heap: the cipher state sits in the struct.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/crypt.h"
#include "fleetota/crypto.h"

struct ota_decrypt {
	bool on; /* the install is of an encrypted image */
	uint32_t chunk_bytes;
	uint64_t plain_size;
	uint64_t wire_size; /* ciphertext bytes */
	uint64_t wire_done; /* ciphertext bytes consumed */
	uint64_t index; /* the current chunk */
	uint32_t chunk_done; /* its ciphertext bytes consumed */
	bool chunk_open;
	uint8_t tag_have;
	uint8_t tag[OTA_CRYPT_TAG_BYTES];
	uint8_t prefix[OTA_CRYPT_NONCE_PREFIX_BYTES];
	struct ota_gcm_ctx gcm;
	bool beside; /* gcm_beside is open: whole chunks may be decrypted on two threads */
	struct ota_gcm_ctx gcm_beside; /* the same key, for the chunks decrypted beside */
};

/*
 * Opens a decryptor for enc (shape-checked) over a plaintext of
 * plain_size bytes with key, at the start. The caller wipes key.
 */
enum ota_err ota_decrypt_open(struct ota_decrypt *d, const Fleetota__V1__Encryption *enc,
			      uint64_t plain_size, const uint8_t key[OTA_CEK_BYTES]);

/*
 * Continues at plaintext offset plain_offset, a multiple of chunk_bytes
 * (or the size). OTA_ERR_INVALID_ARG otherwise.
 */
enum ota_err ota_decrypt_seek(struct ota_decrypt *d, uint64_t plain_offset);

/* The ciphertext offset of plaintext offset (a chunk boundary). */
uint64_t ota_decrypt_wire_offset(const struct ota_decrypt *d, uint64_t plain_offset);

/*
 * Takes up to len ciphertext bytes, never past the end of the current
 * chunk's ciphertext or tag: *ret_used bytes consumed, *ret_made
 * plaintext bytes written to out (at most cap), *ret_chunk_end true when
 * a tag was checked and the chunk authenticated. OTA_ERR_DECRYPT when a
 * tag fails; OTA_ERR_SIZE past the end of the ciphertext.
 */
enum ota_err ota_decrypt_feed(struct ota_decrypt *d, const uint8_t *in, size_t len, uint8_t *out,
			      size_t cap, size_t *ret_used, size_t *ret_made, bool *ret_chunk_end);

/*
 * A second cipher context with the same key (the caller wipes key), for
 * ota_decrypt_chunks on another thread (the port's run_beside).
 */
enum ota_err ota_decrypt_open_beside(struct ota_decrypt *d, const uint8_t key[OTA_CEK_BYTES]);

/*
 * How many whole chunks follow at the current position: 0 inside a
 * chunk, else the full-size chunks, never the image's last one, whose
 * ciphertext and tag are all within len bytes and whose plaintext fits
 * in cap bytes.
 */
size_t ota_decrypt_whole(const struct ota_decrypt *d, size_t len, size_t cap);

/*
 * Decrypts n whole chunks (counted by ota_decrypt_whole) from chunk
 * index on, in = their ciphertext and tags, out = n * chunk_bytes, with
 * gcm (d->gcm or d->gcm_beside; d is only read, so two threads may
 * decrypt two runs at once), checking each chunk's tag before the next.
 * OTA_OK, or the error with *ret_bad the chunk that failed
 * (OTA_ERR_DECRYPT: its tag). Plaintext of a failed run is not to be
 * used; d does not move (ota_decrypt_skip does, once all are OTA_OK).
 */
enum ota_err ota_decrypt_chunks(const struct ota_decrypt *d, struct ota_gcm_ctx *gcm,
				uint64_t index, const uint8_t *in, size_t n, uint8_t *out,
				uint64_t *ret_bad);

/*
 * Decryption ahead, on the thread that reads the ciphertext (the Linux
 * port's offline install: its read-ahead thread decrypts each piece it
 * read while the core hashes the piece before, docs/agent.md). dst gets
 * src's geometry and a cipher context of its own with the same key
 * (ota_gcm_copy: the key stays in the backend); it belongs to the caller,
 * is used on one thread and closed with ota_decrypt_close.
 */
enum ota_err ota_decrypt_copy(struct ota_decrypt *dst, const struct ota_decrypt *src);

/* What ota_decrypt_ahead did with one piece of ciphertext. */
struct ota_decrypt_ahead {
	const uint8_t *in; /* the piece; NULL: decrypted in place */
	size_t len;
	uint64_t wire_off; /* its offset in the ciphertext */
	uint8_t prefix[OTA_CRYPT_NONCE_PREFIX_BYTES]; /* the artifact it was decrypted for */
	uint8_t *out; /* the plaintext of its first `chunks` whole chunks */
	size_t chunks;
	enum ota_err err; /* OTA_OK: every one of them authenticated */
	uint64_t bad; /* decrypted in place (in NULL) and failed: the chunk that failed */
};

/*
 * Decrypts the whole chunks (never the image's last) at the start of
 * in[0..len), which is the ciphertext at wire_off, into out (at most cap
 * bytes) with d (a copy, ota_decrypt_copy; only its cipher state moves),
 * checking each tag, and says so in *ret. None when wire_off is not a
 * chunk boundary. The core takes the result back in
 * ota_agent_write_ahead; a failed run is decrypted again there, so that
 * it fails exactly as ota_agent_write would.
 */
void ota_decrypt_ahead(struct ota_decrypt *d, uint64_t wire_off, const uint8_t *in, size_t len,
		       uint8_t *out, size_t cap, struct ota_decrypt_ahead *ret);

/*
 * How many whole chunks (never the image's last) start at ciphertext
 * offset wire_off with their plaintext within cap bytes: 0 when wire_off
 * is not a chunk boundary.
 */
size_t ota_decrypt_ahead_whole(const struct ota_decrypt *d, uint64_t wire_off, size_t cap);

/*
 * Decryption ahead in place: n whole chunks (at most
 * ota_decrypt_ahead_whole) at ciphertext offset wire_off, which the port
 * read apart: chunk i's ciphertext at io + i * chunk_bytes, its tag at
 * tags + i * OTA_CRYPT_TAG_BYTES. Each is decrypted where it lies, so io
 * ends up the plaintext with no other buffer touched. *ret as
 * ota_decrypt_ahead's, but with in NULL (there is no ciphertext left to
 * decrypt again): ota_agent_write_ahead takes a failure as it is, chunk
 * bad named, and refuses a result that does not continue the install.
 */
void ota_decrypt_ahead_in_place(struct ota_decrypt *d, uint64_t wire_off, uint8_t *io,
				const uint8_t *tags, size_t n, struct ota_decrypt_ahead *ret);

/* Moves d past n whole chunks that ota_decrypt_chunks authenticated. */
void ota_decrypt_skip(struct ota_decrypt *d, size_t n);

/* True once every chunk authenticated (the stream is complete). */
bool ota_decrypt_done(const struct ota_decrypt *d);

/* Wipes the key; NULL and a closed decryptor are fine. */
void ota_decrypt_close(struct ota_decrypt *d);

#endif
