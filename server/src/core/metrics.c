/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "fleetota-version.h"
#include "metrics-internal.h"

static const double latency_bounds_s[SRV_LATENCY_BUCKETS] = {0.001, 0.002, 0.005, 0.01, 0.025,
							     0.05,  0.1,   0.25,  1,	5};

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

void srv_histogram_observe(struct srv_histogram *h, double seconds)
{
	size_t i = 0;

	while (i < SRV_LATENCY_BUCKETS && seconds > latency_bounds_s[i])
		i++;
	h->buckets[i]++;
	h->sum_seconds += seconds;
	h->count++;
}

void srv_histogram_render(const struct srv_histogram *h, const char *name, const char *help,
			  struct evbuffer *out)
{
	uint64_t cumulative = 0;

	evbuffer_add_printf(out, "# HELP fleetota_%s %s\n# TYPE fleetota_%s histogram\n", name,
			    help, name);
	for (int i = 0; i < SRV_LATENCY_BUCKETS; i++) {
		cumulative += h->buckets[i];
		evbuffer_add_printf(out, "fleetota_%s_bucket{le=\"%g\"} %llu\n", name,
				    latency_bounds_s[i], (unsigned long long)cumulative);
	}
	cumulative += h->buckets[SRV_LATENCY_BUCKETS];
	evbuffer_add_printf(out,
			    "fleetota_%s_bucket{le=\"+Inf\"} %llu\nfleetota_%s_sum %.6f\n"
			    "fleetota_%s_count %llu\n",
			    name, (unsigned long long)cumulative, name, h->sum_seconds, name,
			    (unsigned long long)h->count);
}

void srv_metrics_latency(struct srv_metrics *metrics, double ms)
{
	srv_histogram_observe(&metrics->latency, ms / 1000.0);
}

#define COUNTER(name, help, value)                                                     \
	evbuffer_add_printf(out,                                                       \
			    "# HELP fleetota_" name " " help "\n# TYPE fleetota_" name \
			    " counter\nfleetota_" name " %llu\n",                      \
			    (unsigned long long)(value))

int srv_metrics_render(const struct srv_metrics *m, struct evbuffer *out)
{
	evbuffer_add_printf(out,
			    "# HELP fleetota_build_info The running ota-server's version.\n"
			    "# TYPE fleetota_build_info gauge\n"
			    "fleetota_build_info{version=\"%s\",revision=\"%s\"} 1\n",
			    FLEETOTA_VERSION, FLEETOTA_GIT_DESCRIBE);
	COUNTER("requests_total", "Device listener requests.", m->requests);
	COUNTER("downloads_started_total", "Image downloads started.", m->downloads_started);
	COUNTER("downloads_completed_total", "Image downloads sent completely.",
		m->downloads_completed);
	COUNTER("downloads_aborted_total", "Image downloads cut by the client.",
		m->downloads_aborted);
	COUNTER("bytes_served_total", "Image bytes written to devices.", m->bytes_served);
	COUNTER("manifests_served_total", "Manifests served.", m->manifests_served);
	COUNTER("delta_manifests_served_total",
		"Manifests served as a delta (the device runs the delta's base).",
		m->delta_manifests_served);
	COUNTER("full_manifests_requested_total",
		"Manifests asked for with ?full=1 (a device falling back from a delta).",
		m->full_manifests_asked);
	COUNTER("delta_downloads_completed_total", "Delta payloads sent completely.",
		m->delta_downloads_completed);
	COUNTER("delta_bytes_served_total", "Delta payload bytes written to devices.",
		m->delta_bytes_served);
	COUNTER("delta_bytes_saved_total",
		"Image bytes not sent thanks to deltas (image size minus delta size, per delta "
		"sent completely).",
		m->delta_bytes_saved);
	COUNTER("manifest_cache_hits_total", "Manifests answered from the assignment view.",
		m->manifest_cache_hits);
	COUNTER("manifest_cache_misses_total", "Manifest requests that asked PostgreSQL.",
		m->manifest_cache_misses);
	COUNTER("manifest_cache_flushes_total", "Times the assignment view forgot everything.",
		m->manifest_cache_flushes);
	COUNTER("manifest_cache_prefilled_total",
		"Answers the assignment view kept ahead of the request (a tick's devices).",
		m->manifest_cache_prefilled);
	COUNTER("image_cache_hits_total", "Images served without asking PostgreSQL.",
		m->image_cache_hits);
	COUNTER("delivery_marks_written_total",
		"Delivery marks of manifests answered from the assignment view, written.",
		m->delivery_marks_written);
	COUNTER("delivery_marks_dropped_total", "Delivery marks not written: the queue was full.",
		m->delivery_marks_dropped);
	COUNTER("timestamps_signed_total", "Timestamps signed by the timestamp role.",
		m->timestamps_signed);
	COUNTER("timestamps_served_total", "Timestamps served to devices.", m->timestamps_served);
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
	COUNTER("report_batches_total",
		"Batches of reports stored with one report_ingest_batch() call.",
		m->report_batches);
	{
		uint64_t cumulative = 0, calls = 0;

		for (unsigned i = 0; i < SRV_REPORT_BATCH_BUCKETS; i++)
			calls += m->report_batch_sizes[i];
		evbuffer_add_printf(out,
				    "# HELP fleetota_report_batch_size Reports per database call "
				    "of the report ingest (a batch, or one report alone).\n"
				    "# TYPE fleetota_report_batch_size histogram\n");
		for (unsigned i = 0; i < SRV_REPORT_BATCH_BUCKETS; i++) {
			cumulative += m->report_batch_sizes[i];
			evbuffer_add_printf(out,
					    "fleetota_report_batch_size_bucket{le=\"%u\"} %llu\n",
					    1u << i, (unsigned long long)cumulative);
		}
		evbuffer_add_printf(out,
				    "fleetota_report_batch_size_bucket{le=\"+Inf\"} %llu\n"
				    "fleetota_report_batch_size_sum %llu\n"
				    "fleetota_report_batch_size_count %llu\n",
				    (unsigned long long)calls,
				    (unsigned long long)m->report_batch_reports,
				    (unsigned long long)calls);
	}
	evbuffer_add_printf(
		out,
		"# HELP fleetota_report_journal_reports Reports acknowledged and "
		"journaled, not yet stored in PostgreSQL (after the last store).\n"
		"# TYPE fleetota_report_journal_reports gauge\n"
		"fleetota_report_journal_reports %llu\n",
		(unsigned long long)__atomic_load_n(&m->report_journal_reports, __ATOMIC_RELAXED));
	COUNTER("notifies_sent_total", "Notify messages published.", m->notifies_sent);
	COUNTER("db_reconnects_total",
		"PostgreSQL connections re-established after a loss (first connects excluded).",
		m->db_reconnects);
	COUNTER("db_queries_total", "PostgreSQL queries completed.", m->db_queries);
	COUNTER("db_errors_total",
		"PostgreSQL queries failed (the engine's refusals of client input excluded).",
		m->db_errors);
	COUNTER("db_timeouts_total", "PostgreSQL queries failed at their deadline.",
		m->db_timeouts);
	COUNTER("db_refusals_total",
		"PostgreSQL statements that refused client input (not found, conflict, invalid).",
		m->db_refusals);
	COUNTER("mqtt_reconnects_total",
		"MQTT connections re-established after a loss (the first connect excluded).",
		m->mqtt_reconnects);
	COUNTER("mqtt_short_sessions_total",
		"MQTT connections lost within 30 s of being made (another process with this "
		"server's MQTT identity taking the session over does this).",
		m->mqtt_short_sessions);
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
	srv_histogram_render(&m->latency, "request_duration_seconds",
			     "Device listener request latency.", out);
	srv_conn_metrics_render(m->conns, out);
	srv_tls_metrics_render(&m->tls, out);
	return 0;
}

