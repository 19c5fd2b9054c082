/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/x509.h>

#include "fleetota/limits.h"
#include "fleetota/sign.h"

enum ota_err ota_pkey_public(EVP_PKEY *pkey, enum ota_alg *ret_alg, uint8_t *spki,
			     size_t *ret_spki_len, uint8_t ret_key_id[OTA_KEY_ID_BYTES])
{
	char group[OTA_EC_GROUP_NAME_BYTES] = {0};
	enum ota_alg alg;
	if (!pkey)
		return OTA_ERR_INVALID_ARG;
	if (EVP_PKEY_get_id(pkey) == EVP_PKEY_ED25519) {
		alg = OTA_ALG_ED25519;
	} else if (EVP_PKEY_get_id(pkey) == EVP_PKEY_EC &&
		   EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
						  sizeof(group), NULL) == 1 &&
		   strcmp(group, "prime256v1") == 0) {
		alg = OTA_ALG_ECDSA_P256_SHA256;
	} else {
		return OTA_ERR_FORMAT;
	}
	int len = i2d_PUBKEY(pkey, NULL);
	if (len <= 0 || (size_t)len > OTA_MAX_PUBKEY_DER_BYTES)
		return OTA_ERR_FORMAT;
	unsigned char *p = spki;
	if (i2d_PUBKEY(pkey, &p) != len)
		return OTA_ERR_INTERNAL;
	enum ota_err err = ota_key_id(spki, (size_t)len, ret_key_id);
	if (err != OTA_OK)
		return err;
	*ret_alg = alg;
	*ret_spki_len = (size_t)len;
	return OTA_OK;
}

enum ota_err ota_sign(enum ota_obj_type type, const uint8_t *body, size_t body_len, EVP_PKEY *pkey,
		      enum ota_alg *ret_alg, uint8_t ret_key_id[OTA_KEY_ID_BYTES], uint8_t *sig,
		      size_t *ret_sig_len)
{
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES];
	uint8_t prefix[OTA_MAX_SIGNING_PREFIX];
	uint8_t key_id[OTA_KEY_ID_BYTES];
	size_t spki_len = 0;
	enum ota_alg alg;
	EVP_MD_CTX *md = NULL;
	uint8_t *msg = NULL;

	if (!body || body_len == 0 || body_len > OTA_MAX_BODY_BYTES)
		return OTA_ERR_FORMAT;
	enum ota_err err = ota_pkey_public(pkey, &alg, spki, &spki_len, key_id);
	if (err != OTA_OK)
		return err;
	size_t prefix_len = ota_signing_prefix(type, prefix, sizeof(prefix));
	if (prefix_len == 0)
		return OTA_ERR_INVALID_ARG;
	msg = malloc(prefix_len + body_len);
	md = EVP_MD_CTX_new();
	if (!msg || !md) {
		err = OTA_ERR_NOMEM;
		goto out;
	}
	memcpy(msg, prefix, prefix_len);
	memcpy(msg + prefix_len, body, body_len);
	size_t sig_len = OTA_MAX_SIG_BYTES;
	const EVP_MD *digest = alg == OTA_ALG_ED25519 ? NULL : EVP_sha256();
	if (EVP_DigestSignInit(md, NULL, digest, NULL, pkey) != 1 ||
	    EVP_DigestSign(md, sig, &sig_len, msg, prefix_len + body_len) != 1) {
		err = OTA_ERR_SIGNATURE;
		goto out;
	}
	*ret_alg = alg;
	memcpy(ret_key_id, key_id, sizeof(key_id));
	*ret_sig_len = sig_len;
	err = OTA_OK;
out:
	free(msg);
	EVP_MD_CTX_free(md);
	return err;
}

static enum ota_err bytes_dup(ProtobufCBinaryData *dst, const uint8_t *src, size_t len)
{
	dst->data = malloc(len ? len : 1);
	if (!dst->data)
		return OTA_ERR_NOMEM;
	memcpy(dst->data, src, len);
	dst->len = len;
	return OTA_OK;
}

enum ota_err ota_envelope_add_signature(Fleetota__V1__Signed *env, enum ota_obj_type type,
					EVP_PKEY *pkey)
{
	uint8_t sig[OTA_MAX_SIG_BYTES];
	uint8_t key_id[OTA_KEY_ID_BYTES];
	size_t sig_len = 0;
	enum ota_alg alg;

	enum ota_err err =
		ota_sign(type, env->body.data, env->body.len, pkey, &alg, key_id, sig, &sig_len);
	if (err != OTA_OK)
		return err;
	Fleetota__V1__Signature *entry = NULL;
	for (size_t i = 0; i < env->n_signatures; i++) {
		Fleetota__V1__Signature *old = env->signatures[i];
		if (old->key_id.len == OTA_KEY_ID_BYTES &&
		    memcmp(old->key_id.data, key_id, OTA_KEY_ID_BYTES) == 0) {
			entry = old;
			free(entry->sig.data);
			entry->sig.data = NULL;
			break;
		}
	}
	if (!entry) {
		if (env->n_signatures >= OTA_MAX_SIGNATURES)
			return OTA_ERR_FORMAT;
		Fleetota__V1__Signature **grown =
			realloc(env->signatures, (env->n_signatures + 1) * sizeof(*grown));
		if (!grown)
			return OTA_ERR_NOMEM;
		env->signatures = grown;
		entry = calloc(1, sizeof(*entry));
		if (!entry)
			return OTA_ERR_NOMEM;
		fleetota__v1__signature__init(entry);
		if (bytes_dup(&entry->key_id, key_id, sizeof(key_id)) != OTA_OK) {
			free(entry);
			return OTA_ERR_NOMEM;
		}
		env->signatures[env->n_signatures++] = entry;
	}
	entry->alg = (Fleetota__V1__Algorithm)alg;
	return bytes_dup(&entry->sig, sig, sig_len);
}

enum ota_err ota_pubkey_from_pkey(EVP_PKEY *pkey, const char *name, uint64_t not_before,
				  uint64_t not_after, Fleetota__V1__PublicKey **ret_key)
{
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES];
	uint8_t key_id[OTA_KEY_ID_BYTES];
	size_t spki_len = 0;
	enum ota_alg alg;

	if (name && strlen(name) > OTA_MAX_STRING_BYTES)
		return OTA_ERR_FORMAT;
	enum ota_err err = ota_pkey_public(pkey, &alg, spki, &spki_len, key_id);
	if (err != OTA_OK)
		return err;
	Fleetota__V1__PublicKey *key = calloc(1, sizeof(*key));
	if (!key)
		return OTA_ERR_NOMEM;
	fleetota__v1__public_key__init(key);
	key->alg = (Fleetota__V1__Algorithm)alg;
	key->not_before = not_before;
	key->not_after = not_after;
	key->name = strdup(name ? name : "");
	if (!key->name || bytes_dup(&key->key_id, key_id, sizeof(key_id)) != OTA_OK ||
	    bytes_dup(&key->public_key, spki, spki_len) != OTA_OK) {
		fleetota__v1__public_key__free_unpacked(key, NULL);
		return OTA_ERR_NOMEM;
	}
	*ret_key = key;
	return OTA_OK;
}
