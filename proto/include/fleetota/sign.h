/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_SIGN_H
#define FLEETOTA_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "fleetota/envelope.h"

/*
 * Signing through OpenSSL 3 EVP (host side only: ota-keys, tests, the
 * server's test helpers). The key may live in a file or in a PKCS#11 token;
 * either way it is an EVP_PKEY here.
 */

/*
 * The public half of pkey: algorithm, SubjectPublicKeyInfo DER (spki must
 * hold OTA_MAX_PUBKEY_DER_BYTES; *spki_len is set) and key id.
 * OTA_ERR_FORMAT for a key that is neither Ed25519 nor ECDSA P-256.
 */
enum ota_err ota_pkey_public(EVP_PKEY *pkey, enum ota_alg *ret_alg, uint8_t *spki,
			     size_t *ret_spki_len, uint8_t ret_key_id[OTA_KEY_ID_BYTES]);

/*
 * Signs "fleetota/v1/" TYPE "\0" || body. sig must hold OTA_MAX_SIG_BYTES;
 * writes *ret_sig_len, *ret_alg and the key id.
 */
enum ota_err ota_sign(enum ota_obj_type type, const uint8_t *body, size_t body_len, EVP_PKEY *pkey,
		      enum ota_alg *ret_alg, uint8_t ret_key_id[OTA_KEY_ID_BYTES], uint8_t *sig,
		      size_t *ret_sig_len);

/*
 * Appends a signature by pkey to env (heap: protobuf-c's default
 * allocator, freed with fleetota__v1__signed__free_unpacked). Used by
 * tools that build envelopes; a key that already signed is replaced.
 */
enum ota_err ota_envelope_add_signature(Fleetota__V1__Signed *env, enum ota_obj_type type,
					EVP_PKEY *pkey);

/* Fills a PublicKey (heap, as above) describing pkey. */
enum ota_err ota_pubkey_from_pkey(EVP_PKEY *pkey, const char *name, uint64_t not_before,
				  uint64_t not_after, Fleetota__V1__PublicKey **ret_key);

#endif