/* ---- fleet-wide gauges from PostgreSQL ------------------------------ */

/* Label values come from devices; keep them printable and quoted right. */
static void put_label(struct evbuffer *out, const char *value)
{
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			evbuffer_add_printf(out, "\\%c", *p);
		else if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			evbuffer_add(out, "_", 1);
		else
			evbuffer_add(out, p, 1);
	}
}

struct fleet_family {
	const char *kind, *metric, *help;
	const char *label, *label2; /* label2 NULL: one label (or none if label is NULL) */
};

static void render_family(const PGresult *res, const struct fleet_family *f, struct evbuffer *out)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", f->metric, f->help, f->metric);
	for (int r = 0; r < PQntuples(res); r++) {
		if (strcmp(PQgetvalue(res, r, 0), f->kind) != 0)
			continue;
		evbuffer_add_printf(out, "%s", f->metric);
		if (f->label != NULL) {
			evbuffer_add_printf(out, "{%s=\"", f->label);
			put_label(out, PQgetvalue(res, r, 1));
			if (f->label2 != NULL) {
				evbuffer_add_printf(out, "\",%s=\"", f->label2);
				put_label(out, PQgetvalue(res, r, 2));
			}
			evbuffer_add(out, "\"}", 2);
		}
		evbuffer_add_printf(out, " %s\n", PQgetvalue(res, r, 3));
	}
}

/* One-hot: every campaign has one series per state, 1 for the state it is in. */
static void render_campaign_states(const PGresult *res, struct evbuffer *out)
{
	static const char *const states[] = {"draft",	  "awaiting_approval", "running", "paused",
					     "completed", "cancelled",	       "failed"};

	evbuffer_add_printf(out, "# HELP fleetota_campaign_state Campaign state (1 for the "
				 "current one).\n# TYPE fleetota_campaign_state gauge\n");
	for (int r = 0; r < PQntuples(res); r++) {
		if (strcmp(PQgetvalue(res, r, 0), "campaign") != 0)
			continue;
		for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
			evbuffer_add_printf(out, "fleetota_campaign_state{campaign=\"");
			put_label(out, PQgetvalue(res, r, 1));
			evbuffer_add_printf(out, "\",state=\"%s\"} %d\n", states[s],
					    strcmp(PQgetvalue(res, r, 2), states[s]) == 0);
		}
	}
}

void srv_metrics_render_fleet(const PGresult *res, struct evbuffer *out)
{
	static const struct fleet_family families[] = {
		{"state", "fleetota_devices_by_state", "Devices by reported state.", "state", NULL},
		{"version", "fleetota_devices_by_version", "Devices by running firmware version.",
		 "version", NULL},
		{"keylist", "fleetota_devices_by_keylist_version",
		 "Devices by trusted KeyList version.", "keylist_version", NULL},
		{"decommissioned", "fleetota_devices_decommissioned", "Decommissioned devices.",
		 NULL, NULL},
		{"campaign", "fleetota_campaign_target_devices",
		 "Devices a campaign targets (live campaigns and those finished within 24 h).",
		 "campaign", NULL},
		{"auto_paused", "fleetota_campaign_auto_paused",
		 "1 while the rollout engine itself paused the campaign (failure threshold).",
		 "campaign", NULL},
		{"campaign_devices", "fleetota_campaign_devices",
		 "A campaign's devices by state (pending, notified, downloading, installed, "
		 "confirmed, failed, timed_out, superseded, cancelled).",
		 "campaign", "state"},
	};

	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++)
		render_family(res, &families[f], out);
	render_campaign_states(res, out);
}
