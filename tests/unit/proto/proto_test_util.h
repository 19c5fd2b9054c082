/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers for the libotaproto tests: keys and signed envelopes in memory. */
#ifndef PROTO_TEST_UTIL_H
#define PROTO_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "fleetota/sign.h"
#include "fleetota/trust.h"

EVP_PKEY *ptu_keygen(enum ota_alg alg);

/* A PublicKey (heap) for pkey with a validity window. */
Fleetota__V1__PublicKey *ptu_pubkey(EVP_PKEY *pkey, uint64_t not_before, uint64_t not_after);

/* An envelope (heap) over a packed body, signed by signers[] as type. */
Fleetota__V1__Signed *ptu_envelope(const uint8_t *body, size_t body_len, enum ota_obj_type type,
				   EVP_PKEY *const *signers, size_t n_signers);

/* Packs a message into a fresh heap buffer. */
uint8_t *ptu_pack(const ProtobufCMessage *msg, size_t *ret_len);

/* RootList body for keys[] (windows open), packed. */
uint8_t *ptu_rootlist_body(uint64_t version, uint32_t threshold, EVP_PKEY *const *keys,
			   size_t n_keys, uint64_t expires_at, size_t *ret_len);

/* KeyList body: keys[i] valid in [not_before[i], not_after[i]] (NULL = open). */
uint8_t *ptu_keylist_body(uint64_t version, uint64_t expires_at, EVP_PKEY *const *keys,
			  const uint64_t *not_before, const uint64_t *not_after, size_t n_keys,
			  size_t *ret_len);

/* A valid manifest body for model "m1", image of image_size bytes. */
uint8_t *ptu_manifest_body(uint64_t issued_at, uint64_t version_code, uint64_t image_size,
			   size_t *ret_len);

/* Arena of OTA_DECODE_ARENA_BYTES * 2 over static memory, reset. */
struct ota_arena *ptu_arena(void);

/* Packed envelope bytes (heap). */
uint8_t *ptu_envelope_bytes(const Fleetota__V1__Signed *env, size_t *ret_len);

#endif
