/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_ENVELOPE_H
#define FLEETOTA_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "fleetota/arena.h"
#include "fleetota/crypto.h"
#include "fleetota/err.h"
#include "fleetota/limits.h"
#include "ota.pb-c.h"

/* The kinds of signed object; the name is part of the signing input. */
enum ota_obj_type {
	OTA_OBJ_ROOT,
	OTA_OBJ_KEYLIST,
	OTA_OBJ_MANIFEST,
	OTA_OBJ_TIMESTAMP,
};

/* "root", "keylist", "manifest", "timestamp"; NULL for anything else. */
const char *ota_obj_type_name(enum ota_obj_type type);

/*
 * Writes the signing-input prefix "fleetota/v1/" TYPE "\0" into buf (at
 * least OTA_MAX_SIGNING_PREFIX bytes). The full signing input is that
 * prefix followed by the envelope body. Returns the prefix length, 0 for an
 * unknown type.
 */
size_t ota_signing_prefix(enum ota_obj_type type, uint8_t *buf, size_t cap);

/*
 * Decodes a Signed envelope of at most OTA_MAX_ENVELOPE_BYTES into arena
 * and checks its shape: non-empty body within OTA_MAX_BODY_BYTES, at most
 * OTA_MAX_SIGNATURES signatures, each with a 32-byte key id, a known
 * algorithm and a signature of at most OTA_MAX_SIG_BYTES.
 * OTA_OK and *ret_env (in the arena), or OTA_ERR_FORMAT.
 */
enum ota_err ota_envelope_decode(const uint8_t *buf, size_t len, struct ota_arena *arena,
				 Fleetota__V1__Signed **ret_env);

/* Same shape checks on an envelope decoded elsewhere (e.g. in a bundle). */
enum ota_err ota_envelope_check(const Fleetota__V1__Signed *env);

/* SHA-256 of a SubjectPublicKeyInfo DER. */
enum ota_err ota_key_id(const uint8_t *spki, size_t spki_len, uint8_t ret_id[OTA_KEY_ID_BYTES]);

/*
 * Checks one trusted key's shape: known algorithm, key parses as that
 * algorithm, key_id equals SHA-256(public_key), name bounded, window
 * ordered. OTA_OK or OTA_ERR_FORMAT.
 */
enum ota_err ota_pubkey_check(const Fleetota__V1__PublicKey *key);

/*
 * Counts the distinct keys of keys[0..n_keys) that made a valid signature
 * over the envelope as an object of type. A key signing twice counts once;
 * signatures by key ids not in keys are ignored; a bad signature by a
 * trusted key is ignored (it counts nothing). Writes *ret_count.
 * OTA_OK, or OTA_ERR_FORMAT for an unusable key.
 */
enum ota_err ota_threshold_count(enum ota_obj_type type, const Fleetota__V1__Signed *env,
				 Fleetota__V1__PublicKey *const *keys, size_t n_keys,
				 size_t *ret_count);

/*
 * OTA_OK when at least threshold distinct keys of keys[] signed the
 * envelope, OTA_ERR_THRESHOLD otherwise (threshold 0 is OTA_ERR_FORMAT).
 */
enum ota_err ota_threshold_verify(enum ota_obj_type type, const Fleetota__V1__Signed *env,
				  Fleetota__V1__PublicKey *const *keys, size_t n_keys,
				  uint32_t threshold);

#endif
