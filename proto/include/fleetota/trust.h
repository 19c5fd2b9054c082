/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_TRUST_H
#define FLEETOTA_TRUST_H

#include <stdbool.h>
#include <stdint.h>

#include "fleetota/envelope.h"

/*
 * The trust chain: RootList -> KeyList -> Manifest. The same functions run
 * on the device (agent core), in the server (artifact upload) and in
 * ota-keys (verify). Every decoded object lives in the caller's arena.
 * `now` is the caller's latest trusted time in seconds, 0 when unknown
 * (then expiry is not judged here).
 */

/* Decodes and shape-checks a RootList body (no signature check). */
enum ota_err ota_rootlist_parse(const Fleetota__V1__Signed *env, struct ota_arena *arena,
				Fleetota__V1__RootList **ret_root);

/*
 * A first RootList (factory provisioning): its own threshold of its own
 * keys must have signed it. OTA_ERR_THRESHOLD otherwise.
 */
enum ota_err ota_rootlist_verify_initial(const Fleetota__V1__Signed *env, struct ota_arena *arena,
					 Fleetota__V1__RootList **ret_root);

/*
 * One chain step: env must hold RootList trusted->version + 1, signed by a
 * threshold of trusted's keys (else OTA_ERR_ROOT_CHAIN) and by a threshold
 * of its own keys (else OTA_ERR_THRESHOLD). Any other version is
 * OTA_ERR_ROOT_CHAIN. An expired new list is OTA_ERR_EXPIRED.
 */
enum ota_err ota_rootlist_verify_next(const Fleetota__V1__RootList *trusted,
				      const Fleetota__V1__Signed *env, uint64_t now,
				      struct ota_arena *arena, Fleetota__V1__RootList **ret_root);

/* Decodes and shape-checks a KeyList body (no signature check). */
enum ota_err ota_keylist_parse(const Fleetota__V1__Signed *env, struct ota_arena *arena,
			       Fleetota__V1__KeyList **ret_keylist);

/*
 * A KeyList signed by a threshold of root's keys (OTA_ERR_THRESHOLD), with
 * a version above current_version (OTA_ERR_KEYLIST_ROLLBACK; pass 0 when
 * the holder has none), whose timestamp key is not one of root's keys
 * (OTA_ERR_KEY_ROLE), not expired at now (OTA_ERR_EXPIRED).
 */
enum ota_err ota_keylist_verify(const Fleetota__V1__RootList *root, const Fleetota__V1__Signed *env,
				uint64_t current_version, uint64_t now, struct ota_arena *arena,
				Fleetota__V1__KeyList **ret_keylist);

/* Decodes and shape-checks a Manifest body (no signature check). */
enum ota_err ota_manifest_parse(const Fleetota__V1__Signed *env, struct ota_arena *arena,
				Fleetota__V1__Manifest **ret_manifest);

/*
 * An envelope of type signed by one key of keylist that has role and
 * whose validity window contains issued_at. Errors, in order of
 * precedence: OTA_ERR_FORMAT (envelope), OTA_ERR_SIGNATURE (no signature
 * at all), OTA_ERR_KEY_UNKNOWN (no signature by a key of the list),
 * OTA_ERR_KEY_ROLE (only keys of another role signed: a timestamp key
 * never signs a manifest, an operational key never a timestamp; no
 * signature of theirs is even checked), OTA_ERR_SIGNATURE (a key of the
 * role signed, but the signature does not verify), OTA_ERR_KEY_EXPIRED
 * (valid signature, key not valid at issued_at).
 * On success *ret_signer (may be NULL) points into keylist.
 */
enum ota_err ota_keylist_signature_verify(const Fleetota__V1__KeyList *keylist,
					  enum ota_obj_type type, Fleetota__V1__KeyRole role,
					  const Fleetota__V1__Signed *env, uint64_t issued_at,
					  const Fleetota__V1__PublicKey **ret_signer);

/*
 * A manifest signed by one operational key of keylist (as above, at the
 * manifest's issued_at). On success *ret_signer points into keylist.
 */
enum ota_err ota_manifest_verify(const Fleetota__V1__KeyList *keylist,
				 const Fleetota__V1__Signed *env, struct ota_arena *arena,
				 Fleetota__V1__Manifest **ret_manifest,
				 const Fleetota__V1__PublicKey **ret_signer);

/* ---- signed freshness (proto/src/timestamp.c) ---- */

/*
 * Decodes and shape-checks a Timestamp body: product set, expires_at set
 * and after issued_at by at most OTA_MAX_TIMESTAMP_LIFETIME_S, strings
 * bounded, manifest_sha256 empty or 32 bytes. OTA_ERR_FORMAT otherwise.
 */
enum ota_err ota_timestamp_parse(const Fleetota__V1__Signed *env, struct ota_arena *arena,
				 Fleetota__V1__Timestamp **ret_ts);

/*
 * A Timestamp signed by one KEY_ROLE_TIMESTAMP key of keylist valid at its
 * issued_at (errors as ota_keylist_signature_verify; a manifest key is
 * OTA_ERR_KEY_ROLE). Expiry is the caller's: ota_timestamp_fresh().
 */
enum ota_err ota_timestamp_verify(const Fleetota__V1__KeyList *keylist,
				  const Fleetota__V1__Signed *env, struct ota_arena *arena,
				  Fleetota__V1__Timestamp **ret_ts,
				  const Fleetota__V1__PublicKey **ret_signer);

/* True when now is known (non-zero) and before ts's expires_at. */
bool ota_timestamp_fresh(const Fleetota__V1__Timestamp *ts, uint64_t now);

/*
 * True when a signature on env was made by a key that keylist lists with
 * role (whatever the signature says): a verifier that rejected env names
 * the role error instead of a generic one.
 */
bool ota_keylist_signed_by_role(const Fleetota__V1__KeyList *keylist,
				const Fleetota__V1__Signed *env, Fleetota__V1__KeyRole role);

/* The key of list whose id equals key_id, or NULL. */
const Fleetota__V1__PublicKey *ota_keylist_find(const Fleetota__V1__KeyList *keylist,
						const uint8_t *key_id, size_t key_id_len);

#endif
