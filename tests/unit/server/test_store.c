/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store-internal.h"

static void test_names(void **state)
{
	uint8_t digest[32];
	char name[65];

	(void)state;
	for (int i = 0; i < 32; i++)
		digest[i] = (uint8_t)(i * 9);
	srv_store_name_from_sha256(digest, name);
	assert_int_equal(strlen(name), 64);
	assert_true(srv_store_name_valid(name));
	assert_false(srv_store_name_valid(NULL));
	assert_false(srv_store_name_valid("../etc/passwd"));
	name[10] = 'A';
	assert_false(srv_store_name_valid(name)); /* lowercase only */
	name[10] = 'a';
	name[63] = '\0';
	assert_false(srv_store_name_valid(name));
}

static void test_add_and_open(void **state)
{
	char dir[] = "/tmp/srv-store-XXXXXX";
	char src[256], name[65], path[512];
	int fd = -1;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/src", dir);
	f = fopen(src, "w");
	assert_non_null(f);
	fputs("abc", f);
	fclose(f);
	assert_int_equal(srv_store_add_file(dir, src, name), OTA_OK);
	/* SHA-256("abc") */
	assert_string_equal(name,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(srv_store_open(dir, name, 3, &fd), OTA_OK);
	close(fd);
	assert_int_equal(srv_store_open(dir, name, 4, &fd), OTA_ERR_SIZE);
	assert_int_equal(srv_store_open(dir, "../src", 3, &fd), OTA_ERR_FORMAT);
	assert_int_equal(
		srv_store_open(dir,
			       "0000000000000000000000000000000000000000000000000000000000000000",
			       3, &fd),
		OTA_ERR_NOT_FOUND);
	/* a symlink in the store is not followed */
	snprintf(path, sizeof(path), "%s/%s", dir,
		 "1111111111111111111111111111111111111111111111111111111111111111");
	assert_int_equal(symlink(src, path), 0);
	assert_int_equal(
		srv_store_open(dir,
			       "1111111111111111111111111111111111111111111111111111111111111111",
			       3, &fd),
		OTA_ERR_STORAGE);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	unlink(src);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_add_and_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
