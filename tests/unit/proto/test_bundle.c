/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleetota/bundle.h"
#include "fleetota/limits.h"
#include "proto_test_util.h"

static void test_prefix_round_trip(void **state)
{
	(void)state;
	uint8_t prefix[OTA_BUNDLE_PREFIX_BYTES];
	uint32_t len = 0;
	assert_int_equal(ota_bundle_prefix_write(0x01020304 & 0x3ffff, prefix), OTA_OK);
	assert_memory_equal(prefix, "OTAB", 4);
	assert_int_equal(ota_bundle_prefix_parse(prefix, &len), OTA_OK);
	assert_int_equal(len, 0x01020304 & 0x3ffff);
	/* big-endian on the wire */
	assert_int_equal(ota_bundle_prefix_write(0x00010203, prefix), OTA_OK);
	assert_int_equal(prefix[4], 0x00);
	assert_int_equal(prefix[5], 0x01);
	assert_int_equal(prefix[6], 0x02);
	assert_int_equal(prefix[7], 0x03);
}

static void test_prefix_bounds(void **state)
{
	(void)state;
	uint8_t prefix[OTA_BUNDLE_PREFIX_BYTES];
	uint32_t len = 77;
	assert_int_equal(ota_bundle_prefix_write(0, prefix), OTA_ERR_FORMAT);
	assert_int_equal(ota_bundle_prefix_write(OTA_MAX_BUNDLE_HEADER_BYTES + 1, prefix),
			 OTA_ERR_FORMAT);
	memcpy(prefix, "OTAB\xff\xff\xff\xff", 8);
	assert_int_equal(ota_bundle_prefix_parse(prefix, &len), OTA_ERR_FORMAT);
	memcpy(prefix, "OTAB\0\0\0\0", 8);
	assert_int_equal(ota_bundle_prefix_parse(prefix, &len), OTA_ERR_FORMAT);
	memcpy(prefix, "OTAC\0\0\0\x10", 8);
	assert_int_equal(ota_bundle_prefix_parse(prefix, &len), OTA_ERR_FORMAT);
	assert_int_equal(len, 77);
}

static void test_header_decode(void **state)
{
	(void)state;
	EVP_PKEY *key = ptu_keygen(OTA_ALG_ED25519);
	size_t body_len = 0;
	uint8_t *body = ptu_manifest_body(10, 1, 100, &body_len);
	Fleetota__V1__Signed *manifest = ptu_envelope(body, body_len, OTA_OBJ_MANIFEST, &key, 1);
	Fleetota__V1__BundleHeader hdr = FLEETOTA__V1__BUNDLE_HEADER__INIT;
	Fleetota__V1__BundleHeader *out = NULL;
	hdr.manifest = manifest;
	size_t len = 0;
	uint8_t *bytes = ptu_pack(&hdr.base, &len);
	assert_int_equal(ota_bundle_header_decode(bytes, len, ptu_arena(), &out), OTA_OK);
	assert_non_null(out->manifest);
	assert_null(out->keylist);
	assert_int_equal(out->manifest->body.len, body_len);
	free(bytes);

	/* no manifest */
	Fleetota__V1__BundleHeader empty = FLEETOTA__V1__BUNDLE_HEADER__INIT;
	empty.keylist = manifest;
	bytes = ptu_pack(&empty.base, &len);
	out = NULL;
	assert_int_equal(ota_bundle_header_decode(bytes, len, ptu_arena(), &out), OTA_ERR_FORMAT);
	assert_null(out);
	free(bytes);

	/* a root chain longer than the limit */
	Fleetota__V1__Signed *chain[OTA_MAX_ROOT_CHAIN + 1];
	for (size_t i = 0; i <= OTA_MAX_ROOT_CHAIN; i++)
		chain[i] = manifest;
	hdr.rootlist_chain = chain;
	hdr.n_rootlist_chain = OTA_MAX_ROOT_CHAIN + 1;
	bytes = ptu_pack(&hdr.base, &len);
	assert_int_equal(ota_bundle_header_decode(bytes, len, ptu_arena(), &out), OTA_ERR_FORMAT);
	free(bytes);
	hdr.n_rootlist_chain = 0;
	hdr.rootlist_chain = NULL;

	/* truncations never crash and never yield a header without a manifest */
	bytes = ptu_pack(&hdr.base, &len);
	for (size_t cut = 0; cut < len; cut++) {
		out = NULL;
		enum ota_err err = ota_bundle_header_decode(bytes, cut, ptu_arena(), &out);
		assert_int_equal(err, OTA_ERR_FORMAT);
	}
	assert_int_equal(
		ota_bundle_header_decode(bytes, OTA_MAX_BUNDLE_HEADER_BYTES + 1, ptu_arena(), &out),
		OTA_ERR_FORMAT);
	free(bytes);
	free(body);
	hdr.manifest = NULL;
	fleetota__v1__signed__free_unpacked(manifest, NULL);
	EVP_PKEY_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefix_round_trip),
		cmocka_unit_test(test_prefix_bounds),
		cmocka_unit_test(test_header_decode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
