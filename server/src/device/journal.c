/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "journal-internal.h"
#include "log-internal.h"

/* PRAGMA application_id of a report journal ("FOJ1"): any other database
 * found at the path is not ours. */
#define JOURNAL_APP_ID 0x464f4a31
#define JOURNAL_PATH_BYTES 4096u

struct srv_journal {
	pthread_mutex_t lock;
	sqlite3 *db;
	sqlite3_stmt *insert;
	sqlite3_stmt *select;
	sqlite3_stmt *delete_upto;
	sqlite3_stmt *delete_one;
	sqlite3_stmt *count_upto;
	int lock_fd;
	uint64_t max_bytes;
	uint64_t rows;
	uint64_t bytes;
};

static const char schema[] = "CREATE TABLE IF NOT EXISTS reports ("
			     " id INTEGER PRIMARY KEY,"
			     " device TEXT NOT NULL,"
			     " seq INTEGER NOT NULL,"
			     " digest BLOB NOT NULL,"
			     " refused INTEGER NOT NULL,"
			     " merged INTEGER NOT NULL,"
			     " device_error INTEGER NOT NULL,"
			     " flushed INTEGER NOT NULL,"
			     " report TEXT NOT NULL)";

static uint64_t row_cost(size_t report_len)
{
	return (uint64_t)report_len + SRV_JOURNAL_ROW_OVERHEAD;
}

/* mkdir -p with 0700 for what it makes. */
static bool make_dirs(const char *dir)
{
	char path[JOURNAL_PATH_BYTES];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return false;
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return false;
		if (i < len)
			path[i] = '/';
	}
	return true;
}

static bool exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return true;
	srv_log(SRV_LOG_ERROR, "journal: %s: %s", sql, msg != NULL ? msg : "failed");
	sqlite3_free(msg);
	return false;
}

/* The first column of the first row of sql as text into out ("" if none). */
static bool query_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
	sqlite3_stmt *st = NULL;
	int rc;

	out[0] = '\0';
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return false;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

static void db_close(struct srv_journal *j)
{
	sqlite3_finalize(j->insert);
	sqlite3_finalize(j->select);
	sqlite3_finalize(j->delete_upto);
	sqlite3_finalize(j->delete_one);
	sqlite3_finalize(j->count_upto);
	j->insert = j->select = j->delete_upto = j->delete_one = j->count_upto = NULL;
	sqlite3_close(j->db);
	j->db = NULL;
}

enum db_open_rc { DB_OK, DB_CORRUPT, DB_FAILED };

/* Opens path, checks it is a sound journal, prepares the statements. */
static enum db_open_rc db_open(struct srv_journal *j, const char *path, bool sync)
{
	char text[256], pragma[96];
	uint64_t pages;
	sqlite3_stmt *st = NULL;

