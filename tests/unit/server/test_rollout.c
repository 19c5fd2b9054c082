/* SPDX-License-Identifier: Apache-2.0 */
/* The rollout driver's pure parts: Notify from a tick row, id lists, knobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rollout.h"

static void test_firmware_row(void **state)
{
	const char *row[SRV_ROLLOUT_TICK_COLUMNS] = {"42",    "c1",  "dev1", "firmware", "fw-1.1.0",
						     "1.1.0", "110", "t",    NULL};
	Fleetota__V1__Notify n;

	(void)state;
	assert_int_equal(srv_rollout_notify_from_row(row, 1700000000u, &n), OTA_OK);
	assert_int_equal(n.seq, 42);
	assert_int_equal(n.kind, FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_FIRMWARE);
	assert_string_equal(n.campaign_id, "c1");
	assert_string_equal(n.artifact, "fw-1.1.0");
	assert_string_equal(n.version, "1.1.0");
	assert_int_equal(n.version_code, 110);
	assert_true(n.is_security_update);
	assert_int_equal(n.keylist_version, 0);
	assert_int_equal(n.issued_at, 1700000000u);
}

static void test_keylist_row(void **state)
{
	const char *row[SRV_ROLLOUT_TICK_COLUMNS] = {"7",     "c1",  "dev1", "keylist", "fw-1.1.0",
						     "1.1.0", "110", "f",    "3"};
	Fleetota__V1__Notify n;

	(void)state;
	assert_int_equal(srv_rollout_notify_from_row(row, 1, &n), OTA_OK);
	assert_int_equal(n.kind, FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_KEYLIST);
	assert_int_equal(n.keylist_version, 3);
	/* a key-list step names no firmware */
	assert_int_equal(n.version_code, 0);
	assert_string_equal(n.artifact, "");
}

static void test_bad_rows(void **state)
{
	const char *unknown_kind[SRV_ROLLOUT_TICK_COLUMNS] = {"7", "c", "d", "reboot", "a",
							      "v", "1", "f", NULL};
	const char *bad_number[SRV_ROLLOUT_TICK_COLUMNS] = {"7", "c",  "d", "firmware", "a",
							    "v", "1x", "f", NULL};
	const char *negative[SRV_ROLLOUT_TICK_COLUMNS] = {"-7", "c", "d", "firmware", "a",
							  "v",	"1", "f", NULL};
	const char *no_artifact[SRV_ROLLOUT_TICK_COLUMNS] = {"7", "c", "d", "firmware", NULL,
							     "v", "1", "f", NULL};
	const char *zero_seq[SRV_ROLLOUT_TICK_COLUMNS] = {"0", "c", "d", "firmware", "a",
							  "v", "1", "f", NULL};
	const char *overflow[SRV_ROLLOUT_TICK_COLUMNS] = {
		"99999999999999999999999", "c", "d", "firmware", "a", "v", "1", "f", NULL};
	Fleetota__V1__Notify n = FLEETOTA__V1__NOTIFY__INIT;

	(void)state;
	n.seq = 99;
	assert_int_equal(srv_rollout_notify_from_row(unknown_kind, 1, &n), OTA_ERR_FORMAT);
	assert_int_equal(srv_rollout_notify_from_row(bad_number, 1, &n), OTA_ERR_FORMAT);
	assert_int_equal(srv_rollout_notify_from_row(negative, 1, &n), OTA_ERR_FORMAT);
	assert_int_equal(srv_rollout_notify_from_row(no_artifact, 1, &n), OTA_ERR_FORMAT);
	assert_int_equal(srv_rollout_notify_from_row(zero_seq, 1, &n), OTA_ERR_FORMAT);
	assert_int_equal(srv_rollout_notify_from_row(overflow, 1, &n), OTA_ERR_FORMAT);
	/* out-parameter untouched on failure */
	assert_int_equal(n.seq, 99);
}

static void test_ids(void **state)
{
	char buf[16];
	size_t len = 0;

	(void)state;
	assert_int_equal(srv_rollout_ids_close(buf, sizeof(buf), &len), OTA_OK);
	assert_string_equal(buf, "{}");
	len = 0;
	assert_int_equal(srv_rollout_ids_append(buf, sizeof(buf), &len, 1), OTA_OK);
	assert_int_equal(srv_rollout_ids_append(buf, sizeof(buf), &len, 23), OTA_OK);
	assert_int_equal(srv_rollout_ids_append(buf, sizeof(buf), &len, 456), OTA_OK);
	assert_string_equal(buf, "{1,23,456");
	/* "{1,23,456,78901" + "}" + NUL = 17 > 16: refused, unchanged */
	assert_int_equal(srv_rollout_ids_append(buf, sizeof(buf), &len, 78901), OTA_ERR_SIZE);
	assert_string_equal(buf, "{1,23,456");
	assert_int_equal(srv_rollout_ids_append(buf, sizeof(buf), &len, 7890), OTA_OK);
	assert_int_equal(srv_rollout_ids_close(buf, sizeof(buf), &len), OTA_OK);
	assert_string_equal(buf, "{1,23,456,7890}");
	assert_int_equal(len, strlen(buf));
	assert_int_equal(srv_rollout_ids_close(buf, sizeof(buf), &len), OTA_ERR_SIZE);
}

