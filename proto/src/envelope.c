/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "fleetota/envelope.h"
#include "fleetota/limits.h"
#include "fleetota/utf8.h"

static const char *const obj_type_names[] = {
	[OTA_OBJ_ROOT] = "root",
	[OTA_OBJ_KEYLIST] = "keylist",
	[OTA_OBJ_MANIFEST] = "manifest",
	[OTA_OBJ_TIMESTAMP] = "timestamp",
};

const char *ota_obj_type_name(enum ota_obj_type type)
{
	if ((unsigned)type >= sizeof(obj_type_names) / sizeof(obj_type_names[0]))
		return NULL;
	return obj_type_names[type];
}

size_t ota_signing_prefix(enum ota_obj_type type, uint8_t *buf, size_t cap)
{
	static const char domain[] = "fleetota/v1/";
	const char *name = ota_obj_type_name(type);
	if (!name)
		return 0;
	size_t domain_len = sizeof(domain) - 1;
	size_t name_len = strlen(name);
	size_t total = domain_len + name_len + 1;
	if (total > cap)
		return 0;
	memcpy(buf, domain, domain_len);
	memcpy(buf + domain_len, name, name_len);
	buf[domain_len + name_len] = '\0';
	return total;
}

static int alg_known(int alg)
{
	return alg == OTA_ALG_ED25519 || alg == OTA_ALG_ECDSA_P256_SHA256;
}

enum ota_err ota_envelope_check(const Fleetota__V1__Signed *env)
{
	if (!env || env->body.len == 0 || env->body.len > OTA_MAX_BODY_BYTES)
		return OTA_ERR_FORMAT;
	if (env->n_signatures > OTA_MAX_SIGNATURES)
		return OTA_ERR_FORMAT;
	for (size_t i = 0; i < env->n_signatures; i++) {
		const Fleetota__V1__Signature *sig = env->signatures[i];
		if (!sig || sig->key_id.len != OTA_KEY_ID_BYTES || !alg_known(sig->alg) ||
		    sig->sig.len == 0 || sig->sig.len > OTA_MAX_SIG_BYTES)
			return OTA_ERR_FORMAT;
	}
	return OTA_OK;
}

enum ota_err ota_envelope_decode(const uint8_t *buf, size_t len, struct ota_arena *arena,
				 Fleetota__V1__Signed **ret_env)
{
	if (!buf || len == 0 || len > OTA_MAX_ENVELOPE_BYTES)
		return OTA_ERR_FORMAT;
	Fleetota__V1__Signed *env = fleetota__v1__signed__unpack(&arena->allocator, len, buf);
	if (!env)
		return OTA_ERR_FORMAT;
	enum ota_err err = ota_envelope_check(env);
	if (err != OTA_OK)
		return err;
	*ret_env = env;
	return OTA_OK;
}

enum ota_err ota_key_id(const uint8_t *spki, size_t spki_len, uint8_t ret_id[OTA_KEY_ID_BYTES])
{
	if (!spki || spki_len == 0 || spki_len > OTA_MAX_PUBKEY_DER_BYTES)
		return OTA_ERR_FORMAT;
	return ota_sha256(spki, spki_len, ret_id);
}

enum ota_err ota_pubkey_check(const Fleetota__V1__PublicKey *key)
{
	uint8_t id[OTA_KEY_ID_BYTES];
	if (!key || !alg_known(key->alg) || key->key_id.len != OTA_KEY_ID_BYTES)
		return OTA_ERR_FORMAT;
	if (key->name &&
	    (strlen(key->name) > OTA_MAX_STRING_BYTES || !ota_utf8_valid_str(key->name)))
		return OTA_ERR_FORMAT;
	if (key->not_before && key->not_after && key->not_after < key->not_before)
		return OTA_ERR_FORMAT;
	if (key->role != FLEETOTA__V1__KEY_ROLE__KEY_ROLE_OPERATIONAL &&
	    key->role != FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP)
		return OTA_ERR_FORMAT;
	if (ota_key_id(key->public_key.data, key->public_key.len, id) != OTA_OK)
		return OTA_ERR_FORMAT;
	if (memcmp(id, key->key_id.data, OTA_KEY_ID_BYTES) != 0)
		return OTA_ERR_FORMAT;
	return ota_crypto_key_check((enum ota_alg)key->alg, key->public_key.data,
				    key->public_key.len);
}

enum ota_err ota_threshold_count(enum ota_obj_type type, const Fleetota__V1__Signed *env,
				 Fleetota__V1__PublicKey *const *keys, size_t n_keys,
				 size_t *ret_count)
{
	uint8_t prefix[OTA_MAX_SIGNING_PREFIX];
	/* counted[k] marks key k as already counted: one key, one vote */
	uint8_t counted[OTA_MAX_KEYS] = {0};
	size_t count = 0;

	if (n_keys > OTA_MAX_KEYS || ota_envelope_check(env) != OTA_OK)
		return OTA_ERR_FORMAT;
	size_t prefix_len = ota_signing_prefix(type, prefix, sizeof(prefix));
	if (prefix_len == 0)
		return OTA_ERR_INVALID_ARG;

	for (size_t s = 0; s < env->n_signatures; s++) {
		const Fleetota__V1__Signature *sig = env->signatures[s];
		for (size_t k = 0; k < n_keys; k++) {
			const Fleetota__V1__PublicKey *key = keys[k];
			if (key->key_id.len != sig->key_id.len ||
			    memcmp(key->key_id.data, sig->key_id.data, sig->key_id.len) != 0)
				continue;
			/* the first entry with this id decides, so a key listed
			 * twice still has one vote */
			if (counted[k] || key->alg != sig->alg)
				break;
			enum ota_err err = ota_crypto_verify(
				(enum ota_alg)key->alg, key->public_key.data, key->public_key.len,
				prefix, prefix_len, env->body.data, env->body.len, sig->sig.data,
				sig->sig.len);
			if (err == OTA_OK) {
				counted[k] = 1;
				count++;
			} else if (err != OTA_ERR_SIGNATURE) {
				return err;
			}
			break;
		}
	}
	*ret_count = count;
	return OTA_OK;
}

enum ota_err ota_threshold_verify(enum ota_obj_type type, const Fleetota__V1__Signed *env,
				  Fleetota__V1__PublicKey *const *keys, size_t n_keys,
				  uint32_t threshold)
{
	size_t count = 0;
	if (threshold == 0)
		return OTA_ERR_FORMAT;
	enum ota_err err = ota_threshold_count(type, env, keys, n_keys, &count);
	if (err != OTA_OK)
		return err;
	return count >= threshold ? OTA_OK : OTA_ERR_THRESHOLD;
}
