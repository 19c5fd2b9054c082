/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_METRICS_INTERNAL_H
#define SRV_METRICS_INTERNAL_H

#include <stdint.h>

#include <event2/buffer.h>
#include <libpq-fe.h>

#include "conns-internal.h"
#include "tickets-internal.h"
#include "fleetota/err.h"

/*
 * In-memory counters of one server process, written on the loop thread only
 * (so plain integers suffice). /metrics (the REST API) renders them with
 * srv_metrics_render(); PostgreSQL holds the fleet-wide numbers.
 */

/* Why a request or a report was refused (stable label values). */
enum srv_reject {
	SRV_REJECT_UNKNOWN_DEVICE,
	SRV_REJECT_DECOMMISSIONED,
	SRV_REJECT_NOT_ASSIGNED,
	SRV_REJECT_NOT_FOUND,
	SRV_REJECT_RATE_LIMITED,
	SRV_REJECT_BAD_REQUEST,
	SRV_REJECT_RANGE,
	SRV_REJECT_DB_UNAVAILABLE,
	SRV_REJECT_STORE,
	SRV_REJECT_REPORT_FORMAT,
	SRV_REJECT_REPORT_TOPIC,
	SRV_REJECT_REPORT_TOO_BIG,
	SRV_REJECT_QUEUE_FULL,
	SRV_REJECT_REPORT_OVER_BUDGET, /* over budget with no room to hold it */
	SRV__REJECT_COUNT
};

/* Security events (audit action "security.<name>"; stable label values). */
enum srv_security_kind {
	SRV_SECURITY_CROSS_DEVICE, /* asked for an artifact not assigned to it */
	SRV_SECURITY_REPLAY, /* report seq 0 or not newer than the stored one */
	SRV_SECURITY_FLOOD, /* reports over the device's budget */
	SRV_SECURITY_REFUSAL, /* the device refused something (pin, signature...) */
	SRV__SECURITY_COUNT
};

/*
 * A latency histogram in seconds (Prometheus' base unit). Upper bounds:
 * 1 ms .. 5 s, +Inf implied.
 */
#define SRV_LATENCY_BUCKETS 10
/* Buckets of the report batch size histogram: 1, 2, 4 ... 256 reports. */
#define SRV_REPORT_BATCH_BUCKETS 9

struct srv_histogram {
	uint64_t buckets[SRV_LATENCY_BUCKETS + 1];
	double sum_seconds;
	uint64_t count;
};

void srv_histogram_observe(struct srv_histogram *histogram, double seconds);
/* Appends HELP, TYPE, _bucket, _sum and _count of "fleetota_" name. */
void srv_histogram_render(const struct srv_histogram *histogram, const char *name, const char *help,
			  struct evbuffer *out);

struct srv_metrics {
	uint64_t requests;
	uint64_t downloads_started;
	uint64_t downloads_completed;
	uint64_t downloads_aborted;
	uint64_t bytes_served;
	uint64_t manifests_served;
	/* delta updates (delivery.c, docs/server.md "Delta updates") */
	uint64_t delta_manifests_served; /* of manifests_served: a delta */
	uint64_t full_manifests_asked; /* of manifests_served: ?full=1, a device's fallback */
	uint64_t delta_downloads_completed; /* of downloads_completed: a delta's payload */
	uint64_t delta_bytes_served; /* of bytes_served */
	uint64_t delta_bytes_saved; /* image size minus delta size, per completed delta */
	uint64_t manifest_cache_hits; /* answered from the assignment view */
	uint64_t manifest_cache_misses; /* asked PostgreSQL */
	uint64_t manifest_cache_flushes; /* the view forgot everything */
	uint64_t manifest_cache_prefilled; /* answers kept ahead of the request (a tick's) */
	uint64_t image_cache_hits; /* images served without asking PostgreSQL */
	uint64_t delivery_marks_written; /* delivery marks of cached answers written */
	uint64_t delivery_marks_dropped; /* ... dropped (queue full) */
	uint64_t timestamps_signed; /* signed freshness (timestamp.c) */
	uint64_t timestamps_served;
	uint64_t rejections[SRV__REJECT_COUNT];
	uint64_t reports_received;
	uint64_t reports_stored;
	uint64_t events_stored;
	uint64_t device_errors[OTA__ERR_COUNT]; /* error names devices reported */
	uint64_t reports_coalesced; /* over budget: held and stored coalesced */
	uint64_t reports_duplicate; /* redeliveries of a stored report */
	uint64_t reports_stale; /* older than the stored seq (reordered) */
	uint64_t report_batches; /* report_ingest_batch() calls that stored a batch */
	/* database calls that stored reports, by reports per call: bucket i
	 * counts calls of at most 2^i reports (1, 2, 4 ... 256) */
	uint64_t report_batch_sizes[SRV_REPORT_BATCH_BUCKETS];
	uint64_t report_batch_reports; /* reports over those calls */
	/* gauge: reports in the journal, not yet stored; the ingest's threads
	 * store it, the loop loads it (__atomic builtins) */
	uint64_t report_journal_reports;
	uint64_t security_events[SRV__SECURITY_COUNT];
	uint64_t notifies_sent;
	uint64_t db_reconnects;
	uint64_t db_queries;
	uint64_t db_errors; /* statements that failed (not the refusals below) */
	uint64_t db_timeouts; /* of db_errors: deadlines passed */
	uint64_t db_refusals; /* statements that refused client input (SQLSTATE FO, 22, 23) */
	uint64_t mqtt_reconnects;
	uint64_t mqtt_short_sessions; /* MQTT connections lost soon after being made */
	struct srv_histogram latency; /* device listener requests */
	struct srv_conn_metrics conns[SRV__LISTENER_COUNT]; /* the listeners' guard */
	struct srv_tls_metrics tls; /* the device listener's handshakes */
};

/* Stable label of a rejection ("rate_limited"). */
const char *srv_reject_name(enum srv_reject reason);

/* Stable label of a security event kind ("cross_device"). */
const char *srv_security_kind_name(enum srv_security_kind kind);

void srv_metrics_reject(struct srv_metrics *metrics, enum srv_reject reason);
void srv_metrics_latency(struct srv_metrics *metrics, double ms);

/*
 * Appends Prometheus text exposition of every counter to out, and
 * fleetota_build_info{version, revision} 1.
 */
int srv_metrics_render(const struct srv_metrics *metrics, struct evbuffer *out);

/*
 * The fleet-wide gauges come from PostgreSQL: srv_metrics_render_fleet()
 * turns the rows (kind, label, label2, value) of
 * metrics_fleet(SRV_METRICS_MAX_CAMPAIGNS) (migrations/code/metrics.sql)
 * into devices by state / version / KeyList version and, per campaign that
 * is not finished or finished in the last 24 hours (at most
 * SRV_METRICS_MAX_CAMPAIGNS, the newest), its state and its devices by
 * state. Cost: one grouped count over those campaigns' campaign_devices
 * rows (primary key prefix) per scrape.
 */
#define SRV_METRICS_MAX_CAMPAIGNS 200
void srv_metrics_render_fleet(const PGresult *res, struct evbuffer *out);

#endif
