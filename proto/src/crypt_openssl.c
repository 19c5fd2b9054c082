/* SPDX-License-Identifier: Apache-2.0 */
/* Encrypted images, host side (fleetota/crypt_host.h), over OpenSSL 3 EVP. */
#include <stdbool.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "fleetota/crypt_host.h"
#include "fleetota/crypto.h"

static bool is_p256(EVP_PKEY *key)
{
	char group[OTA_EC_GROUP_NAME_BYTES];
	size_t len = 0;
	if (!EVP_PKEY_is_a(key, "EC") ||
	    EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1)
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

enum ota_err ota_crypt_key_kind(EVP_PKEY *key, enum ota_recipient_kind *ret_kind)
{
	if (!key)
		return OTA_ERR_FORMAT;
	if (EVP_PKEY_get_id(key) == EVP_PKEY_X25519) {
		*ret_kind = OTA_RECIPIENT_X25519;
		return OTA_OK;
	}
	if (is_p256(key)) {
		*ret_kind = OTA_RECIPIENT_P256;
		return OTA_OK;
	}
	return OTA_ERR_FORMAT;
}

enum ota_err ota_crypt_public_raw(EVP_PKEY *key, uint8_t ret_raw[OTA_CRYPT_EPHEMERAL_MAX_BYTES],
				  size_t *ret_len)
{
	enum ota_recipient_kind kind;
	if (ota_crypt_key_kind(key, &kind) != OTA_OK)
		return OTA_ERR_FORMAT;
	if (kind == OTA_RECIPIENT_X25519) {
		size_t len = OTA_X25519_BYTES;
		if (EVP_PKEY_get_raw_public_key(key, ret_raw, &len) != 1 || len != OTA_X25519_BYTES)
			return OTA_ERR_FORMAT;
		*ret_len = len;
		return OTA_OK;
	}
	/*
	 * x and y, not the key's own encoding (that may be the compressed
	 * point), from a public copy made through its SPKI: an engine's key
	 * (a token's, through libp11) answers no provider parameters.
	 */
	BIGNUM *x = NULL, *y = NULL;
	unsigned char *der = NULL;
	enum ota_err err = OTA_ERR_FORMAT;
	int der_len = i2d_PUBKEY(key, &der);
	const unsigned char *p = der;
	EVP_PKEY *pub = der_len > 0 ? d2i_PUBKEY(NULL, &p, der_len) : NULL;
	if (pub && EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
	    EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
	    BN_bn2binpad(x, ret_raw + 1, 32) == 32 && BN_bn2binpad(y, ret_raw + 33, 32) == 32) {
		ret_raw[0] = 0x04;
		*ret_len = OTA_P256_POINT_BYTES;
		err = OTA_OK;
	}
	ERR_clear_error();
	BN_free(x);
	BN_free(y);
	EVP_PKEY_free(pub);
	OPENSSL_free(der);
	return err;
}

enum ota_err ota_crypt_public_from_raw(unsigned kind, const uint8_t *raw, size_t len,
				       EVP_PKEY **ret_key)
{
	EVP_PKEY *key = NULL;
	if (len == 0 || len != ota_crypt_public_bytes(kind))
		return OTA_ERR_KEY_UNWRAP;
	if (kind == OTA_RECIPIENT_X25519) {
		key = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, raw, len);
	} else if (raw[0] == 0x04) {
		/* the import refuses a point that is not on the curve */
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
							 (char *)"prime256v1", 0),
			OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)raw,
							  len),
			OSSL_PARAM_construct_end(),
		};
		if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
		    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
			key = NULL;
		EVP_PKEY_CTX_free(ctx);
	}
	if (!key) {
		ERR_clear_error();
		return OTA_ERR_KEY_UNWRAP;
	}
	*ret_key = key;
	return OTA_OK;
}

enum ota_err ota_crypt_recipient_id(EVP_PKEY *key, uint8_t ret_id[OTA_KEY_ID_BYTES])
{
	uint8_t raw[OTA_CRYPT_EPHEMERAL_MAX_BYTES];
	size_t raw_len = 0;
	unsigned char *der = NULL;
	EVP_PKEY *canonical = NULL;
	enum ota_recipient_kind kind;
	if (ota_crypt_key_kind(key, &kind) != OTA_OK)
		return OTA_ERR_FORMAT;
	/* a P-256 key's SPKI with the uncompressed point: one key, one id */
	if (kind == OTA_RECIPIENT_P256 &&
	    (ota_crypt_public_raw(key, raw, &raw_len) != OTA_OK ||
	     ota_crypt_public_from_raw(kind, raw, raw_len, &canonical) != OTA_OK))
		return OTA_ERR_FORMAT;
	int len = i2d_PUBKEY(canonical ? canonical : key, &der);
	EVP_PKEY_free(canonical);
	if (len <= 0)
		return OTA_ERR_FORMAT;
	enum ota_err err = ota_sha256(der, (size_t)len, ret_id);
	OPENSSL_free(der);
	return err;
}