	if (sqlite3_open_v2(path, &j->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		srv_log(SRV_LOG_ERROR, "journal: cannot open %s: %s", path,
			j->db != NULL ? sqlite3_errmsg(j->db) : "out of memory");
		return DB_FAILED;
	}
	sqlite3_busy_timeout(j->db, 1000);
	sqlite3_extended_result_codes(j->db, 1);
	/* a file that is no database at all fails here (SQLITE_NOTADB) */
	if (!query_text(j->db, "PRAGMA journal_mode=WAL", text, sizeof(text)))
		return DB_CORRUPT;
	if (strcmp(text, "wal") != 0) {
		srv_log(SRV_LOG_ERROR, "journal: %s: WAL mode refused (%s)", path, text);
		return DB_FAILED;
	}
	if (!query_text(j->db, "PRAGMA quick_check", text, sizeof(text)) ||
	    strcmp(text, "ok") != 0) {
		srv_log(SRV_LOG_ERROR, "journal: %s fails quick_check: %s", path, text);
		return DB_CORRUPT;
	}
	if (!query_text(j->db, "PRAGMA application_id", text, sizeof(text)))
		return DB_CORRUPT;
	if (strtol(text, NULL, 10) != JOURNAL_APP_ID) {
		if (!query_text(j->db, "SELECT count(*) FROM sqlite_schema", text, sizeof(text)))
			return DB_CORRUPT;
		if (strcmp(text, "0") != 0) {
			srv_log(SRV_LOG_ERROR, "journal: %s is not a report journal", path);
			return DB_CORRUPT;
		}
	}
	/* a hard stop twice the cap (the cap itself is counted in rows and
	 * bytes, below): the file never grows without bound */
	pages = (j->max_bytes * 2u + 16u * 1024u * 1024u) / 4096u;
	snprintf(pragma, sizeof(pragma), "PRAGMA max_page_count=%llu", (unsigned long long)pages);
	if (!exec(j->db, "PRAGMA application_id=1179601457") ||
	    !exec(j->db, sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL") ||
	    !query_text(j->db, pragma, text, sizeof(text)) || !exec(j->db, schema))
		return DB_FAILED;
	if (sqlite3_prepare_v2(j->db,
			       "INSERT INTO reports (device, seq, digest, refused, merged,"
			       " device_error, flushed, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			       -1, &j->insert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->db,
			       "SELECT id, device, seq, digest, refused, merged, device_error,"
			       " flushed, report FROM reports ORDER BY id LIMIT ?",
			       -1, &j->select, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->db, "DELETE FROM reports WHERE id <= ?", -1, &j->delete_upto,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->db, "DELETE FROM reports WHERE id = ?", -1, &j->delete_one,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->db,
			       "SELECT count(*), coalesce(sum(length(CAST(report AS BLOB))), 0)"
			       " FROM reports WHERE id <= ?",
			       -1, &j->count_upto, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->db,
			       "SELECT count(*), coalesce(sum(length(CAST(report AS BLOB))), 0)"
			       " FROM reports",
			       -1, &st, NULL) != SQLITE_OK) {
		srv_log(SRV_LOG_ERROR, "journal: %s: %s", path, sqlite3_errmsg(j->db));
		return DB_CORRUPT;
	}
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return DB_CORRUPT;
	}
	j->rows = (uint64_t)sqlite3_column_int64(st, 0);
	j->bytes = (uint64_t)sqlite3_column_int64(st, 1) + j->rows * SRV_JOURNAL_ROW_OVERHEAD;
	sqlite3_finalize(st);
	return DB_OK;
}

enum ota_err srv_journal_open(const char *dir, bool sync, uint64_t max_bytes,
			      struct srv_journal **ret_journal)
{
	char path[JOURNAL_PATH_BYTES], aside[JOURNAL_PATH_BYTES + 40];
	struct srv_journal *j;
	enum db_open_rc rc;

	if (snprintf(path, sizeof(path), "%s/reports.db", dir) >= (int)sizeof(path))
		return OTA_ERR_INVALID_ARG;
	if (!make_dirs(dir)) {
		srv_log(SRV_LOG_ERROR, "journal: cannot make %s: %s", dir, strerror(errno));
		return OTA_ERR_STORAGE;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return OTA_ERR_NOMEM;
	pthread_mutex_init(&j->lock, NULL);
	j->lock_fd = -1;
	j->max_bytes = max_bytes < SRV_JOURNAL_MIN_BYTES ? SRV_JOURNAL_MIN_BYTES : max_bytes;
	snprintf(aside, sizeof(aside), "%s/lock", dir);
	j->lock_fd = open(aside, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->lock_fd < 0) {
		srv_log(SRV_LOG_ERROR, "journal: cannot open %s: %s", aside, strerror(errno));
		srv_journal_close(j);
		return OTA_ERR_STORAGE;
	}
	if (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		srv_log(SRV_LOG_ERROR, "journal: %s is in use by another process", dir);
		srv_journal_close(j);
		return OTA_ERR_BUSY;
	}
	rc = db_open(j, path, sync);
	if (rc == DB_CORRUPT) {
		db_close(j);
		snprintf(aside, sizeof(aside), "%s.corrupt-%lld", path, (long long)time(NULL));
		srv_log(SRV_LOG_ERROR,
			"journal: %s moved to %s; its reports are not ingested (inspect it)", path,
			aside);
		if (rename(path, aside) != 0) {
			srv_journal_close(j);
			return OTA_ERR_STORAGE;
		}
		/* its WAL belongs to it: never replayed into the new one */
		snprintf(path + strlen(path), sizeof(path) - strlen(path), "-wal");
		snprintf(aside + strlen(aside), sizeof(aside) - strlen(aside), "-wal");
		(void)rename(path, aside);
		/* and its shared-memory index describes that WAL: gone */
		memcpy(path + strlen(path) - 4, "-shm", 4);
		(void)unlink(path);
		path[strlen(path) - 4] = '\0';
		rc = db_open(j, path, sync);
	}
	if (rc != DB_OK) {
		srv_journal_close(j);
		return OTA_ERR_STORAGE;
	}
	*ret_journal = j;
	return OTA_OK;
}

enum ota_err srv_journal_append(struct srv_journal *j, struct srv_journal_entry *e)
{
	enum ota_err err = OTA_OK;
	sqlite3_stmt *st = j->insert;
	size_t dev_len = strnlen(e->device, sizeof(e->device));
	int rc;

