/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fleetota/utf8.h"

static void test_valid(void **state)
{
	static const char *const ok[] = {
		"",
		"fx-model",
		"caf\xc3\xa9", /* U+00E9 */
		"\xe2\x82\xac", /* U+20AC */
		"\xef\xbf\xbf", /* U+FFFF */
		"\xf0\x9f\x98\x80", /* U+1F600 */
		"\xf4\x8f\xbf\xbf", /* U+10FFFF, the last one */
		"\xed\x9f\xbf", /* U+D7FF, before the surrogates */
		"a\xc2\x80z", /* U+0080 */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_true(ota_utf8_valid(ok[i], strlen(ok[i])));
		assert_true(ota_utf8_valid_str(ok[i]));
	}
}

static void test_invalid(void **state)
{
	static const char *const bad[] = {
		"\xff\xfe", /* the finding: ?model=%ff%fe */
		"\x80", /* a continuation byte first */
		"abc\xc3", /* truncated at the end */
		"\xe2\x82", /* truncated 3-byte form */
		"\xc3\x28", /* bad continuation */
		"\xc0\xaf", /* overlong '/' */
		"\xe0\x80\xaf", /* overlong, 3 bytes */
		"\xf0\x80\x80\xaf", /* overlong, 4 bytes */
		"\xed\xa0\x80", /* U+D800, a surrogate */
		"\xed\xbf\xbf", /* U+DFFF */
		"\xf4\x90\x80\x80", /* U+110000 */
		"\xf8\x88\x80\x80\x80", /* 5-byte form */
		"ok\xfe",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(ota_utf8_valid(bad[i], strlen(bad[i])));
		assert_false(ota_utf8_valid_str(bad[i]));
	}
	/* NUL is no text for PostgreSQL */
	assert_false(ota_utf8_valid("a\0b", 3));
	/* a length that cuts a character in two */
	assert_false(ota_utf8_valid("\xc3\xa9", 1));
	assert_false(ota_utf8_valid_str(NULL));
	assert_true(ota_utf8_valid(NULL, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
