/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The report ingest behind the MQTT transport (srv_mqtt_receiver): mqtt.c
 * knows no report, main.c wires this in. Results are posted back through
 * the transport's loop queue and accounted on the loop thread.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "ingest-internal.h"
#include "log-internal.h"
#include "server-internal.h"

/* The journal directory's path. */
#define SRV_RECEIVER_PATH_BYTES 1024u

struct receiver {
	struct srv_server *srv;
	struct srv_mqtt *mqtt;
	struct srv_ingest *ingest;
};

/* Loop thread: metrics and log of one ingest result. */
static void report_account(struct srv_server *srv, const struct srv_ingest_result *result)
{
	struct srv_metrics *m = &srv->metrics;
	const char *outcome = srv_ingest_outcome_name(result->outcome);

	if (!result->flushed)
		m->reports_received++;
	if (result->batch_first)
		m->report_batches++;
	if (result->call_reports > 0) {
		unsigned i = 0;

		while (i + 1 < SRV_REPORT_BATCH_BUCKETS && result->call_reports > 1u << i)
			i++;
		m->report_batch_sizes[i]++;
		m->report_batch_reports += result->call_reports;
	}
	if ((unsigned)result->device_error > OTA_OK &&
	    (unsigned)result->device_error < OTA__ERR_COUNT)
		m->device_errors[result->device_error]++;
	if (result->refusal_events > 0)
		m->security_events[SRV_SECURITY_REFUSAL] += (uint64_t)result->refusal_events;
	if (result->flood_refused > 0 && result->outcome != SRV_INGEST_FAILED &&
	    result->outcome != SRV_INGEST_ABANDONED)
		m->security_events[SRV_SECURITY_FLOOD]++;
	switch (result->outcome) {
	case SRV_INGEST_STORED:
	case SRV_INGEST_DECOMMISSIONED:
		m->reports_stored++;
		m->events_stored += (uint64_t)(result->new_events > 0 ? result->new_events : 0);
		srv_log(SRV_LOG_DEBUG, "report %s seq %llu: device %s, %lld new events%s",
			result->device, (unsigned long long)result->seq,
			result->outcome == SRV_INGEST_STORED ? "updated"
							     : "decommissioned (ignored)",
			result->new_events, result->merged > 1 ? " (coalesced)" : "");
		break;
	case SRV_INGEST_STALE:
		m->reports_stale++;
		m->events_stored += (uint64_t)(result->new_events > 0 ? result->new_events : 0);
		/* campaign changes: a stale report still counts for the campaign
		 * rows older than it (migration 0022) */
		srv_log(SRV_LOG_DEBUG,
			"report %s seq %llu: stale (device row kept), %lld new events, "
			"%lld campaign changes",
			result->device, (unsigned long long)result->seq, result->new_events,
			result->campaign_changes);
		break;
	case SRV_INGEST_DUPLICATE:
		m->reports_duplicate++;
		srv_log(SRV_LOG_DEBUG, "report %s seq %llu: duplicate (ignored)", result->device,
			(unsigned long long)result->seq);
		break;
	case SRV_INGEST_REPLAY:
		m->security_events[SRV_SECURITY_REPLAY]++;
		srv_log(SRV_LOG_WARN, "report %s seq %llu refused: replay or zero seq",
			result->device, (unsigned long long)result->seq);
		break;
	case SRV_INGEST_COALESCED:
		m->reports_coalesced++;
		break;
	case SRV_INGEST_DROPPED:
		srv_metrics_reject(m, SRV_REJECT_REPORT_OVER_BUDGET);
		break;
	case SRV_INGEST_REFUSED:
		srv_metrics_reject(m, result->err == OTA_ERR_SIZE ? SRV_REJECT_REPORT_TOO_BIG
								  : SRV_REJECT_REPORT_FORMAT);
		srv_log(SRV_LOG_WARN, "report on '%s' refused: %s", result->topic,
			ota_err_name(result->err));
		break;
	case SRV_INGEST_FAILED:
	case SRV_INGEST_ABANDONED:
		srv_metrics_reject(m, SRV_REJECT_STORE);
		srv_log(SRV_LOG_ERROR, "report %s seq %llu not stored (%s)", result->device,
			(unsigned long long)result->seq, outcome);
		break;
	}
	if (result->suspect && (result->outcome == SRV_INGEST_REPLAY || result->flood_refused > 0 ||
				result->refusal_events > 0))
		srv_log(SRV_LOG_WARN, "device %s is flagged suspect", result->device);
}

