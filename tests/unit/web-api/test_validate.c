/* SPDX-License-Identifier: Apache-2.0 */
/* Identifiers, tags, numbers, bundle splitting and bytea decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fleetota/bundle.h"
#include "webapi-internal.h"

static void test_ids(void **state)
{
	(void)state;
	assert_true(wa_id_valid("fw-1.1.0", 128));
	assert_true(wa_id_valid("a", 1));
	assert_false(wa_id_valid("ab", 1));
	assert_false(wa_id_valid("", 64));
	assert_false(wa_id_valid(NULL, 64));
	assert_false(wa_id_valid("../etc/passwd", 128));
	assert_false(wa_id_valid(".hidden", 128));
	assert_false(wa_id_valid("a/b", 128));
	assert_false(wa_id_valid("a b", 128));
	assert_false(wa_id_valid("a'--", 128));
	assert_true(wa_name_valid("ci pipeline@prod:1"));
	assert_false(wa_name_valid(" lead"));
	assert_true(wa_tag_valid("ring=0/eu"));
	assert_false(wa_tag_valid("x'"));
	assert_true(wa_text_valid("1.0.0-rc1 (beta)"));
	assert_false(wa_text_valid(""));
	assert_false(wa_text_valid("a\nb"));
}

static void test_numbers(void **state)
{
	uint64_t v = 7;

	(void)state;
	assert_true(wa_parse_u64("42", 1, 100, &v));
	assert_int_equal(v, 42);
	assert_false(wa_parse_u64("0", 1, 100, &v));
	assert_false(wa_parse_u64("101", 1, 100, &v));
	assert_false(wa_parse_u64("-1", 0, 100, &v));
	assert_false(wa_parse_u64("+1", 0, 100, &v));
	assert_false(wa_parse_u64("1x", 0, 100, &v));
	assert_false(wa_parse_u64("", 0, 100, &v));
	assert_false(wa_parse_u64("99999999999999999999999", 0, UINT64_MAX, &v));
	assert_int_equal(v, 42);
}

static void test_bundle_split(void **state)
{
	uint8_t buf[64] = {0};
	size_t off, len, img;

	(void)state;
	assert_int_equal(ota_bundle_prefix_write(10, buf), OTA_OK);
	assert_int_equal(wa_bundle_split(buf, 18, &off, &len, &img), OTA_OK);
	assert_int_equal(off, 8);
	assert_int_equal(len, 10);
	assert_int_equal(img, 18);
	assert_int_equal(wa_bundle_split(buf, 17, &off, &len, &img), OTA_ERR_FORMAT);
	assert_int_equal(wa_bundle_split(buf, 7, &off, &len, &img), OTA_ERR_FORMAT);
	buf[0] = 'X';
	assert_int_equal(wa_bundle_split(buf, 18, &off, &len, &img), OTA_ERR_FORMAT);
}

static void test_bytea(void **state)
{
	uint8_t out[4];
	size_t len = 99;

	(void)state;
	assert_int_equal(wa_pg_bytea_decode("\\x0aFf", out, sizeof(out), &len), OTA_OK);
	assert_int_equal(len, 2);
	assert_int_equal(out[0], 0x0a);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(wa_pg_bytea_decode("\\x0a0b0c0d0e", out, sizeof(out), &len),
			 OTA_ERR_FORMAT);
	assert_int_equal(wa_pg_bytea_decode("\\x0", out, sizeof(out), &len), OTA_ERR_FORMAT);
	assert_int_equal(wa_pg_bytea_decode("0a", out, sizeof(out), &len), OTA_ERR_FORMAT);
	assert_int_equal(wa_pg_bytea_decode("\\xzz", out, sizeof(out), &len), OTA_ERR_FORMAT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_bundle_split),
		cmocka_unit_test(test_bytea),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
