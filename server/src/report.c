/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fleetota/limits.h"
#include "log-internal.h"
#include "report-internal.h"
#include "rollout-internal.h"
#include "server-internal.h"
#include "store-internal.h"

static const char *const state_names[] = {
	"unknown", "idle",	"downloading", "verifying", "pending",
	"trial",   "confirmed", "reverted",    "rejected",  "failed",
};

static const char *const event_names[] = {
	"unknown",	    "install_started", "rejected", "verified",	       "pending",
	"trial_boot",	    "confirmed",       "reverted", "counter_advanced", "keylist_updated",
	"rootlist_updated", "download_failed", "booted",
};

const char *srv_report_state_name(int state)
{
	if (state < 0 || (size_t)state >= sizeof(state_names) / sizeof(state_names[0]))
		return "unknown";
	return state_names[state];
}

const char *srv_report_event_name(int kind)
{
	if (kind < 0 || (size_t)kind >= sizeof(event_names) / sizeof(event_names[0]))
		return "unknown";
	return event_names[kind];
}

static bool str_ok(const char *s, size_t max)
{
	return s != NULL && strnlen(s, max + 1) <= max;
}

static bool error_name_ok(const char *name)
{
	enum ota_err err;

	if (!str_ok(name, OTA_MAX_STRING_BYTES))
		return false;
	return name[0] == '\0' || ota_err_from_name(name, &err) == OTA_OK;
}

/* Topic "fleetota/v1/{id}/status" -> id. */
static bool topic_device(const char *topic, char out[SRV_MAX_DEVICE_ID + 1])
{
	static const char prefix[] = "fleetota/v1/";
	static const char suffix[] = "/status";
	size_t len, id_len;

	if (topic == NULL)
		return false;
	len = strnlen(topic, SRV_MAX_TOPIC_BYTES + 1);
	if (len > SRV_MAX_TOPIC_BYTES || len <= sizeof(prefix) - 1 + sizeof(suffix) - 1)
		return false;
	if (strncmp(topic, prefix, sizeof(prefix) - 1) != 0 ||
	    strcmp(topic + len - (sizeof(suffix) - 1), suffix) != 0)
		return false;
	id_len = len - (sizeof(prefix) - 1) - (sizeof(suffix) - 1);
	if (id_len > SRV_MAX_DEVICE_ID)
		return false;
	memcpy(out, topic + sizeof(prefix) - 1, id_len);
	out[id_len] = '\0';
	return srv_id_valid(out, SRV_MAX_DEVICE_ID);
}

enum ota_err srv_report_decode(const uint8_t *payload, size_t len, const char *topic,
			       struct ota_arena *arena, Fleetota__V1__StatusReport **ret_report,
			       char ret_device[SRV_MAX_DEVICE_ID + 1])
{
	Fleetota__V1__StatusReport *r;
	char device[SRV_MAX_DEVICE_ID + 1];

	if (len > OTA_MAX_MQTT_PAYLOAD_BYTES)
		return OTA_ERR_SIZE;
	if (!topic_device(topic, device))
		return OTA_ERR_FORMAT;
	r = fleetota__v1__status_report__unpack(&arena->allocator, len, payload);
	if (r == NULL)
		return OTA_ERR_FORMAT;
	if (!str_ok(r->device_id, SRV_MAX_DEVICE_ID) ||
	    (r->device_id[0] != '\0' && strcmp(r->device_id, device) != 0))
		return OTA_ERR_FORMAT;
	if (!error_name_ok(r->error) || !str_ok(r->error_detail, SRV_MAX_DETAIL_BYTES) ||
	    !str_ok(r->version, OTA_MAX_STRING_BYTES) || !str_ok(r->model, OTA_MAX_STRING_BYTES) ||
	    !str_ok(r->hw_revision, OTA_MAX_STRING_BYTES) ||
	    !str_ok(r->campaign_id, OTA_MAX_STRING_BYTES) ||
	    !str_ok(r->artifact, OTA_MAX_STRING_BYTES) ||
	    !str_ok(r->pending_version, OTA_MAX_STRING_BYTES))
		return OTA_ERR_FORMAT;
	if (r->seq > INT64_MAX || r->version_code > INT64_MAX || r->security_counter > INT64_MAX ||
	    r->keylist_version > INT64_MAX || r->rootlist_version > INT64_MAX ||
	    r->time > INT64_MAX || r->progress_permille > 1000 || r->active_slot > 255)
		return OTA_ERR_FORMAT;
	if (r->n_events > OTA_MAX_REPORT_EVENTS || r->n_keylist_key_ids > OTA_MAX_KEYS)
		return OTA_ERR_FORMAT;
	for (size_t i = 0; i < r->n_keylist_key_ids; i++) {
		if (r->keylist_key_ids[i].len != OTA_KEY_ID_BYTES)
			return OTA_ERR_FORMAT;
	}
	for (size_t i = 0; i < r->n_events; i++) {
		const Fleetota__V1__Event *e = r->events[i];

		if (e->seq == 0 || e->seq > INT64_MAX || e->time > INT64_MAX ||
		    e->version_code > INT64_MAX || e->security_counter > INT64_MAX ||
		    !error_name_ok(e->error) || !str_ok(e->version, OTA_MAX_STRING_BYTES) ||
		    !str_ok(e->detail, SRV_MAX_DETAIL_BYTES) ||
		    !str_ok(e->campaign_id, OTA_MAX_STRING_BYTES))
			return OTA_ERR_FORMAT;
	}
	memcpy(ret_device, device, sizeof(device));
	*ret_report = r;
	return OTA_OK;
}

