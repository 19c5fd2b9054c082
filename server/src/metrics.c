/* SPDX-License-Identifier: Apache-2.0 */
#include "metrics-internal.h"

static const double latency_bounds_ms[SRV_LATENCY_BUCKETS] = {1,  2,   5,   10,	  25,
							      50, 100, 250, 1000, 5000};

static const char *const reject_names[SRV__REJECT_COUNT] = {
	[SRV_REJECT_UNKNOWN_DEVICE] = "unknown_device",
	[SRV_REJECT_DECOMMISSIONED] = "decommissioned",
	[SRV_REJECT_NOT_ASSIGNED] = "not_assigned",
	[SRV_REJECT_NOT_FOUND] = "not_found",
	[SRV_REJECT_RATE_LIMITED] = "rate_limited",
	[SRV_REJECT_BAD_REQUEST] = "bad_request",
	[SRV_REJECT_RANGE] = "range_not_satisfiable",
	[SRV_REJECT_DB_UNAVAILABLE] = "db_unavailable",
	[SRV_REJECT_STORE] = "store_error",
	[SRV_REJECT_REPORT_FORMAT] = "report_format",
	[SRV_REJECT_REPORT_TOPIC] = "report_topic_mismatch",
	[SRV_REJECT_REPORT_TOO_BIG] = "report_too_big",
	[SRV_REJECT_QUEUE_FULL] = "queue_full",
	[SRV_REJECT_REPORT_OVER_BUDGET] = "report_over_budget",
};

static const char *const security_names[SRV__SECURITY_COUNT] = {
	[SRV_SECURITY_CROSS_DEVICE] = "cross_device",
	[SRV_SECURITY_REPLAY] = "replay",
	[SRV_SECURITY_FLOOD] = "flood",
	[SRV_SECURITY_REFUSAL] = "refusal",
};

const char *srv_security_kind_name(enum srv_security_kind kind)
{
	if ((unsigned)kind >= SRV__SECURITY_COUNT)
		return "unknown";
	return security_names[kind];
}

const char *srv_reject_name(enum srv_reject reason)
{
	if ((unsigned)reason >= SRV__REJECT_COUNT)
		return "unknown";
	return reject_names[reason];
}

void srv_metrics_reject(struct srv_metrics *metrics, enum srv_reject reason)
{
	if ((unsigned)reason < SRV__REJECT_COUNT)
		metrics->rejections[reason]++;
}

void srv_metrics_latency(struct srv_metrics *metrics, double ms)
{
	size_t i = 0;

	while (i < SRV_LATENCY_BUCKETS && ms > latency_bounds_ms[i])
		i++;
	metrics->latency_buckets[i]++;
	metrics->latency_sum_ms += ms;
	metrics->latency_count++;
}

#define COUNTER(name, help, value)                                                     \
	evbuffer_add_printf(out,                                                       \
			    "# HELP fleetota_" name " " help "\n# TYPE fleetota_" name \
			    " counter\nfleetota_" name " %llu\n",                      \
			    (unsigned long long)(value))

int srv_metrics_render(const struct srv_metrics *m, struct evbuffer *out)
{
	uint64_t cumulative = 0;

	COUNTER("requests_total", "Device listener requests.", m->requests);
	COUNTER("downloads_started_total", "Image downloads started.", m->downloads_started);
	COUNTER("downloads_completed_total", "Image downloads sent completely.",
		m->downloads_completed);
	COUNTER("downloads_aborted_total", "Image downloads cut by the client.",
		m->downloads_aborted);
	COUNTER("bytes_served_total", "Image bytes written to devices.", m->bytes_served);
	COUNTER("manifests_served_total", "Manifests served.", m->manifests_served);
	COUNTER("reports_received_total", "Status reports received over MQTT.",
		m->reports_received);
	COUNTER("reports_stored_total", "Status reports stored.", m->reports_stored);
	COUNTER("events_stored_total", "Device events stored (new).", m->events_stored);
	COUNTER("reports_coalesced_total", "Reports over a device's budget, stored coalesced.",
		m->reports_coalesced);
	COUNTER("reports_duplicate_total", "Redeliveries of a stored report (ignored).",
		m->reports_duplicate);
	COUNTER("reports_stale_total", "Reports older than the stored one (only new events kept).",
		m->reports_stale);
	COUNTER("notifies_sent_total", "Notify messages published.", m->notifies_sent);
	COUNTER("db_reconnects_total", "PostgreSQL connections re-established.", m->db_reconnects);
	COUNTER("db_queries_total", "PostgreSQL queries completed.", m->db_queries);
	COUNTER("db_errors_total", "PostgreSQL queries failed.", m->db_errors);
	COUNTER("db_timeouts_total", "PostgreSQL queries failed at their deadline.",
		m->db_timeouts);
	COUNTER("mqtt_reconnects_total", "MQTT connections re-established.", m->mqtt_reconnects);
	evbuffer_add_printf(out, "# HELP fleetota_rejections_total Refused requests and reports.\n"
				 "# TYPE fleetota_rejections_total counter\n");
	for (int i = 0; i < SRV__REJECT_COUNT; i++)
		evbuffer_add_printf(out, "fleetota_rejections_total{reason=\"%s\"} %llu\n",
				    reject_names[i], (unsigned long long)m->rejections[i]);
	evbuffer_add_printf(out, "# HELP fleetota_security_events_total Security events recorded "
				 "in the audit trail.\n"
				 "# TYPE fleetota_security_events_total counter\n");
	for (int i = 0; i < SRV__SECURITY_COUNT; i++)
		evbuffer_add_printf(out, "fleetota_security_events_total{kind=\"%s\"} %llu\n",
				    security_names[i], (unsigned long long)m->security_events[i]);
	evbuffer_add_printf(out, "# HELP fleetota_device_errors_total Errors devices reported.\n"
				 "# TYPE fleetota_device_errors_total counter\n");
	for (int i = 1; i < OTA__ERR_COUNT; i++) {
		if (m->device_errors[i] == 0)
			continue;
		evbuffer_add_printf(out, "fleetota_device_errors_total{error=\"%s\"} %llu\n",
				    ota_err_name((enum ota_err)i),
				    (unsigned long long)m->device_errors[i]);
	}
	evbuffer_add_printf(out, "# HELP fleetota_request_duration_ms Device request latency.\n"
				 "# TYPE fleetota_request_duration_ms histogram\n");
	for (int i = 0; i < SRV_LATENCY_BUCKETS; i++) {
		cumulative += m->latency_buckets[i];
		evbuffer_add_printf(out, "fleetota_request_duration_ms_bucket{le=\"%g\"} %llu\n",
				    latency_bounds_ms[i], (unsigned long long)cumulative);
	}
	cumulative += m->latency_buckets[SRV_LATENCY_BUCKETS];
	evbuffer_add_printf(out,
			    "fleetota_request_duration_ms_bucket{le=\"+Inf\"} %llu\n"
			    "fleetota_request_duration_ms_sum %.3f\n"
			    "fleetota_request_duration_ms_count %llu\n",
			    (unsigned long long)cumulative, m->latency_sum_ms,
			    (unsigned long long)m->latency_count);
	return 0;
}
