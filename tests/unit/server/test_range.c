/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "range-internal.h"

static void expect(const char *header, uint64_t size, enum srv_range_result want, uint64_t first,
		   uint64_t last)
{
	uint64_t f = 12345, l = 12345;
	enum srv_range_result got = srv_range_parse(header, size, &f, &l);

	if (got != want)
		fail_msg("'%s' on %llu: got %d, want %d", header ? header : "(null)",
			 (unsigned long long)size, got, want);
	if (want == SRV_RANGE_OK) {
		assert_int_equal(f, first);
		assert_int_equal(l, last);
	} else {
		assert_int_equal(f, 12345); /* untouched unless OK */
	}
}

static void test_ranges(void **state)
{
	char long_header[SRV_RANGE_MAX_HEADER + 20];

	(void)state;
	expect(NULL, 100, SRV_RANGE_NONE, 0, 0);
	expect("bytes=0-9", 100, SRV_RANGE_OK, 0, 9);
	expect("bytes=10-", 100, SRV_RANGE_OK, 10, 99);
	expect("bytes=90-200", 100, SRV_RANGE_OK, 90, 99);
	expect("bytes=-10", 100, SRV_RANGE_OK, 90, 99);
	expect("bytes=-1000", 100, SRV_RANGE_OK, 0, 99);
	expect("bytes=99-99", 100, SRV_RANGE_OK, 99, 99);
	expect("bytes=100-", 100, SRV_RANGE_UNSATISFIABLE, 0, 0);
	expect("bytes=-0", 100, SRV_RANGE_UNSATISFIABLE, 0, 0);
	expect("bytes=0-", 0, SRV_RANGE_UNSATISFIABLE, 0, 0);
	/* ignored: send everything */
	expect("bytes=9-1", 100, SRV_RANGE_NONE, 0, 0);
	expect("bytes=0-1,5-6", 100, SRV_RANGE_NONE, 0, 0);
	expect("items=0-1", 100, SRV_RANGE_NONE, 0, 0);
	expect("bytes=a-b", 100, SRV_RANGE_NONE, 0, 0);
	expect("bytes=", 100, SRV_RANGE_NONE, 0, 0);
	expect("bytes=-", 100, SRV_RANGE_NONE, 0, 0);
	expect("bytes=99999999999999999999999-", 100, SRV_RANGE_NONE, 0, 0);
	expect("bytes=18446744073709551615-", UINT64_MAX, SRV_RANGE_UNSATISFIABLE, 0, 0);
	memset(long_header, '1', sizeof(long_header) - 1);
	memcpy(long_header, "bytes=", 6);
	long_header[sizeof(long_header) - 2] = '-';
	long_header[sizeof(long_header) - 1] = '\0';
	expect(long_header, 100, SRV_RANGE_NONE, 0, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ranges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
