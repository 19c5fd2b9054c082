/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fleetota/arena.h"
#include "fleetota/err.h"

static void test_names_are_the_contract(void **state)
{
	(void)state;
	/* the numbers and names travel in reports: pin them */
	assert_string_equal(ota_err_name(OTA_OK), "OTA_OK");
	assert_string_equal(ota_err_name(OTA_ERR_SIGNATURE), "OTA_ERR_SIGNATURE");
	assert_int_equal(OTA_ERR_SIGNATURE, 1);
	assert_string_equal(ota_err_name(OTA_ERR_FORMAT), "OTA_ERR_FORMAT");
	assert_int_equal(OTA_ERR_FORMAT, 14);
	assert_string_equal(ota_err_name(OTA_ERR_SELFTEST), "OTA_ERR_SELFTEST");
	assert_int_equal(OTA_ERR_SELFTEST, 19);
	assert_string_equal(ota_err_name((enum ota_err)999), "OTA_ERR_UNKNOWN");
	assert_string_equal(ota_err_name((enum ota_err) - 1), "OTA_ERR_UNKNOWN");
}

static void test_every_error_round_trips(void **state)
{
	(void)state;
	for (int i = 0; i < OTA__ERR_COUNT; i++) {
		enum ota_err back = OTA_OK;
		const char *name = ota_err_name((enum ota_err)i);
		assert_non_null(strstr(name, "OTA_"));
		assert_int_equal(ota_err_from_name(name, &back), OTA_OK);
		assert_int_equal(back, i);
		assert_non_null(ota_err_describe((enum ota_err)i));
	}
	enum ota_err untouched = OTA_ERR_HASH;
	assert_int_equal(ota_err_from_name("OTA_ERR_NOPE", &untouched), OTA_ERR_NOT_FOUND);
	assert_int_equal(untouched, OTA_ERR_HASH);
	assert_int_equal(ota_err_from_name(NULL, &untouched), OTA_ERR_INVALID_ARG);
}

static void test_arena_is_bounded(void **state)
{
	(void)state;
	uint8_t mem[256];
	struct ota_arena arena;
	ota_arena_init(&arena, mem, sizeof(mem));
	uint8_t *a = ota_arena_alloc(&arena, 100);
	uint8_t *b = ota_arena_alloc(&arena, 100);
	assert_non_null(a);
	assert_non_null(b);
	assert_true(b >= a + 100);
	assert_int_equal(((uintptr_t)b - (uintptr_t)mem) % 16, 0);
	assert_null(ota_arena_alloc(&arena, 100));
	assert_null(ota_arena_alloc(&arena, SIZE_MAX));
	ota_arena_reset(&arena);
	assert_ptr_equal(ota_arena_alloc(&arena, 200), mem);
	/* the protobuf-c allocator is the same arena */
	assert_null(arena.allocator.alloc(arena.allocator.allocator_data, 100));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_are_the_contract),
		cmocka_unit_test(test_every_error_round_trips),
		cmocka_unit_test(test_arena_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
