/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleetota/limits.h"
#include "proto_test_util.h"

/* roots[0..2]: RootList v1 (2 of 3); roots[3..5]: RootList v2 (2 of 3) */
static EVP_PKEY *roots[6];
/* ops[0..1]: operational keys */
static EVP_PKEY *ops[2];

static int setup(void **state)
{
	(void)state;
	for (int i = 0; i < 6; i++)
		roots[i] = ptu_keygen(i % 2 ? OTA_ALG_ECDSA_P256_SHA256 : OTA_ALG_ED25519);
	ops[0] = ptu_keygen(OTA_ALG_ED25519);
	ops[1] = ptu_keygen(OTA_ALG_ECDSA_P256_SHA256);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 6; i++)
		EVP_PKEY_free(roots[i]);
	EVP_PKEY_free(ops[0]);
	EVP_PKEY_free(ops[1]);
	return 0;
}

static Fleetota__V1__Signed *make_root(uint64_t version, EVP_PKEY *const *keys,
				       EVP_PKEY *const *signers, size_t n_signers)
{
	size_t len = 0;
	uint8_t *body = ptu_rootlist_body(version, 2, keys, 3, 0, &len);
	Fleetota__V1__Signed *env = ptu_envelope(body, len, OTA_OBJ_ROOT, signers, n_signers);
	free(body);
	return env;
}

static Fleetota__V1__RootList *trusted_root_v1(void)
{
	Fleetota__V1__Signed *env = make_root(1, roots, roots, 2);
	Fleetota__V1__RootList *root = NULL;
	static uint8_t mem[OTA_DECODE_ARENA_BYTES];
	static struct ota_arena arena;
	ota_arena_init(&arena, mem, sizeof(mem));
	/* the root must outlive env: re-decode from bytes into the arena */
	size_t len = 0;
	uint8_t *bytes = ptu_envelope_bytes(env, &len);
	Fleetota__V1__Signed *decoded = NULL;
	assert_int_equal(ota_envelope_decode(bytes, len, &arena, &decoded), OTA_OK);
	assert_int_equal(ota_rootlist_verify_initial(decoded, &arena, &root), OTA_OK);
	free(bytes);
	fleetota__v1__signed__free_unpacked(env, NULL);
	return root;
}

static void test_rootlist_initial(void **state)
{
	(void)state;
	Fleetota__V1__RootList *root = NULL;
	Fleetota__V1__Signed *env = make_root(1, roots, roots, 2);
	assert_int_equal(ota_rootlist_verify_initial(env, ptu_arena(), &root), OTA_OK);
	assert_int_equal(root->version, 1);
	assert_int_equal(root->threshold, 2);
	assert_int_equal(root->n_keys, 3);
	fleetota__v1__signed__free_unpacked(env, NULL);

	root = NULL;
	env = make_root(1, roots, roots, 1);
	assert_int_equal(ota_rootlist_verify_initial(env, ptu_arena(), &root), OTA_ERR_THRESHOLD);
	assert_null(root);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* threshold above the key count, or zero, is malformed */
	size_t len = 0;
	uint8_t *body = ptu_rootlist_body(1, 4, roots, 3, 0, &len);
	env = ptu_envelope(body, len, OTA_OBJ_ROOT, roots, 3);
	assert_int_equal(ota_rootlist_verify_initial(env, ptu_arena(), &root), OTA_ERR_FORMAT);
	free(body);
	fleetota__v1__signed__free_unpacked(env, NULL);
	body = ptu_rootlist_body(1, 0, roots, 3, 0, &len);
	env = ptu_envelope(body, len, OTA_OBJ_ROOT, roots, 3);
	assert_int_equal(ota_rootlist_parse(env, ptu_arena(), &root), OTA_ERR_FORMAT);
	free(body);
	fleetota__v1__signed__free_unpacked(env, NULL);
	/* the same key twice in one list is malformed */
	EVP_PKEY *dup[3] = {roots[0], roots[1], roots[0]};
	body = ptu_rootlist_body(1, 2, dup, 3, 0, &len);
	env = ptu_envelope(body, len, OTA_OBJ_ROOT, roots, 2);
	assert_int_equal(ota_rootlist_parse(env, ptu_arena(), &root), OTA_ERR_FORMAT);
	free(body);
	fleetota__v1__signed__free_unpacked(env, NULL);
}

