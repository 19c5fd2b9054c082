/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_CRYPTO_H
#define FLEETOTA_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"
#include "fleetota/limits.h"

/*
 * The crypto contract. Exactly one backend is linked, chosen at build time
 * (proto/src/crypto_openssl.c on Linux; a porter supplies one for an MCU,
 * e.g. over mbed TLS or a secure element). The portable trust code calls
 * only these functions.
 */

/* Values equal the wire enum fleetota.v1.Algorithm. */
enum ota_alg {
	OTA_ALG_ED25519 = 1,
	OTA_ALG_ECDSA_P256_SHA256 = 2,
};

/* Room for any backend's running SHA-256 state, without a heap. */
struct ota_sha256_ctx {
	void *impl;
	uint64_t state[OTA_SHA256_CTX_WORDS];
};

enum ota_err ota_sha256_init(struct ota_sha256_ctx *ctx);
enum ota_err ota_sha256_update(struct ota_sha256_ctx *ctx, const void *data, size_t len);
/* Writes the digest and releases the context. */
enum ota_err ota_sha256_final(struct ota_sha256_ctx *ctx, uint8_t out[OTA_SHA256_BYTES]);
/* Releases a context without a digest; safe on a finished or zeroed one. */
void ota_sha256_abort(struct ota_sha256_ctx *ctx);
/* One-shot digest. */
enum ota_err ota_sha256(const void *data, size_t len, uint8_t out[OTA_SHA256_BYTES]);

/*
 * Checks that spki is a SubjectPublicKeyInfo DER of algorithm alg.
 * OTA_OK, or OTA_ERR_FORMAT.
 */
enum ota_err ota_crypto_key_check(enum ota_alg alg, const uint8_t *spki, size_t spki_len);

/*
 * Verifies sig over the message prefix || body with the public key spki.
 * OTA_OK; OTA_ERR_SIGNATURE when the signature does not verify;
 * OTA_ERR_FORMAT when the key or algorithm is unusable.
 */
enum ota_err ota_crypto_verify(enum ota_alg alg, const uint8_t *spki, size_t spki_len,
			       const uint8_t *prefix, size_t prefix_len, const uint8_t *body,
			       size_t body_len, const uint8_t *sig, size_t sig_len);

/*
 * AES-256-GCM decryption of encrypted images (fleetota/crypt.h), one chunk
 * at a time over one key. Room for a backend's state without a heap, as
 * for SHA-256. Plaintext comes out before the chunk's tag is checked: the
 * caller writes it only where nothing runs it (the inactive slot) and
 * treats a failing tag as the end of the install.
 */
struct ota_gcm_ctx {
	void *impl;
	uint64_t state[OTA_GCM_CTX_WORDS];
};

/* Takes the key (the caller wipes its copy). OTA_OK or OTA_ERR_NOMEM/INTERNAL. */
enum ota_err ota_gcm_open(struct ota_gcm_ctx *ctx, const uint8_t key[OTA_AES256_KEY_BYTES]);
/* Starts one chunk: a 12-byte nonce and its AAD. */
enum ota_err ota_gcm_chunk_begin(struct ota_gcm_ctx *ctx, const uint8_t nonce[OTA_GCM_NONCE_BYTES],
				 const uint8_t *aad, size_t aad_len);
/* Decrypts len bytes of the chunk into out (len bytes; may equal in). */
enum ota_err ota_gcm_chunk_update(struct ota_gcm_ctx *ctx, const uint8_t *in, size_t len,
				  uint8_t *out);
/* Ends the chunk: OTA_OK when tag authenticates it, else OTA_ERR_DECRYPT. */
enum ota_err ota_gcm_chunk_end(struct ota_gcm_ctx *ctx, const uint8_t tag[OTA_GCM_TAG_BYTES]);
/* Wipes and releases the key; safe on a closed or zeroed context. */
void ota_gcm_close(struct ota_gcm_ctx *ctx);
/*
 * A second context with src's key (its schedule copied inside the
 * backend: the key never comes out), for use on another thread; dst is
 * closed with ota_gcm_close. OTA_ERR_UNSUPPORTED where a backend cannot.
 */
enum ota_err ota_gcm_copy(struct ota_gcm_ctx *dst, const struct ota_gcm_ctx *src);

#endif
