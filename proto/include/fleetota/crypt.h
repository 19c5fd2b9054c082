/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_CRYPT_H
#define FLEETOTA_CRYPT_H

/*
 * Encrypted images (docs/formats.md "Encrypted images", docs/decisions.md
 * "Encrypted images"): the format's constants and the portable helpers that
 * device, server and ota-keys share. No crypto library here: the AEAD
 * primitives the device needs are in the crypto contract (fleetota/crypto.h)
 * and the host-side wrap/encrypt in fleetota/crypt_host.h.
 *
 * Ciphertext layout: for chunk i = 0 .. n-1 (n = ceil(size / chunk_bytes)),
 * the AES-256-GCM ciphertext of plaintext[i*chunk_bytes ..] (chunk_bytes,
 * the last one shorter) followed by its 16-byte tag. Nonce =
 * nonce_prefix (8) || uint32be(i); AAD = "fleetota/v1/chunk" 0x00
 * uint64be(i) uint8(i == n-1). A chunk moved, swapped, dropped or
 * truncated fails its tag; a stream cut at a chunk boundary lacks the
 * chunk marked last.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"
#include "fleetota/limits.h"
#include "ota.pb-c.h"

#define OTA_CEK_BYTES OTA_AES256_KEY_BYTES
#define OTA_CRYPT_NONCE_PREFIX_BYTES 8u
#define OTA_CRYPT_NONCE_BYTES OTA_GCM_NONCE_BYTES
#define OTA_CRYPT_TAG_BYTES OTA_GCM_TAG_BYTES
#define OTA_X25519_BYTES 32u
/* A P-256 public key as an uncompressed point: 0x04 || x || y. */
#define OTA_P256_POINT_BYTES 65u
/* The ECDH result of P-256: the point's x-coordinate. */
#define OTA_P256_SHARED_BYTES 32u
/* The ECDH result of either kind (X25519's is its key size; both are 32). */
#define OTA_ECDH_SHARED_BYTES OTA_X25519_BYTES
/* The longest ephemeral public key of any recipient kind. */
#define OTA_CRYPT_EPHEMERAL_MAX_BYTES OTA_P256_POINT_BYTES
#define OTA_WRAPPED_KEY_BYTES 40u
#define OTA_KEY_CHECK_BYTES 32u
/* AAD of one chunk: label (17) + NUL + index (8) + last flag (1). */
#define OTA_CRYPT_AAD_BYTES 27u
/* HKDF info of one recipient entry: label (16) + NUL + key id + prefix + plaintext digest. */
#define OTA_CRYPT_WRAP_CONTEXT_BYTES \
	(17u + OTA_KEY_ID_BYTES + OTA_CRYPT_NONCE_PREFIX_BYTES + OTA_SHA256_BYTES)
/* ota-keys' default plaintext chunk. */
#define OTA_CRYPT_CHUNK_DEFAULT (64u * 1024u)

/* Values equal the wire enum fleetota.v1.EncryptionAlg. */
enum ota_enc_alg {
	OTA_ENC_AES256GCM_X25519_HKDF_AESKW = 1,
};

/*
 * Values equal the wire enum fleetota.v1.RecipientKind: the key agreement
 * of one recipient entry (the rest of the construction is the same).
 */
enum ota_recipient_kind {
	OTA_RECIPIENT_X25519 = 0,
	OTA_RECIPIENT_P256 = 1,
};

/*
 * Bytes of a public key (the entry's ephemeral_public, the recipient's
 * own in the HKDF salt) of kind; 0 for a kind this build does not know.
 */
size_t ota_crypt_public_bytes(unsigned kind);

/*
 * Ciphertext bytes of a plaintext of size bytes in chunks of chunk_bytes;
 * 0 when chunk_bytes is 0 or the result would exceed OTA_MAX_IMAGE_BYTES
 * plus its tags.
 */
uint64_t ota_crypt_ciphertext_size(uint64_t size, uint32_t chunk_bytes);

/*
 * The manifest's Encryption, shape-checked: known algorithm, field
 * lengths, chunk_bytes within limits, ciphertext_size consistent with the
 * plaintext size, 1..OTA_MAX_RECIPIENTS recipients with distinct key ids,
 * each of a known kind with an ephemeral public key of its kind's length.
 * OTA_OK or OTA_ERR_FORMAT. (ota_manifest_parse calls it.)
 */
enum ota_err ota_encryption_check(const Fleetota__V1__Encryption *enc, uint64_t plaintext_size);

/*
 * What the server stores and serves for this manifest, and a bundle
 * carries: the ciphertext's digest and size when the image is encrypted,
 * else the image's.
 */
void ota_manifest_payload(const Fleetota__V1__Manifest *m, const uint8_t **ret_sha256,
			  uint64_t *ret_size);

/* The chunk's nonce and AAD (see the layout above). */
void ota_crypt_chunk_nonce(const uint8_t prefix[OTA_CRYPT_NONCE_PREFIX_BYTES], uint64_t index,
			   uint8_t ret_nonce[OTA_CRYPT_NONCE_BYTES]);
void ota_crypt_chunk_aad(uint64_t index, bool last, uint8_t ret_aad[OTA_CRYPT_AAD_BYTES]);

/*
 * The HKDF info that binds a wrapped key to its recipient and artifact:
 * "fleetota/v1/wrap" 0x00 key_id nonce_prefix plaintext_sha256. A wrapped
 * key copied into another artifact's manifest derives another KEK there
 * and fails the key wrap's integrity check.
 */
void ota_crypt_wrap_context(const uint8_t key_id[OTA_KEY_ID_BYTES],
			    const uint8_t prefix[OTA_CRYPT_NONCE_PREFIX_BYTES],
			    const uint8_t plaintext_sha256[OTA_SHA256_BYTES],
			    uint8_t ret_context[OTA_CRYPT_WRAP_CONTEXT_BYTES]);

/*
 * key_check = SHA-256("fleetota/v1/key-check" 0x00 nonce_prefix key):
 * lets a device tell, before it downloads, that the key it unwrapped is
 * this artifact's (a wrong or replayed key is OTA_ERR_KEY_UNWRAP).
 */
enum ota_err ota_crypt_key_check(const uint8_t key[OTA_CEK_BYTES],
				 const uint8_t prefix[OTA_CRYPT_NONCE_PREFIX_BYTES],
				 uint8_t ret_check[OTA_KEY_CHECK_BYTES]);

/* Constant-time equality of n bytes. */
bool ota_crypt_equal(const uint8_t *a, const uint8_t *b, size_t n);

#endif