static void test_rootlist_chain_step(void **state)
{
	(void)state;
	Fleetota__V1__RootList *v1 = trusted_root_v1();
	Fleetota__V1__RootList *next = NULL;
	EVP_PKEY *both[4] = {roots[0], roots[2], roots[3], roots[5]};

	/* 2 old + 2 new: valid */
	Fleetota__V1__Signed *env = make_root(2, roots + 3, both, 4);
	assert_int_equal(ota_rootlist_verify_next(v1, env, 0, ptu_arena(), &next), OTA_OK);
	assert_int_equal(next->version, 2);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* too few old roots: the chain is broken */
	EVP_PKEY *one_old[3] = {roots[0], roots[3], roots[4]};
	next = NULL;
	env = make_root(2, roots + 3, one_old, 3);
	assert_int_equal(ota_rootlist_verify_next(v1, env, 0, ptu_arena(), &next),
			 OTA_ERR_ROOT_CHAIN);
	assert_null(next);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* too few of its own keys */
	EVP_PKEY *one_new[3] = {roots[0], roots[1], roots[3]};
	env = make_root(2, roots + 3, one_new, 3);
	assert_int_equal(ota_rootlist_verify_next(v1, env, 0, ptu_arena(), &next),
			 OTA_ERR_THRESHOLD);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* skipping a version, or replaying the same one */
	env = make_root(3, roots + 3, both, 4);
	assert_int_equal(ota_rootlist_verify_next(v1, env, 0, ptu_arena(), &next),
			 OTA_ERR_ROOT_CHAIN);
	fleetota__v1__signed__free_unpacked(env, NULL);
	env = make_root(1, roots, roots, 3);
	assert_int_equal(ota_rootlist_verify_next(v1, env, 0, ptu_arena(), &next),
			 OTA_ERR_ROOT_CHAIN);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* a root list signature is worth nothing as a key list signature */
	size_t len = 0;
	uint8_t *body = ptu_rootlist_body(2, 2, roots + 3, 3, 0, &len);
	env = ptu_envelope(body, len, OTA_OBJ_KEYLIST, both, 4);
	assert_int_equal(ota_rootlist_verify_next(v1, env, 0, ptu_arena(), &next),
			 OTA_ERR_ROOT_CHAIN);
	free(body);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* expired at `now` */
	body = ptu_rootlist_body(2, 2, roots + 3, 3, 5000, &len);
	env = ptu_envelope(body, len, OTA_OBJ_ROOT, both, 4);
	assert_int_equal(ota_rootlist_verify_next(v1, env, 6000, ptu_arena(), &next),
			 OTA_ERR_EXPIRED);
	assert_int_equal(ota_rootlist_verify_next(v1, env, 4000, ptu_arena(), &next), OTA_OK);
	assert_int_equal(ota_rootlist_verify_next(v1, env, 0, ptu_arena(), &next), OTA_OK);
	free(body);
	fleetota__v1__signed__free_unpacked(env, NULL);
}

static Fleetota__V1__Signed *make_keylist(uint64_t version, uint64_t expires_at,
					  EVP_PKEY *const *signers, size_t n_signers,
					  enum ota_obj_type type)
{
	size_t len = 0;
	uint64_t nb[2] = {100, 0}, na[2] = {2000, 0};
	uint8_t *body = ptu_keylist_body(version, expires_at, ops, nb, na, 2, &len);
	Fleetota__V1__Signed *env = ptu_envelope(body, len, type, signers, n_signers);
	free(body);
	return env;
}

