/* SPDX-License-Identifier: Apache-2.0 */
/* The OpenSSL 3 backend of the AES-256-GCM part of fleetota/crypto.h. */
#include <openssl/evp.h>

#include "fleetota/crypto.h"

enum ota_err ota_gcm_open(struct ota_gcm_ctx *ctx, const uint8_t key[OTA_AES256_KEY_BYTES])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	ctx->impl = NULL;
	if (!c)
		return OTA_ERR_NOMEM;
	/* the key schedule is set once; each chunk only sets its nonce */
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
	    EVP_DecryptInit_ex(c, NULL, NULL, key, NULL) != 1) {
		EVP_CIPHER_CTX_free(c);
		return OTA_ERR_INTERNAL;
	}
	ctx->impl = c;
	return OTA_OK;
}

enum ota_err ota_gcm_chunk_begin(struct ota_gcm_ctx *ctx, const uint8_t nonce[OTA_GCM_NONCE_BYTES],
				 const uint8_t *aad, size_t aad_len)
{
	int out_len = 0;
	if (!ctx->impl || aad_len > 1024)
		return OTA_ERR_INVALID_ARG;
	if (EVP_DecryptInit_ex(ctx->impl, NULL, NULL, NULL, nonce) != 1 ||
	    (aad_len && EVP_DecryptUpdate(ctx->impl, NULL, &out_len, aad, (int)aad_len) != 1))
		return OTA_ERR_INTERNAL;
	return OTA_OK;
}

enum ota_err ota_gcm_chunk_update(struct ota_gcm_ctx *ctx, const uint8_t *in, size_t len,
				  uint8_t *out)
{
	int out_len = 0;
	if (!ctx->impl || len > (size_t)1 << 30)
		return OTA_ERR_INVALID_ARG;
	if (len == 0)
		return OTA_OK;
	if (EVP_DecryptUpdate(ctx->impl, out, &out_len, in, (int)len) != 1 ||
	    (size_t)out_len != len)
		return OTA_ERR_INTERNAL;
	return OTA_OK;
}

enum ota_err ota_gcm_chunk_end(struct ota_gcm_ctx *ctx, const uint8_t tag[OTA_GCM_TAG_BYTES])
{
	uint8_t tag_copy[OTA_GCM_TAG_BYTES];
	uint8_t rest[OTA_GCM_TAG_BYTES];
	int out_len = 0;
	if (!ctx->impl)
		return OTA_ERR_INVALID_ARG;
	for (unsigned i = 0; i < sizeof(tag_copy); i++)
		tag_copy[i] = tag[i];
	if (EVP_CIPHER_CTX_ctrl(ctx->impl, EVP_CTRL_GCM_SET_TAG, OTA_GCM_TAG_BYTES, tag_copy) != 1)
		return OTA_ERR_INTERNAL;
	/* the one place a chunk is judged: only a matching tag is OTA_OK */
	return EVP_DecryptFinal_ex(ctx->impl, rest, &out_len) == 1 && out_len == 0
		       ? OTA_OK
		       : OTA_ERR_DECRYPT;
}

void ota_gcm_close(struct ota_gcm_ctx *ctx)
{
	if (!ctx)
		return;
	/* EVP_CIPHER_CTX_free cleanses the key schedule */
	EVP_CIPHER_CTX_free(ctx->impl);
	ctx->impl = NULL;
}

enum ota_err ota_gcm_copy(struct ota_gcm_ctx *dst, const struct ota_gcm_ctx *src)
{
	dst->impl = NULL;
	if (!src->impl)
		return OTA_ERR_INVALID_ARG;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return OTA_ERR_NOMEM;
	if (EVP_CIPHER_CTX_copy(c, src->impl) != 1) {
		EVP_CIPHER_CTX_free(c);
		return OTA_ERR_INTERNAL;
	}
	dst->impl = c;
	return OTA_OK;
}
