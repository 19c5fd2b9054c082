/* SPDX-License-Identifier: Apache-2.0 */
/* Signing and verifying with the library: lists, manifests, images, bundles. */
#include <unistd.h>

#include "helpers.h"

struct fixture {
	char dir[64];
	EVP_PKEY *roots[3], *op;
	Fleetota__V1__PublicKey *root_pubs[3], *op_pub;
	Fleetota__V1__Signed *rootlist, *keylist;
	char image[128];
	uint8_t sha[32];
	uint64_t size;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct kr_diag diag;
	uint8_t *body;
	size_t len;
	tmpdir_make(f->dir, sizeof(f->dir));
	for (int i = 0; i < 3; i++) {
		f->roots[i] = key_new(i ? OTA_ALG_ED25519 : OTA_ALG_ECDSA_P256_SHA256);
		char name[8];
		snprintf(name, sizeof(name), "r%d", i);
		f->root_pubs[i] = pub_new(f->roots[i], name, 0, 0);
	}
	f->op = key_new(OTA_ALG_ED25519);
	f->op_pub = pub_new(f->op, "op", 1000, 2000);
	struct kr_rootlist_spec rs = {
		.version = 1, .threshold = 2, .add = f->root_pubs, .n_add = 3};
	assert_int_equal(kr_rootlist_build(&rs, &body, &len, &diag), OTA_OK);
	f->rootlist = signed_new(body, len, OTA_OBJ_ROOT, f->roots, 2);
	free(body);
	struct kr_keylist_spec ks = {.add = &f->op_pub, .n_add = 1, .issued_at = 900};
	assert_int_equal(kr_keylist_build(&ks, &body, &len, &diag), OTA_OK);
	f->keylist = signed_new(body, len, OTA_OBJ_KEYLIST, &f->roots[1], 2);
	free(body);
	/* an image of a few chunks plus a remainder */
	snprintf(f->image, sizeof(f->image), "%s/fw.bin", f->dir);
	size_t image_len = 3 * KR_IO_CHUNK + 123;
	uint8_t *data = malloc(image_len);
	for (size_t i = 0; i < image_len; i++)
		data[i] = (uint8_t)(i * 31 + 7);
	write_bytes(f->image, data, image_len);
	ota_sha256(data, image_len, f->sha);
	free(data);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 3; i++) {
		EVP_PKEY_free(f->roots[i]);
		fleetota__v1__public_key__free_unpacked(f->root_pubs[i], NULL);
	}
	EVP_PKEY_free(f->op);
	fleetota__v1__public_key__free_unpacked(f->op_pub, NULL);
	fleetota__v1__signed__free_unpacked(f->rootlist, NULL);
	fleetota__v1__signed__free_unpacked(f->keylist, NULL);
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static Fleetota__V1__Signed *manifest_new(struct fixture *f, uint64_t issued_at)
{
	struct kr_diag diag;
	uint8_t *body;
	size_t len;
	const char *revs[] = {"A"};
	struct kr_manifest_spec ms = {.product = "acme",
				      .version = "1.0.0",
				      .version_code = 100,
				      .hw_revisions = revs,
				      .n_hw_revisions = 1,
				      .issued_at = issued_at,
				      .image_name = "fw.bin"};
	assert_int_equal(kr_image_hash(f->image, f->sha, &f->size, &diag), OTA_OK);
	assert_int_equal(f->size, 3 * KR_IO_CHUNK + 123);
	assert_int_equal(kr_manifest_build(&ms, f->sha, f->size, &body, &len, &diag), OTA_OK);
	Fleetota__V1__Signed *env = signed_new(body, len, OTA_OBJ_MANIFEST, &f->op, 1);
	free(body);
	return env;
}

static void test_chain(void **state)
{
	struct fixture *f = *state;
	struct kr_verifier v;
	struct kr_diag diag;
	struct ota_arena *arena;
	Fleetota__V1__Manifest *m;
	kr_verifier_init(&v, 1500);
	assert_int_equal(kr_verify_root_anchor(&v, f->rootlist, &diag), OTA_OK);
	assert_int_equal(kr_verify_keylist(&v, f->keylist, &diag), OTA_OK);
	Fleetota__V1__Signed *env = manifest_new(f, 1500);
	assert_int_equal(kr_verifier_arena(&v, OTA_DECODE_ARENA_BYTES, &arena), OTA_OK);
	assert_int_equal(kr_verify_manifest(&v, env, arena, &m, &diag), OTA_OK);
	assert_string_equal(m->product, "acme");
	assert_int_equal(kr_verify_image_file(m, f->image, &diag), OTA_OK);
	fleetota__v1__signed__free_unpacked(env, NULL);
	/* op key not valid at issued_at */
	env = manifest_new(f, 2500);
	assert_int_equal(kr_verify_manifest(&v, env, arena, &m, &diag), OTA_ERR_KEY_EXPIRED);
	fleetota__v1__signed__free_unpacked(env, NULL);
	/* a device already on KeyList 1 refuses it again */
	v.keylist_floor = 1;
	assert_int_equal(kr_verify_keylist(&v, f->keylist, &diag), OTA_ERR_KEYLIST_ROLLBACK);
	kr_verifier_release(&v);
}