static void test_keylist_verify(void **state)
{
	(void)state;
	Fleetota__V1__RootList *root = trusted_root_v1();
	Fleetota__V1__KeyList *kl = NULL;

	Fleetota__V1__Signed *env = make_keylist(3, 0, roots, 2, OTA_OBJ_KEYLIST);
	assert_int_equal(ota_keylist_verify(root, env, 2, 0, ptu_arena(), &kl), OTA_OK);
	assert_int_equal(kl->version, 3);
	assert_int_equal(kl->n_keys, 2);
	/* not above the current version */
	kl = NULL;
	assert_int_equal(ota_keylist_verify(root, env, 3, 0, ptu_arena(), &kl),
			 OTA_ERR_KEYLIST_ROLLBACK);
	assert_int_equal(ota_keylist_verify(root, env, 9, 0, ptu_arena(), &kl),
			 OTA_ERR_KEYLIST_ROLLBACK);
	assert_null(kl);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* one root of a 2-of-3 list is not enough */
	env = make_keylist(3, 0, roots, 1, OTA_OBJ_KEYLIST);
	assert_int_equal(ota_keylist_verify(root, env, 0, 0, ptu_arena(), &kl), OTA_ERR_THRESHOLD);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* operational keys are not root keys */
	env = make_keylist(3, 0, ops, 2, OTA_OBJ_KEYLIST);
	assert_int_equal(ota_keylist_verify(root, env, 0, 0, ptu_arena(), &kl), OTA_ERR_THRESHOLD);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* root signatures made for a root list are not key list signatures */
	env = make_keylist(3, 0, roots, 3, OTA_OBJ_ROOT);
	assert_int_equal(ota_keylist_verify(root, env, 0, 0, ptu_arena(), &kl), OTA_ERR_THRESHOLD);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* expiry is judged against the caller's trusted time, when known */
	env = make_keylist(3, 5000, roots, 2, OTA_OBJ_KEYLIST);
	assert_int_equal(ota_keylist_verify(root, env, 0, 5000, ptu_arena(), &kl), OTA_ERR_EXPIRED);
	assert_int_equal(ota_keylist_verify(root, env, 0, 4999, ptu_arena(), &kl), OTA_OK);
	assert_int_equal(ota_keylist_verify(root, env, 0, 0, ptu_arena(), &kl), OTA_OK);
	fleetota__v1__signed__free_unpacked(env, NULL);
}

static Fleetota__V1__KeyList *trusted_keylist(void)
{
	static uint8_t mem[OTA_DECODE_ARENA_BYTES];
	static struct ota_arena arena;
	Fleetota__V1__RootList *root = trusted_root_v1();
	Fleetota__V1__Signed *env = make_keylist(1, 0, roots, 2, OTA_OBJ_KEYLIST);
	size_t len = 0;
	uint8_t *bytes = ptu_envelope_bytes(env, &len);
	Fleetota__V1__Signed *decoded = NULL;
	Fleetota__V1__KeyList *kl = NULL;
	ota_arena_init(&arena, mem, sizeof(mem));
	assert_int_equal(ota_envelope_decode(bytes, len, &arena, &decoded), OTA_OK);
	assert_int_equal(ota_keylist_verify(root, decoded, 0, 0, &arena, &kl), OTA_OK);
	free(bytes);
	fleetota__v1__signed__free_unpacked(env, NULL);
	return kl;
}

static Fleetota__V1__Signed *make_manifest(uint64_t issued_at, EVP_PKEY *const *signers, size_t n,
					   enum ota_obj_type type)
{
	size_t len = 0;
	uint8_t *body = ptu_manifest_body(issued_at, 10203, 4096, &len);
	Fleetota__V1__Signed *env = ptu_envelope(body, len, type, signers, n);
	free(body);
	return env;
}

