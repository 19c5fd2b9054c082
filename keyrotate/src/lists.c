/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include "kr.h"

/*
 * The working set of keys of the list being built: shallow copies of the
 * previous list's entries and of the added descriptors (the strings and
 * bytes stay owned by their sources), so removing and expiring never
 * touches what the caller passed in.
 */
struct key_set {
	Fleetota__V1__PublicKey copies[OTA_MAX_KEYS];
	Fleetota__V1__PublicKey *ptrs[OTA_MAX_KEYS];
	size_t n;
};

static enum ota_err set_add(struct key_set *set, const Fleetota__V1__PublicKey *key,
			    struct kr_diag *diag)
{
	if (ota_pubkey_check(key) != OTA_OK)
		return kr_fail(diag, OTA_ERR_FORMAT, "malformed key \"%s\"",
			       key->name ? key->name : "");
	for (size_t i = 0; i < set->n; i++) {
		if (memcmp(set->ptrs[i]->key_id.data, key->key_id.data, OTA_KEY_ID_BYTES) == 0)
			return kr_fail(diag, OTA_ERR_INVALID_ARG,
				       "key \"%s\" is already in the list",
				       key->name ? key->name : "");
	}
	if (set->n >= OTA_MAX_KEYS)
		return kr_fail(diag, OTA_ERR_FORMAT, "more than %u keys", OTA_MAX_KEYS);
	set->copies[set->n] = *key;
	set->ptrs[set->n] = &set->copies[set->n];
	set->n++;
	return OTA_OK;
}

static enum ota_err set_remove(struct key_set *set, const char *sel, struct kr_diag *diag)
{
	size_t index;
	enum ota_err err = kr_key_select(set->ptrs, set->n, sel, &index, diag);
	if (err != OTA_OK)
		return err;
	for (size_t i = index; i + 1 < set->n; i++) {
		set->copies[i] = set->copies[i + 1];
		set->ptrs[i] = &set->copies[i];
	}
	set->n--;
	return OTA_OK;
}

static enum ota_err set_fill(struct key_set *set, Fleetota__V1__PublicKey *const *prev,
			     size_t n_prev, Fleetota__V1__PublicKey *const *add, size_t n_add,
			     const char *const *remove, size_t n_remove, struct kr_diag *diag)
{
	enum ota_err err;
	set->n = 0;
	for (size_t i = 0; i < n_prev; i++) {
		if ((err = set_add(set, prev[i], diag)) != OTA_OK)
			return err;
	}
	for (size_t i = 0; i < n_remove; i++) {
		if ((err = set_remove(set, remove[i], diag)) != OTA_OK)
			return err;
	}
	for (size_t i = 0; i < n_add; i++) {
		if ((err = set_add(set, add[i], diag)) != OTA_OK)
			return err;
	}
	if (set->n == 0)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "the new list would hold no key");
	return OTA_OK;
}

static enum ota_err next_version(uint64_t prev, uint64_t wanted, uint64_t *ret)
{
	if (wanted == 0) {
		if (prev == UINT64_MAX)
			return OTA_ERR_KEYLIST_ROLLBACK;
		*ret = prev + 1;
		return OTA_OK;
	}
	if (wanted <= prev)
		return OTA_ERR_KEYLIST_ROLLBACK;
	*ret = wanted;
	return OTA_OK;
}

/* The packed body of a list (WHAT), within the body limit; not expired when issued. */
static enum ota_err pack_body(const ProtobufCMessage *msg, const char *what, uint64_t issued_at,
			      uint64_t expires_at, uint8_t **ret_body, size_t *ret_len,
			      struct kr_diag *diag)
{
	if (expires_at && expires_at <= issued_at)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "%s would expire before it is issued",
			       what);
	size_t len = protobuf_c_message_get_packed_size(msg);
	if (len > OTA_MAX_BODY_BYTES)
		return kr_fail(diag, OTA_ERR_FORMAT, "%s of %zu bytes is over the limit", what,
			       len);
	uint8_t *body = malloc(len);
	if (!body)
		return OTA_ERR_NOMEM;
	protobuf_c_message_pack(msg, body);
	*ret_body = body;
	*ret_len = len;
	return OTA_OK;
}

enum ota_err kr_keylist_build(const struct kr_keylist_spec *spec, uint8_t **ret_body,
			      size_t *ret_len, struct kr_diag *diag)
{
	/* large: keep it off the stack */
	struct key_set *set = calloc(1, sizeof(*set));
	Fleetota__V1__KeyList kl = FLEETOTA__V1__KEY_LIST__INIT;
	enum ota_err err;
	uint64_t prev_version = spec->prev ? spec->prev->version : 0;

	if (!set)
		return OTA_ERR_NOMEM;
	if (next_version(prev_version, spec->version, &kl.version) != OTA_OK) {
		err = kr_fail(diag, OTA_ERR_KEYLIST_ROLLBACK,
			      "KeyList version %llu does not increase over version %llu",
			      (unsigned long long)spec->version, (unsigned long long)prev_version);
		goto out;
	}
	err = set_fill(set, spec->prev ? spec->prev->keys : NULL,
		       spec->prev ? spec->prev->n_keys : 0, spec->add, spec->n_add, spec->remove,
		       spec->n_remove, diag);
	if (err != OTA_OK)
		goto out;
	for (size_t i = 0; i < spec->n_expire; i++) {
		size_t index;
		err = kr_key_select(set->ptrs, set->n, spec->expire[i].selector, &index, diag);
		if (err != OTA_OK)
			goto out;
		Fleetota__V1__PublicKey *key = set->ptrs[index];
		if (key->not_before && spec->expire[i].not_after < key->not_before) {
			err = kr_fail(diag, OTA_ERR_INVALID_ARG,
				      "key \"%s\" would expire before it becomes valid",
				      spec->expire[i].selector);
			goto out;
		}
		key->not_after = spec->expire[i].not_after;
	}
	kl.issued_at = spec->issued_at;
	kl.expires_at = spec->expires_at;
	kl.rootlist_version = spec->rootlist_version;
	kl.keys = set->ptrs;
	kl.n_keys = set->n;
	err = pack_body(&kl.base, "KeyList", spec->issued_at, spec->expires_at, ret_body, ret_len,
			diag);
out:
	free(set);
	return err;
}