static void test_threshold(void **state)
{
	struct fixture *f = *state;
	struct kr_verifier v;
	struct kr_diag diag = {{0}};
	Fleetota__V1__Signed *one = signed_new(f->keylist->body.data, f->keylist->body.len,
					       OTA_OBJ_KEYLIST, f->roots, 1);
	kr_verifier_init(&v, 0);
	assert_int_equal(kr_verify_keylist(&v, one, &diag), OTA_ERR_INVALID_ARG); /* no root */
	assert_int_equal(kr_verify_root_anchor(&v, f->rootlist, &diag), OTA_OK);
	assert_int_equal(kr_verify_keylist(&v, one, &diag), OTA_ERR_THRESHOLD);
	assert_non_null(strstr(diag.msg, "1 of the 2"));
	/* a root signature made for another type counts nothing */
	Fleetota__V1__Signed *typed = signed_new(f->keylist->body.data, f->keylist->body.len,
						 OTA_OBJ_MANIFEST, f->roots, 3);
	assert_int_equal(kr_verify_keylist(&v, typed, &diag), OTA_ERR_THRESHOLD);
	/* a RootList signed by one of its two needed keys is no anchor */
	struct kr_verifier v2;
	kr_verifier_init(&v2, 0);
	Fleetota__V1__Signed *weak = signed_new(f->rootlist->body.data, f->rootlist->body.len,
						OTA_OBJ_ROOT, f->roots, 1);
	assert_int_equal(kr_verify_root_anchor(&v2, weak, &diag), OTA_ERR_THRESHOLD);
	assert_null(v2.root);
	fleetota__v1__signed__free_unpacked(one, NULL);
	fleetota__v1__signed__free_unpacked(typed, NULL);
	fleetota__v1__signed__free_unpacked(weak, NULL);
	kr_verifier_release(&v);
	kr_verifier_release(&v2);
}

static void test_root_step(void **state)
{
	struct fixture *f = *state;
	struct kr_verifier v;
	struct kr_diag diag;
	uint8_t *body;
	size_t len;
	Fleetota__V1__RootList *r1 = fleetota__v1__root_list__unpack(NULL, f->rootlist->body.len,
								     f->rootlist->body.data);
	EVP_PKEY *fresh = key_new(OTA_ALG_ED25519);
	Fleetota__V1__PublicKey *fresh_pub = pub_new(fresh, "r3", 0, 0);
	const char *rm[] = {"r0"};
	struct kr_rootlist_spec rs = {
		.prev = r1, .add = &fresh_pub, .n_add = 1, .remove = rm, .n_remove = 1};
	assert_int_equal(kr_rootlist_build(&rs, &body, &len, &diag), OTA_OK);
	/* old r0 + r1 (threshold of v1), new r1 + r3 (threshold of v2) */
	EVP_PKEY *signers[] = {f->roots[0], f->roots[1], fresh};
	Fleetota__V1__Signed *r2 = signed_new(body, len, OTA_OBJ_ROOT, signers, 3);
	Fleetota__V1__Signed *new_only = signed_new(body, len, OTA_OBJ_ROOT, &signers[1], 2);
	EVP_PKEY *old_only_keys[] = {f->roots[0], f->roots[2]};
	Fleetota__V1__Signed *old_only = signed_new(body, len, OTA_OBJ_ROOT, old_only_keys, 2);
	free(body);
	kr_verifier_init(&v, 0);
	assert_int_equal(kr_verify_root_anchor(&v, f->rootlist, &diag), OTA_OK);
	/* r1 and r3: a threshold of the new list, but only one old key */
	assert_int_equal(kr_verify_root_step(&v, new_only, &diag), OTA_ERR_ROOT_CHAIN);
	Fleetota__V1__Signed *r3_only =
		signed_new(r2->body.data, r2->body.len, OTA_OBJ_ROOT, &signers[2], 1);
	assert_int_equal(kr_verify_root_step(&v, r3_only, &diag), OTA_ERR_ROOT_CHAIN);
	assert_int_equal(kr_verify_root_step(&v, old_only, &diag), OTA_ERR_THRESHOLD);
	assert_int_equal(v.root->version, 1);
	assert_int_equal(kr_verify_root_step(&v, r2, &diag), OTA_OK);
	assert_int_equal(v.root->version, 2);
	/* an older list teaches nothing and changes nothing */
	assert_int_equal(kr_verify_root_step(&v, f->rootlist, &diag), OTA_OK);
	assert_int_equal(v.root->version, 2);
	kr_verifier_release(&v);
	fleetota__v1__signed__free_unpacked(r2, NULL);
	fleetota__v1__signed__free_unpacked(r3_only, NULL);
	fleetota__v1__signed__free_unpacked(new_only, NULL);
	fleetota__v1__signed__free_unpacked(old_only, NULL);
	fleetota__v1__root_list__free_unpacked(r1, NULL);
	fleetota__v1__public_key__free_unpacked(fresh_pub, NULL);
	EVP_PKEY_free(fresh);
}