	if (e->report_len > SRV_JOURNAL_MAX_REPORT_BYTES || dev_len == 0 ||
	    dev_len > SRV_MAX_DEVICE_ID)
		return OTA_ERR_SIZE;
	pthread_mutex_lock(&j->lock);
	if (j->bytes + row_cost(e->report_len) > j->max_bytes) {
		err = OTA_ERR_BUSY;
		goto out;
	}
	sqlite3_bind_text(st, 1, e->device, (int)dev_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)e->seq);
	sqlite3_bind_blob(st, 3, e->digest, (int)sizeof(e->digest), SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, e->refused);
	sqlite3_bind_int64(st, 5, e->merged);
	sqlite3_bind_int(st, 6, e->device_error);
	sqlite3_bind_int(st, 7, e->flushed ? 1 : 0);
	sqlite3_bind_text(st, 8, e->report, (int)e->report_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		e->id = (int64_t)sqlite3_last_insert_rowid(j->db);
		j->rows++;
		j->bytes += row_cost(e->report_len);
	} else if ((rc & 0xff) == SQLITE_FULL) {
		err = OTA_ERR_BUSY; /* max_page_count or the disk */
	} else {
		srv_log(SRV_LOG_ERROR, "journal: append: %s", sqlite3_errmsg(j->db));
		err = OTA_ERR_STORAGE;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
out:
	pthread_mutex_unlock(&j->lock);
	return err;
}

enum row_rc { ROW_OK, ROW_BAD, ROW_NOMEM };

/* A row read back, checked against the limits (the file is outside input). */
static enum row_rc row_take(sqlite3_stmt *st, struct srv_journal_entry *e)
{
	const unsigned char *device = sqlite3_column_text(st, 1);
	int dev_len = sqlite3_column_bytes(st, 1);
	const void *digest = sqlite3_column_blob(st, 3);
	int digest_len = sqlite3_column_bytes(st, 3);
	sqlite3_int64 seq = sqlite3_column_int64(st, 2), refused = sqlite3_column_int64(st, 4),
		      merged = sqlite3_column_int64(st, 5), dev_err = sqlite3_column_int64(st, 6);
	const unsigned char *report = sqlite3_column_text(st, 8);
	int report_len = sqlite3_column_bytes(st, 8);