static void test_env(void **state)
{
	(void)state;
	unsetenv("OTA_TEST_KNOB");
	assert_int_equal(srv_rollout_env_uint("OTA_TEST_KNOB", 5, 1, 10), 5);
	setenv("OTA_TEST_KNOB", "7", 1);
	assert_int_equal(srv_rollout_env_uint("OTA_TEST_KNOB", 5, 1, 10), 7);
	setenv("OTA_TEST_KNOB", "11", 1);
	assert_int_equal(srv_rollout_env_uint("OTA_TEST_KNOB", 5, 1, 10), 5);
	setenv("OTA_TEST_KNOB", "-1", 1);
	assert_int_equal(srv_rollout_env_uint("OTA_TEST_KNOB", 5, 0, 10), 5);
	setenv("OTA_TEST_KNOB", "3s", 1);
	assert_int_equal(srv_rollout_env_uint("OTA_TEST_KNOB", 5, 1, 10), 5);
	unsetenv("OTA_TEST_KNOB");
}

/* Fencing: a tick's rows are published only well inside the lease it took. */
static void test_lease_valid(void **state)
{
	(void)state;
	/* lease 30 s: margin 7.5 s */
	assert_true(srv_rollout_lease_valid(1000, 1000, 30));
	assert_true(srv_rollout_lease_valid(1000 + 22499, 1000, 30));
	assert_false(srv_rollout_lease_valid(1000 + 22500, 1000, 30));
	/* a process stopped for longer than the lease resumes fenced */
	assert_false(srv_rollout_lease_valid(1000 + 600000, 1000, 30));
	/* lease 2 s: the margin is at least 500 ms */
	assert_true(srv_rollout_lease_valid(1000 + 1499, 1000, 2));
	assert_false(srv_rollout_lease_valid(1000 + 1500, 1000, 2));
	/* a clock that went backwards is not trusted */
	assert_false(srv_rollout_lease_valid(999, 1000, 30));
}

static void test_failpoint_parse(void **state)
{
	enum srv_rollout_failpoint fp = SRV_ROLLOUT_FP_NONE;
	unsigned n = 99;

	(void)state;
	assert_int_equal(srv_rollout_failpoint_parse("tick-sent", &fp, &n), OTA_OK);
	assert_int_equal(fp, SRV_ROLLOUT_FP_TICK_SENT);
	assert_int_equal(srv_rollout_failpoint_parse("tick-result", &fp, &n), OTA_OK);
	assert_int_equal(fp, SRV_ROLLOUT_FP_TICK_RESULT);
	assert_int_equal(srv_rollout_failpoint_parse("publish-3", &fp, &n), OTA_OK);
	assert_int_equal(fp, SRV_ROLLOUT_FP_PUBLISH);
	assert_int_equal(n, 3);
	fp = SRV_ROLLOUT_FP_NONE;
	n = 99;
	assert_int_equal(srv_rollout_failpoint_parse("publish-0", &fp, &n), OTA_ERR_FORMAT);
	assert_int_equal(srv_rollout_failpoint_parse("publish-", &fp, &n), OTA_ERR_FORMAT);
	assert_int_equal(srv_rollout_failpoint_parse("publish-2x", &fp, &n), OTA_ERR_FORMAT);
	assert_int_equal(srv_rollout_failpoint_parse("publish-99999999999", &fp, &n),
			 OTA_ERR_FORMAT);
	assert_int_equal(srv_rollout_failpoint_parse("publish--1", &fp, &n), OTA_ERR_FORMAT);
	assert_int_equal(srv_rollout_failpoint_parse("tick", &fp, &n), OTA_ERR_FORMAT);
	/* out-parameters untouched on failure */
	assert_int_equal(fp, SRV_ROLLOUT_FP_NONE);
	assert_int_equal(n, 99);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_firmware_row),
		cmocka_unit_test(test_keylist_row),
		cmocka_unit_test(test_bad_rows),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_lease_valid),
		cmocka_unit_test(test_failpoint_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
