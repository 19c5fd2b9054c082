/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "kr.h"

static const char *const kind_names[] = {
	[KR_OBJ_UNKNOWN] = "unknown",	  [KR_OBJ_ROOTLIST] = "rootlist",
	[KR_OBJ_KEYLIST] = "keylist",	  [KR_OBJ_MANIFEST] = "manifest",
	[KR_OBJ_PUBKEY] = "pubkey",	  [KR_OBJ_BUNDLE] = "bundle",
	[KR_OBJ_TIMESTAMP] = "timestamp",
};

const char *kr_obj_kind_name(enum kr_obj_kind kind)
{
	if ((unsigned)kind >= sizeof(kind_names) / sizeof(kind_names[0]))
		return "unknown";
	return kind_names[kind];
}

enum ota_err kr_obj_kind_parse(const char *text, enum kr_obj_kind *ret_kind)
{
	if (text && strcmp(text, "root") == 0) {
		*ret_kind = KR_OBJ_ROOTLIST;
		return OTA_OK;
	}
	for (unsigned i = KR_OBJ_ROOTLIST; i <= KR_OBJ_TIMESTAMP; i++) {
		if (text && strcmp(text, kind_names[i]) == 0) {
			*ret_kind = (enum kr_obj_kind)i;
			return OTA_OK;
		}
	}
	return OTA_ERR_INVALID_ARG;
}

enum ota_err kr_obj_sign_type(enum kr_obj_kind kind, enum ota_obj_type *ret_type)
{
	switch (kind) {
	case KR_OBJ_ROOTLIST:
		*ret_type = OTA_OBJ_ROOT;
		return OTA_OK;
	case KR_OBJ_KEYLIST:
		*ret_type = OTA_OBJ_KEYLIST;
		return OTA_OK;
	case KR_OBJ_MANIFEST:
		*ret_type = OTA_OBJ_MANIFEST;
		return OTA_OK;
	case KR_OBJ_TIMESTAMP:
		*ret_type = OTA_OBJ_TIMESTAMP;
		return OTA_OK;
	default:
		return OTA_ERR_INVALID_ARG;
	}
}

enum ota_err kr_arena_init(struct kr_arena *arena, size_t cap)
{
	arena->mem = malloc(cap);
	if (!arena->mem)
		return OTA_ERR_NOMEM;
	ota_arena_init(&arena->arena, arena->mem, cap);
	return OTA_OK;
}

void kr_arena_release(struct kr_arena *arena)
{
	if (!arena)
		return;
	free(arena->mem);
	arena->mem = NULL;
}

enum kr_obj_kind kr_obj_detect(const uint8_t *buf, size_t len, struct ota_arena *arena)
{
	uint32_t header_len;
	Fleetota__V1__Signed *env = NULL;
	if (len >= OTA_BUNDLE_PREFIX_BYTES && ota_bundle_prefix_parse(buf, &header_len) == OTA_OK)
		return KR_OBJ_BUNDLE;
	ota_arena_reset(arena);
	if (ota_envelope_decode(buf, len, arena, &env) == OTA_OK) {
		Fleetota__V1__RootList *root;
		Fleetota__V1__KeyList *kl;
		Fleetota__V1__Manifest *m;
		Fleetota__V1__Timestamp *t;
		/* the four bodies differ in wire types, so at most one fits */
		if (ota_rootlist_parse(env, arena, &root) == OTA_OK)
			return KR_OBJ_ROOTLIST;
		if (ota_keylist_parse(env, arena, &kl) == OTA_OK)
			return KR_OBJ_KEYLIST;
		if (ota_manifest_parse(env, arena, &m) == OTA_OK)
			return KR_OBJ_MANIFEST;
		if (ota_timestamp_parse(env, arena, &t) == OTA_OK)
			return KR_OBJ_TIMESTAMP;
	}
	ota_arena_reset(arena);
	if (len > 0 && len <= KR_MAX_OBJECT_FILE_BYTES) {
		Fleetota__V1__PublicKey *key =
			fleetota__v1__public_key__unpack(&arena->allocator, len, buf);
		if (key && ota_pubkey_check(key) == OTA_OK)
			return KR_OBJ_PUBKEY;
	}
	return KR_OBJ_UNKNOWN;
}

enum ota_err kr_envelope_read(const char *path, struct ota_arena *arena,
			      Fleetota__V1__Signed **ret_env, struct kr_diag *diag)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	enum ota_err err = kr_file_read(path, KR_MAX_OBJECT_FILE_BYTES, &buf, &len, diag);
	if (err != OTA_OK)
		return err;
	err = ota_envelope_decode(buf, len, arena, ret_env);
	free(buf);
	if (err != OTA_OK)
		return kr_fail(diag, err, "%s is not a signed fleetota object", path);
	return OTA_OK;
}

