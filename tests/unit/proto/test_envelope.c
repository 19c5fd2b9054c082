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

static EVP_PKEY *keys[4];
static Fleetota__V1__PublicKey *pubs[4];

static int setup(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++) {
		keys[i] = ptu_keygen(i % 2 ? OTA_ALG_ECDSA_P256_SHA256 : OTA_ALG_ED25519);
		pubs[i] = ptu_pubkey(keys[i], 0, 0);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++) {
		EVP_PKEY_free(keys[i]);
		fleetota__v1__public_key__free_unpacked(pubs[i], NULL);
	}
	return 0;
}

static void test_signing_prefix(void **state)
{
	(void)state;
	uint8_t buf[OTA_MAX_SIGNING_PREFIX];
	size_t len = ota_signing_prefix(OTA_OBJ_MANIFEST, buf, sizeof(buf));
	assert_int_equal(len, strlen("fleetota/v1/manifest") + 1);
	assert_memory_equal(buf, "fleetota/v1/manifest\0", len);
	len = ota_signing_prefix(OTA_OBJ_ROOT, buf, sizeof(buf));
	assert_memory_equal(buf, "fleetota/v1/root\0", len);
	len = ota_signing_prefix(OTA_OBJ_KEYLIST, buf, sizeof(buf));
	assert_memory_equal(buf, "fleetota/v1/keylist\0", len);
	assert_int_equal(ota_signing_prefix((enum ota_obj_type)7, buf, sizeof(buf)), 0);
	assert_int_equal(ota_signing_prefix(OTA_OBJ_MANIFEST, buf, 8), 0);
}

static void test_key_id_is_sha256_of_spki(void **state)
{
	(void)state;
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES], id[32], id2[32], digest[32];
	size_t spki_len = 0;
	enum ota_alg alg;
	assert_int_equal(ota_pkey_public(keys[1], &alg, spki, &spki_len, id), OTA_OK);
	assert_int_equal(alg, OTA_ALG_ECDSA_P256_SHA256);
	assert_int_equal(spki_len, 91);
	assert_int_equal(ota_key_id(spki, spki_len, id2), OTA_OK);
	unsigned int dlen = 0;
	EVP_Digest(spki, spki_len, digest, &dlen, EVP_sha256(), NULL);
	assert_memory_equal(id, digest, 32);
	assert_memory_equal(id2, digest, 32);
	assert_int_equal(ota_key_id(spki, 0, id2), OTA_ERR_FORMAT);
	assert_int_equal(ota_key_id(spki, OTA_MAX_PUBKEY_DER_BYTES + 1, id2), OTA_ERR_FORMAT);
}

static void test_decode_rejects_garbage_truncated_oversized(void **state)
{
	(void)state;
	uint8_t body[] = "hello";
	Fleetota__V1__Signed *env = ptu_envelope(body, 5, OTA_OBJ_MANIFEST, keys, 2);
	size_t len = 0;
	uint8_t *bytes = ptu_envelope_bytes(env, &len);
	Fleetota__V1__Signed *out = NULL;

	assert_int_equal(ota_envelope_decode(bytes, len, ptu_arena(), &out), OTA_OK);
	assert_int_equal(out->n_signatures, 2);
	/* a strict prefix is a format error, except a cut exactly at a field
	 * boundary (after the body, after signature 1): that decodes to an
	 * envelope with fewer signatures, which then misses its threshold */
	unsigned boundary_cuts = 0;
	for (size_t cut = 0; cut < len; cut++) {
		out = NULL;
		enum ota_err err = ota_envelope_decode(bytes, cut, ptu_arena(), &out);
		if (err == OTA_OK) {
			boundary_cuts++;
			assert_true(out->n_signatures < 2);
			assert_int_equal(ota_threshold_verify(OTA_OBJ_MANIFEST, out, pubs, 4, 2),
					 OTA_ERR_THRESHOLD);
			continue;
		}
		assert_int_equal(err, OTA_ERR_FORMAT);
		assert_null(out);
	}
	assert_int_equal(boundary_cuts, 2);
	/* garbage */
	uint8_t junk[512];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	assert_int_equal(ota_envelope_decode(junk, sizeof(junk), ptu_arena(), &out),
			 OTA_ERR_FORMAT);
	assert_int_equal(ota_envelope_decode(NULL, 0, ptu_arena(), &out), OTA_ERR_FORMAT);
	/* oversized: a body above the limit, and bytes above the envelope limit */
	uint8_t *big = calloc(1, OTA_MAX_ENVELOPE_BYTES + 1);
	Fleetota__V1__Signed *huge =
		ptu_envelope(big, OTA_MAX_BODY_BYTES + 1, OTA_OBJ_MANIFEST, NULL, 0);
	size_t huge_len = 0;
	uint8_t *huge_bytes = ptu_envelope_bytes(huge, &huge_len);
	assert_true(huge_len <= OTA_MAX_ENVELOPE_BYTES);
	assert_int_equal(ota_envelope_decode(huge_bytes, huge_len, ptu_arena(), &out),
			 OTA_ERR_FORMAT);
	assert_int_equal(ota_envelope_decode(big, OTA_MAX_ENVELOPE_BYTES + 1, ptu_arena(), &out),
			 OTA_ERR_FORMAT);
	/* an arena too small to hold the decode is a format error, not a crash */
	uint8_t tiny_mem[64];
	struct ota_arena tiny;
	ota_arena_init(&tiny, tiny_mem, sizeof(tiny_mem));
	assert_int_equal(ota_envelope_decode(bytes, len, &tiny, &out), OTA_ERR_FORMAT);

	free(huge_bytes);
	fleetota__v1__signed__free_unpacked(huge, NULL);
	free(big);
	free(bytes);
	fleetota__v1__signed__free_unpacked(env, NULL);
}