static void test_manifest_verify(void **state)
{
	(void)state;
	Fleetota__V1__KeyList *kl = trusted_keylist();
	Fleetota__V1__Manifest *m = NULL;
	const Fleetota__V1__PublicKey *signer = NULL;

	Fleetota__V1__Signed *env = make_manifest(500, ops, 1, OTA_OBJ_MANIFEST);
	assert_int_equal(ota_manifest_verify(kl, env, ptu_arena(), &m, &signer), OTA_OK);
	assert_string_equal(m->product, "m1");
	assert_int_equal(m->version_code, 10203);
	assert_ptr_equal(signer, kl->keys[0]);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* ops[0] is valid in [100, 2000]: before and after are refused */
	m = NULL;
	env = make_manifest(99, ops, 1, OTA_OBJ_MANIFEST);
	assert_int_equal(ota_manifest_verify(kl, env, ptu_arena(), &m, &signer),
			 OTA_ERR_KEY_EXPIRED);
	assert_null(m);
	fleetota__v1__signed__free_unpacked(env, NULL);
	env = make_manifest(2001, ops, 1, OTA_OBJ_MANIFEST);
	assert_int_equal(ota_manifest_verify(kl, env, ptu_arena(), &m, &signer),
			 OTA_ERR_KEY_EXPIRED);
	fleetota__v1__signed__free_unpacked(env, NULL);
	/* ops[1] has an open window */
	env = make_manifest(999999, ops + 1, 1, OTA_OBJ_MANIFEST);
	assert_int_equal(ota_manifest_verify(kl, env, ptu_arena(), &m, &signer), OTA_OK);
	assert_ptr_equal(signer, kl->keys[1]);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* signed by a root key, which is not an operational key */
	env = make_manifest(500, roots, 1, OTA_OBJ_MANIFEST);
	assert_int_equal(ota_manifest_verify(kl, env, ptu_arena(), &m, &signer),
			 OTA_ERR_KEY_UNKNOWN);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* unsigned */
	env = make_manifest(500, NULL, 0, OTA_OBJ_MANIFEST);
	assert_int_equal(ota_manifest_verify(kl, env, ptu_arena(), &m, &signer), OTA_ERR_SIGNATURE);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* cross-type reuse: a valid key list signature by a trusted key */
	env = make_manifest(500, ops, 1, OTA_OBJ_KEYLIST);
	assert_int_equal(ota_manifest_verify(kl, env, ptu_arena(), &m, &signer), OTA_ERR_SIGNATURE);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* one tampered body byte */
	env = make_manifest(500, ops, 2, OTA_OBJ_MANIFEST);
	env->body.data[env->body.len - 1] ^= 0x01;
	enum ota_err err = ota_manifest_verify(kl, env, ptu_arena(), &m, &signer);
	assert_true(err == OTA_ERR_SIGNATURE || err == OTA_ERR_FORMAT);
	fleetota__v1__signed__free_unpacked(env, NULL);

	/* one bad signature next to a good one: the good one decides */
	env = make_manifest(500, ops, 2, OTA_OBJ_MANIFEST);
	env->signatures[0]->sig.data[3] ^= 0x10;
	assert_int_equal(ota_manifest_verify(kl, env, ptu_arena(), &m, &signer), OTA_OK);
	assert_ptr_equal(signer, kl->keys[1]);
	fleetota__v1__signed__free_unpacked(env, NULL);
}

