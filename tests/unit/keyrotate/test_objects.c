/* SPDX-License-Identifier: Apache-2.0 */
#include <jansson.h>

#include "helpers.h"

struct fixture {
	EVP_PKEY *key;
	Fleetota__V1__PublicKey *pub;
	uint8_t *root_body, *kl_body, *m_body;
	size_t root_len, kl_len, m_len;
};

static uint8_t *pack_env(const uint8_t *body, size_t len, enum ota_obj_type type, EVP_PKEY *key,
			 size_t *ret_len)
{
	Fleetota__V1__Signed *env = signed_new(body, len, type, &key, 1);
	*ret_len = fleetota__v1__signed__get_packed_size(env);
	uint8_t *buf = malloc(*ret_len);
	fleetota__v1__signed__pack(env, buf);
	fleetota__v1__signed__free_unpacked(env, NULL);
	return buf;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct kr_diag diag;
	uint8_t sha[32];
	f->key = key_new(OTA_ALG_ED25519);
	f->pub = pub_new(f->key, "k1", 0, 0);
	struct kr_rootlist_spec rs = {.version = 1, .threshold = 1, .add = &f->pub, .n_add = 1};
	assert_int_equal(kr_rootlist_build(&rs, &f->root_body, &f->root_len, &diag), OTA_OK);
	struct kr_keylist_spec ks = {.add = &f->pub, .n_add = 1};
	assert_int_equal(kr_keylist_build(&ks, &f->kl_body, &f->kl_len, &diag), OTA_OK);
	memset(sha, 7, sizeof(sha));
	struct kr_manifest_spec ms = {.product = "acme", .version = "1.2.3", .version_code = 10};
	assert_int_equal(kr_manifest_build(&ms, sha, 100, &f->m_body, &f->m_len, &diag), OTA_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY_free(f->key);
	fleetota__v1__public_key__free_unpacked(f->pub, NULL);
	free(f->root_body);
	free(f->kl_body);
	free(f->m_body);
	free(f);
	return 0;
}

static void test_detect(void **state)
{
	struct fixture *f = *state;
	struct kr_arena arena;
	size_t len;
	assert_int_equal(kr_arena_init(&arena, KR_HEADER_ARENA_BYTES), OTA_OK);
	uint8_t *r = pack_env(f->root_body, f->root_len, OTA_OBJ_ROOT, f->key, &len);
	assert_int_equal(kr_obj_detect(r, len, &arena.arena), KR_OBJ_ROOTLIST);
	free(r);
	uint8_t *k = pack_env(f->kl_body, f->kl_len, OTA_OBJ_KEYLIST, f->key, &len);
	assert_int_equal(kr_obj_detect(k, len, &arena.arena), KR_OBJ_KEYLIST);
	free(k);
	uint8_t *m = pack_env(f->m_body, f->m_len, OTA_OBJ_MANIFEST, f->key, &len);
	assert_int_equal(kr_obj_detect(m, len, &arena.arena), KR_OBJ_MANIFEST);
	free(m);
	len = fleetota__v1__public_key__get_packed_size(f->pub);
	uint8_t *p = malloc(len);
	fleetota__v1__public_key__pack(f->pub, p);
	assert_int_equal(kr_obj_detect(p, len, &arena.arena), KR_OBJ_PUBKEY);
	free(p);
	static const uint8_t bundle[] = {'O', 'T', 'A', 'B', 0, 0, 0, 5};
	assert_int_equal(kr_obj_detect(bundle, sizeof(bundle), &arena.arena), KR_OBJ_BUNDLE);
	static const uint8_t junk[] = {0xff, 0xff, 0xff};
	assert_int_equal(kr_obj_detect(junk, sizeof(junk), &arena.arena), KR_OBJ_UNKNOWN);
	assert_int_equal(kr_obj_detect(junk, 0, &arena.arena), KR_OBJ_UNKNOWN);
	kr_arena_release(&arena);
}

static void test_inspect_json(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = pack_env(f->m_body, f->m_len, OTA_OBJ_MANIFEST, f->key, &len);
	json_t *tree = kr_inspect_json(m, len, 0, KR_OBJ_UNKNOWN);
	assert_non_null(tree);
	assert_string_equal(json_string_value(json_object_get(tree, "type")), "manifest");
	json_t *body = json_object_get(tree, "body");
	assert_string_equal(json_string_value(json_object_get(body, "product")), "acme");
	assert_int_equal(json_integer_value(json_object_get(body, "version_code")), 10);
	json_t *sigs = json_object_get(tree, "signatures");
	assert_int_equal(json_array_size(sigs), 1);
	char id[65];
	ota_hex_encode(f->pub->key_id.data, 32, id);
	assert_string_equal(json_string_value(json_object_get(json_array_get(sigs, 0), "key_id")),
			    id);
	/* the human rendering does not fail and shows the product */
	char *text = NULL;
	size_t text_len = 0;
	FILE *out = open_memstream(&text, &text_len);
	kr_inspect_print(out, tree);
	fclose(out);
	assert_non_null(strstr(text, "product: acme"));
	free(text);
	json_decref(tree);
	/* forcing the wrong type fails cleanly */
	assert_null(kr_inspect_json(m, len, 0, KR_OBJ_ROOTLIST));
	free(m);
}

static void test_key_select(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *k2 = key_new(OTA_ALG_ED25519);
	Fleetota__V1__PublicKey *keys[2] = {f->pub, pub_new(k2, "k2", 0, 0)};
	struct kr_diag diag;
	size_t index = 99;
	char prefix[17];
	assert_int_equal(kr_key_select(keys, 2, "k2", &index, &diag), OTA_OK);
	assert_int_equal(index, 1);
	ota_hex_encode(f->pub->key_id.data, 8, prefix);
	assert_int_equal(kr_key_select(keys, 2, prefix, &index, &diag), OTA_OK);
	assert_int_equal(index, 0);
	prefix[7] = '\0'; /* too short to be an id prefix, and no such name */
	assert_int_equal(kr_key_select(keys, 2, prefix, &index, &diag), OTA_ERR_NOT_FOUND);
	assert_int_equal(kr_key_select(keys, 2, "nobody", &index, &diag), OTA_ERR_NOT_FOUND);
	/* a name shared by two keys is ambiguous */
	free(keys[1]->name);
	keys[1]->name = strdup("k1");
	assert_int_equal(kr_key_select(keys, 2, "k1", &index, &diag), OTA_ERR_INVALID_ARG);
	assert_int_equal(index, 0);
	fleetota__v1__public_key__free_unpacked(keys[1], NULL);
	EVP_PKEY_free(k2);
}

static void test_kind_names(void **state)
{
	enum kr_obj_kind kind;
	enum ota_obj_type type;
	(void)state;
	assert_int_equal(kr_obj_kind_parse("root", &kind), OTA_OK);
	assert_int_equal(kind, KR_OBJ_ROOTLIST);
	assert_int_equal(kr_obj_kind_parse("bundle", &kind), OTA_OK);
	assert_int_equal(kr_obj_kind_parse("unknown", &kind), OTA_ERR_INVALID_ARG);
	assert_int_equal(kr_obj_sign_type(KR_OBJ_KEYLIST, &type), OTA_OK);
	assert_int_equal(type, OTA_OBJ_KEYLIST);
	assert_int_equal(kr_obj_sign_type(KR_OBJ_PUBKEY, &type), OTA_ERR_INVALID_ARG);
	assert_string_equal(kr_obj_kind_name((enum kr_obj_kind)42), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_inspect_json),
		cmocka_unit_test(test_key_select),
		cmocka_unit_test(test_kind_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
