/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <string.h>

#include "fleetota/limits.h"
#include "fleetota/crypt.h"
#include "fleetota/trust.h"
#include "fleetota/utf8.h"

/* Bounded, present when required, and UTF-8 (protobuf-c does not check). */
static int string_ok(const char *s, int required)
{
	if (!s)
		return !required;
	size_t len = strnlen(s, OTA_MAX_STRING_BYTES + 1);
	if (len > OTA_MAX_STRING_BYTES || !ota_utf8_valid(s, len))
		return 0;
	return !required || len > 0;
}

/* Shape of a key set: bounded, every key well formed, no id twice. */
static enum ota_err keys_check(Fleetota__V1__PublicKey *const *keys, size_t n_keys)
{
	if (n_keys == 0 || n_keys > OTA_MAX_KEYS)
		return OTA_ERR_FORMAT;
	for (size_t i = 0; i < n_keys; i++) {
		if (ota_pubkey_check(keys[i]) != OTA_OK)
			return OTA_ERR_FORMAT;
		for (size_t j = 0; j < i; j++) {
			if (memcmp(keys[i]->key_id.data, keys[j]->key_id.data, OTA_KEY_ID_BYTES) ==
			    0)
				return OTA_ERR_FORMAT;
		}
	}
	return OTA_OK;
}

static int expired(uint64_t expires_at, uint64_t now)
{
	return now != 0 && expires_at != 0 && now >= expires_at;
}

enum ota_err ota_rootlist_parse(const Fleetota__V1__Signed *env, struct ota_arena *arena,
				Fleetota__V1__RootList **ret_root)
{
	if (ota_envelope_check(env) != OTA_OK)
		return OTA_ERR_FORMAT;
	Fleetota__V1__RootList *root =
		fleetota__v1__root_list__unpack(&arena->allocator, env->body.len, env->body.data);
	if (!root || root->version == 0 || root->threshold == 0 || root->threshold > root->n_keys ||
	    keys_check(root->keys, root->n_keys) != OTA_OK)
		return OTA_ERR_FORMAT;
	/* a root key has no role: the timestamp role lives in KeyLists only */
	for (size_t i = 0; i < root->n_keys; i++) {
		if (root->keys[i]->role != FLEETOTA__V1__KEY_ROLE__KEY_ROLE_OPERATIONAL)
			return OTA_ERR_FORMAT;
	}
	*ret_root = root;
	return OTA_OK;
}

enum ota_err ota_rootlist_verify_initial(const Fleetota__V1__Signed *env, struct ota_arena *arena,
					 Fleetota__V1__RootList **ret_root)
{
	Fleetota__V1__RootList *root = NULL;
	enum ota_err err = ota_rootlist_parse(env, arena, &root);
	if (err != OTA_OK)
		return err;
	err = ota_threshold_verify(OTA_OBJ_ROOT, env, root->keys, root->n_keys, root->threshold);
	if (err != OTA_OK)
		return err;
	*ret_root = root;
	return OTA_OK;
}

enum ota_err ota_rootlist_verify_next(const Fleetota__V1__RootList *trusted,
				      const Fleetota__V1__Signed *env, uint64_t now,
				      struct ota_arena *arena, Fleetota__V1__RootList **ret_root)
{
	Fleetota__V1__RootList *next = NULL;
	enum ota_err err = ota_rootlist_parse(env, arena, &next);
	if (err != OTA_OK)
		return err;
	if (trusted->version == UINT64_MAX || next->version != trusted->version + 1)
		return OTA_ERR_ROOT_CHAIN;
	err = ota_threshold_verify(OTA_OBJ_ROOT, env, trusted->keys, trusted->n_keys,
				   trusted->threshold);
	if (err == OTA_ERR_THRESHOLD)
		return OTA_ERR_ROOT_CHAIN;
	if (err != OTA_OK)
		return err;
	err = ota_threshold_verify(OTA_OBJ_ROOT, env, next->keys, next->n_keys, next->threshold);
	if (err != OTA_OK)
		return err;
	if (expired(next->expires_at, now))
		return OTA_ERR_EXPIRED;
	*ret_root = next;
	return OTA_OK;
}

