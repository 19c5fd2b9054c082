/* SPDX-License-Identifier: Apache-2.0 */
/* Migration file names; applying them is covered by the integration tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "migrate-internal.h"

static void test_names(void **state)
{
	unsigned v = 0;

	(void)state;
	assert_true(srv_migrate_name_valid("0001_core.sql", &v));
	assert_int_equal(v, 1);
	assert_true(srv_migrate_name_valid("0010_rollout_v2.sql", &v));
	assert_int_equal(v, 10);
	assert_false(srv_migrate_name_valid("0000_zero.sql", &v));
	assert_false(srv_migrate_name_valid("001_short.sql", &v));
	assert_false(srv_migrate_name_valid("0001-core.sql", &v));
	assert_false(srv_migrate_name_valid("0001_Core.sql", &v));
	assert_false(srv_migrate_name_valid("0001_.sql", &v));
	assert_false(srv_migrate_name_valid("0001_core.sql.bak", &v));
	assert_false(srv_migrate_name_valid("abcd_core.sql", &v));
}

static void test_code_names(void **state)
{
	(void)state;
	assert_true(srv_migrate_code_name_valid("rollout_engine.sql"));
	assert_true(srv_migrate_code_name_valid("a.sql"));
	assert_false(srv_migrate_code_name_valid(".sql"));
	assert_false(srv_migrate_code_name_valid("Rollout.sql"));
	assert_false(srv_migrate_code_name_valid("roll-out.sql"));
	assert_false(srv_migrate_code_name_valid("rollout.sql.orig"));
	assert_false(srv_migrate_code_name_valid("../x.sql"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_code_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
