/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fleetota/crypto.h"
#include "device.h"
#include "fleetota/limits.h"
#include "fleetota/utf8.h"
#include "log-internal.h"
#include "report-internal.h"
#include "security-internal.h"
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
	/* signed freshness (ota.proto EventKind 20, 21) */
	if (kind == FLEETOTA__V1__EVENT_KIND__EVENT_KIND_FREEZE_SUSPECTED)
		return "freeze_suspected";
	if (kind == FLEETOTA__V1__EVENT_KIND__EVENT_KIND_FRESHNESS_RESTORED)
		return "freshness_restored";
	if (kind < 0 || (size_t)kind >= sizeof(event_names) / sizeof(event_names[0]))
		return "unknown";
	return event_names[kind];
}

/* A string from a report: within max bytes and UTF-8 (it becomes JSON). */
static bool str_ok(const char *s, size_t max)
{
	size_t len;

	if (s == NULL)
		return false;
	len = strnlen(s, max + 1);
	return len <= max && ota_utf8_valid(s, len);
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
	    r->time > INT64_MAX || r->progress_permille > 1000 || r->active_slot > 255 ||
	    r->health_permille > 1000 || r->unexpected_reboots > SRV_MAX_UNEXPECTED_REBOOTS)
		return OTA_ERR_FORMAT;
	if (r->n_events > OTA_MAX_REPORT_EVENTS || r->n_keylist_key_ids > OTA_MAX_KEYS)
		return OTA_ERR_FORMAT;
	/* the running image's hash (a delta's base): none, or a SHA-256 */
	if (r->running_sha256.len != 0 && r->running_sha256.len != OTA_SHA256_BYTES)
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

static json_t *event_json(const Fleetota__V1__Event *e)
{
	return json_pack("{sIsssssssIsIsssssI}", "seq", (json_int_t)e->seq, "kind",
			 srv_report_event_name((int)e->kind), "error", e->error, "version",
			 e->version, "version_code", (json_int_t)e->version_code,
			 "security_counter", (json_int_t)e->security_counter, "detail", e->detail,
			 "campaign_id", e->campaign_id, "time", (json_int_t)e->time);
}

static json_t *report_json(const Fleetota__V1__StatusReport *r)
{
	json_t *events = json_array(), *key_ids = json_array(), *doc; /* "O": doc holds its own */

	if (events == NULL || key_ids == NULL)
		goto fail;
	for (size_t i = 0; i < r->n_events; i++) {
		if (json_array_append_new(events, event_json(r->events[i])) != 0)
			goto fail;
	}
	for (size_t i = 0; i < r->n_keylist_key_ids; i++) {
		char hex[SRV_SHA256_HEX_BYTES];

		srv_store_name_from_sha256(r->keylist_key_ids[i].data, hex);
		if (json_array_append_new(key_ids, json_string(hex)) != 0)
			goto fail;
	}
	doc = json_pack(
		"{sIsssssssssIsIsIsIsssssIsssssssOsO}", "seq", (json_int_t)r->seq, "state",
		srv_report_state_name((int)r->state), "error", r->error, "error_detail",
		r->error_detail, "version", r->version, "version_code", (json_int_t)r->version_code,
		"security_counter", (json_int_t)r->security_counter, "keylist_version",
		(json_int_t)r->keylist_version, "rootlist_version", (json_int_t)r->rootlist_version,
		"model", r->model, "hw_revision", r->hw_revision, "active_slot",
		(json_int_t)r->active_slot, "pending_version", r->pending_version, "artifact",
		r->artifact, "campaign_id", r->campaign_id, "events", events, "keylist_key_ids",
		key_ids);
	if (doc != NULL && r->running_sha256.len == OTA_SHA256_BYTES) {
		char hex[SRV_SHA256_HEX_BYTES];

		srv_store_name_from_sha256(r->running_sha256.data, hex);
		if (json_object_set_new(doc, "running_sha256", json_string(hex)) != 0) {
			json_decref(doc);
			doc = NULL;
		}
	}
	/* post-install health (StatusReport 30..32, rollout_health) */
	if (doc != NULL && r->health_known &&
	    (json_object_set_new(doc, "health_known", json_true()) != 0 ||
	     json_object_set_new(doc, "unexpected_reboots",
				 json_integer((json_int_t)r->unexpected_reboots)) != 0 ||
	     json_object_set_new(doc, "health_permille",
				 json_integer((json_int_t)r->health_permille)) != 0)) {
		json_decref(doc);
		doc = NULL;
	}
	json_decref(events);
	json_decref(key_ids);
	return doc;
fail:
	json_decref(events);
	json_decref(key_ids);
	return NULL;
}

