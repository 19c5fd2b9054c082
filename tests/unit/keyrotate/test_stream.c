/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kr_stream (keyrotate/src/stream.c): the overlapped read / hash / write
 * of ota-keys sign gives the same digest and the same bytes as a plain
 * loop, at every size around its chunk and ring boundaries; its limit,
 * read and write errors; and kr_bundle_write's refusal of an image that
 * is not the one that was hashed (no output left behind).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fleetota/crypto.h"
#include "helpers.h"

static uint8_t *pattern(size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	assert_non_null(buf);
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
	return buf;
}

static uint8_t *file_bytes(const char *path, size_t *ret_len)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	*ret_len = (size_t)st.st_size;
	return buf;
}

static void test_sizes(void **state)
{
	(void)state;
	char dir[64], in_path[128], out_path[128];
	tmpdir_make(dir, sizeof(dir));
	snprintf(in_path, sizeof(in_path), "%s/in", dir);
	snprintf(out_path, sizeof(out_path), "%s/out", dir);
	const size_t c = KR_STREAM_CHUNK;
	const size_t sizes[] = {0, 1, c - 1, c, c + 1, 4 * c, 5 * c + 3, 9 * c - 1};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t len = sizes[k];
		uint8_t *data = pattern(len);
		uint8_t want[32], got_hash[32];
		assert_int_equal(ota_sha256(data, len, want), OTA_OK);
		write_bytes(in_path, data, len);
		for (int copy = 0; copy < 2; copy++) {
			struct ota_sha256_ctx sha;
			struct kr_stream_result got;
			int in = open(in_path, O_RDONLY);
			int out = copy ? open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
			assert_true(in >= 0);
			/* bytes before the stream stay: the copy appends at out's offset */
			if (copy)
				assert_int_equal(write(out, "HDR", 3), 3);
			assert_int_equal(ota_sha256_init(&sha), OTA_OK);
			assert_int_equal(kr_stream(in, out, len, &sha, &got), OTA_OK);
			assert_int_equal(ota_sha256_final(&sha, got_hash), OTA_OK);
			assert_int_equal(got.bytes, len);
			assert_memory_equal(got_hash, want, 32);
			close(in);
			if (copy) {
				assert_int_equal(close(out), 0);
				size_t out_len = 0;
				uint8_t *written = file_bytes(out_path, &out_len);
				assert_int_equal(out_len, len + 3);
				assert_memory_equal(written, "HDR", 3);
				if (len)
					assert_memory_equal(written + 3, data, len);
				free(written);
			}
		}
		free(data);
	}
	tmpdir_remove(dir);
}

static void test_limit_and_errors(void **state)
{
	(void)state;
	char dir[64], in_path[128];
	tmpdir_make(dir, sizeof(dir));
	snprintf(in_path, sizeof(in_path), "%s/in", dir);
	size_t len = 3 * KR_STREAM_CHUNK + 10;
	uint8_t *data = pattern(len);
	write_bytes(in_path, data, len);
	struct ota_sha256_ctx sha;
	struct kr_stream_result got;

	/* one byte over the limit */
	int in = open(in_path, O_RDONLY);
	assert_int_equal(ota_sha256_init(&sha), OTA_OK);
	assert_int_equal(kr_stream(in, -1, len - 1, &sha, &got), OTA_ERR_SIZE);
	ota_sha256_abort(&sha);
	close(in);

	/* a full disk: the write error and its errno */
	int full = open("/dev/full", O_WRONLY);
	if (full >= 0) {
		in = open(in_path, O_RDONLY);
		assert_int_equal(ota_sha256_init(&sha), OTA_OK);
		assert_int_equal(kr_stream(in, full, len, &sha, &got), OTA_ERR_STORAGE);
		assert_int_equal(got.write_errno, ENOSPC);
		ota_sha256_abort(&sha);
		close(in);
		close(full);
	}

	/* a source that cannot be read (a directory) */
	in = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(in >= 0);
	assert_int_equal(ota_sha256_init(&sha), OTA_OK);
	assert_int_equal(kr_stream(in, -1, len, &sha, &got), OTA_ERR_STORAGE);
	assert_int_equal(got.read_errno, EISDIR);
	ota_sha256_abort(&sha);
	close(in);
	free(data);
	tmpdir_remove(dir);
}

/* kr_bundle_write with an image that is not the hashed one: refused, no file */
static void test_bundle_changed_image(void **state)
{
	(void)state;
	char dir[64], img[128], out[128];
	tmpdir_make(dir, sizeof(dir));
	snprintf(img, sizeof(img), "%s/image", dir);
	snprintf(out, sizeof(out), "%s/b.otab", dir);
	size_t len = 2 * KR_STREAM_CHUNK + 77;
	uint8_t *data = pattern(len);
	write_bytes(img, data, len);
	uint8_t sha[32], body[4] = {1, 2, 3, 4};
	assert_int_equal(ota_sha256(data, len, sha), OTA_OK);
	Fleetota__V1__Signed manifest = FLEETOTA__V1__SIGNED__INIT;
	manifest.body.data = body;
	manifest.body.len = sizeof(body);
	struct kr_bundle_parts parts = {.manifest = &manifest};
	struct kr_diag diag = {{0}};
	struct stat st;

	assert_int_equal(kr_bundle_write(out, &parts, img, sha, len - 1, &diag), OTA_ERR_SIZE);
	assert_non_null(strstr(diag.msg, "grew after it was hashed"));
	assert_int_equal(kr_bundle_write(out, &parts, img, sha, len + 1, &diag), OTA_ERR_SIZE);
	assert_non_null(strstr(diag.msg, "shrank after it was hashed"));
	uint8_t other[32];
	memcpy(other, sha, 32);
	other[31] ^= 1;
	assert_int_equal(kr_bundle_write(out, &parts, img, other, len, &diag), OTA_ERR_HASH);
	assert_non_null(strstr(diag.msg, "changed after it was hashed"));
	assert_int_equal(stat(out, &st), -1);
	/* nothing left behind: only the image in the directory */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "test \"$(ls '%s')\" = image", dir);
	assert_int_equal(system(cmd), 0);

	/* the right digest: the bundle ends with exactly the image */
	assert_int_equal(kr_bundle_write(out, &parts, img, sha, len, &diag), OTA_OK);
	size_t out_len = 0;
	uint8_t *bundle = file_bytes(out, &out_len);
	assert_true(out_len > len);
	assert_memory_equal(bundle + out_len - len, data, len);
	free(bundle);
	free(data);
	tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_limit_and_errors),
		cmocka_unit_test(test_bundle_changed_image),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
