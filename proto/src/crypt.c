/* SPDX-License-Identifier: Apache-2.0 */
/* Encrypted images: the format's portable part (fleetota/crypt.h). */
#include <string.h>

#include "fleetota/crypt.h"
#include "fleetota/crypto.h"

static const char chunk_label[] = "fleetota/v1/chunk";
static const char wrap_label[] = "fleetota/v1/wrap";
static const char check_label[] = "fleetota/v1/key-check";

uint64_t ota_crypt_ciphertext_size(uint64_t size, uint32_t chunk_bytes)
{
	if (chunk_bytes == 0 || size > OTA_MAX_IMAGE_BYTES)
		return 0;
	uint64_t chunks = size / chunk_bytes + (size % chunk_bytes ? 1u : 0u);
	return size + chunks * OTA_CRYPT_TAG_BYTES;
}

_Static_assert((int)OTA_RECIPIENT_X25519 ==
		       (int)FLEETOTA__V1__RECIPIENT_KIND__RECIPIENT_KIND_X25519,
	       "kind values are the wire's");
_Static_assert((int)OTA_RECIPIENT_P256 == (int)FLEETOTA__V1__RECIPIENT_KIND__RECIPIENT_KIND_P256,
	       "kind values are the wire's");

size_t ota_crypt_public_bytes(unsigned kind)
{
	switch (kind) {
	case OTA_RECIPIENT_X25519:
		return OTA_X25519_BYTES;
	case OTA_RECIPIENT_P256:
		return OTA_P256_POINT_BYTES;
	}
	return 0;
}

static bool bytes_len(const ProtobufCBinaryData *b, size_t len)
{
	return b->len == len && (len == 0 || b->data != NULL);
}

enum ota_err ota_encryption_check(const Fleetota__V1__Encryption *enc, uint64_t plaintext_size)
{
	if (!enc ||
	    enc->alg != FLEETOTA__V1__ENCRYPTION_ALG__ENCRYPTION_ALG_AES256GCM_X25519_HKDF_AESKW)
		return OTA_ERR_FORMAT;
	if (!bytes_len(&enc->ciphertext_sha256, OTA_SHA256_BYTES) ||
	    !bytes_len(&enc->nonce_prefix, OTA_CRYPT_NONCE_PREFIX_BYTES) ||
	    !bytes_len(&enc->key_check, OTA_KEY_CHECK_BYTES))
		return OTA_ERR_FORMAT;
	if (enc->chunk_bytes < OTA_MIN_CRYPT_CHUNK_BYTES ||
	    enc->chunk_bytes > OTA_MAX_CRYPT_CHUNK_BYTES)
		return OTA_ERR_FORMAT;
	/* the nonce counts chunks in 32 bits */
	if (plaintext_size / enc->chunk_bytes >= UINT32_MAX)
		return OTA_ERR_FORMAT;
	uint64_t want = ota_crypt_ciphertext_size(plaintext_size, enc->chunk_bytes);
	if (want == 0 || enc->ciphertext_size != want)
		return OTA_ERR_FORMAT;
	if (enc->n_recipients == 0 || enc->n_recipients > OTA_MAX_RECIPIENTS)
		return OTA_ERR_FORMAT;
	for (size_t i = 0; i < enc->n_recipients; i++) {
		const Fleetota__V1__Recipient *r = enc->recipients[i];
		/* an unknown kind has length 0: refused with the entry */
		size_t eph_len = r ? ota_crypt_public_bytes((unsigned)r->kind) : 0;
		if (!r || eph_len == 0 || !bytes_len(&r->key_id, OTA_KEY_ID_BYTES) ||
		    !bytes_len(&r->ephemeral_public, eph_len) ||
		    !bytes_len(&r->wrapped_key, OTA_WRAPPED_KEY_BYTES) || !r->name ||
		    strlen(r->name) > OTA_MAX_STRING_BYTES)
			return OTA_ERR_FORMAT;
		/* one key, one entry: the device would otherwise pick by position */
		for (size_t j = 0; j < i; j++) {
			if (memcmp(enc->recipients[j]->key_id.data, r->key_id.data,
				   OTA_KEY_ID_BYTES) == 0)
				return OTA_ERR_FORMAT;
		}
	}
	return OTA_OK;
}

void ota_manifest_payload(const Fleetota__V1__Manifest *m, const uint8_t **ret_sha256,
			  uint64_t *ret_size)
{
	if (m->encryption) {
		*ret_sha256 = m->encryption->ciphertext_sha256.data;
		*ret_size = m->encryption->ciphertext_size;
		return;
	}
	*ret_sha256 = m->image->sha256.data;
	*ret_size = m->image->size;
}

static void put_be(uint8_t *out, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		out[i] = (uint8_t)(v >> (8u * (bytes - 1u - i)));
}

void ota_crypt_chunk_nonce(const uint8_t prefix[OTA_CRYPT_NONCE_PREFIX_BYTES], uint64_t index,
			   uint8_t ret_nonce[OTA_CRYPT_NONCE_BYTES])
{
	memcpy(ret_nonce, prefix, OTA_CRYPT_NONCE_PREFIX_BYTES);
	put_be(ret_nonce + OTA_CRYPT_NONCE_PREFIX_BYTES, index, 4);
}

void ota_crypt_chunk_aad(uint64_t index, bool last, uint8_t ret_aad[OTA_CRYPT_AAD_BYTES])
{
	/* sizeof includes the NUL: the label is NUL-terminated in the AAD */
	memcpy(ret_aad, chunk_label, sizeof(chunk_label));
	put_be(ret_aad + sizeof(chunk_label), index, 8);
	ret_aad[sizeof(chunk_label) + 8] = last ? 1u : 0u;
}

void ota_crypt_wrap_context(const uint8_t key_id[OTA_KEY_ID_BYTES],
			    const uint8_t prefix[OTA_CRYPT_NONCE_PREFIX_BYTES],
			    const uint8_t plaintext_sha256[OTA_SHA256_BYTES],
			    uint8_t ret_context[OTA_CRYPT_WRAP_CONTEXT_BYTES])
{
	uint8_t *p = ret_context;
	memcpy(p, wrap_label, sizeof(wrap_label));
	p += sizeof(wrap_label);
	memcpy(p, key_id, OTA_KEY_ID_BYTES);
	p += OTA_KEY_ID_BYTES;
	memcpy(p, prefix, OTA_CRYPT_NONCE_PREFIX_BYTES);
	p += OTA_CRYPT_NONCE_PREFIX_BYTES;
	memcpy(p, plaintext_sha256, OTA_SHA256_BYTES);
}

enum ota_err ota_crypt_key_check(const uint8_t key[OTA_CEK_BYTES],
				 const uint8_t prefix[OTA_CRYPT_NONCE_PREFIX_BYTES],
				 uint8_t ret_check[OTA_KEY_CHECK_BYTES])
{
	struct ota_sha256_ctx ctx;
	enum ota_err err = ota_sha256_init(&ctx);
	if (err != OTA_OK)
		return err;
	if ((err = ota_sha256_update(&ctx, check_label, sizeof(check_label))) != OTA_OK ||
	    (err = ota_sha256_update(&ctx, prefix, OTA_CRYPT_NONCE_PREFIX_BYTES)) != OTA_OK ||
	    (err = ota_sha256_update(&ctx, key, OTA_CEK_BYTES)) != OTA_OK) {
		ota_sha256_abort(&ctx);
		return err;
	}
	return ota_sha256_final(&ctx, ret_check);
}

bool ota_crypt_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint8_t diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (uint8_t)(a[i] ^ b[i]);
	return diff == 0;
}
