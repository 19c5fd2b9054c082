/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_JOURNAL_INTERNAL_H
#define SRV_JOURNAL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"
#include "fleetota/limits.h"
#include "srv-limits.h"

/*
 * The report journal (issue 19): a status report is made durable here, on
 * local disk, before its QoS 1 message is acknowledged, and stored in
 * PostgreSQL later, in batches, by the ingest's writer thread
 * (ingest-internal.h). One SQLite database (DIR/reports.db, WAL mode), one
 * table, one row per report in arrival order; rows are deleted once the
 * database stored them.
 *
 * Durability: with sync on (the default) every append is committed with an
 * fsync of the WAL before it returns (SQLite synchronous=FULL): a power cut
 * loses no appended report. With sync off (synchronous=NORMAL) an append is
 * in the kernel's page cache when it returns: a kill -9 loses nothing, a
 * power cut may lose the last appended reports, never the journal's
 * integrity (SQLite checksums every WAL frame: a torn tail is detected and
 * rolled back at the next open).
 *
 * Bounds: at most max_bytes of pending reports (their JSON and a fixed cost
 * per row); an append beyond is refused with OTA_ERR_BUSY (the caller stops
 * acknowledging: back-pressure); every row read back is checked against the
 * limits below (a row that fails is skipped and counted, never trusted).
 *
 * Thread-safe (one connection under a mutex). One process per DIR: an
 * exclusive flock on DIR/lock (a second server on the same DIR gets
 * OTA_ERR_BUSY at open). Other processes may read the database (sqlite3,
 * tests).
 */
struct srv_journal;

/* Largest report JSON the journal takes (a coalesced report with 256 events
 * of 1 KiB detail each is about 300 KiB). */
#define SRV_JOURNAL_MAX_REPORT_BYTES (1024u * 1024u)
/* What a row costs beside its JSON, for the size cap. */
#define SRV_JOURNAL_ROW_OVERHEAD 128u
/* The smallest cap of pending reports (one report of the largest size). */
#define SRV_JOURNAL_MIN_BYTES (1024u * 1024u + SRV_JOURNAL_ROW_OVERHEAD)

struct srv_journal_entry {
	int64_t id; /* arrival order; set by append and read */
	char device[SRV_MAX_DEVICE_ID + 1];
	uint64_t seq;
	uint8_t digest[OTA_SHA256_BYTES];
	unsigned refused; /* over-budget reports for a flood event */
	unsigned merged; /* reports this one stands for */
	int device_error; /* enum ota_err the report carried */
	bool flushed; /* a held report, put here by the flusher */
	char *report; /* JSON text, NUL-terminated; owned by read's array */
	size_t report_len;
};

/*
 * Opens (creates) DIR/reports.db, DIR made 0700 if missing. A database that
 * is not a journal or fails SQLite's quick_check is renamed
 * reports.db.corrupt-<unix time> (kept for inspection, logged as an error)
 * and a new one started. OTA_ERR_BUSY: another process holds DIR;
 * OTA_ERR_STORAGE: DIR or the database cannot be made.
 */
enum ota_err srv_journal_open(const char *dir, bool sync, uint64_t max_bytes,
			      struct srv_journal **ret_journal);

/*
 * Appends e (e->report, e->report_len) durably and sets e->id.
 * OTA_ERR_BUSY: full (nothing written); OTA_ERR_SIZE: e->report over
 * SRV_JOURNAL_MAX_REPORT_BYTES or the device id too long; OTA_ERR_STORAGE:
 * SQLite failed (the disk).
 */
enum ota_err srv_journal_append(struct srv_journal *journal, struct srv_journal_entry *e);

/*
 * Reads up to max of the oldest rows into entries (each report malloc'd:
 * srv_journal_entries_clear frees them) and *ret_n, and no more once their
 * reports add up to max_bytes (the first is always read). Rows that fail
 * the limits are deleted and counted in *ret_skipped (may be NULL).
 */
enum ota_err srv_journal_read(struct srv_journal *journal, struct srv_journal_entry *entries,
			      size_t max, size_t max_bytes, size_t *ret_n, size_t *ret_skipped);

void srv_journal_entries_clear(struct srv_journal_entry *entries, size_t n);

/* Deletes every row up to id (inclusive): the database has them. */
enum ota_err srv_journal_consume(struct srv_journal *journal, int64_t up_to_id);

/* Rows waiting and their bytes (as the cap counts them). */
void srv_journal_pending(struct srv_journal *journal, uint64_t *ret_rows, uint64_t *ret_bytes);

/* Closes the database and releases DIR. NULL is fine. */
void srv_journal_close(struct srv_journal *journal);

#endif