EVP_PKEY *ota_crypt_keygen_kind(unsigned kind)
{
	switch (kind) {
	case OTA_RECIPIENT_X25519:
		return EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	case OTA_RECIPIENT_P256:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	}
	return NULL;
}

EVP_PKEY *ota_crypt_keygen(void)
{
	return ota_crypt_keygen_kind(OTA_RECIPIENT_X25519);
}

enum ota_err ota_crypt_random(uint8_t *buf, size_t len)
{
	return len <= 1024 && RAND_bytes(buf, (int)len) == 1 ? OTA_OK : OTA_ERR_INTERNAL;
}

/* KEK = HKDF-SHA256(IKM = Z, salt = E || R, info = context). */
static enum ota_err kek_from_shared(const uint8_t *shared, size_t shared_len,
				    const uint8_t *ephemeral, const uint8_t *own_public,
				    size_t public_len,
				    const uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES],
				    uint8_t ret_kek[OTA_AES256_KEY_BYTES])
{
	uint8_t salt[2 * OTA_CRYPT_EPHEMERAL_MAX_BYTES];
	enum ota_err err = OTA_ERR_INTERNAL;
	if (public_len > OTA_CRYPT_EPHEMERAL_MAX_BYTES)
		return OTA_ERR_INVALID_ARG;
	memcpy(salt, ephemeral, public_len);
	memcpy(salt + public_len, own_public, public_len);
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (!kctx)
		goto out;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)shared, shared_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, 2 * public_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)context,
						  OTA_CRYPT_WRAP_CONTEXT_BYTES),
		OSSL_PARAM_construct_end(),
	};
	if (EVP_KDF_derive(kctx, ret_kek, OTA_AES256_KEY_BYTES, params) == 1)
		err = OTA_OK;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return err;
}

/* Z = ECDH(own, peer): X25519, or the x-coordinate on P-256 (both 32 bytes). */
static enum ota_err ecdh(EVP_PKEY *own, EVP_PKEY *peer, uint8_t ret_shared[OTA_ECDH_SHARED_BYTES])
{
	size_t shared_len = OTA_ECDH_SHARED_BYTES;
	enum ota_err err = OTA_ERR_INTERNAL;
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(own, NULL);
	if (!pctx || EVP_PKEY_derive_init(pctx) != 1 || EVP_PKEY_derive_set_peer(pctx, peer) != 1) {
		ERR_clear_error();
		goto out;
	}
	/* OpenSSL refuses an all-zero X25519 result (a small-order peer key) */
	if (EVP_PKEY_derive(pctx, ret_shared, &shared_len) != 1 ||
	    shared_len != OTA_ECDH_SHARED_BYTES) {
		ERR_clear_error();
		err = OTA_ERR_KEY_UNWRAP;
		goto out;
	}
	err = OTA_OK;
out:
	EVP_PKEY_CTX_free(pctx);
	return err;
}

/* RFC 3394 AES-256 key wrap (enc = 1) or unwrap (enc = 0) of 32 <-> 40 bytes. */
static enum ota_err key_wrap(int enc, const uint8_t kek[OTA_AES256_KEY_BYTES], const uint8_t *in,
			     size_t in_len, uint8_t *out, size_t want)
{
	int len = 0, fin = 0;
	enum ota_err err = enc ? OTA_ERR_INTERNAL : OTA_ERR_KEY_UNWRAP;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return OTA_ERR_NOMEM;
	EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_CipherInit_ex(c, EVP_aes_256_wrap(), NULL, kek, NULL, enc) == 1 &&
	    EVP_CipherUpdate(c, out, &len, in, (int)in_len) == 1 &&
	    EVP_CipherFinal_ex(c, out + len, &fin) == 1 && (size_t)(len + fin) == want)
		err = OTA_OK;
	ERR_clear_error();
	EVP_CIPHER_CTX_free(c);
	return err;
}

