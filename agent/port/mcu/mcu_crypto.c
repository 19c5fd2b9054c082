/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The crypto contract (fleetota/crypto.h) for the Cortex-M link check. A
 * real device links a backend for its hardware or library (PSA Crypto,
 * a secure element); this stub fails closed: no hash, no key and no
 * signature is ever accepted, so a device built with it installs nothing.
 */
#include "fleetota/crypto.h"

enum ota_err ota_sha256_init(struct ota_sha256_ctx *ctx)
{
	ctx->impl = 0;
	return OTA_ERR_INTERNAL;
}

enum ota_err ota_sha256_update(struct ota_sha256_ctx *ctx, const void *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return OTA_ERR_INTERNAL;
}

enum ota_err ota_sha256_final(struct ota_sha256_ctx *ctx, uint8_t out[OTA_SHA256_BYTES])
{
	(void)ctx;
	(void)out;
	return OTA_ERR_INTERNAL;
}

void ota_sha256_abort(struct ota_sha256_ctx *ctx)
{
	ctx->impl = 0;
}

enum ota_err ota_sha256(const void *data, size_t len, uint8_t out[OTA_SHA256_BYTES])
{
	(void)data;
	(void)len;
	(void)out;
	return OTA_ERR_INTERNAL;
}

enum ota_err ota_crypto_key_check(enum ota_alg alg, const uint8_t *spki, size_t spki_len)
{
	(void)alg;
	(void)spki;
	(void)spki_len;
	return OTA_ERR_KEY_UNKNOWN;
}

enum ota_err ota_crypto_verify(enum ota_alg alg, const uint8_t *spki, size_t spki_len,
			       const uint8_t *prefix, size_t prefix_len, const uint8_t *body,
			       size_t body_len, const uint8_t *sig, size_t sig_len)
{
	(void)alg;
	(void)spki;
	(void)spki_len;
	(void)prefix;
	(void)prefix_len;
	(void)body;
	(void)body_len;
	(void)sig;
	(void)sig_len;
	return OTA_ERR_SIGNATURE;
}

/* Encrypted images: no cipher in the stub, so none is ever accepted. */
enum ota_err ota_gcm_open(struct ota_gcm_ctx *ctx, const uint8_t key[OTA_AES256_KEY_BYTES])
{
	(void)key;
	ctx->impl = 0;
	return OTA_ERR_UNSUPPORTED;
}

enum ota_err ota_gcm_chunk_begin(struct ota_gcm_ctx *ctx, const uint8_t nonce[OTA_GCM_NONCE_BYTES],
				 const uint8_t *aad, size_t aad_len)
{
	(void)ctx;
	(void)nonce;
	(void)aad;
	(void)aad_len;
	return OTA_ERR_UNSUPPORTED;
}

enum ota_err ota_gcm_chunk_update(struct ota_gcm_ctx *ctx, const uint8_t *in, size_t len,
				  uint8_t *out)
{
	(void)ctx;
	(void)in;
	(void)len;
	(void)out;
	return OTA_ERR_UNSUPPORTED;
}

enum ota_err ota_gcm_chunk_end(struct ota_gcm_ctx *ctx, const uint8_t tag[OTA_GCM_TAG_BYTES])
{
	(void)ctx;
	(void)tag;
	return OTA_ERR_DECRYPT;
}

void ota_gcm_close(struct ota_gcm_ctx *ctx)
{
	ctx->impl = 0;
}

enum ota_err ota_gcm_copy(struct ota_gcm_ctx *dst, const struct ota_gcm_ctx *src)
{
	(void)src;
	dst->impl = 0;
	return OTA_ERR_UNSUPPORTED;
}