/* Paho or flusher thread. */
static void on_result(void *arg, const struct srv_ingest_result *result)
{
	struct receiver *r = arg;

	srv_mqtt_post_result(r->mqtt, result, sizeof(*result));
}

/*
 * The default journal directory: store_dir/report-journal/<client id>, one
 * per MQTT identity, so replicas that share a store_dir never share a
 * journal (the client id's characters outside [A-Za-z0-9._-] become '_').
 */
static bool journal_dir(const struct srv_config *cfg, const char *client_id, char *out, size_t cap)
{
	size_t len;
	int n;

	if (cfg->report_journal_dir[0] != '\0')
		n = snprintf(out, cap, "%s", cfg->report_journal_dir);
	else
		n = snprintf(out, cap, "%s/report-journal/%s", cfg->store_dir, client_id);
	if (n < 0 || (size_t)n >= cap)
		return false;
	if (cfg->report_journal_dir[0] != '\0')
		return true;
	len = (size_t)n - strlen(client_id);
	for (char *p = out + len; *p != '\0'; p++) {
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
			*p = '_';
	}
	if (strcmp(out + len, ".") == 0 || strcmp(out + len, "..") == 0)
		out[len] = '_';
	return true;
}

static void *receiver_start(struct srv_server *srv, struct srv_mqtt *mqtt)
{
	const struct srv_config *cfg = srv->config;
	char dir[SRV_RECEIVER_PATH_BYTES];
	struct srv_ingest_config ingest = {
		.conninfo = cfg->db_conninfo,
		.prepared = cfg->db_prepared_statements,
		.rate_per_sec = cfg->report_rate_per_sec,
		.burst = cfg->report_burst,
		.deadline_ms = SRV_MQTT_INGEST_DEADLINE_MS,
		.journal_dir = dir,
		.journal_sync = cfg->report_journal_sync,
		.journal_max_bytes = (uint64_t)cfg->report_journal_max_mb * 1024u * 1024u,
		.linger_ms = cfg->report_batch_linger_ms,
		.journal_gauge = &srv->metrics.report_journal_reports,
	};
	struct receiver *r;
	enum ota_err err;

	if (!journal_dir(cfg, srv_mqtt_client_id(mqtt), dir, sizeof(dir))) {
		srv_log(SRV_LOG_ERROR, "report journal: the directory name is too long");
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->srv = srv;
	r->mqtt = mqtt;
	err = srv_ingest_new(&ingest, on_result, r, &r->ingest);
	if (err != OTA_OK) {
		srv_log(SRV_LOG_ERROR, "report journal %s: %s", dir, ota_err_name(err));
		free(r);
		return NULL;
	}
	srv_log(SRV_LOG_INFO, "report journal %s (sync %s, at most %u MiB)", dir,
		cfg->report_journal_sync ? "on" : "off", cfg->report_journal_max_mb);
	return r;
}

static bool receiver_message(void *state, const char *topic, const uint8_t *payload, size_t len)
{
	struct receiver *r = state;

	return srv_ingest_message(r->ingest, topic, payload, len);
}

static void receiver_result(void *state, const void *result, size_t len)
{
	struct receiver *r = state;
	struct srv_ingest_result res;

	if (len != sizeof(res))
		return;
	memcpy(&res, result, sizeof(res));
	report_account(r->srv, &res);
}

static void receiver_stop(void *state)
{
	struct receiver *r = state;

	srv_ingest_stop(r != NULL ? r->ingest : NULL);
}

static bool receiver_idle(void *state, unsigned timeout_ms)
{
	struct receiver *r = state;

	return srv_ingest_idle(r->ingest, timeout_ms);
}

static void receiver_free(void *state)
{
	struct receiver *r = state;

	if (r == NULL)
		return;
	srv_ingest_free(r->ingest);
	free(r);
}

const struct srv_mqtt_receiver srv_report_receiver = {
	.start = receiver_start,
	.message = receiver_message,
	.result = receiver_result,
	.stop = receiver_stop,
	.idle = receiver_idle,
	.free = receiver_free,
};