enum ota_err kr_envelope_read_heap(const char *path, Fleetota__V1__Signed **ret_env,
				   struct kr_diag *diag)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	enum ota_err err = kr_file_read(path, KR_MAX_OBJECT_FILE_BYTES, &buf, &len, diag);
	if (err != OTA_OK)
		return err;
	Fleetota__V1__Signed *env = len ? fleetota__v1__signed__unpack(NULL, len, buf) : NULL;
	free(buf);
	if (!env || ota_envelope_check(env) != OTA_OK) {
		if (env)
			fleetota__v1__signed__free_unpacked(env, NULL);
		return kr_fail(diag, OTA_ERR_FORMAT, "%s is not a signed fleetota object", path);
	}
	*ret_env = env;
	return OTA_OK;
}

enum ota_err kr_envelope_write(const char *path, const Fleetota__V1__Signed *env,
			       struct kr_diag *diag)
{
	size_t len = fleetota__v1__signed__get_packed_size(env);
	if (len == 0 || len > OTA_MAX_ENVELOPE_BYTES)
		return kr_fail(diag, OTA_ERR_FORMAT, "envelope of %zu bytes is over the limit",
			       len);
	uint8_t *buf = malloc(len);
	if (!buf)
		return OTA_ERR_NOMEM;
	fleetota__v1__signed__pack(env, buf);
	enum ota_err err = kr_file_write(path, buf, len, 0644, diag);
	free(buf);
	return err;
}

enum ota_err kr_pubkey_read(const char *path, struct ota_arena *arena,
			    Fleetota__V1__PublicKey **ret_key, struct kr_diag *diag)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	enum ota_err err = kr_file_read(path, KR_MAX_OBJECT_FILE_BYTES, &buf, &len, diag);
	if (err != OTA_OK)
		return err;
	Fleetota__V1__PublicKey *key =
		len ? fleetota__v1__public_key__unpack(&arena->allocator, len, buf) : NULL;
	free(buf);
	if (!key || ota_pubkey_check(key) != OTA_OK)
		return kr_fail(diag, OTA_ERR_FORMAT,
			       "%s is not a public key descriptor (written by op-new/root-new)",
			       path);
	*ret_key = key;
	return OTA_OK;
}

enum ota_err kr_pubkey_write(const char *path, const Fleetota__V1__PublicKey *key,
			     struct kr_diag *diag)
{
	size_t len = fleetota__v1__public_key__get_packed_size(key);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return OTA_ERR_NOMEM;
	fleetota__v1__public_key__pack(key, buf);
	enum ota_err err = kr_file_write(path, buf, len, 0644, diag);
	free(buf);
	return err;
}

enum ota_err kr_pubkey_write_pem(const char *path, const Fleetota__V1__PublicKey *key,
				 struct kr_diag *diag)
{
	const unsigned char *p = key->public_key.data;
	enum ota_err err = OTA_OK;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)key->public_key.len);
	BIO *mem = BIO_new(BIO_s_mem());
	if (!pkey || !mem || PEM_write_bio_PUBKEY(mem, pkey) != 1) {
		err = kr_fail(diag, OTA_ERR_FORMAT, "cannot encode public key");
		goto out;
	}
	char *pem = NULL;
	long pem_len = BIO_get_mem_data(mem, &pem);
	err = kr_file_write(path, (const uint8_t *)pem, (size_t)pem_len, 0644, diag);
out:
	BIO_free(mem);
	EVP_PKEY_free(pkey);
	return err;
}

enum ota_err kr_key_select(Fleetota__V1__PublicKey *const *keys, size_t n_keys, const char *sel,
			   size_t *ret_index, struct kr_diag *diag)
{
	size_t found = 0, index = 0;
	size_t sel_len = strlen(sel);
	int hex = sel_len >= 8 && sel_len <= 2 * OTA_KEY_ID_BYTES &&
		  strspn(sel, "0123456789abcdefABCDEF") == sel_len;
	for (size_t i = 0; i < n_keys; i++) {
		int match = keys[i]->name && strcmp(keys[i]->name, sel) == 0;
		if (!match && hex && keys[i]->key_id.len == OTA_KEY_ID_BYTES) {
			char id_hex[2 * OTA_KEY_ID_BYTES + 1];
			ota_hex_encode(keys[i]->key_id.data, keys[i]->key_id.len, id_hex);
			match = strncasecmp(id_hex, sel, sel_len) == 0;
		}
		if (match) {
			found++;
			index = i;
		}
	}
	if (found == 0)
		return kr_fail(diag, OTA_ERR_NOT_FOUND, "no key named or with id \"%s\"", sel);
	if (found > 1)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "\"%s\" matches %zu keys", sel, found);
	*ret_index = index;
	return OTA_OK;
}
