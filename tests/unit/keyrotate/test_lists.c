/* SPDX-License-Identifier: Apache-2.0 */
#include "helpers.h"

struct fixture {
	EVP_PKEY *keys[3];
	Fleetota__V1__PublicKey *pubs[3];
};

static int setup(void **state)
{
	static const char *const names[] = {"op-a", "op-b", "op-c"};
	struct fixture *f = calloc(1, sizeof(*f));
	for (int i = 0; i < 3; i++) {
		f->keys[i] = key_new(i == 1 ? OTA_ALG_ECDSA_P256_SHA256 : OTA_ALG_ED25519);
		f->pubs[i] = pub_new(f->keys[i], names[i], 1000, 5000);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 3; i++) {
		EVP_PKEY_free(f->keys[i]);
		fleetota__v1__public_key__free_unpacked(f->pubs[i], NULL);
	}
	free(f);
	return 0;
}

static Fleetota__V1__KeyList *unpack_kl(const uint8_t *body, size_t len)
{
	Fleetota__V1__KeyList *kl = fleetota__v1__key_list__unpack(NULL, len, body);
	assert_non_null(kl);
	return kl;
}

static void test_keylist_first_and_next(void **state)
{
	struct fixture *f = *state;
	struct kr_diag diag;
	uint8_t *body = NULL, *body2 = NULL;
	size_t len = 0, len2 = 0;
	struct kr_keylist_spec spec = {.issued_at = 100, .add = f->pubs, .n_add = 2};
	assert_int_equal(kr_keylist_build(&spec, &body, &len, &diag), OTA_OK);
	Fleetota__V1__KeyList *kl = unpack_kl(body, len);
	assert_int_equal(kl->version, 1);
	assert_int_equal(kl->n_keys, 2);
	assert_string_equal(kl->keys[1]->name, "op-b");

	/* next: +1, add c, revoke a by name, expire b by id prefix */
	char prefix[9];
	ota_hex_encode(f->pubs[1]->key_id.data, 4, prefix);
	const char *remove[] = {"op-a"};
	struct kr_expire expire[] = {{prefix, 4000}};
	struct kr_keylist_spec next = {.prev = kl,
				       .issued_at = 200,
				       .add = &f->pubs[2],
				       .n_add = 1,
				       .remove = remove,
				       .n_remove = 1,
				       .expire = expire,
				       .n_expire = 1};
	assert_int_equal(kr_keylist_build(&next, &body2, &len2, &diag), OTA_OK);
	Fleetota__V1__KeyList *kl2 = unpack_kl(body2, len2);
	assert_int_equal(kl2->version, 2);
	assert_int_equal(kl2->n_keys, 2);
	assert_string_equal(kl2->keys[0]->name, "op-b");
	assert_int_equal(kl2->keys[0]->not_after, 4000);
	assert_string_equal(kl2->keys[1]->name, "op-c");
	/* the previous list is not modified */
	assert_int_equal(kl->n_keys, 2);
	assert_int_equal(kl->keys[1]->not_after, 5000);
	fleetota__v1__key_list__free_unpacked(kl2, NULL);
	fleetota__v1__key_list__free_unpacked(kl, NULL);
	free(body);
	free(body2);
}

static void test_keylist_refusals(void **state)
{
	struct fixture *f = *state;
	struct kr_diag diag;
	uint8_t *body = NULL, *out = (uint8_t *)"unchanged";
	size_t len = 0, out_len = 9;
	struct kr_keylist_spec spec = {.version = 7, .add = f->pubs, .n_add = 1};
	assert_int_equal(kr_keylist_build(&spec, &body, &len, &diag), OTA_OK);
	Fleetota__V1__KeyList *kl = unpack_kl(body, len);

	struct kr_keylist_spec same = {.prev = kl, .version = 7, .add = &f->pubs[1], .n_add = 1};
	assert_int_equal(kr_keylist_build(&same, &out, &out_len, &diag), OTA_ERR_KEYLIST_ROLLBACK);
	same.version = 3;
	assert_int_equal(kr_keylist_build(&same, &out, &out_len, &diag), OTA_ERR_KEYLIST_ROLLBACK);
	assert_int_equal(out_len, 9); /* out-parameters untouched */

	const char *unknown[] = {"op-z"};
	struct kr_keylist_spec rm = {.prev = kl, .remove = unknown, .n_remove = 1};
	assert_int_equal(kr_keylist_build(&rm, &out, &out_len, &diag), OTA_ERR_NOT_FOUND);
	const char *only[] = {"op-a"};
	struct kr_keylist_spec empty = {.prev = kl, .remove = only, .n_remove = 1};
	assert_int_equal(kr_keylist_build(&empty, &out, &out_len, &diag), OTA_ERR_INVALID_ARG);
	struct kr_keylist_spec dup = {.prev = kl, .add = f->pubs, .n_add = 1};
	assert_int_equal(kr_keylist_build(&dup, &out, &out_len, &diag), OTA_ERR_INVALID_ARG);
	struct kr_expire early[] = {{"op-a", 10}};
	struct kr_keylist_spec exp = {.prev = kl, .expire = early, .n_expire = 1};
	assert_int_equal(kr_keylist_build(&exp, &out, &out_len, &diag), OTA_ERR_INVALID_ARG);
	struct kr_keylist_spec backwards = {
		.add = f->pubs, .n_add = 1, .issued_at = 100, .expires_at = 50};
	assert_int_equal(kr_keylist_build(&backwards, &out, &out_len, &diag), OTA_ERR_INVALID_ARG);
	assert_int_equal(out_len, 9);
	fleetota__v1__key_list__free_unpacked(kl, NULL);
	free(body);
}