/*
 * One statement, so it is atomic and idempotent: upsert the device (not a
 * decommissioned one; a report older than the newest applied one does not
 * overwrite), insert the events (ON CONFLICT on the device's seq), move the
 * assignment the report is about.
 */
static const char sql_store[] =
	"WITH up AS ("
	" INSERT INTO devices AS d (device_id, model, hw_revision, version, version_code,"
	"  security_counter, keylist_version, rootlist_version, keylist_key_ids,"
	"  pending_version, active_slot, state, last_error, last_error_detail,"
	"  last_report_seq, last_seen)"
	" VALUES ($1, $11, $12, $6, $7::bigint, $8::bigint, $9::bigint, $10::bigint,"
	"  ARRAY(SELECT decode(x, 'hex') FROM jsonb_array_elements_text($18::jsonb) AS x),"
	"  $14, $13::int, $3, $4, $5, $2::bigint, now())"
	" ON CONFLICT (device_id) DO UPDATE SET"
	"  model = CASE WHEN EXCLUDED.model <> '' THEN EXCLUDED.model ELSE d.model END,"
	"  hw_revision = CASE WHEN EXCLUDED.hw_revision <> '' THEN EXCLUDED.hw_revision"
	"   ELSE d.hw_revision END,"
	"  version = EXCLUDED.version, version_code = EXCLUDED.version_code,"
	"  security_counter = EXCLUDED.security_counter,"
	"  keylist_version = EXCLUDED.keylist_version,"
	"  rootlist_version = EXCLUDED.rootlist_version,"
	"  keylist_key_ids = EXCLUDED.keylist_key_ids,"
	"  pending_version = EXCLUDED.pending_version, active_slot = EXCLUDED.active_slot,"
	"  state = EXCLUDED.state, last_error = EXCLUDED.last_error,"
	"  last_error_detail = EXCLUDED.last_error_detail,"
	"  last_report_seq = GREATEST(d.last_report_seq, EXCLUDED.last_report_seq),"
	"  last_seen = now()"
	" WHERE NOT d.decommissioned"
	"  AND (EXCLUDED.last_report_seq = 0 OR EXCLUDED.last_report_seq > d.last_report_seq)"
	" RETURNING 1"
	"), live AS ("
	" SELECT 1 WHERE EXISTS (SELECT 1 FROM up)"
	"  OR EXISTS (SELECT 1 FROM devices WHERE device_id = $1 AND NOT decommissioned)"
	"), ev AS ("
	" INSERT INTO device_events (device_id, seq, kind, error, version, version_code,"
	"  security_counter, detail, campaign_id, device_time)"
	" SELECT $1, e.seq, e.kind, e.error, e.version, e.version_code, e.security_counter,"
	"  e.detail, COALESCE(NULLIF(e.campaign_id, ''), $16::text), e.time"
	" FROM jsonb_to_recordset($17::jsonb) AS e(seq bigint, kind text, error text,"
	"  version text, version_code bigint, security_counter bigint, detail text,"
	"  campaign_id text, time bigint)"
	" WHERE EXISTS (SELECT 1 FROM live)"
	" ON CONFLICT (device_id, seq) DO NOTHING"
	" RETURNING 1"
	"), asg AS ("
	" UPDATE assignments SET state = $3, error = $4, updated_at = now()"
	" WHERE device_id = $1 AND artifact_id = $15 AND $15 <> ''"
	"  AND EXISTS (SELECT 1 FROM up)"
	" RETURNING 1"
	")"
	" SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM ev),"
	"  (SELECT count(*) FROM asg), EXISTS (SELECT 1 FROM live)";

enum ota_err srv_report_prepare(struct srv_server *srv)
{
	return srv_db_prepare(srv->db, "rpt_store", sql_store);
}

struct report_ctx {
	struct srv_server *srv;
	char device[SRV_MAX_DEVICE_ID + 1];
	uint64_t seq;
};

static void store_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct report_ctx *ctx = arg;

	if (err == OTA_OK && PQntuples(res) == 1) {
		long long events = atoll(PQgetvalue(res, 0, 1));
		bool live = strcmp(PQgetvalue(res, 0, 3), "t") == 0;

		ctx->srv->metrics.reports_stored++;
		ctx->srv->metrics.events_stored += events > 0 ? (uint64_t)events : 0;
		srv_log(SRV_LOG_DEBUG, "report %s seq %llu: device %s, %lld new events",
			ctx->device, (unsigned long long)ctx->seq,
			live ? "updated" : "decommissioned (ignored)", events);
	} else if (err != OTA_ERR_BUSY) {
		srv_log(SRV_LOG_ERROR, "report %s seq %llu not stored: %s", ctx->device,
			(unsigned long long)ctx->seq,
			res != NULL ? PQresultErrorMessage(res) : ota_err_name(err));
	}
	free(ctx);
}

