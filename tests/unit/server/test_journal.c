/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The report journal (server/src/device/journal.c): order, durability
 * across a reopen, the size cap (back-pressure), rows that fail the limits,
 * a torn WAL tail, a file that is no journal, one process per directory.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "journal-internal.h"

static void make_dir(char dir[32])
{
	snprintf(dir, 32, "/tmp/srv-journal-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void rm_dir(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static enum ota_err append(struct srv_journal *j, const char *device, uint64_t seq,
			   const char *report)
{
	struct srv_journal_entry e = {0};

	snprintf(e.device, sizeof(e.device), "%s", device);
	e.seq = seq;
	memset(e.digest, (int)seq, sizeof(e.digest));
	e.refused = (unsigned)seq % 3u;
	e.merged = 1;
	e.flushed = seq % 2u == 0;
	e.report = (char *)report;
	e.report_len = strlen(report);
	return srv_journal_append(j, &e);
}

static void test_order_and_reopen(void **state)
{
	struct srv_journal_entry entries[8];
	struct srv_journal *j = NULL;
	char dir[32], text[64];
	uint64_t rows, bytes;
	size_t n, skipped;

	(void)state;
	make_dir(dir);
	assert_int_equal(srv_journal_open(dir, true, 0, &j), OTA_OK);
	for (uint64_t seq = 1; seq <= 5; seq++) {
		snprintf(text, sizeof(text), "{\"seq\":%llu}", (unsigned long long)seq);
		assert_int_equal(append(j, seq % 2 ? "dev-a" : "dev-b", seq, text), OTA_OK);
	}
	srv_journal_pending(j, &rows, &bytes);
	assert_int_equal(rows, 5);
	assert_true(bytes > 5 * SRV_JOURNAL_ROW_OVERHEAD);
	assert_int_equal(srv_journal_read(j, entries, 3, SIZE_MAX, &n, &skipped), OTA_OK);
	assert_int_equal(n, 3);
	assert_int_equal(skipped, 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(entries[i].seq, i + 1);
		assert_int_equal(entries[i].digest[31], (uint8_t)(i + 1));
		assert_int_equal(entries[i].refused, (i + 1) % 3);
		assert_int_equal(entries[i].flushed, (i + 1) % 2 == 0);
		assert_string_equal(entries[i].device, (i + 1) % 2 ? "dev-a" : "dev-b");
	}
	assert_string_equal(entries[2].report, "{\"seq\":3}");
	assert_int_equal(srv_journal_consume(j, entries[1].id), OTA_OK);
	srv_journal_entries_clear(entries, n);
	srv_journal_close(j);

	/* what was not consumed is there again, in order */
	j = NULL;
	assert_int_equal(srv_journal_open(dir, false, 0, &j), OTA_OK);
	srv_journal_pending(j, &rows, NULL);
	assert_int_equal(rows, 3);
	/* a byte bound: the first row always, then none once it is reached */
	assert_int_equal(srv_journal_read(j, entries, 8, 1, &n, NULL), OTA_OK);
	assert_int_equal(n, 1);
	assert_int_equal(entries[0].seq, 3);
	srv_journal_entries_clear(entries, n);
	assert_int_equal(srv_journal_read(j, entries, 8, 2 * strlen("{\"seq\":3}"), &n, NULL),
			 OTA_OK);
	assert_int_equal(n, 2);
	srv_journal_entries_clear(entries, n);
	assert_int_equal(srv_journal_read(j, entries, 8, SIZE_MAX, &n, NULL), OTA_OK);
	assert_int_equal(n, 3);
	assert_int_equal(entries[0].seq, 3);
	assert_int_equal(entries[2].seq, 5);
	assert_int_equal(srv_journal_consume(j, entries[2].id), OTA_OK);
	srv_journal_entries_clear(entries, n);
	srv_journal_pending(j, &rows, &bytes);
	assert_int_equal(rows, 0);
	assert_int_equal(bytes, 0);
	srv_journal_close(j);
	rm_dir(dir);
}

static void test_cap(void **state)
{
	size_t big_len = SRV_JOURNAL_MAX_REPORT_BYTES;
	char *big = malloc(big_len + 2);
	struct srv_journal_entry entries[1];
	struct srv_journal *j = NULL;
	char dir[32];
	size_t n;

	(void)state;
	assert_non_null(big);
	memset(big, 'x', big_len + 1);
	big[big_len + 1] = '\0';
	make_dir(dir);
	assert_int_equal(srv_journal_open(dir, false, 4u * 1024u * 1024u, &j), OTA_OK);
	/* one byte over the largest report: refused */
	assert_int_equal(append(j, "dev-a", 1, big), OTA_ERR_SIZE);
	big[big_len] = '\0';
	/* 4 MiB hold three reports of 1 MiB and their rows' cost, not four */
	for (uint64_t seq = 1; seq <= 3; seq++)
		assert_int_equal(append(j, "dev-a", seq, big), OTA_OK);
	assert_int_equal(append(j, "dev-a", 4, big), OTA_ERR_BUSY);
	assert_int_equal(append(j, "dev-a", 4, "{}"), OTA_OK); /* a small one fits */
	assert_int_equal(srv_journal_read(j, entries, 1, SIZE_MAX, &n, NULL), OTA_OK);
	assert_int_equal(n, 1);
	assert_int_equal(srv_journal_consume(j, entries[0].id), OTA_OK);
	srv_journal_entries_clear(entries, n);
	assert_int_equal(append(j, "dev-a", 5, big), OTA_OK); /* room again */
	assert_int_equal(append(j, "", 6, "{}"), OTA_ERR_SIZE);
	srv_journal_close(j);
	free(big);
	rm_dir(dir);
}

static void test_bad_rows(void **state)
{
	struct srv_journal_entry entries[8];
	struct srv_journal *j = NULL;
	char dir[32], path[64];
	sqlite3 *db = NULL;
	size_t n, skipped;

	(void)state;
	make_dir(dir);
	assert_int_equal(srv_journal_open(dir, true, 0, &j), OTA_OK);
	assert_int_equal(append(j, "dev-a", 1, "{}"), OTA_OK);
	srv_journal_close(j);
	snprintf(path, sizeof(path), "%s/reports.db", dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	/* a short digest, a negative seq, a NULL report, an unknown error, a
	 * device id of 200 bytes */
	assert_int_equal(sqlite3_exec(db,
				      "INSERT INTO reports (device, seq, digest, refused, merged,"
				      " device_error, flushed, report) VALUES"
				      " ('dev-b', 2, x'00', 0, 1, 0, 0, '{}'),"
				      " ('dev-b', -3, zeroblob(32), 0, 1, 0, 0, '{}'),"
				      " ('dev-b', 4, zeroblob(32), 0, 1, 0, 0, ''),"
				      " ('dev-b', 5, zeroblob(32), 0, 1, 100000, 0, '{}'),"
				      " (printf('%.200c', 'd'), 6, zeroblob(32), 0, 1, 0, 0, '{}'),"
				      " ('dev-b', 7, zeroblob(32), 0, 1, 0, 1, '{\"ok\":1}')",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	j = NULL;
	assert_int_equal(srv_journal_open(dir, true, 0, &j), OTA_OK);
	assert_int_equal(srv_journal_read(j, entries, 8, SIZE_MAX, &n, &skipped), OTA_OK);
	assert_int_equal(n, 2);
	assert_int_equal(skipped, 5);
	assert_int_equal(entries[0].seq, 1);
	assert_int_equal(entries[1].seq, 7);
	assert_true(entries[1].flushed);
	srv_journal_entries_clear(entries, n);
	/* the bad rows are gone */
	assert_int_equal(srv_journal_read(j, entries, 8, SIZE_MAX, &n, &skipped), OTA_OK);
	assert_int_equal(n, 2);
	assert_int_equal(skipped, 0);
	srv_journal_entries_clear(entries, n);
	srv_journal_close(j);
	rm_dir(dir);
}

/* A process appends 20 reports (each synced) and dies without closing; its
 * WAL loses its last 100 bytes (a torn write): the reports before the torn
 * one are all there, in order, and the journal takes more. */
static void test_torn_tail(void **state)
{
	struct srv_journal_entry entries[32];
	struct srv_journal *j = NULL;
	char dir[32], wal[64];
	struct stat st;
	int status;
	size_t n;
	pid_t pid;

	(void)state;
	make_dir(dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (srv_journal_open(dir, true, 0, &j) != OTA_OK)
			_exit(2);
		for (uint64_t seq = 1; seq <= 20; seq++) {
			if (append(j, "dev-a", seq, "{\"a\":\"0123456789\"}") != OTA_OK)
				_exit(3);
		}
		_exit(0); /* no close: the WAL stays as it is */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(wal, sizeof(wal), "%s/reports.db-wal", dir);
	assert_int_equal(stat(wal, &st), 0);
	assert_true(st.st_size > 100);
	assert_int_equal(truncate(wal, st.st_size - 100), 0);
	assert_int_equal(srv_journal_open(dir, true, 0, &j), OTA_OK);
	assert_int_equal(srv_journal_read(j, entries, 32, SIZE_MAX, &n, NULL), OTA_OK);
	assert_true(n >= 18 && n < 20);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(entries[i].seq, i + 1);
	srv_journal_entries_clear(entries, n);
	assert_int_equal(append(j, "dev-a", 21, "{}"), OTA_OK);
	srv_journal_close(j);
	rm_dir(dir);
}

static void test_not_a_journal_and_lock(void **state)
{
	struct srv_journal *j = NULL, *other = NULL;
	char dir[32], path[64], cmd[160];
	uint64_t rows;
	FILE *f;

	(void)state;
	make_dir(dir);
	snprintf(path, sizeof(path), "%s/reports.db", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("not a database, not at all: a file of text that is long enough\n", f);
	for (int i = 0; i < 100; i++)
		fputs("more text, more text, more text, more text, more text\n", f);
	fclose(f);
	assert_int_equal(srv_journal_open(dir, true, 0, &j), OTA_OK);
	srv_journal_pending(j, &rows, NULL);
	assert_int_equal(rows, 0);
	snprintf(cmd, sizeof(cmd), "ls %s/reports.db.corrupt-* >/dev/null 2>&1", dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(append(j, "dev-a", 1, "{}"), OTA_OK);
	/* one process per directory (flock: also a second open in this one) */
	assert_int_equal(srv_journal_open(dir, true, 0, &other), OTA_ERR_BUSY);
	assert_null(other);
	srv_journal_close(j);
	assert_int_equal(srv_journal_open(dir, true, 0, &other), OTA_OK);
	srv_journal_close(other);
	srv_journal_close(NULL);
	rm_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_reopen),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_bad_rows),
		cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_not_a_journal_and_lock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