enum ota_err kr_rootlist_build(const struct kr_rootlist_spec *spec, uint8_t **ret_body,
			       size_t *ret_len, struct kr_diag *diag)
{
	struct key_set *set = calloc(1, sizeof(*set));
	Fleetota__V1__RootList rl = FLEETOTA__V1__ROOT_LIST__INIT;
	enum ota_err err;
	uint64_t prev_version = spec->prev ? spec->prev->version : 0;

	if (!set)
		return OTA_ERR_NOMEM;
	/* devices walk the chain one version at a time: no gaps */
	rl.version = spec->version ? spec->version : prev_version + 1;
	if (prev_version == UINT64_MAX || rl.version != prev_version + 1) {
		err = kr_fail(diag, OTA_ERR_ROOT_CHAIN,
			      "RootList version %llu must be exactly %llu + 1",
			      (unsigned long long)rl.version, (unsigned long long)prev_version);
		goto out;
	}
	err = set_fill(set, spec->prev ? spec->prev->keys : NULL,
		       spec->prev ? spec->prev->n_keys : 0, spec->add, spec->n_add, spec->remove,
		       spec->n_remove, diag);
	if (err != OTA_OK)
		goto out;
	rl.threshold = spec->threshold ? spec->threshold : spec->prev ? spec->prev->threshold : 1;
	if (rl.threshold > set->n) {
		err = kr_fail(diag, OTA_ERR_INVALID_ARG, "threshold %u is more than the %zu keys",
			      rl.threshold, set->n);
		goto out;
	}
	for (size_t i = 0; i < set->n; i++) {
		/* a root key carries no validity window: roots are rotated instead */
		set->ptrs[i]->not_before = 0;
		set->ptrs[i]->not_after = 0;
	}
	rl.issued_at = spec->issued_at;
	rl.expires_at = spec->expires_at;
	rl.keys = set->ptrs;
	rl.n_keys = set->n;
	err = pack_body(&rl.base, "RootList", spec->issued_at, spec->expires_at, ret_body, ret_len,
			diag);
out:
	free(set);
	return err;
}

enum ota_err kr_envelope_new(const uint8_t *body, size_t len, Fleetota__V1__Signed **ret_env)
{
	Fleetota__V1__Signed *env = calloc(1, sizeof(*env));
	if (!env)
		return OTA_ERR_NOMEM;
	fleetota__v1__signed__init(env);
	env->body.data = malloc(len ? len : 1);
	if (!env->body.data) {
		free(env);
		return OTA_ERR_NOMEM;
	}
	memcpy(env->body.data, body, len);
	env->body.len = len;
	*ret_env = env;
	return OTA_OK;
}

static int has_signer(const Fleetota__V1__Signed *env, const ProtobufCBinaryData *key_id)
{
	for (size_t i = 0; i < env->n_signatures; i++) {
		const ProtobufCBinaryData *id = &env->signatures[i]->key_id;
		if (id->len == key_id->len && memcmp(id->data, key_id->data, id->len) == 0)
			return 1;
	}
	return 0;
}

static enum ota_err bytes_copy(ProtobufCBinaryData *dst, const ProtobufCBinaryData *src)
{
	dst->data = malloc(src->len ? src->len : 1);
	if (!dst->data)
		return OTA_ERR_NOMEM;
	memcpy(dst->data, src->data, src->len);
	dst->len = src->len;
	return OTA_OK;
}

enum ota_err kr_envelope_merge(Fleetota__V1__Signed *into, const Fleetota__V1__Signed *from,
			       struct kr_diag *diag)
{
	if (into->body.len != from->body.len ||
	    memcmp(into->body.data, from->body.data, into->body.len) != 0)
		return kr_fail(diag, OTA_ERR_INVALID_ARG,
			       "the files hold different bodies: they are not the same object");
	for (size_t i = 0; i < from->n_signatures; i++) {
		const Fleetota__V1__Signature *sig = from->signatures[i];
		if (has_signer(into, &sig->key_id))
			continue;
		if (into->n_signatures >= OTA_MAX_SIGNATURES)
			return kr_fail(diag, OTA_ERR_FORMAT, "more than %u signatures",
				       OTA_MAX_SIGNATURES);
		Fleetota__V1__Signature **grown =
			realloc(into->signatures, (into->n_signatures + 1) * sizeof(*grown));
		if (!grown)
			return OTA_ERR_NOMEM;
		into->signatures = grown;
		Fleetota__V1__Signature *copy = calloc(1, sizeof(*copy));
		if (!copy)
			return OTA_ERR_NOMEM;
		fleetota__v1__signature__init(copy);
		copy->alg = sig->alg;
		if (bytes_copy(&copy->key_id, &sig->key_id) != OTA_OK ||
		    bytes_copy(&copy->sig, &sig->sig) != OTA_OK) {
			fleetota__v1__signature__free_unpacked(copy, NULL);
			return OTA_ERR_NOMEM;
		}
		into->signatures[into->n_signatures++] = copy;
	}
	return OTA_OK;
}
