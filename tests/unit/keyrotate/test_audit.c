/* SPDX-License-Identifier: Apache-2.0 */
#include <sys/stat.h>

#include "helpers.h"

static void append(const char *path, const char *who, uint64_t version)
{
	struct kr_audit_entry e = {.time = 1767225600u + version,
				   .who = who,
				   .object = "manifest",
				   .version = version};
	struct kr_diag diag;
	memset(e.key_id, 0xab, sizeof(e.key_id));
	memset(e.sha256, (int)version, sizeof(e.sha256));
	assert_int_equal(kr_audit_append(path, &e, &diag), OTA_OK);
}

/* The log as lines (heap copy) and its line starts. */
static size_t read_lines(const char *path, char **ret_buf, char *lines[16])
{
	uint8_t *buf;
	size_t len, n = 0;
	assert_int_equal(kr_file_read(path, 1u << 20, &buf, &len, NULL), OTA_OK);
	char *text = realloc(buf, len + 1);
	text[len] = '\0';
	for (char *p = text; *p && n < 16; n++) {
		lines[n] = p;
		p = strchr(p, '\n') + 1;
	}
	*ret_buf = text;
	return n;
}

static size_t line_len(const char *line)
{
	return (size_t)(strchr(line, '\n') - line) + 1;
}

/* Joins lines in the given order into buf. */
static size_t join(char *buf, char *const *lines, const int *order, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = line_len(lines[order[i]]);
		memcpy(buf + len, lines[order[i]], l);
		len += l;
	}
	return len;
}

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	tmpdir_make(f->dir, sizeof(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/audit.log", f->dir);
	for (uint64_t v = 1; v <= 5; v++)
		append(f->path, v == 3 ? "carol" : "alice", v);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void test_chain_ok(void **state)
{
	struct fixture *f = *state;
	struct kr_audit_result r1, r2;
	struct kr_diag diag;
	struct stat st;
	char *buf, *lines[16];
	size_t n = read_lines(f->path, &buf, lines);
	assert_int_equal(n, 5);
	assert_int_equal(kr_audit_verify_file(f->path, &r1, &diag), OTA_OK);
	assert_int_equal(r1.records, 5);
	assert_int_equal(strlen(r1.head), 64);
	assert_int_equal(kr_audit_verify_buf(buf, strlen(buf), &r2, &diag), OTA_OK);
	assert_string_equal(r1.head, r2.head);
	assert_non_null(strstr(lines[4], r1.head));
	assert_non_null(strstr(lines[0], "\"seq\":1,"));
	assert_non_null(strstr(lines[2], "\"who\":\"carol\""));
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* an empty log is a valid, empty chain */
	assert_int_equal(kr_audit_verify_buf("", 0, &r2, &diag), OTA_OK);
	assert_int_equal(r2.records, 0);
	free(buf);
}

static void expect_bad(const char *buf, size_t len, enum ota_err err, uint64_t record)
{
	struct kr_audit_result r;
	struct kr_diag diag = {{0}};
	char want[32];
	assert_int_equal(kr_audit_verify_buf(buf, len, &r, &diag), err);
	assert_int_equal(r.bad_record, record);
	snprintf(want, sizeof(want), "record %llu ", (unsigned long long)record);
	assert_non_null(strstr(diag.msg, want));
}

static void test_tampering(void **state)
{
	struct fixture *f = *state;
	char *buf, *lines[16];
	size_t n = read_lines(f->path, &buf, lines);
	size_t total = strlen(buf);
	char *copy = malloc(total + 64);

	/* edited: one character of record 3 */
	memcpy(copy, buf, total);
	char *who = strstr(copy, "carol");
	who[0] = 'k';
	expect_bad(copy, total, OTA_ERR_HASH, 3);

	/* removed: record 2 */
	static const int removed[] = {0, 2, 3, 4};
	expect_bad(copy, join(copy, lines, removed, 4), OTA_ERR_HASH, 2);
	/* reordered: 4 before 3 */
	static const int reordered[] = {0, 1, 3, 2, 4};
	expect_bad(copy, join(copy, lines, reordered, 5), OTA_ERR_HASH, 3);
	/* duplicated: record 2 replayed */
	static const int duplicated[] = {0, 1, 1, 2};
	expect_bad(copy, join(copy, lines, duplicated, 4), OTA_ERR_HASH, 3);
	/* last line cut */
	expect_bad(buf, total - 3, OTA_ERR_FORMAT, 5);
	/* a line that is not JSON, and JSON that is not a record */
	static const int head2[] = {0, 1};
	size_t len = join(copy, lines, head2, 2);
	memcpy(copy + len, "{}\n", 3);
	expect_bad(copy, len + 3, OTA_ERR_FORMAT, 3);
	(void)n;
	free(copy);
	free(buf);
}

static void test_append_refuses_damaged_log(void **state)
{
	struct fixture *f = *state;
	char path[160];
	struct kr_diag diag;
	char *buf, *lines[16];
	read_lines(f->path, &buf, lines);
	snprintf(path, sizeof(path), "%s/damaged.log", f->dir);
	write_bytes(path, buf, strlen(buf) - 1); /* no final newline */
	struct kr_audit_entry e = {.who = "x", .object = "root", .version = 1};
	assert_int_equal(kr_audit_append(path, &e, &diag), OTA_ERR_FORMAT);
	/* an edited last record too */
	char *tail = strstr(buf, "\"who\":\"alice\",\"object\":\"manifest\",\"version\":5");
	assert_non_null(tail);
	tail[8] = 'A';
	write_bytes(path, buf, strlen(buf));
	assert_int_equal(kr_audit_append(path, &e, &diag), OTA_ERR_HASH);
	/* a signer name that does not fit */
	char long_name[KR_MAX_SIGNER_BYTES + 2];
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	e.who = long_name;
	assert_int_equal(kr_audit_append(f->path, &e, &diag), OTA_ERR_INVALID_ARG);
	/* a name with quotes is escaped, and the chain still verifies */
	e.who = "eve\",\"who\":\"x";
	assert_int_equal(kr_audit_append(f->path, &e, &diag), OTA_OK);
	struct kr_audit_result r;
	assert_int_equal(kr_audit_verify_file(f->path, &r, &diag), OTA_OK);
	assert_int_equal(r.records, 6);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chain_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tampering, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_refuses_damaged_log, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