	memset(e, 0, sizeof(*e));
	e->id = sqlite3_column_int64(st, 0);
	if (device == NULL || dev_len <= 0 || (size_t)dev_len > SRV_MAX_DEVICE_ID ||
	    memchr(device, '\0', (size_t)dev_len) != NULL || digest == NULL ||
	    digest_len != (int)sizeof(e->digest) || seq < 0 || refused < 0 ||
	    refused > UINT32_MAX || merged < 0 || merged > UINT32_MAX || dev_err < 0 ||
	    dev_err >= OTA__ERR_COUNT || report == NULL || report_len <= 0 ||
	    (size_t)report_len > SRV_JOURNAL_MAX_REPORT_BYTES)
		return ROW_BAD;
	e->report = malloc((size_t)report_len + 1);
	if (e->report == NULL)
		return ROW_NOMEM;
	memcpy(e->report, report, (size_t)report_len);
	e->report[report_len] = '\0';
	e->report_len = (size_t)report_len;
	memcpy(e->device, device, (size_t)dev_len);
	e->seq = (uint64_t)seq;
	memcpy(e->digest, digest, sizeof(e->digest));
	e->refused = (unsigned)refused;
	e->merged = (unsigned)merged;
	e->device_error = (int)dev_err;
	e->flushed = sqlite3_column_int(st, 7) != 0;
	return ROW_OK;
}

/* Deletes one row (under lock). */
static void delete_row(struct srv_journal *j, int64_t id)
{
	sqlite3_bind_int64(j->delete_one, 1, id);
	if (sqlite3_step(j->delete_one) == SQLITE_DONE && sqlite3_changes(j->db) > 0 && j->rows > 0)
		j->rows--;
	sqlite3_reset(j->delete_one);
}

enum ota_err srv_journal_read(struct srv_journal *j, struct srv_journal_entry *entries, size_t max,
			      size_t max_bytes, size_t *ret_n, size_t *ret_skipped)
{
	enum ota_err err = OTA_OK;
	int64_t bad[16];
	size_t n = 0, skipped = 0, n_bad = 0, bytes = 0;
	int rc = SQLITE_DONE;

	pthread_mutex_lock(&j->lock);
	sqlite3_bind_int64(j->select, 1, (sqlite3_int64)max);
	while (n < max && (n == 0 || bytes < max_bytes) &&
	       (rc = sqlite3_step(j->select)) == SQLITE_ROW) {
		enum row_rc taken = row_take(j->select, &entries[n]);

		if (taken == ROW_OK) {
			bytes += entries[n].report_len;
			n++;
		} else if (taken == ROW_NOMEM) {
			rc = SQLITE_DONE; /* what was read; the rest stays for later */
			if (n == 0)
				err = OTA_ERR_NOMEM;
			break;
		} else {
			skipped++;
			if (n_bad < sizeof(bad) / sizeof(bad[0]))
				bad[n_bad++] = entries[n].id;
		}
	}
	if (err == OTA_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		srv_log(SRV_LOG_ERROR, "journal: read: %s", sqlite3_errmsg(j->db));
		err = OTA_ERR_STORAGE;
	}
	sqlite3_reset(j->select);
	for (size_t i = 0; i < n_bad; i++) {
		srv_log(SRV_LOG_ERROR, "journal: row %lld is not a valid report: deleted",
			(long long)bad[i]);
		delete_row(j, bad[i]);
	}
	pthread_mutex_unlock(&j->lock);
	if (err != OTA_OK) {
		srv_journal_entries_clear(entries, n);
		return err;
	}
	*ret_n = n;
	if (ret_skipped != NULL)
		*ret_skipped = skipped;
	return OTA_OK;
}

void srv_journal_entries_clear(struct srv_journal_entry *entries, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(entries[i].report);
		entries[i].report = NULL;
	}
}

enum ota_err srv_journal_consume(struct srv_journal *j, int64_t up_to_id)
{
	enum ota_err err = OTA_ERR_STORAGE;
	sqlite3_stmt *st = j->count_upto;
	uint64_t rows = 0, bytes = 0;

	pthread_mutex_lock(&j->lock);
	/* what goes: a range of the rowid, the batch just stored */
	sqlite3_bind_int64(st, 1, up_to_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		rows = (uint64_t)sqlite3_column_int64(st, 0);
		bytes = (uint64_t)sqlite3_column_int64(st, 1) + rows * SRV_JOURNAL_ROW_OVERHEAD;
	}
	sqlite3_reset(st);
	sqlite3_bind_int64(j->delete_upto, 1, up_to_id);
	if (sqlite3_step(j->delete_upto) == SQLITE_DONE) {
		j->rows = rows < j->rows ? j->rows - rows : 0;
		j->bytes = bytes < j->bytes ? j->bytes - bytes : 0;
		err = OTA_OK;
	} else {
		srv_log(SRV_LOG_ERROR, "journal: consume: %s", sqlite3_errmsg(j->db));
	}
	sqlite3_reset(j->delete_upto);
	pthread_mutex_unlock(&j->lock);
	return err;
}

void srv_journal_pending(struct srv_journal *j, uint64_t *ret_rows, uint64_t *ret_bytes)
{
	pthread_mutex_lock(&j->lock);
	if (ret_rows != NULL)
		*ret_rows = j->rows;
	if (ret_bytes != NULL)
		*ret_bytes = j->bytes;
	pthread_mutex_unlock(&j->lock);
}

void srv_journal_close(struct srv_journal *j)
{
	if (j == NULL)
		return;
	db_close(j);
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	pthread_mutex_destroy(&j->lock);
	free(j);
}