enum ota_err srv_report_doc_new(const Fleetota__V1__StatusReport *r, const uint8_t *payload,
				size_t len, struct srv_report_doc *ret_doc)
{
	json_t *json = report_json(r);

	if (json == NULL)
		return OTA_ERR_NOMEM;
	ret_doc->json = json;
	ret_doc->seq = r->seq;
	ret_doc->merged = 1;
	ret_doc->events_dropped = 0;
	ret_doc->events_ascending = true;
	for (size_t i = 1; i < r->n_events; i++) {
		if (r->events[i]->seq <= r->events[i - 1]->seq)
			ret_doc->events_ascending = false;
	}
	ota_sha256(payload, len, ret_doc->digest);
	return OTA_OK;
}

void srv_report_doc_clear(struct srv_report_doc *doc)
{
	if (doc == NULL)
		return;
	json_decref(doc->json);
	memset(doc, 0, sizeof(*doc));
}

static json_int_t event_seq(const json_t *e)
{
	return json_integer_value(json_object_get(e, "seq"));
}

static bool has_event(const json_t *events, json_int_t seq)
{
	size_t i;
	const json_t *e;

	json_array_foreach(events, i, e)
	{
		if (json_integer_value(json_object_get(e, "seq")) == seq)
			return true;
	}
	return false;
}

static int by_seq(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "seq"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "seq"));

	return (x > y) - (x < y);
}

/* The newest SRV_REPORT_COALESCE_EVENTS events of both, each seq once. */
static json_t *events_union(const json_t *a, const json_t *b, size_t *dropped, bool *ascending)
{
	json_t *all[2 * SRV_REPORT_COALESCE_EVENTS];
	json_t *out = json_array();
	size_t n = 0, i, skip;
	json_t *e;

	if (out == NULL)
		return NULL;
	json_array_foreach(a, i, e)
	{
		if (n < sizeof(all) / sizeof(all[0]))
			all[n++] = e;
	}
	json_array_foreach(b, i, e)
	{
		if (n < sizeof(all) / sizeof(all[0]) &&
		    !has_event(a, json_integer_value(json_object_get(e, "seq"))))
			all[n++] = e;
	}
	qsort(all, n, sizeof(all[0]), by_seq);
	skip = n > SRV_REPORT_COALESCE_EVENTS ? n - SRV_REPORT_COALESCE_EVENTS : 0;
	*dropped += skip;
	*ascending = true;
	for (i = skip; i < n; i++) {
		if (i > skip && event_seq(all[i]) <= event_seq(all[i - 1]))
			*ascending = false;
		if (json_array_append(out, all[i]) != 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/*
 * The same union when both are strictly ascending and every event of b
 * follows a's last (a device's reports in order: a flood): a's events, then
 * b's, the oldest beyond the bound left out. Unlike events_union, no lookup
 * per held event, so a held report costs the same at any count.
 */
static json_t *events_append(const json_t *a, const json_t *b, size_t *dropped)
{
	size_t na = json_array_size(a), nb = json_array_size(b), i;
	size_t skip =
		na + nb > SRV_REPORT_COALESCE_EVENTS ? na + nb - SRV_REPORT_COALESCE_EVENTS : 0;
	json_t *out = json_array();

	if (out == NULL)
		return NULL;
	*dropped += skip;
	for (i = skip; i < na + nb; i++) {
		if (json_array_append(out, i < na ? json_array_get(a, i)
						  : json_array_get(b, i - na)) != 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/* events_append gives what events_union would */
static bool events_follow(const struct srv_report_doc *older, const json_t *a,
			  const struct srv_report_doc *newer, const json_t *b)
{
	size_t na = json_array_size(a), nb = json_array_size(b);

	if (!older->events_ascending || !newer->events_ascending ||
	    na + nb > 2 * SRV_REPORT_COALESCE_EVENTS)
		return false;
	return na == 0 || nb == 0 ||
	       event_seq(json_array_get(b, 0)) > event_seq(json_array_get(a, na - 1));
}

enum ota_err srv_report_merge(struct srv_report_doc *into, struct srv_report_doc *doc)
{
	struct srv_report_doc *newer, *older;
	const json_t *a, *b;
	json_t *events;
	bool ascending = true;

	if (into->json == NULL) {
		*into = *doc;
		memset(doc, 0, sizeof(*doc));
		return OTA_OK;
	}
	newer = doc->seq > into->seq ? doc : into;
	older = newer == doc ? into : doc;
	a = json_object_get(older->json, "events");
	b = json_object_get(newer->json, "events");
	if (events_follow(older, a, newer, b))
		events = events_append(a, b, &newer->events_dropped);
	else
		events = events_union(a, b, &newer->events_dropped, &ascending);
	if (events == NULL || json_object_set_new(newer->json, "events", events) != 0)
		return OTA_ERR_NOMEM;
	newer->events_ascending = ascending;
	newer->merged += older->merged;
	newer->events_dropped += older->events_dropped;
	if (newer == doc) {
		json_decref(into->json);
		*into = *doc;
	} else {
		json_decref(doc->json);
	}
	memset(doc, 0, sizeof(*doc));
	return OTA_OK;
}

enum ota_err srv_report_prepare(struct srv_server *srv)
{
	return srv_security_prepare(srv->db);
}
