/* SPDX-License-Identifier: Apache-2.0 */
/* Bearer tokens: shape, randomness, hashing, header parsing, roles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "webapi-internal.h"

static void test_generate(void **state)
{
	char a[WEBAPI_TOKEN_CHARS + 1], b[WEBAPI_TOKEN_CHARS + 1];

	(void)state;
	assert_int_equal(wa_token_generate(a), OTA_OK);
	assert_int_equal(wa_token_generate(b), OTA_OK);
	assert_int_equal(strlen(a), WEBAPI_TOKEN_CHARS);
	assert_memory_equal(a, "fota_", 5);
	assert_string_not_equal(a, b);
}

static void test_hash(void **state)
{
	char hex[65];

	(void)state;
	/* SHA-256("abc") */
	assert_int_equal(wa_token_hash("abc", hex), OTA_OK);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_header(void **state)
{
	char token[WEBAPI_TOKEN_CHARS + 1], header[80], hex[65], direct[65];

	(void)state;
	assert_int_equal(wa_token_generate(token), OTA_OK);
	snprintf(header, sizeof(header), "Bearer %s", token);
	assert_int_equal(wa_token_hash_header(header, hex), OTA_OK);
	assert_int_equal(wa_token_hash(token, direct), OTA_OK);
	assert_string_equal(hex, direct);

	assert_int_equal(wa_token_hash_header(NULL, hex), OTA_ERR_FORMAT);
	assert_int_equal(wa_token_hash_header(token, hex), OTA_ERR_FORMAT);
	snprintf(header, sizeof(header), "bearer %s", token);
	assert_int_equal(wa_token_hash_header(header, hex), OTA_ERR_FORMAT);
	snprintf(header, sizeof(header), "Bearer %sx", token);
	assert_int_equal(wa_token_hash_header(header, hex), OTA_ERR_FORMAT);
	snprintf(header, sizeof(header), "Bearer %.47s'", token);
	assert_int_equal(wa_token_hash_header(header, hex), OTA_ERR_FORMAT);
	assert_int_equal(wa_token_hash_header(
				 "Bearer xota_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", hex),
			 OTA_ERR_FORMAT);
}

static void test_roles(void **state)
{
	(void)state;
	assert_int_equal(wa_role_from_name("viewer"), WA_ROLE_VIEWER);
	assert_int_equal(wa_role_from_name("operator"), WA_ROLE_OPERATOR);
	assert_int_equal(wa_role_from_name("admin"), WA_ROLE_ADMIN);
	assert_int_equal(wa_role_from_name("Admin"), WA_ROLE_NONE);
	assert_int_equal(wa_role_from_name(""), WA_ROLE_NONE);
	assert_int_equal(wa_role_from_name(NULL), WA_ROLE_NONE);
	assert_true(WA_ROLE_VIEWER < WA_ROLE_OPERATOR && WA_ROLE_OPERATOR < WA_ROLE_ADMIN);
	assert_string_equal(wa_role_name(WA_ROLE_ADMIN), "admin");
	assert_null(wa_role_name(WA_ROLE_NONE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_roles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