static void test_rootlist(void **state)
{
	struct fixture *f = *state;
	struct kr_diag diag;
	uint8_t *body = NULL, *body2 = NULL, *out = NULL;
	size_t len = 0, len2 = 0, out_len = 0;
	struct kr_rootlist_spec spec = {.version = 1, .threshold = 2, .add = f->pubs, .n_add = 3};
	assert_int_equal(kr_rootlist_build(&spec, &body, &len, &diag), OTA_OK);
	Fleetota__V1__RootList *rl = fleetota__v1__root_list__unpack(NULL, len, body);
	assert_non_null(rl);
	assert_int_equal(rl->threshold, 2);
	/* root keys carry no validity window */
	assert_int_equal(rl->keys[0]->not_before, 0);
	assert_int_equal(rl->keys[0]->not_after, 0);

	const char *rm[] = {"op-a", "op-b"};
	struct kr_rootlist_spec next = {.prev = rl, .threshold = 1, .remove = rm, .n_remove = 2};
	assert_int_equal(kr_rootlist_build(&next, &body2, &len2, &diag), OTA_OK);
	Fleetota__V1__RootList *rl2 = fleetota__v1__root_list__unpack(NULL, len2, body2);
	assert_int_equal(rl2->version, 2);
	assert_int_equal(rl2->n_keys, 1);

	struct kr_rootlist_spec gap = {.prev = rl, .version = 3};
	assert_int_equal(kr_rootlist_build(&gap, &out, &out_len, &diag), OTA_ERR_ROOT_CHAIN);
	struct kr_rootlist_spec too_high = {.prev = rl, .threshold = 4};
	assert_int_equal(kr_rootlist_build(&too_high, &out, &out_len, &diag), OTA_ERR_INVALID_ARG);
	/* default threshold is the previous one, which 1 key cannot meet */
	struct kr_rootlist_spec shrink = {.prev = rl, .remove = rm, .n_remove = 2};
	assert_int_equal(kr_rootlist_build(&shrink, &out, &out_len, &diag), OTA_ERR_INVALID_ARG);
	fleetota__v1__root_list__free_unpacked(rl2, NULL);
	fleetota__v1__root_list__free_unpacked(rl, NULL);
	free(body);
	free(body2);
}

static void test_merge(void **state)
{
	struct fixture *f = *state;
	struct kr_diag diag;
	static const uint8_t body[] = {0x08, 0x01};
	static const uint8_t other_body[] = {0x08, 0x02};
	Fleetota__V1__Signed *a = signed_new(body, sizeof(body), OTA_OBJ_KEYLIST, &f->keys[0], 1);
	Fleetota__V1__Signed *b = signed_new(body, sizeof(body), OTA_OBJ_KEYLIST, f->keys, 2);
	Fleetota__V1__Signed *c =
		signed_new(other_body, sizeof(other_body), OTA_OBJ_KEYLIST, &f->keys[2], 1);
	assert_int_equal(kr_envelope_merge(a, b, &diag), OTA_OK);
	assert_int_equal(a->n_signatures, 2); /* key 0 once */
	assert_int_equal(kr_envelope_merge(a, b, &diag), OTA_OK);
	assert_int_equal(a->n_signatures, 2);
	assert_int_equal(kr_envelope_merge(a, c, &diag), OTA_ERR_INVALID_ARG);
	assert_int_equal(a->n_signatures, 2);
	assert_int_equal(ota_envelope_check(a), OTA_OK);
	fleetota__v1__signed__free_unpacked(a, NULL);
	fleetota__v1__signed__free_unpacked(b, NULL);
	fleetota__v1__signed__free_unpacked(c, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keylist_first_and_next),
		cmocka_unit_test(test_keylist_refusals),
		cmocka_unit_test(test_rootlist),
		cmocka_unit_test(test_merge),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
