/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kr_stream (keyrotate/src/stream.c): the overlapped read / hash / write
 * of ota-keys sign gives the same digest and the same bytes as a plain
 * loop, at every size around its chunk and ring boundaries; its limit,
 * read and write errors, and no blocks left reserved past the copy's end; kr_bundle_write's refusal of an image that is
 * not the one that was hashed (no output left behind); and the one-pass
 * bundle of ota-keys sign (kr_bundle_stage + kr_bundle_commit): the same
 * bundle as kr_bundle_write whether the header size was guessed right or
 * wrong, and nothing left behind when it fails.
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

	/*
	 * over the limit while copying: the reader stops, the writer ends
	 * with what was hashed (no more than the limit and a chunk written)
	 */
	char out_path[128];
	snprintf(out_path, sizeof(out_path), "%s/out", dir);
	in = open(in_path, O_RDONLY);
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(in >= 0 && out >= 0);
	assert_int_equal(ota_sha256_init(&sha), OTA_OK);
	assert_int_equal(kr_stream(in, out, 2 * KR_STREAM_CHUNK - 1, &sha, &got), OTA_ERR_SIZE);
	ota_sha256_abort(&sha);
	assert_int_equal(close(out), 0);
	close(in);
	struct stat st;
	assert_int_equal(stat(out_path, &st), 0);
	assert_true((uint64_t)st.st_size <= 3 * (uint64_t)KR_STREAM_CHUNK);
	/* the blocks reserved for the whole input are given back past the end */
	assert_true((uint64_t)st.st_blocks * 512u <= (uint64_t)st.st_size + 65536u);
	unlink(out_path);

	/* a copy of the whole input reserves no more than it wrote either */
	in = open(in_path, O_RDONLY);
	out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(in >= 0 && out >= 0);
	assert_int_equal(ota_sha256_init(&sha), OTA_OK);
	assert_int_equal(kr_stream(in, out, len, &sha, &got), OTA_OK);
	ota_sha256_abort(&sha);
	assert_int_equal(close(out), 0);
	close(in);
	assert_int_equal(stat(out_path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, len);
	assert_true((uint64_t)st.st_blocks * 512u <= (uint64_t)st.st_size + 65536u);
	unlink(out_path);

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

/* An image of len bytes in a temp dir, its digest, and bundle parts with a small manifest. */
struct bundle_case {
	char dir[64], img[128], out[128];
	size_t len;
	uint8_t *data;
	uint8_t sha[32];
	uint8_t body[4];
	Fleetota__V1__Signed manifest;
	struct kr_bundle_parts parts;
};

static void bundle_case_make(struct bundle_case *bc, size_t len)
{
	memset(bc, 0, sizeof(*bc));
	tmpdir_make(bc->dir, sizeof(bc->dir));
	snprintf(bc->img, sizeof(bc->img), "%s/image", bc->dir);
	snprintf(bc->out, sizeof(bc->out), "%s/b.otab", bc->dir);
	bc->len = len;
	bc->data = pattern(len);
	write_bytes(bc->img, bc->data, len);
	assert_int_equal(ota_sha256(bc->data, len, bc->sha), OTA_OK);
	const uint8_t body[4] = {1, 2, 3, 4};
	memcpy(bc->body, body, sizeof(body));
	fleetota__v1__signed__init(&bc->manifest);
	bc->manifest.body.data = bc->body;
	bc->manifest.body.len = sizeof(bc->body);
	bc->parts.manifest = &bc->manifest;
}

/* kr_bundle_write with an image that is not the hashed one: refused, no file */
static void test_bundle_changed_image(void **state)
{
	(void)state;
	struct bundle_case bc;
	bundle_case_make(&bc, 2 * KR_STREAM_CHUNK + 77);
	char *dir = bc.dir, *img = bc.img, *out = bc.out;
	size_t len = bc.len;
	uint8_t *data = bc.data, *sha = bc.sha;
	struct kr_bundle_parts parts = bc.parts;
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

/* the bundle kr_bundle_write makes of img with this manifest body, and its bytes */
static uint8_t *reference_bundle(const char *dir, const char *img, const uint8_t *sha, size_t len,
				 const struct kr_bundle_parts *parts, size_t *ret_len)
{
	char ref[128];
	struct kr_diag diag = {{0}};
	snprintf(ref, sizeof(ref), "%s/ref.otab", dir);
	assert_int_equal(kr_bundle_write(ref, parts, img, sha, len, &diag), OTA_OK);
	uint8_t *bytes = file_bytes(ref, ret_len);
	unlink(ref);
	return bytes;
}

/* kr_bundle_stage + kr_bundle_commit: one pass, the same bundle; a wrong guess costs a pass */
static void test_bundle_one_pass(void **state)
{
	(void)state;
	char cmd[256];
	struct bundle_case bc;
	bundle_case_make(&bc, 3 * KR_STREAM_CHUNK + 5);
	char *dir = bc.dir, *img = bc.img, *out = bc.out;
	size_t len = bc.len;
	struct kr_diag diag = {{0}};
	size_t want_len = 0;
	uint8_t *want = reference_bundle(dir, img, bc.sha, len, &bc.parts, &want_len);
	uint64_t offset = 0;
	assert_int_equal(kr_bundle_data_offset(&bc.parts, &offset, &diag), OTA_OK);
	assert_int_equal(offset + len, want_len);

	/* the right guess, a guess one byte short and one byte long: the same bundle */
	const uint64_t guesses[] = {offset, offset - 1, offset + 1};
	for (size_t g = 0; g < sizeof(guesses) / sizeof(guesses[0]); g++) {
		struct kr_bundle_stage st;
		assert_int_equal(kr_bundle_stage(out, img, guesses[g], &st, &diag), OTA_OK);
		assert_int_equal(st.size, len);
		assert_memory_equal(st.sha256, bc.sha, 32);
		assert_int_equal(kr_bundle_commit(&st, out, &bc.parts, &diag), OTA_OK);
		kr_bundle_stage_release(&st);
		size_t got_len = 0;
		uint8_t *got = file_bytes(out, &got_len);
		assert_int_equal(got_len, want_len);
		assert_memory_equal(got, want, want_len);
		free(got);
		/* only the image and the bundle: no temp file left */
		snprintf(cmd, sizeof(cmd), "test \"$(ls '%s' | tr '\\n' ' ')\" = 'b.otab image '",
			 dir);
		assert_int_equal(system(cmd), 0);
		unlink(out);
	}

	/* an image that cannot be read, an empty image: refused, nothing left behind */
	struct kr_bundle_stage st;
	char missing[128], empty[128];
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	assert_int_equal(kr_bundle_stage(out, missing, offset, &st, &diag), OTA_ERR_STORAGE);
	assert_non_null(strstr(diag.msg, "cannot open image"));
	kr_bundle_stage_release(&st);
	snprintf(empty, sizeof(empty), "%s/empty", dir);
	write_bytes(empty, bc.data, 0);
	assert_int_equal(kr_bundle_stage(out, empty, offset, &st, &diag), OTA_ERR_SIZE);
	assert_non_null(strstr(diag.msg, "is empty"));
	kr_bundle_stage_release(&st);
	unlink(empty);
	/* staged but released without a commit (the signing failed): nothing left */
	assert_int_equal(kr_bundle_stage(out, img, offset, &st, &diag), OTA_OK);
	kr_bundle_stage_release(&st);
	kr_bundle_stage_release(&st);
	snprintf(cmd, sizeof(cmd), "test \"$(ls '%s')\" = image", dir);
	assert_int_equal(system(cmd), 0);
	free(want);
	free(bc.data);
	tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_limit_and_errors),
		cmocka_unit_test(test_bundle_changed_image),
		cmocka_unit_test(test_bundle_one_pass),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
