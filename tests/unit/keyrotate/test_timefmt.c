/* SPDX-License-Identifier: Apache-2.0 */
#include "helpers.h"

#define NOW 1767225600u /* 2026-01-01T00:00:00Z */

static uint64_t parse_ok(const char *text)
{
	uint64_t t = 12345;
	assert_int_equal(kr_time_parse(text, NOW, &t), OTA_OK);
	return t;
}

static void test_absolute(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("2026-01-01T00:00:00Z"), NOW);
	assert_int_equal(parse_ok("2026-01-01"), NOW);
	assert_int_equal(parse_ok("1970-01-01T00:00:01Z"), 1);
	assert_int_equal(parse_ok("2024-02-29T12:34:56Z"), 1709210096u);
	assert_int_equal(parse_ok("2000-03-01"), 951868800u);
	assert_int_equal(parse_ok("1767225600"), NOW);
	assert_int_equal(parse_ok("@1767225600"), NOW);
	assert_int_equal(parse_ok("now"), NOW);
	assert_int_equal(parse_ok("never"), 0);
	assert_int_equal(parse_ok("0"), 0);
}

static void test_relative(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("+90d"), NOW + 90u * 86400u);
	assert_int_equal(parse_ok("+12h"), NOW + 12u * 3600u);
	assert_int_equal(parse_ok("+30m"), NOW + 1800u);
	assert_int_equal(parse_ok("+45s"), NOW + 45u);
	assert_int_equal(parse_ok("-1d"), NOW - 86400u);
}

static void test_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"2026-02-30",
		"2025-02-29",
		"2026-13-01",
		"2026-01-01T24:00:00Z",
		"2026-01-01T00:00:00",
		"2026-01-01T00:00:00+01:00",
		"1969-12-31",
		"+",
		"+d",
		"+5y",
		"+-5d",
		"-99999d",
		"+99999999999999999d",
		"12a",
		"@",
		"@-1",
		"99999999999999999999",
		"10000-01-01",
		"soon",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t t = 777;
		assert_int_equal(kr_time_parse(bad[i], NOW, &t), OTA_ERR_FORMAT);
		assert_int_equal(t, 777); /* untouched on failure */
	}
}

static void test_format_round_trip(void **state)
{
	char buf[40];
	(void)state;
	assert_string_equal(kr_time_format(NOW, buf, sizeof(buf)), "2026-01-01T00:00:00Z");
	assert_string_equal(kr_time_format(0, buf, sizeof(buf)), "unset");
	for (uint64_t t = 1; t < 4000000000u; t += 123456789u) {
		uint64_t back = 0;
		kr_time_format(t, buf, sizeof(buf));
		assert_int_equal(kr_time_parse(buf, NOW, &back), OTA_OK);
		assert_int_equal(back, t);
	}
}

static void test_u64(void **state)
{
	uint64_t v = 0;
	(void)state;
	assert_int_equal(kr_u64_parse("18446744073709551615", &v), OTA_OK);
	assert_true(v == UINT64_MAX);
	assert_int_equal(kr_u64_parse("18446744073709551616", &v), OTA_ERR_FORMAT);
	assert_int_equal(kr_u64_parse("-1", &v), OTA_ERR_FORMAT);
	assert_int_equal(kr_u64_parse("1 ", &v), OTA_ERR_FORMAT);
	assert_int_equal(kr_u64_parse("", &v), OTA_ERR_FORMAT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_absolute), cmocka_unit_test(test_relative),
		cmocka_unit_test(test_rejects),	 cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_u64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
