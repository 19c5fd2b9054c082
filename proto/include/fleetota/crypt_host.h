/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_CRYPT_HOST_H
#define FLEETOTA_CRYPT_HOST_H

/*
 * Encrypted images, the OpenSSL 3 side (proto/src/crypt_openssl.c): the key
 * wrap for recipients (ota-keys), the unwrap with a private key the host
 * holds (the Linux port's file key, ota-keys rewrap), chunk encryption.
 * Every secret buffer is wiped (OPENSSL_cleanse) before it is released.
 *
 * Key wrap of one recipient with X25519 public key R (raw 32 bytes):
 *   e, E = fresh X25519 key pair;  Z = X25519(e, R)
 *   KEK  = HKDF-SHA256(IKM = Z, salt = E || R, info = wrap context, 32)
 *   wrapped = AES-256 key wrap (RFC 3394) of the content key under KEK
 * The wrap context (fleetota/crypt.h) binds the recipient's key id and
 * the artifact (nonce prefix, plaintext digest).
 */

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "fleetota/crypt.h"

/* key id of an X25519 key: SHA-256 of its SubjectPublicKeyInfo DER. OTA_ERR_FORMAT if not X25519. */
enum ota_err ota_crypt_recipient_id(EVP_PKEY *key, uint8_t ret_id[OTA_KEY_ID_BYTES]);

/* A fresh X25519 key pair (caller frees). */
EVP_PKEY *ota_crypt_keygen(void);

/* Cryptographically random bytes. */
enum ota_err ota_crypt_random(uint8_t *buf, size_t len);

/* Wraps key for recipient (an X25519 public or private key). */
enum ota_err ota_crypt_wrap(EVP_PKEY *recipient,
			    const uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES],
			    const uint8_t key[OTA_CEK_BYTES],
			    uint8_t ret_ephemeral[OTA_X25519_BYTES],
			    uint8_t ret_wrapped[OTA_WRAPPED_KEY_BYTES]);

/*
 * Unwraps with the recipient's private key: OTA_OK and the content key,
 * or OTA_ERR_KEY_UNWRAP (the entry was not made for this key, or for
 * another artifact, or was altered).
 */
enum ota_err ota_crypt_unwrap(EVP_PKEY *private_key, const uint8_t ephemeral[OTA_X25519_BYTES],
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