static void test_shape_checks(void **state)
{
	(void)state;
	uint8_t body[] = "body";
	Fleetota__V1__Signed *env = ptu_envelope(body, 4, OTA_OBJ_KEYLIST, keys, 1);
	assert_int_equal(ota_envelope_check(env), OTA_OK);
	Fleetota__V1__Signature *sig = env->signatures[0];

	sig->key_id.len = 31;
	assert_int_equal(ota_envelope_check(env), OTA_ERR_FORMAT);
	sig->key_id.len = 32;
	sig->alg = 9;
	assert_int_equal(ota_envelope_check(env), OTA_ERR_FORMAT);
	sig->alg = FLEETOTA__V1__ALGORITHM__ALGORITHM_ED25519;
	size_t real_len = sig->sig.len;
	sig->sig.len = 0;
	assert_int_equal(ota_envelope_check(env), OTA_ERR_FORMAT);
	sig->sig.len = OTA_MAX_SIG_BYTES + 1;
	assert_int_equal(ota_envelope_check(env), OTA_ERR_FORMAT);
	sig->sig.len = real_len;
	size_t body_len = env->body.len;
	env->body.len = 0;
	assert_int_equal(ota_envelope_check(env), OTA_ERR_FORMAT);
	env->body.len = body_len;
	assert_int_equal(ota_envelope_check(env), OTA_OK);
	assert_int_equal(ota_envelope_check(NULL), OTA_ERR_FORMAT);
	fleetota__v1__signed__free_unpacked(env, NULL);
}

static void test_too_many_signatures(void **state)
{
	(void)state;
	uint8_t body[] = "body";
	EVP_PKEY *many[OTA_MAX_SIGNATURES + 1];
	for (size_t i = 0; i <= OTA_MAX_SIGNATURES; i++)
		many[i] = ptu_keygen(OTA_ALG_ED25519);
	Fleetota__V1__Signed *env = ptu_envelope(body, 4, OTA_OBJ_ROOT, many, OTA_MAX_SIGNATURES);
	assert_int_equal(ota_envelope_check(env), OTA_OK);
	/* the builder itself refuses a 17th signature */
	assert_int_equal(ota_envelope_add_signature(env, OTA_OBJ_ROOT, many[OTA_MAX_SIGNATURES]),
			 OTA_ERR_FORMAT);
	/* and a decoder refuses an envelope that carries one anyway */
	env->signatures = realloc(env->signatures, (OTA_MAX_SIGNATURES + 1) * sizeof(void *));
	env->signatures[OTA_MAX_SIGNATURES] = env->signatures[0];
	env->n_signatures++;
	size_t len = 0;
	uint8_t *bytes = ptu_envelope_bytes(env, &len);
	Fleetota__V1__Signed *out = NULL;
	assert_int_equal(ota_envelope_decode(bytes, len, ptu_arena(), &out), OTA_ERR_FORMAT);
	env->n_signatures--;
	free(bytes);
	fleetota__v1__signed__free_unpacked(env, NULL);
	for (size_t i = 0; i <= OTA_MAX_SIGNATURES; i++)
		EVP_PKEY_free(many[i]);
}

static void test_threshold_counts_distinct_trusted_keys(void **state)
{
	(void)state;
	uint8_t body[] = "a key list body";
	size_t count = 99;

	Fleetota__V1__Signed *env = ptu_envelope(body, sizeof(body), OTA_OBJ_KEYLIST, keys, 3);
	assert_int_equal(ota_threshold_count(OTA_OBJ_KEYLIST, env, pubs, 3, &count), OTA_OK);
	assert_int_equal(count, 3);
	assert_int_equal(ota_threshold_verify(OTA_OBJ_KEYLIST, env, pubs, 3, 3), OTA_OK);
	assert_int_equal(ota_threshold_verify(OTA_OBJ_KEYLIST, env, pubs, 4, 4), OTA_ERR_THRESHOLD);
	/* only the trusted subset counts; signatures by others are ignored */
	assert_int_equal(ota_threshold_count(OTA_OBJ_KEYLIST, env, pubs + 2, 2, &count), OTA_OK);
	assert_int_equal(count, 1);
	/* cross-type: the same signatures are worth nothing for another type */
	assert_int_equal(ota_threshold_count(OTA_OBJ_MANIFEST, env, pubs, 3, &count), OTA_OK);
	assert_int_equal(count, 0);
	assert_int_equal(ota_threshold_verify(OTA_OBJ_ROOT, env, pubs, 3, 1), OTA_ERR_THRESHOLD);
	assert_int_equal(ota_threshold_verify(OTA_OBJ_KEYLIST, env, pubs, 3, 0), OTA_ERR_FORMAT);
	fleetota__v1__signed__free_unpacked(env, NULL);
}