static char *events_json(const Fleetota__V1__StatusReport *r)
{
	json_t *arr = json_array();
	char *text;

	if (arr == NULL)
		return NULL;
	for (size_t i = 0; i < r->n_events; i++) {
		const Fleetota__V1__Event *e = r->events[i];
		json_t *obj = json_pack("{sIsssssssIsIsssssI}", "seq", (json_int_t)e->seq, "kind",
					srv_report_event_name((int)e->kind), "error", e->error,
					"version", e->version, "version_code",
					(json_int_t)e->version_code, "security_counter",
					(json_int_t)e->security_counter, "detail", e->detail,
					"campaign_id", e->campaign_id, "time", (json_int_t)e->time);

		if (obj == NULL || json_array_append_new(arr, obj) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return text;
}

static char *key_ids_json(const Fleetota__V1__StatusReport *r)
{
	json_t *arr = json_array();
	char *text;

	if (arr == NULL)
		return NULL;
	for (size_t i = 0; i < r->n_keylist_key_ids; i++) {
		char hex[65];

		srv_store_name_from_sha256(r->keylist_key_ids[i].data, hex);
		if (json_array_append_new(arr, json_string(hex)) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return text;
}

void srv_report_handle(struct srv_server *srv, const char *topic, const uint8_t *payload,
		       size_t len)
{
	static uint8_t arena_mem[SRV_REPORT_ARENA_BYTES]; /* loop thread only */
	struct ota_arena arena;
	Fleetota__V1__StatusReport *r = NULL;
	struct report_ctx *ctx;
	char device[SRV_MAX_DEVICE_ID + 1];
	char seq[24], version_code[24], counter[24], kl[24], rl[24], slot[12];
	char *events = NULL, *key_ids = NULL;
	const char *params[18];
	enum ota_err err;

	srv->metrics.reports_received++;
	ota_arena_init(&arena, arena_mem, sizeof(arena_mem));
	err = srv_report_decode(payload, len, topic, &arena, &r, device);
	if (err != OTA_OK) {
		srv_metrics_reject(&srv->metrics, err == OTA_ERR_SIZE ? SRV_REJECT_REPORT_TOO_BIG
								      : SRV_REJECT_REPORT_FORMAT);
		srv_log(SRV_LOG_WARN, "report on '%.80s' refused: %s", topic, ota_err_name(err));
		return;
	}
	if (r->error[0] != '\0') {
		enum ota_err reported;

		if (ota_err_from_name(r->error, &reported) == OTA_OK &&
		    (unsigned)reported < OTA__ERR_COUNT)
			srv->metrics.device_errors[reported]++;
	}
	events = events_json(r);
	key_ids = key_ids_json(r);
	ctx = calloc(1, sizeof(*ctx));
	if (events == NULL || key_ids == NULL || ctx == NULL) {
		srv_log(SRV_LOG_ERROR, "report %s: out of memory", device);
		goto out;
	}
	ctx->srv = srv;
	memcpy(ctx->device, device, sizeof(device));
	ctx->seq = r->seq;
	snprintf(seq, sizeof(seq), "%" PRIu64, r->seq);
	snprintf(version_code, sizeof(version_code), "%" PRIu64, r->version_code);
	snprintf(counter, sizeof(counter), "%" PRIu64, r->security_counter);
	snprintf(kl, sizeof(kl), "%" PRIu64, r->keylist_version);
	snprintf(rl, sizeof(rl), "%" PRIu64, r->rootlist_version);
	snprintf(slot, sizeof(slot), "%u", r->active_slot);
	params[0] = device;
	params[1] = seq;
	params[2] = srv_report_state_name((int)r->state);
	params[3] = r->error;
	params[4] = r->error_detail;
	params[5] = r->version;
	params[6] = version_code;
	params[7] = counter;
	params[8] = kl;
	params[9] = rl;
	params[10] = r->model;
	params[11] = r->hw_revision;
	params[12] = slot;
	params[13] = r->pending_version;
	params[14] = r->artifact;
	params[15] = r->campaign_id;
	params[16] = events;
	params[17] = key_ids;
	err = srv_db_exec(srv->db, "rpt_store", 18, params, false, SRV_DB_RETRY, store_cb, ctx);
	if (err != OTA_OK) {
		srv_metrics_reject(&srv->metrics, SRV_REJECT_QUEUE_FULL);
		srv_log(SRV_LOG_ERROR, "report %s seq %llu dropped: %s", device,
			(unsigned long long)r->seq, ota_err_name(err));
		goto out;
	}
	ctx = NULL;
	srv_rollout_report(srv, device, r); /* campaign state (rollout engine) */
out:
	free(ctx);
	free(events);
	free(key_ids);
}