enum ota_err ota_keylist_parse(const Fleetota__V1__Signed *env, struct ota_arena *arena,
			       Fleetota__V1__KeyList **ret_keylist)
{
	if (ota_envelope_check(env) != OTA_OK)
		return OTA_ERR_FORMAT;
	Fleetota__V1__KeyList *kl =
		fleetota__v1__key_list__unpack(&arena->allocator, env->body.len, env->body.data);
	if (!kl || kl->version == 0 || keys_check(kl->keys, kl->n_keys) != OTA_OK)
		return OTA_ERR_FORMAT;
	if (kl->expires_at && kl->issued_at && kl->expires_at <= kl->issued_at)
		return OTA_ERR_FORMAT;
	*ret_keylist = kl;
	return OTA_OK;
}

enum ota_err ota_keylist_verify(const Fleetota__V1__RootList *root, const Fleetota__V1__Signed *env,
				uint64_t current_version, uint64_t now, struct ota_arena *arena,
				Fleetota__V1__KeyList **ret_keylist)
{
	Fleetota__V1__KeyList *kl = NULL;
	enum ota_err err = ota_keylist_parse(env, arena, &kl);
	if (err != OTA_OK)
		return err;
	err = ota_threshold_verify(OTA_OBJ_KEYLIST, env, root->keys, root->n_keys, root->threshold);
	if (err != OTA_OK)
		return err;
	if (kl->version <= current_version)
		return OTA_ERR_KEYLIST_ROLLBACK;
	/* the online timestamp key must never be a root key as well */
	for (size_t i = 0; i < kl->n_keys; i++) {
		const Fleetota__V1__PublicKey *key = kl->keys[i];
		for (size_t r = 0;
		     key->role == FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP && r < root->n_keys;
		     r++) {
			if (memcmp(root->keys[r]->key_id.data, key->key_id.data,
				   OTA_KEY_ID_BYTES) == 0)
				return OTA_ERR_KEY_ROLE;
		}
	}
	if (expired(kl->expires_at, now))
		return OTA_ERR_EXPIRED;
	*ret_keylist = kl;
	return OTA_OK;
}

enum ota_err ota_manifest_parse(const Fleetota__V1__Signed *env, struct ota_arena *arena,
				Fleetota__V1__Manifest **ret_manifest)
{
	if (ota_envelope_check(env) != OTA_OK)
		return OTA_ERR_FORMAT;
	Fleetota__V1__Manifest *m =
		fleetota__v1__manifest__unpack(&arena->allocator, env->body.len, env->body.data);
	if (!m || !string_ok(m->product, 1) || !string_ok(m->version, 1) ||
	    !string_ok(m->advisory, 0))
		return OTA_ERR_FORMAT;
	if (m->n_hw_revisions > OTA_MAX_HW_REVISIONS)
		return OTA_ERR_FORMAT;
	for (size_t i = 0; i < m->n_hw_revisions; i++) {
		if (!string_ok(m->hw_revisions[i], 1))
			return OTA_ERR_FORMAT;
	}
	if (!m->image || m->image->sha256.len != OTA_SHA256_BYTES || m->image->size == 0 ||
	    m->image->size > OTA_MAX_IMAGE_BYTES || !string_ok(m->image->name, 0))
		return OTA_ERR_FORMAT;
	if (m->delta && (m->delta->base_sha256.len != OTA_SHA256_BYTES ||
			 m->delta->sha256.len != OTA_SHA256_BYTES || m->delta->size == 0 ||
			 m->delta->size > OTA_MAX_IMAGE_BYTES || m->delta->chunk_bytes == 0 ||
			 m->delta->base_size == 0 || m->delta->base_size > OTA_MAX_IMAGE_BYTES))
		return OTA_ERR_FORMAT;
	if (m->expires_at && m->expires_at <= m->issued_at)
		return OTA_ERR_FORMAT;
	if (m->encryption && ota_encryption_check(m->encryption, m->image->size) != OTA_OK)
		return OTA_ERR_FORMAT;
	*ret_manifest = m;
	return OTA_OK;
}