static void test_threshold_two_by_one_key_is_one(void **state)
{
	(void)state;
	uint8_t body[] = "root list";
	Fleetota__V1__Signed *env = ptu_envelope(body, sizeof(body), OTA_OBJ_ROOT, keys, 1);
	/* duplicate the signature entry: same key, twice */
	env->signatures = realloc(env->signatures, 2 * sizeof(void *));
	Fleetota__V1__Signature *copy = malloc(sizeof(*copy));
	*copy = *env->signatures[0];
	copy->key_id.data = malloc(32);
	memcpy(copy->key_id.data, env->signatures[0]->key_id.data, 32);
	copy->sig.data = malloc(copy->sig.len);
	memcpy(copy->sig.data, env->signatures[0]->sig.data, copy->sig.len);
	env->signatures[1] = copy;
	env->n_signatures = 2;
	size_t count = 0;
	assert_int_equal(ota_threshold_count(OTA_OBJ_ROOT, env, pubs, 4, &count), OTA_OK);
	assert_int_equal(count, 1);
	assert_int_equal(ota_threshold_verify(OTA_OBJ_ROOT, env, pubs, 4, 2), OTA_ERR_THRESHOLD);
	/* the same key listed twice among the trusted keys still has one vote */
	Fleetota__V1__PublicKey *twice[2] = {pubs[0], pubs[0]};
	assert_int_equal(ota_threshold_verify(OTA_OBJ_ROOT, env, twice, 2, 2), OTA_ERR_THRESHOLD);
	/* for an Ed25519 key a second, different valid signature cannot exist;
	 * for ECDSA it can (random k): two distinct signatures still count once */
	Fleetota__V1__Signed *ec = ptu_envelope(body, sizeof(body), OTA_OBJ_ROOT, keys + 1, 1);
	Fleetota__V1__Signed *ec2 = ptu_envelope(body, sizeof(body), OTA_OBJ_ROOT, keys + 1, 1);
	assert_memory_not_equal(ec->signatures[0]->sig.data, ec2->signatures[0]->sig.data,
				ec->signatures[0]->sig.len < ec2->signatures[0]->sig.len
					? ec->signatures[0]->sig.len
					: ec2->signatures[0]->sig.len);
	ec->signatures = realloc(ec->signatures, 2 * sizeof(void *));
	ec->signatures[1] = ec2->signatures[0];
	ec->n_signatures = 2;
	ec2->n_signatures = 0;
	assert_int_equal(ota_threshold_count(OTA_OBJ_ROOT, ec, pubs, 4, &count), OTA_OK);
	assert_int_equal(count, 1);
	fleetota__v1__signed__free_unpacked(ec, NULL);
	fleetota__v1__signed__free_unpacked(ec2, NULL);
	fleetota__v1__signed__free_unpacked(env, NULL);
}

static void test_threshold_ignores_bad_and_mismatched_signatures(void **state)
{
	(void)state;
	uint8_t body[] = "root list";
	Fleetota__V1__Signed *env = ptu_envelope(body, sizeof(body), OTA_OBJ_ROOT, keys, 2);
	env->signatures[0]->sig.data[5] ^= 0x40;
	size_t count = 0;
	assert_int_equal(ota_threshold_count(OTA_OBJ_ROOT, env, pubs, 4, &count), OTA_OK);
	assert_int_equal(count, 1);
	/* a signature claiming another algorithm than its key does not count */
	env->signatures[1]->alg = FLEETOTA__V1__ALGORITHM__ALGORITHM_ED25519;
	assert_int_equal(ota_threshold_count(OTA_OBJ_ROOT, env, pubs, 4, &count), OTA_OK);
	assert_int_equal(count, 0);
	/* a tampered body invalidates every signature */
	Fleetota__V1__Signed *env2 = ptu_envelope(body, sizeof(body), OTA_OBJ_ROOT, keys, 3);
	env2->body.data[0] ^= 1;
	assert_int_equal(ota_threshold_count(OTA_OBJ_ROOT, env2, pubs, 4, &count), OTA_OK);
	assert_int_equal(count, 0);
	fleetota__v1__signed__free_unpacked(env2, NULL);
	fleetota__v1__signed__free_unpacked(env, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signing_prefix),
		cmocka_unit_test(test_key_id_is_sha256_of_spki),
		cmocka_unit_test(test_decode_rejects_garbage_truncated_oversized),
		cmocka_unit_test(test_shape_checks),
		cmocka_unit_test(test_too_many_signatures),
		cmocka_unit_test(test_threshold_counts_distinct_trusted_keys),
		cmocka_unit_test(test_threshold_two_by_one_key_is_one),
		cmocka_unit_test(test_threshold_ignores_bad_and_mismatched_signatures),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