enum ota_err ota_crypt_wrap(EVP_PKEY *recipient,
			    const uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES],
			    const uint8_t key[OTA_CEK_BYTES], struct ota_crypt_wrapped *ret)
{
	uint8_t own[OTA_CRYPT_EPHEMERAL_MAX_BYTES];
	uint8_t shared[OTA_ECDH_SHARED_BYTES];
	uint8_t kek[OTA_AES256_KEY_BYTES];
	struct ota_crypt_wrapped next;
	size_t own_len = 0;
	EVP_PKEY *eph = NULL;
	memset(&next, 0, sizeof(next));
	enum ota_err err = ota_crypt_key_kind(recipient, &next.kind);
	if (err == OTA_OK)
		err = (eph = ota_crypt_keygen_kind(next.kind)) ? OTA_OK : OTA_ERR_INTERNAL;
	if (err == OTA_OK)
		err = ota_crypt_public_raw(eph, next.ephemeral, &next.ephemeral_len);
	if (err == OTA_OK)
		err = ota_crypt_public_raw(recipient, own, &own_len);
	if (err == OTA_OK)
		err = ecdh(eph, recipient, shared);
	if (err == OTA_OK)
		err = kek_from_shared(shared, sizeof(shared), next.ephemeral, own, own_len, context,
				      kek);
	if (err == OTA_OK)
		err = key_wrap(1, kek, key, OTA_CEK_BYTES, next.wrapped, sizeof(next.wrapped));
	if (err == OTA_OK)
		*ret = next;
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(kek, sizeof(kek));
	EVP_PKEY_free(eph);
	return err;
}

enum ota_err ota_crypt_unwrap_shared(const uint8_t *shared, size_t shared_len,
				     const uint8_t *ephemeral, const uint8_t *own_public,
				     size_t public_len,
				     const uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES],
				     const uint8_t wrapped[OTA_WRAPPED_KEY_BYTES],
				     uint8_t ret_key[OTA_CEK_BYTES])
{
	uint8_t kek[OTA_AES256_KEY_BYTES];
	uint8_t key[OTA_CEK_BYTES + 8];
	enum ota_err err = kek_from_shared(shared, shared_len, ephemeral, own_public, public_len,
					   context, kek);
	if (err == OTA_OK)
		err = key_wrap(0, kek, wrapped, OTA_WRAPPED_KEY_BYTES, key, OTA_CEK_BYTES);
	if (err == OTA_OK)
		memcpy(ret_key, key, OTA_CEK_BYTES);
	OPENSSL_cleanse(kek, sizeof(kek));
	OPENSSL_cleanse(key, sizeof(key));
	return err;
}

enum ota_err ota_crypt_unwrap(EVP_PKEY *private_key, const uint8_t *ephemeral, size_t ephemeral_len,
			      const uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES],
			      const uint8_t wrapped[OTA_WRAPPED_KEY_BYTES],
			      uint8_t ret_key[OTA_CEK_BYTES])
{
	uint8_t own[OTA_CRYPT_EPHEMERAL_MAX_BYTES];
	uint8_t shared[OTA_ECDH_SHARED_BYTES];
	size_t own_len = 0;
	enum ota_recipient_kind kind;
	EVP_PKEY *eph = NULL;
	enum ota_err err = ota_crypt_key_kind(private_key, &kind);
	if (err != OTA_OK)
		return OTA_ERR_KEY_UNWRAP;
	err = ota_crypt_public_from_raw(kind, ephemeral, ephemeral_len, &eph);
	if (err == OTA_OK)
		err = ota_crypt_public_raw(private_key, own, &own_len);
	if (err == OTA_OK)
		err = ecdh(private_key, eph, shared);
	if (err == OTA_OK)
		err = ota_crypt_unwrap_shared(shared, sizeof(shared), ephemeral, own, own_len,
					      context, wrapped, ret_key);
	OPENSSL_cleanse(shared, sizeof(shared));
	EVP_PKEY_free(eph);
	return err;
}

enum ota_err ota_crypt_seal_chunk(const uint8_t key[OTA_CEK_BYTES],
				  const uint8_t prefix[OTA_CRYPT_NONCE_PREFIX_BYTES],
				  uint64_t index, bool last, const uint8_t *in, size_t len,
				  uint8_t *out)
{
	uint8_t nonce[OTA_CRYPT_NONCE_BYTES];
	uint8_t aad[OTA_CRYPT_AAD_BYTES];
	int n = 0, fin = 0;
	enum ota_err err = OTA_ERR_INTERNAL;
	if (len > OTA_MAX_CRYPT_CHUNK_BYTES || index >= UINT32_MAX)
		return OTA_ERR_INVALID_ARG;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return OTA_ERR_NOMEM;
	ota_crypt_chunk_nonce(prefix, index, nonce);
	ota_crypt_chunk_aad(index, last, aad);
	if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, OTA_CRYPT_NONCE_BYTES, NULL) == 1 &&
	    EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) == 1 &&
	    EVP_EncryptUpdate(c, NULL, &n, aad, sizeof(aad)) == 1 &&
	    (len == 0 || EVP_EncryptUpdate(c, out, &n, in, (int)len) == 1) &&
	    EVP_EncryptFinal_ex(c, out + (len ? n : 0), &fin) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, OTA_CRYPT_TAG_BYTES, out + len) == 1)
		err = OTA_OK;
	EVP_CIPHER_CTX_free(c);
	return err;
}
