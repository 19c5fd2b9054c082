/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_CRYPT_HOST_H
#define FLEETOTA_CRYPT_HOST_H

/*
 * Encrypted images, the OpenSSL 3 side (proto/src/crypt_openssl.c): the key
 * wrap for recipients (ota-keys), the unwrap with a private key the host
 * holds (the Linux port's file key, ota-keys rewrap), chunk encryption.
 * Every secret buffer is wiped (OPENSSL_cleanse) before it is released.
 *
 * Key wrap of one recipient with public key R (X25519: raw 32 bytes;
 * P-256: the 65-byte uncompressed point), the kind given by R's type:
 *   e, E = fresh key pair of R's kind;  Z = ECDH(e, R) (P-256: x-coordinate)
 *   KEK  = HKDF-SHA256(IKM = Z, salt = E || R, info = wrap context, 32)
 *   wrapped = AES-256 key wrap (RFC 3394) of the content key under KEK
 * The wrap context (fleetota/crypt.h) binds the recipient's key id and
 * the artifact (nonce prefix, plaintext digest).
 */

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "fleetota/crypt.h"

/*
 * The recipient kind of key (public or private): OTA_OK for an X25519 key
 * or an EC key on P-256, else OTA_ERR_FORMAT.
 */
enum ota_err ota_crypt_key_kind(EVP_PKEY *key, enum ota_recipient_kind *ret_kind);

/*
 * key id of a recipient key: SHA-256 of its SubjectPublicKeyInfo DER (a
 * P-256 key's with the uncompressed point, however the key was encoded).
 * OTA_ERR_FORMAT if not a recipient kind.
 */
enum ota_err ota_crypt_recipient_id(EVP_PKEY *key, uint8_t ret_id[OTA_KEY_ID_BYTES]);

/*
 * The raw public key of kind in the format's encoding (ota_crypt_public_bytes
 * of kind) as an EVP_PKEY; a P-256 point must be on the curve.
 * OTA_ERR_KEY_UNWRAP for a bad encoding (it comes from a manifest or a token).
 */
enum ota_err ota_crypt_public_from_raw(unsigned kind, const uint8_t *raw, size_t len,
				       EVP_PKEY **ret_key);

/* key's public key in the format's encoding; *ret_len = its length. */
enum ota_err ota_crypt_public_raw(EVP_PKEY *key, uint8_t ret_raw[OTA_CRYPT_EPHEMERAL_MAX_BYTES],
				  size_t *ret_len);

/* A fresh X25519 key pair (caller frees). */
EVP_PKEY *ota_crypt_keygen(void);

/* A fresh key pair of kind (caller frees); NULL for an unknown kind. */
EVP_PKEY *ota_crypt_keygen_kind(unsigned kind);

/* Cryptographically random bytes. */
enum ota_err ota_crypt_random(uint8_t *buf, size_t len);

/* One recipient entry's key material, as ota_crypt_wrap makes it. */
struct ota_crypt_wrapped {
	enum ota_recipient_kind kind;
	uint8_t ephemeral[OTA_CRYPT_EPHEMERAL_MAX_BYTES];
	size_t ephemeral_len; /* ota_crypt_public_bytes(kind) */
	uint8_t wrapped[OTA_WRAPPED_KEY_BYTES];
};

/* Wraps key for recipient (an X25519 or P-256 public or private key). */
enum ota_err ota_crypt_wrap(EVP_PKEY *recipient,
			    const uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES],
			    const uint8_t key[OTA_CEK_BYTES], struct ota_crypt_wrapped *ret);

/*
 * Unwraps with the recipient's private key (its kind decides the
 * ephemeral's length): OTA_OK and the content key, or OTA_ERR_KEY_UNWRAP
 * (the entry was not made for this key, or for another artifact, or was
 * altered, or its ephemeral key is not a valid key of the kind).
 */
enum ota_err ota_crypt_unwrap(EVP_PKEY *private_key, const uint8_t *ephemeral, size_t ephemeral_len,
			      const uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES],
			      const uint8_t wrapped[OTA_WRAPPED_KEY_BYTES],
			      uint8_t ret_key[OTA_CEK_BYTES]);

/*
 * The unwrap after an ECDH done elsewhere (a PKCS#11 token, a TPM): Z
 * (shared_len bytes), the entry's ephemeral key and the recipient's own
 * public key (both raw, of one kind), then HKDF and the RFC 3394 unwrap
 * as above. OTA_OK or OTA_ERR_KEY_UNWRAP.
 */
enum ota_err ota_crypt_unwrap_shared(const uint8_t *shared, size_t shared_len,
				     const uint8_t *ephemeral, const uint8_t *own_public,
				     size_t public_len,
				     const uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES],
				     const uint8_t wrapped[OTA_WRAPPED_KEY_BYTES],
				     uint8_t ret_key[OTA_CEK_BYTES]);

/*
 * Encrypts one chunk (len <= OTA_MAX_CRYPT_CHUNK_BYTES): out gets len
 * bytes of ciphertext followed by the 16-byte tag.
 */
enum ota_err ota_crypt_seal_chunk(const uint8_t key[OTA_CEK_BYTES],
				  const uint8_t prefix[OTA_CRYPT_NONCE_PREFIX_BYTES],
				  uint64_t index, bool last, const uint8_t *in, size_t len,
				  uint8_t *out);

#endif
