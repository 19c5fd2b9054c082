/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_CRYPTO_H
#define FLEETOTA_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"

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
	uint64_t state[30];
};

enum ota_err ota_sha256_init(struct ota_sha256_ctx *ctx);
enum ota_err ota_sha256_update(struct ota_sha256_ctx *ctx, const void *data, size_t len);
/* Writes the digest and releases the context. */
enum ota_err ota_sha256_final(struct ota_sha256_ctx *ctx, uint8_t out[32]);
/* Releases a context without a digest; safe on a finished or zeroed one. */
void ota_sha256_abort(struct ota_sha256_ctx *ctx);
/* One-shot digest. */
enum ota_err ota_sha256(const void *data, size_t len, uint8_t out[32]);

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

#endif
