/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_INGEST_INTERNAL_H
#define SRV_INGEST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"
#include "srv-limits.h"

/*
 * Report ingest on the MQTT receive path: a report is durable before its
 * QoS 1 message is acknowledged.
 *
 * Paho MQTT C (1.3.x) sends the PUBACK of a QoS 1 message right after
 * messageArrived returns, whatever it returns (returning 0 only queues the
 * message in Paho's memory for a later call, after the PUBACK went out),
 * and calls messageArrived with its client mutex held. So the only point
 * at which a report can be made durable before its acknowledgement is
 * inside messageArrived, and nothing there may wait for the event loop:
 * the loop calls Paho (notify), which waits for that mutex. Hence
 * srv_ingest_message() runs on Paho's thread, decodes, applies the budget
 * and appends the report to the local report journal (journal-internal.h;
 * synced unless configured otherwise), then returns. A writer thread
 * stores the journal's oldest reports in PostgreSQL in batches (one
 * report_ingest_batch() call for up to SRV_INGEST_BATCH_MAX, on its own
 * connection, a deadline on every call, retried until stored; one by one
 * with report_ingest() when a batch fails) and then deletes them from the
 * journal; at start it stores what an earlier process left there first.
 * Results go to the loop through result_cb (metrics, logs), from the
 * writer for journaled reports.
 *
 * Budget: per device a token bucket (rate, burst). A report over budget is
 * not stored on its own: it is coalesced with the device's other held
 * reports (the newest state wins, events are united by seq) and
 * acknowledged at once, so a flooding device costs the other devices no
 * database time; the coalesced report is journaled with the device's next
 * token (by the next report in budget or by a flusher thread), with a flood
 * security event. Until then such a held report lives in memory only: a
 * kill -9 loses it, and only it (the device re-sends its state and newest
 * events in every report).
 */
struct srv_ingest;

/* Topic bytes a refusal keeps for the log. */
#define SRV_INGEST_LOG_TOPIC 80u

enum srv_ingest_outcome {
	SRV_INGEST_STORED, /* row, events, assignment and rollout updated */
	SRV_INGEST_DUPLICATE, /* the stored report again (redelivery) */
	SRV_INGEST_REPLAY, /* seq 0 or not newer: refused, security event */
	SRV_INGEST_DECOMMISSIONED, /* ignored */
	SRV_INGEST_STALE, /* older than the stored seq: only new events kept */
	SRV_INGEST_COALESCED, /* over budget: held, stored with the next token */
	SRV_INGEST_DROPPED, /* over budget and no room to hold it */
	SRV_INGEST_REFUSED, /* not a valid report (err says why) */
	SRV_INGEST_FAILED, /* the database refused it: not retried */
	SRV_INGEST_ABANDONED, /* shutting down before it was stored */
};

struct srv_ingest_result {
	enum srv_ingest_outcome outcome;
	enum ota_err err; /* REFUSED: OTA_ERR_SIZE or OTA_ERR_FORMAT */
	enum ota_err device_error; /* the error name the report carried */
	char device[SRV_MAX_DEVICE_ID + 1];
	char topic[SRV_INGEST_LOG_TOPIC + 1]; /* REFUSED: the topic, clipped */
	bool flushed; /* held reports stored by the flusher */
	uint64_t seq;
	unsigned merged; /* reports this store stands for */
	long long new_events; /* events stored (new) */
	long long campaign_changes;
	long long refusal_events; /* security refusals among the new events */
	unsigned flood_refused; /* > 0: a flood event was recorded for these */
	bool suspect; /* the device is flagged suspect */
	bool batch_first; /* the first report of a batch (counts the batch) */
	unsigned call_reports; /* > 0 on the first result of a database call: its reports */
	uint64_t
		journal_reports; /* stored by the writer: the journal's rows before it deleted these */
};

/* Called on Paho's, the flusher's or the writer's thread, once per message
 * or store. */
typedef void (*srv_ingest_result_cb)(void *arg, const struct srv_ingest_result *result);

struct srv_ingest_config {
	const char *conninfo;
	bool prepared; /* false: the call is sent as an unnamed statement (db_prepared_statements) */
	double rate_per_sec; /* per-device report budget */
	double burst;
	unsigned deadline_ms; /* one database call */
	const char *journal_dir; /* the report journal (journal-internal.h) */
	bool journal_sync; /* fsync every append (a power cut loses nothing) */
	uint64_t journal_max_bytes; /* pending reports beyond: not acknowledged */
	unsigned linger_ms; /* the writer waits this long for a fuller batch */
	/* NULL, or kept at the journal's rows (atomic stores, any thread) */
	uint64_t *journal_gauge;
};

/* Devices whose over-budget reports are held at once (beyond: dropped). */
#define SRV_INGEST_MAX_HELD 1024u
/* Buckets of the report budget (srv_ratelimit forgets full ones). */
#define SRV_INGEST_MAX_BUCKETS 100000u
/* How often held reports are looked at. */
#define SRV_INGEST_FLUSH_MS 100u
/* At most one flood security event per device in this many seconds. */
#define SRV_INGEST_FLOOD_EVENT_S 60.0
/* Most reports in one report_ingest_batch() call (report_batch_max() may
 * say fewer) and most bytes of their JSON (beyond, a smaller batch). */
#define SRV_INGEST_BATCH_MAX 256u
#define SRV_INGEST_BATCH_BYTES (8u * 1024u * 1024u)
/* On stop, the writer stores what the journal holds for up to this long. */
#define SRV_INGEST_DRAIN_MS 5000u
/* Back-off between attempts while the database is away. */
#define SRV_INGEST_RETRY_MIN_MS 100u
#define SRV_INGEST_RETRY_MAX_MS 2000u

/*
 * Opens the journal, starts the flusher and the writer (which stores what
 * an earlier process left in the journal first); connects lazily.
 * OTA_ERR_BUSY: another process holds the journal directory;
 * OTA_ERR_STORAGE: the journal cannot be opened.
 */
enum ota_err srv_ingest_new(const struct srv_ingest_config *config, srv_ingest_result_cb cb,
			    void *cb_arg, struct srv_ingest **ret_ingest);

/*
 * Handles one MQTT message (Paho's receive thread only): decode, budget,
 * journal. Returns true when the message may be acknowledged (journaled,
 * refused, held or dropped by policy); while the journal is full it waits.
 * false when it was not journaled because srv_ingest_stop() was called:
 * then never acknowledge it (the call stays counted as busy, see
 * srv_ingest_idle).
 */
bool srv_ingest_message(struct srv_ingest *ingest, const char *topic, const uint8_t *payload,
			size_t len);

/* Wakes every wait; later attempts give up (ABANDONED). */
void srv_ingest_stop(struct srv_ingest *ingest);

/*
 * Waits up to timeout_ms for srv_ingest_message() calls in progress to
 * return. false: one is still inside (a database call).
 */
bool srv_ingest_idle(struct srv_ingest *ingest, unsigned timeout_ms);

/* Joins the flusher and the writer (what is journaled stays for the next
 * start), closes the connection and the journal, frees held reports. NULL ok. */
void srv_ingest_free(struct srv_ingest *ingest);

/* Stable name of an outcome ("stored", "replay", ...). */
const char *srv_ingest_outcome_name(enum srv_ingest_outcome outcome);

#endif