const Fleetota__V1__PublicKey *ota_keylist_find(const Fleetota__V1__KeyList *keylist,
						const uint8_t *key_id, size_t key_id_len)
{
	for (size_t i = 0; i < keylist->n_keys; i++) {
		const Fleetota__V1__PublicKey *key = keylist->keys[i];
		if (key->key_id.len == key_id_len &&
		    memcmp(key->key_id.data, key_id, key_id_len) == 0)
			return key;
	}
	return NULL;
}

static int key_valid_at(const Fleetota__V1__PublicKey *key, uint64_t when)
{
	if (key->not_before && when < key->not_before)
		return 0;
	if (key->not_after && when > key->not_after)
		return 0;
	return 1;
}

/* The role a key of a signed list acts in (a key written before roles: operational). */
static bool role_is(const Fleetota__V1__PublicKey *key, Fleetota__V1__KeyRole role)
{
	return key->role == role;
}

enum ota_err ota_keylist_signature_verify(const Fleetota__V1__KeyList *keylist,
					  enum ota_obj_type type, Fleetota__V1__KeyRole role,
					  const Fleetota__V1__Signed *env, uint64_t issued_at,
					  const Fleetota__V1__PublicKey **ret_signer)
{
	uint8_t prefix[OTA_MAX_SIGNING_PREFIX];
	/* starts as failure; becomes success in exactly one place below */
	enum ota_err result = OTA_ERR_KEY_UNKNOWN;

	if (ota_envelope_check(env) != OTA_OK)
		return OTA_ERR_FORMAT;
	if (env->n_signatures == 0)
		return OTA_ERR_SIGNATURE;
	size_t prefix_len = ota_signing_prefix(type, prefix, sizeof(prefix));
	if (prefix_len == 0)
		return OTA_ERR_INVALID_ARG;

	for (size_t s = 0; s < env->n_signatures; s++) {
		const Fleetota__V1__Signature *sig = env->signatures[s];
		const Fleetota__V1__PublicKey *key =
			ota_keylist_find(keylist, sig->key_id.data, sig->key_id.len);
		if (!key)
			continue;
		if (!role_is(key, role)) {
			/* a trusted key acting outside its role: refused before any crypto */
			if (result == OTA_ERR_KEY_UNKNOWN)
				result = OTA_ERR_KEY_ROLE;
			continue;
		}
		if (key->alg != sig->alg) {
			result = OTA_ERR_SIGNATURE;
			continue;
		}
		enum ota_err err = ota_crypto_verify(
			(enum ota_alg)key->alg, key->public_key.data, key->public_key.len, prefix,
			prefix_len, env->body.data, env->body.len, sig->sig.data, sig->sig.len);
		if (err == OTA_ERR_SIGNATURE) {
			if (result == OTA_ERR_KEY_UNKNOWN || result == OTA_ERR_KEY_ROLE)
				result = OTA_ERR_SIGNATURE;
			continue;
		}
		if (err != OTA_OK)
			return err;
		if (!key_valid_at(key, issued_at)) {
			result = OTA_ERR_KEY_EXPIRED;
			continue;
		}
		if (ret_signer)
			*ret_signer = key;
		return OTA_OK;
	}
	return result;
}

enum ota_err ota_manifest_verify(const Fleetota__V1__KeyList *keylist,
				 const Fleetota__V1__Signed *env, struct ota_arena *arena,
				 Fleetota__V1__Manifest **ret_manifest,
				 const Fleetota__V1__PublicKey **ret_signer)
{
	Fleetota__V1__Manifest *m = NULL;
	enum ota_err err = ota_manifest_parse(env, arena, &m);
	if (err != OTA_OK)
		return err;
	err = ota_keylist_signature_verify(keylist, OTA_OBJ_MANIFEST,
					   FLEETOTA__V1__KEY_ROLE__KEY_ROLE_OPERATIONAL, env,
					   m->issued_at, ret_signer);
	if (err != OTA_OK)
		return err;
	*ret_manifest = m;
	return OTA_OK;
}