static void test_bundle(void **state)
{
	struct fixture *f = *state;
	struct kr_verifier v;
	struct kr_diag diag = {{0}};
	char path[160], cmd[512];
	Fleetota__V1__Signed *m = manifest_new(f, 1500);
	struct kr_bundle_parts parts = {
		.manifest = m, .keylist = f->keylist, .rootlist = f->rootlist};
	snprintf(path, sizeof(path), "%s/fw.otab", f->dir);
	assert_int_equal(kr_bundle_write(path, &parts, f->image, f->sha, f->size, &diag), OTA_OK);
	kr_verifier_init(&v, 0);
	assert_int_equal(kr_verify_root_anchor(&v, f->rootlist, &diag), OTA_OK);
	assert_int_equal(kr_verify_bundle_file(&v, path, &diag), OTA_OK);
	kr_verifier_release(&v);

	/* one image byte changed */
	snprintf(cmd, sizeof(cmd),
		 "printf Z | dd of=%s bs=1 seek=$(($(stat -c %%s %s) - 7)) conv=notrunc "
		 "status=none",
		 path, path);
	assert_int_equal(system(cmd), 0);
	kr_verifier_init(&v, 0);
	assert_int_equal(kr_verify_root_anchor(&v, f->rootlist, &diag), OTA_OK);
	assert_int_equal(kr_verify_bundle_file(&v, path, &diag), OTA_ERR_HASH);
	kr_verifier_release(&v);

	/* the image changed between hashing and bundling: no bundle is written */
	char other[160];
	snprintf(other, sizeof(other), "%s/other.otab", f->dir);
	uint8_t wrong[32];
	memcpy(wrong, f->sha, 32);
	wrong[0] ^= 1;
	assert_int_equal(kr_bundle_write(other, &parts, f->image, wrong, f->size, &diag),
			 OTA_ERR_HASH);
	assert_int_equal(access(other, F_OK), -1);
	assert_int_equal(kr_bundle_write(other, &parts, f->image, f->sha, f->size - 1, &diag),
			 OTA_ERR_SIZE);
	assert_int_equal(kr_bundle_write(other, &parts, f->image, f->sha, f->size + 1, &diag),
			 OTA_ERR_SIZE);
	assert_int_equal(access(other, F_OK), -1);
	/* no temp files left behind */
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls %s | grep tmp)\"", f->dir);
	assert_int_equal(system(cmd), 0);
	fleetota__v1__signed__free_unpacked(m, NULL);
}

static void test_manifest_build_limits(void **state)
{
	struct kr_diag diag;
	uint8_t sha[32] = {0}, *body = NULL;
	size_t len = 0;
	char long_text[OTA_MAX_STRING_BYTES + 2];
	(void)state;
	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	struct kr_manifest_spec ms = {.product = "p", .version = "1"};
	assert_int_equal(kr_manifest_build(&ms, sha, 0, &body, &len, &diag), OTA_ERR_SIZE);
	assert_int_equal(kr_manifest_build(&ms, sha, OTA_MAX_IMAGE_BYTES + 1, &body, &len, &diag),
			 OTA_ERR_SIZE);
	ms.product = long_text;
	assert_int_equal(kr_manifest_build(&ms, sha, 1, &body, &len, &diag), OTA_ERR_INVALID_ARG);
	ms.product = "p";
	ms.version = NULL;
	assert_int_equal(kr_manifest_build(&ms, sha, 1, &body, &len, &diag), OTA_ERR_INVALID_ARG);
	ms.version = "1";
	ms.issued_at = 10;
	ms.expires_at = 5;
	assert_int_equal(kr_manifest_build(&ms, sha, 1, &body, &len, &diag), OTA_ERR_INVALID_ARG);
	assert_null(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threshold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_step, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bundle, setup, teardown),
		cmocka_unit_test(test_manifest_build_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
