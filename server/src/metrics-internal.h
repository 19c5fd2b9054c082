/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_METRICS_INTERNAL_H
#define SRV_METRICS_INTERNAL_H

#include <stdint.h>

#include <event2/buffer.h>

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

/* Upper bounds (ms) of the request latency histogram; +Inf implied. */
#define SRV_LATENCY_BUCKETS 10

struct srv_metrics {
	uint64_t requests;
	uint64_t downloads_started;
	uint64_t downloads_completed;
	uint64_t downloads_aborted;
	uint64_t bytes_served;
	uint64_t manifests_served;
	uint64_t rejections[SRV__REJECT_COUNT];
	uint64_t reports_received;
	uint64_t reports_stored;
	uint64_t events_stored;
	uint64_t device_errors[OTA__ERR_COUNT]; /* error names devices reported */
	uint64_t reports_coalesced; /* over budget: held and stored coalesced */
	uint64_t reports_duplicate; /* redeliveries of a stored report */
	uint64_t reports_stale; /* older than the stored seq (reordered) */
	uint64_t security_events[SRV__SECURITY_COUNT];
	uint64_t notifies_sent;
	uint64_t db_reconnects;
	uint64_t db_queries;
	uint64_t db_errors;
	uint64_t db_timeouts; /* of db_errors: deadlines passed */
	uint64_t mqtt_reconnects;
	uint64_t latency_buckets[SRV_LATENCY_BUCKETS + 1];
	double latency_sum_ms;
	uint64_t latency_count;
};

/* Stable label of a rejection ("rate_limited"). */
const char *srv_reject_name(enum srv_reject reason);

/* Stable label of a security event kind ("cross_device"). */
const char *srv_security_kind_name(enum srv_security_kind kind);

void srv_metrics_reject(struct srv_metrics *metrics, enum srv_reject reason);
void srv_metrics_latency(struct srv_metrics *metrics, double ms);

/* Appends Prometheus text exposition of every counter to out. */
int srv_metrics_render(const struct srv_metrics *metrics, struct evbuffer *out);

#endif