static void test_manifest_parse_bounds(void **state)
{
	(void)state;
	Fleetota__V1__Manifest *m = NULL;
	uint8_t digest[32] = {0};
	char long_name[OTA_MAX_STRING_BYTES + 2];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';

	Fleetota__V1__ImageInfo image = FLEETOTA__V1__IMAGE_INFO__INIT;
	Fleetota__V1__Manifest good = FLEETOTA__V1__MANIFEST__INIT;
	image.sha256.data = digest;
	image.sha256.len = 32;
	image.size = 10;
	good.product = "m1";
	good.version = "1.0.0";
	good.issued_at = 10;
	good.image = &image;

	for (int variant = 0; variant < 14; variant++) {
		Fleetota__V1__Manifest man = good;
		Fleetota__V1__ImageInfo img = image;
		char *many[OTA_MAX_HW_REVISIONS + 1];
		char *bad_rev[] = {"rev-a", "rev-\xc0\xaf"};
		man.image = &img;
		enum ota_err want = OTA_ERR_FORMAT;
		switch (variant) {
		case 0:
			want = OTA_OK;
			break;
		case 1:
			man.product = "";
			break;
		case 2:
			man.version = long_name;
			break;
		case 3:
			img.sha256.len = 31;
			break;
		case 4:
			img.size = 0;
			break;
		case 5:
			img.size = OTA_MAX_IMAGE_BYTES + 1;
			break;
		case 6:
			man.image = NULL;
			break;
		case 7:
			for (size_t i = 0; i <= OTA_MAX_HW_REVISIONS; i++)
				many[i] = "r";
			man.hw_revisions = many;
			man.n_hw_revisions = OTA_MAX_HW_REVISIONS + 1;
			break;
		case 8:
			man.expires_at = 5;
			break; /* expires before issued */
		/* strings are UTF-8 (proto3; protobuf-c does not check) */
		case 9:
			man.product = "m1\xff\xfe";
			break;
		case 10:
			man.version = "1.0.0-\xed\xa0\x80"; /* a surrogate */
			break;
		case 11:
			man.hw_revisions = bad_rev;
			man.n_hw_revisions = 2;
			break;
		case 12:
			man.advisory = "CVE-\xe0\x80\xaf"; /* overlong */
			break;
		case 13:
			img.name = "fw\xc3"; /* truncated */
			break;
		}
		size_t len = 0;
		uint8_t *body = ptu_pack(&man.base, &len);
		Fleetota__V1__Signed *env = ptu_envelope(body, len, OTA_OBJ_MANIFEST, ops, 1);
		m = NULL;
		assert_int_equal(ota_manifest_parse(env, ptu_arena(), &m), want);
		if (want != OTA_OK)
			assert_null(m);
		free(body);
		fleetota__v1__signed__free_unpacked(env, NULL);
	}
}

static void test_pubkey_check(void **state)
{
	(void)state;
	Fleetota__V1__PublicKey *key = ptu_pubkey(ops[1], 0, 0);
	assert_int_equal(ota_pubkey_check(key), OTA_OK);
	/* the key id must be the hash of the key */
	key->key_id.data[0] ^= 1;
	assert_int_equal(ota_pubkey_check(key), OTA_ERR_FORMAT);
	key->key_id.data[0] ^= 1;
	/* the algorithm must match the key */
	key->alg = FLEETOTA__V1__ALGORITHM__ALGORITHM_ED25519;
	assert_int_equal(ota_pubkey_check(key), OTA_ERR_FORMAT);
	key->alg = FLEETOTA__V1__ALGORITHM__ALGORITHM_ECDSA_P256_SHA256;
	/* a window that ends before it starts */
	key->not_before = 10;
	key->not_after = 5;
	assert_int_equal(ota_pubkey_check(key), OTA_ERR_FORMAT);
	key->not_after = 0;
	assert_int_equal(ota_pubkey_check(key), OTA_OK);
	/* its name is UTF-8 (protobuf-c does not check) */
	char bad_name[] = "op-\xc0\xaf";
	char *name = key->name;
	key->name = bad_name;
	assert_int_equal(ota_pubkey_check(key), OTA_ERR_FORMAT);
	key->name = name;
	fleetota__v1__public_key__free_unpacked(key, NULL);
	/* a P-384 key is not a P-256 key */
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	Fleetota__V1__PublicKey *k384 = NULL;
	assert_int_equal(ota_pubkey_from_pkey(p384, "x", 0, 0, &k384), OTA_ERR_FORMAT);
	EVP_PKEY_free(p384);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rootlist_initial),
		cmocka_unit_test(test_rootlist_chain_step),
		cmocka_unit_test(test_keylist_verify),
		cmocka_unit_test(test_manifest_verify),
		cmocka_unit_test(test_manifest_parse_bounds),
		cmocka_unit_test(test_pubkey_check),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
