/* SPDX-License-Identifier: Apache-2.0 */
/* The fixture's objects must verify with the same code the device runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fleetota/bundle.h"
#include "fleetota/trust.h"
#include "ota_fixture.h"

static uint8_t arena_mem[OTA_DECODE_ARENA_BYTES * 4];

static void test_chain_verifies(void **state)
{
	(void)state;
	struct ota_arena arena;
	EVP_PKEY *roots[2] = {ota_fx_key_new(OTA_ALG_ED25519),
			      ota_fx_key_new(OTA_ALG_ECDSA_P256_SHA256)};
	EVP_PKEY *op = ota_fx_key_new(OTA_ALG_ED25519);
	struct ota_fx_rootlist rs = {.version = 1,
				     .threshold = 2,
				     .keys = roots,
				     .n_keys = 2,
				     .signers = roots,
				     .n_signers = 2};
	Fleetota__V1__Signed *root_env = ota_fx_rootlist(&rs);
	struct ota_fx_opkey opk = {.key = op};
	struct ota_fx_keylist ks = {
		.version = 3, .keys = &opk, .n_keys = 1, .signers = roots, .n_signers = 2};
	Fleetota__V1__Signed *kl_env = ota_fx_keylist(&ks);
	uint8_t image[100];
	memset(image, 0xab, sizeof(image));
	struct ota_fx_manifest ms;
	ota_fx_manifest_init(&ms, image, sizeof(image));
	ms.signers = &op;
	ms.n_signers = 1;
	Fleetota__V1__Signed *m_env = ota_fx_manifest(&ms);

	ota_arena_init(&arena, arena_mem, sizeof(arena_mem));
	Fleetota__V1__RootList *root = NULL;
	Fleetota__V1__KeyList *kl = NULL;
	Fleetota__V1__Manifest *m = NULL;
	assert_int_equal(ota_rootlist_verify_initial(root_env, &arena, &root), OTA_OK);
	assert_int_equal(ota_keylist_verify(root, kl_env, 0, 0, &arena, &kl), OTA_OK);
	assert_int_equal(kl->version, 3);
	assert_int_equal(ota_manifest_verify(kl, m_env, &arena, &m, NULL), OTA_OK);
	assert_int_equal(m->image->size, sizeof(image));

	/* the cross-type signature is refused */
	ms.sign_type = OTA_OBJ_KEYLIST;
	Fleetota__V1__Signed *cross = ota_fx_manifest(&ms);
	assert_int_equal(ota_manifest_verify(kl, cross, &arena, &m, NULL), OTA_ERR_SIGNATURE);

	/* bundle framing and corruption land where they say */
	struct ota_fx_bundle bs = {
		.manifest = m_env, .keylist = kl_env, .image = image, .image_len = sizeof(image)};
	struct ota_fx_buf b = ota_fx_bundle_bytes(&bs);
	uint32_t hlen = 0;
	assert_int_equal(ota_bundle_prefix_parse(b.data, &hlen), OTA_OK);
	assert_int_equal(b.len, OTA_BUNDLE_PREFIX_BYTES + hlen + sizeof(image));
	ota_fx_bundle_corrupt(&b, OTA_FX_PART_IMAGE, 5);
	assert_int_equal(b.data[OTA_BUNDLE_PREFIX_BYTES + hlen + 5], 0xaa);
	ota_fx_buf_append(&b, "x", 1);
	assert_int_equal(b.len, OTA_BUNDLE_PREFIX_BYTES + hlen + sizeof(image) + 1);
	ota_fx_buf_truncate(&b, 2);
	assert_int_equal(b.len, OTA_BUNDLE_PREFIX_BYTES + hlen + sizeof(image) - 1);

	/* files round-trip */
	char *dir = ota_fx_tempdir_new();
	char *path = ota_fx_path(dir, "m.env");
	ota_fx_env_write(path, m_env);
	struct ota_fx_buf back = ota_fx_read_file(path);
	struct ota_fx_buf direct = ota_fx_env_bytes(m_env);
	assert_int_equal(back.len, direct.len);
	assert_memory_equal(back.data, direct.data, back.len);

	ota_fx_buf_free(&back);
	ota_fx_buf_free(&direct);
	ota_fx_buf_free(&b);
	free(path);
	ota_fx_tempdir_remove(dir);
	ota_fx_env_free(cross);
	ota_fx_env_free(m_env);
	ota_fx_env_free(kl_env);
	ota_fx_env_free(root_env);
	EVP_PKEY_free(op);
	EVP_PKEY_free(roots[0]);
	EVP_PKEY_free(roots[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_verifies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
