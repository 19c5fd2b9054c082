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

/* Pieces in, hash checked before the name: a mismatch stores nothing. */
static void test_writer(void **state)
{
	static const char abc_sha[] =
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	char dir[] = "/tmp/srv-store-XXXXXX";
	char name[65], path[512];
	uint8_t expected[32], digest[32];
	struct srv_store_writer *w = NULL;
	int fd = -1;

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (int i = 0; i < 32; i++)
		sscanf(abc_sha + 2 * i, "%2hhx", &expected[i]);
	/* a wrong expected digest: OTA_ERR_HASH, the directory stays empty */
	assert_int_equal(srv_store_writer_new(dir, &w), OTA_OK);
	assert_int_equal(srv_store_writer_write(w, (const uint8_t *)"abd", 3), OTA_OK);
	assert_int_equal(srv_store_writer_commit(w, expected, digest, name), OTA_ERR_HASH);
	srv_store_writer_free(w);
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	/* in pieces, the right digest: stored under its name */
	assert_int_equal(srv_store_writer_new(dir, &w), OTA_OK);
	assert_int_equal(srv_store_writer_write(w, (const uint8_t *)"a", 1), OTA_OK);
	assert_int_equal(srv_store_writer_write(w, (const uint8_t *)"bc", 2), OTA_OK);
	assert_int_equal(srv_store_writer_commit(w, expected, digest, name), OTA_OK);
	assert_memory_equal(digest, expected, 32);
	assert_string_equal(name, abc_sha);
	srv_store_writer_free(w); /* committed: the file stays */
	assert_int_equal(srv_store_open(dir, name, 3, &fd), OTA_OK);
	close(fd);
	/* freed before commit: the temporary file goes */
	assert_int_equal(srv_store_writer_new(dir, &w), OTA_OK);
	assert_int_equal(srv_store_writer_write(w, (const uint8_t *)"x", 1), OTA_OK);
	srv_store_writer_free(w);
	srv_store_writer_free(NULL);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_add_and_open),
		cmocka_unit_test(test_writer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
