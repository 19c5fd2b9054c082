/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include "proto_test_util.h"

EVP_PKEY *ptu_keygen(enum ota_alg alg)
{
	if (alg == OTA_ALG_ED25519)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

Fleetota__V1__PublicKey *ptu_pubkey(EVP_PKEY *pkey, uint64_t not_before, uint64_t not_after)
{
	Fleetota__V1__PublicKey *key = NULL;
	if (ota_pubkey_from_pkey(pkey, "test", not_before, not_after, &key) != OTA_OK)
		abort();
	return key;
}

Fleetota__V1__Signed *ptu_envelope(const uint8_t *body, size_t body_len, enum ota_obj_type type,
				   EVP_PKEY *const *signers, size_t n_signers)
{
	Fleetota__V1__Signed *env = calloc(1, sizeof(*env));
	fleetota__v1__signed__init(env);
	env->body.data = malloc(body_len);
	memcpy(env->body.data, body, body_len);
	env->body.len = body_len;
	for (size_t i = 0; i < n_signers; i++) {
		if (ota_envelope_add_signature(env, type, signers[i]) != OTA_OK)
			abort();
	}
	return env;
}

uint8_t *ptu_pack(const ProtobufCMessage *msg, size_t *ret_len)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(len ? len : 1);
	protobuf_c_message_pack(msg, buf);
	*ret_len = len;
	return buf;
}

static uint8_t *keys_body(int root, uint64_t version, uint32_t threshold, uint64_t expires_at,
			  EVP_PKEY *const *keys, const uint64_t *not_before,
			  const uint64_t *not_after, size_t n_keys, size_t *ret_len)
{
	Fleetota__V1__PublicKey **pubs = calloc(n_keys ? n_keys : 1, sizeof(*pubs));
	for (size_t i = 0; i < n_keys; i++)
		pubs[i] = ptu_pubkey(keys[i], not_before ? not_before[i] : 0,
				     not_after ? not_after[i] : 0);
	uint8_t *out;
	if (root) {
		Fleetota__V1__RootList rl = FLEETOTA__V1__ROOT_LIST__INIT;
		rl.version = version;
		rl.threshold = threshold;
		rl.expires_at = expires_at;
		rl.n_keys = n_keys;
		rl.keys = pubs;
		out = ptu_pack(&rl.base, ret_len);
	} else {
		Fleetota__V1__KeyList kl = FLEETOTA__V1__KEY_LIST__INIT;
		kl.version = version;
		kl.issued_at = 1000;
		kl.expires_at = expires_at;
		kl.n_keys = n_keys;
		kl.keys = pubs;
		out = ptu_pack(&kl.base, ret_len);
	}
	for (size_t i = 0; i < n_keys; i++)
		fleetota__v1__public_key__free_unpacked(pubs[i], NULL);
	free(pubs);
	return out;
}

uint8_t *ptu_rootlist_body(uint64_t version, uint32_t threshold, EVP_PKEY *const *keys,
			   size_t n_keys, uint64_t expires_at, size_t *ret_len)
{
	return keys_body(1, version, threshold, expires_at, keys, NULL, NULL, n_keys, ret_len);
}

uint8_t *ptu_keylist_body(uint64_t version, uint64_t expires_at, EVP_PKEY *const *keys,
			  const uint64_t *not_before, const uint64_t *not_after, size_t n_keys,
			  size_t *ret_len)
{
	return keys_body(0, version, 0, expires_at, keys, not_before, not_after, n_keys, ret_len);
}

uint8_t *ptu_manifest_body(uint64_t issued_at, uint64_t version_code, uint64_t image_size,
			   size_t *ret_len)
{
	static uint8_t digest[32] = {1, 2, 3};
	static char *revs[] = {"revA", "revB"};
	Fleetota__V1__ImageInfo image = FLEETOTA__V1__IMAGE_INFO__INIT;
	Fleetota__V1__Manifest m = FLEETOTA__V1__MANIFEST__INIT;
	image.sha256.data = digest;
	image.sha256.len = sizeof(digest);
	image.size = image_size;
	image.name = "fw.bin";
	m.sequence = 1;
	m.product = "m1";
	m.n_hw_revisions = 2;
	m.hw_revisions = revs;
	m.version = "1.2.3";
	m.version_code = version_code;
	m.security_counter = 2;
	m.issued_at = issued_at;
	m.image = &image;
	return ptu_pack(&m.base, ret_len);
}

struct ota_arena *ptu_arena(void)
{
	static uint8_t mem[OTA_DECODE_ARENA_BYTES * 2];
	static struct ota_arena arena;
	ota_arena_init(&arena, mem, sizeof(mem));
	return &arena;
}

uint8_t *ptu_envelope_bytes(const Fleetota__V1__Signed *env, size_t *ret_len)
{
	return ptu_pack(&env->base, ret_len);
}
