/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "ratelimit-internal.h"

static void test_burst_then_refill(void **state)
{
	struct srv_ratelimit *rl = NULL;
	unsigned retry = 0;

	(void)state;
	assert_int_equal(srv_ratelimit_new(2.0, 3.0, 100, &rl), OTA_OK);
	for (int i = 0; i < 3; i++)
		assert_true(srv_ratelimit_take(rl, "dev-1", 10.0, &retry));
	assert_false(srv_ratelimit_take(rl, "dev-1", 10.0, &retry));
	assert_int_equal(retry, 1); /* 0.5 s to the next token, rounded up */
	/* another device is not affected */
	assert_true(srv_ratelimit_take(rl, "dev-2", 10.0, &retry));
	/* half a second later one token is back, not two */
	assert_true(srv_ratelimit_take(rl, "dev-1", 10.5, &retry));
	assert_false(srv_ratelimit_take(rl, "dev-1", 10.5, &retry));
	/* a long pause refills to the burst only */
	for (int i = 0; i < 3; i++)
		assert_true(srv_ratelimit_take(rl, "dev-1", 1000.0, &retry));
	assert_false(srv_ratelimit_take(rl, "dev-1", 1000.0, &retry));
	/* a clock going backwards gives nothing */
	assert_false(srv_ratelimit_take(rl, "dev-1", 5.0, &retry));
	srv_ratelimit_free(rl);
}

/* A reload's new rate and burst hold for buckets that already exist. */
static void test_set_applies_to_existing(void **state)
{
	struct srv_ratelimit *rl = NULL;
	unsigned retry = 0;

	(void)state;
	assert_int_equal(srv_ratelimit_new(1.0, 5.0, 100, &rl), OTA_OK);
	assert_true(srv_ratelimit_take(rl, "dev-1", 10.0, &retry));
	assert_int_equal(srv_ratelimit_set(rl, 10.0, 2.0), OTA_OK);
	/* refilled to the new burst (2), not the old one (5) */
	for (int i = 0; i < 2; i++)
		assert_true(srv_ratelimit_take(rl, "dev-1", 100.0, &retry));
	assert_false(srv_ratelimit_take(rl, "dev-1", 100.0, &retry));
	/* the new rate: 10 tokens a second */
	assert_true(srv_ratelimit_take(rl, "dev-1", 100.15, &retry));
	assert_int_equal(srv_ratelimit_set(rl, 0.0, 2.0), OTA_ERR_INVALID_ARG);
	assert_int_equal(srv_ratelimit_set(rl, 1.0, 0.5), OTA_ERR_INVALID_ARG);
	srv_ratelimit_free(rl);
}

static void test_slow_rate_retry_after(void **state)
{
	struct srv_ratelimit *rl = NULL;
	unsigned retry = 0;

	(void)state;
	assert_int_equal(srv_ratelimit_new(0.1, 1.0, 10, &rl), OTA_OK);
	assert_true(srv_ratelimit_take(rl, "d", 0.0, &retry));
	assert_false(srv_ratelimit_take(rl, "d", 0.0, &retry));
	assert_int_equal(retry, 10);
	srv_ratelimit_free(rl);
}

static void test_bounded_entries(void **state)
{
	struct srv_ratelimit *rl = NULL;
	char key[32];

	(void)state;
	assert_int_equal(srv_ratelimit_new(1.0, 2.0, 50, &rl), OTA_OK);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "dev-%d", i);
		assert_true(srv_ratelimit_take(rl, key, (double)i * 0.001, NULL));
		assert_true(srv_ratelimit_size(rl) <= 50);
	}
	srv_ratelimit_free(rl);
	srv_ratelimit_free(NULL);
}

static void test_bad_args(void **state)
{
	struct srv_ratelimit *rl = NULL;

	(void)state;
	assert_int_equal(srv_ratelimit_new(0.0, 1.0, 10, &rl), OTA_ERR_INVALID_ARG);
	assert_int_equal(srv_ratelimit_new(1.0, 0.5, 10, &rl), OTA_ERR_INVALID_ARG);
	assert_int_equal(srv_ratelimit_new(1.0, 1.0, 0, &rl), OTA_ERR_INVALID_ARG);
	assert_null(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_refill),
		cmocka_unit_test(test_slow_rate_retry_after),
		cmocka_unit_test(test_set_applies_to_existing),
		cmocka_unit_test(test_bounded_entries),
		cmocka_unit_test(test_bad_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
