/* SPDX-License-Identifier: Apache-2.0 */
/* Encrypted images, host side (fleetota/crypt_host.h), over OpenSSL 3 EVP. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "fleetota/crypt_host.h"
#include "fleetota/crypto.h"

enum ota_err ota_crypt_recipient_id(EVP_PKEY *key, uint8_t ret_id[OTA_KEY_ID_BYTES])
{
	unsigned char *der = NULL;
	if (!key || EVP_PKEY_get_id(key) != EVP_PKEY_X25519)
		return OTA_ERR_FORMAT;
	int len = i2d_PUBKEY(key, &der);
	if (len <= 0)
		return OTA_ERR_FORMAT;
	enum ota_err err = ota_sha256(der, (size_t)len, ret_id);
	OPENSSL_free(der);
	return err;
}

EVP_PKEY *ota_crypt_keygen(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
}

enum ota_err ota_crypt_random(uint8_t *buf, size_t len)
{
	return len <= 1024 && RAND_bytes(buf, (int)len) == 1 ? OTA_OK : OTA_ERR_INTERNAL;
}

static enum ota_err raw_public(EVP_PKEY *key, uint8_t out[OTA_X25519_BYTES])
{
	size_t len = OTA_X25519_BYTES;
	if (EVP_PKEY_get_id(key) != EVP_PKEY_X25519 ||
	    EVP_PKEY_get_raw_public_key(key, out, &len) != 1 || len != OTA_X25519_BYTES)
		return OTA_ERR_FORMAT;
	return OTA_OK;
}

/* Z = X25519(own, peer); KEK = HKDF-SHA256(Z, salt = E || R, info = context). */
static enum ota_err derive_kek(EVP_PKEY *own, EVP_PKEY *peer,
			       const uint8_t salt[2 * OTA_X25519_BYTES],
			       const uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES],
			       uint8_t ret_kek[OTA_AES256_KEY_BYTES])
{
	uint8_t shared[OTA_X25519_BYTES];
	size_t shared_len = sizeof(shared);
	enum ota_err err = OTA_ERR_INTERNAL;
	EVP_KDF_CTX *kctx = NULL;
	EVP_KDF *kdf = NULL;
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(own, NULL);
	if (!pctx || EVP_PKEY_derive_init(pctx) != 1 || EVP_PKEY_derive_set_peer(pctx, peer) != 1)
		goto out;
	/* OpenSSL refuses an all-zero X25519 result (a small-order peer key) */
	if (EVP_PKEY_derive(pctx, shared, &shared_len) != 1 || shared_len != sizeof(shared)) {
		err = OTA_ERR_KEY_UNWRAP;
		goto out;
	}
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (!kctx)
		goto out;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, shared, sizeof(shared)),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt,
						  2 * OTA_X25519_BYTES),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)context,
						  OTA_CRYPT_WRAP_CONTEXT_BYTES),
		OSSL_PARAM_construct_end(),
	};
	if (EVP_KDF_derive(kctx, ret_kek, 32, params) == 1)
		err = OTA_OK;
out:
	OPENSSL_cleanse(shared, sizeof(shared));
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
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
	EVP_CIPHER_CTX_free(c);
	return err;
}

enum ota_err ota_crypt_wrap(EVP_PKEY *recipient,
			    const uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES],
			    const uint8_t key[OTA_CEK_BYTES],
			    uint8_t ret_ephemeral[OTA_X25519_BYTES],
			    uint8_t ret_wrapped[OTA_WRAPPED_KEY_BYTES])
{
	uint8_t salt[2 * OTA_X25519_BYTES];
	uint8_t kek[OTA_AES256_KEY_BYTES];
	uint8_t wrapped[OTA_WRAPPED_KEY_BYTES];
	EVP_PKEY *eph = ota_crypt_keygen();
	enum ota_err err = eph ? OTA_OK : OTA_ERR_INTERNAL;
	if (err == OTA_OK)
		err = raw_public(eph, salt);
	if (err == OTA_OK)
		err = raw_public(recipient, salt + OTA_X25519_BYTES);
	if (err == OTA_OK)
		err = derive_kek(eph, recipient, salt, context, kek);
	if (err == OTA_OK)
		err = key_wrap(1, kek, key, OTA_CEK_BYTES, wrapped, sizeof(wrapped));
	if (err == OTA_OK) {
		memcpy(ret_ephemeral, salt, OTA_X25519_BYTES);
		memcpy(ret_wrapped, wrapped, sizeof(wrapped));
	}
	OPENSSL_cleanse(kek, sizeof(kek));
	EVP_PKEY_free(eph);
	return err;
}

enum ota_err ota_crypt_unwrap(EVP_PKEY *private_key, const uint8_t ephemeral[OTA_X25519_BYTES],
			      const uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES],
			      const uint8_t wrapped[OTA_WRAPPED_KEY_BYTES],
			      uint8_t ret_key[OTA_CEK_BYTES])
{
	uint8_t salt[2 * OTA_X25519_BYTES];
	uint8_t kek[OTA_AES256_KEY_BYTES];
	uint8_t key[OTA_CEK_BYTES + 8];
	EVP_PKEY *eph =
		EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, ephemeral, OTA_X25519_BYTES);
	enum ota_err err = eph ? OTA_OK : OTA_ERR_KEY_UNWRAP;
	memcpy(salt, ephemeral, OTA_X25519_BYTES);
	if (err == OTA_OK)
		err = raw_public(private_key, salt + OTA_X25519_BYTES);
	if (err == OTA_OK)
		err = derive_kek(private_key, eph, salt, context, kek);
	if (err == OTA_OK)
		err = key_wrap(0, kek, wrapped, OTA_WRAPPED_KEY_BYTES, key, OTA_CEK_BYTES);
	if (err == OTA_OK)
		memcpy(ret_key, key, OTA_CEK_BYTES);
	OPENSSL_cleanse(kek, sizeof(kek));
	OPENSSL_cleanse(key, sizeof(key));
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
