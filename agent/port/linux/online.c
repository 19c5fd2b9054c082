/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The online install flow (see ota_online.h): one copy for `ota-agent run`
 * and the fleet simulator, so what a device installs is decided once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleetota/limits.h"
#include "ota_online.h"

/* ---- status reports --------------------------------------------------- */

void ota_online_report(struct ota_online *o, Fleetota__V1__DeviceState state)
{
	struct ota_agent_status st;
	Fleetota__V1__StatusReport r = FLEETOTA__V1__STATUS_REPORT__INIT;
	Fleetota__V1__Event events[OTA_MAX_REPORT_EVENTS];
	Fleetota__V1__Event *event_ptrs[OTA_MAX_REPORT_EVENTS];
	struct ota_event raw[OTA_MAX_REPORT_EVENTS];
	uint64_t seq = 0;
	ota_agent_status(o->agent, &st);
	if (!o->report_begin(o->arg, &st, &seq))
		return;
	r.device_id = (char *)o->config->device_id;
	r.seq = seq;
	r.state = state;
	r.error = st.last_error ? (char *)ota_err_name(st.last_error) : "";
	r.error_detail = st.last_error_detail;
	r.version = st.confirmed.valid ? st.confirmed.version : "";
	r.version_code = st.confirmed.valid ? st.confirmed.version_code : 0;
	r.security_counter = st.security_counter;
	r.keylist_version = st.keylist_version;
	r.rootlist_version = st.rootlist_version;
	r.model = (char *)o->config->model;
	r.hw_revision = (char *)o->config->hw_revision;
	r.progress_permille = o->progress_permille;
	r.campaign_id = o->campaign;
	r.artifact = o->artifact;
	r.time = st.latest_time;
	r.active_slot = st.running_slot;
	r.pending_version = st.phase != OTA_PHASE_IDLE ? st.target.version : "";
	/* the newest events; the server keeps each seq once */
	size_t n = 0;
	uint64_t first = st.next_event_seq > OTA_MAX_REPORT_EVENTS / 2
				 ? st.next_event_seq - OTA_MAX_REPORT_EVENTS / 2
				 : 1;
	for (uint64_t s = first; s < st.next_event_seq && n < OTA_MAX_REPORT_EVENTS; s++) {
		if (ota_agent_event(o->agent, s, &raw[n]) != OTA_OK)
			continue;
		fleetota__v1__event__init(&events[n]);
		events[n].seq = raw[n].seq;
		events[n].time = raw[n].time;
		events[n].kind = (Fleetota__V1__EventKind)raw[n].kind;
		events[n].error = raw[n].error ? (char *)ota_err_name(raw[n].error) : "";
		events[n].version = raw[n].version;
		events[n].version_code = raw[n].version_code;
		events[n].security_counter = raw[n].security_counter;
		events[n].detail = raw[n].detail;
		events[n].campaign_id = "";
		event_ptrs[n] = &events[n];
		n++;
	}
	r.events = event_ptrs;
	r.n_events = n;
	uint8_t key_ids[OTA_MAX_KEYS][OTA_KEY_ID_BYTES];
	ProtobufCBinaryData key_id_fields[OTA_MAX_KEYS];
	size_t n_ids = 0;
	if (ota_agent_keylist_key_ids(o->agent, key_ids, OTA_MAX_KEYS, &n_ids) == OTA_OK) {
		for (size_t i = 0; i < n_ids; i++) {
			key_id_fields[i].data = key_ids[i];
			key_id_fields[i].len = OTA_KEY_ID_BYTES;
		}
		r.keylist_key_ids = key_id_fields;
		r.n_keylist_key_ids = n_ids;
	}
	size_t len = fleetota__v1__status_report__get_packed_size(&r);
	if (len > OTA_MAX_MQTT_PAYLOAD_BYTES)
		return;
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return;
	fleetota__v1__status_report__pack(&r, buf);
	o->report_send(o->arg, buf, len);
	free(buf);
}

Fleetota__V1__DeviceState ota_online_idle_state(const struct ota_agent *agent)
{
	switch (agent->state.phase) {
	case OTA_PHASE_STAGING:
		return FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_DOWNLOADING;
	case OTA_PHASE_PENDING:
		return FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_PENDING;
	case OTA_PHASE_TRIAL:
		return FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_TRIAL;
	case OTA_PHASE_IDLE:
		break;
	}
	return FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_IDLE;
}

static void note(struct ota_online *o, enum ota_online_note what, enum ota_err err)
{
	if (o->note)
		o->note(o->arg, what, err);
}

/* ---- downloads -------------------------------------------------------- */

struct membuf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

static enum ota_err membuf_put(void *arg, const uint8_t *data, size_t len)
{
	struct membuf *m = arg;
	if (len > m->cap - m->len)
		return OTA_ERR_SIZE;
	memcpy(m->data + m->len, data, len);
	m->len += len;
	return OTA_OK;
}

/* GET a signed object (at most one envelope) into buf. */
static enum ota_err fetch_envelope(struct ota_online *o, const char *path, struct membuf *buf)
{
	struct ota_https_response resp = {0};
	buf->len = 0;
	enum ota_err err = o->https_ready ? o->https_ready(o->arg) : OTA_OK;
	if (err == OTA_OK)
		err = ota_https_get(o->https, o->config->server_url, path, 0, buf->cap, membuf_put,
				    buf, &resp);
	if (err != OTA_OK) {
		char detail[96];
		snprintf(detail, sizeof(detail), "GET %.48s: status %d", path, resp.status);
		(void)ota_agent_record_failure(o->agent, err, detail);
	}
	return err;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Sleeps s seconds unless a stop is requested first. */
static void sleep_s(const struct ota_online *o, unsigned s)
{
	for (unsigned i = 0; i < s * 10u && !*o->stop; i++)
		sleep_ms(100);
}

struct image_sink {
	struct ota_online *o;
	enum ota_err core_err; /* the core refused a chunk (it already recorded why) */
	uint64_t size;
	uint64_t received;
	double started;
	bool power_cut;
};

static enum ota_err image_put(void *arg, const uint8_t *data, size_t len)
{
	struct image_sink *sink = arg;
	struct ota_online *o = sink->o;
	bool cut = false;
	if (o->power_cut) {
		/* the lights go out half way through the image */
		uint64_t half = sink->size / 2;
		uint64_t at = ota_agent_offset(o->agent);
		if (at + len > half) {
			cut = true;
			len = at < half ? (size_t)(half - at) : 0;
		}
	}
	if (len > 0) {
		enum ota_err err = ota_agent_write(o->agent, data, len);
		if (err != OTA_OK) {
			sink->core_err = err;
			return err;
		}
	}
	uint64_t done = ota_agent_offset(o->agent);
	sink->received += len;
	o->progress_permille = sink->size ? (uint32_t)(done * 1000u / sink->size) : 0;
	if (cut) {
		/* nothing more is written, nothing is cleaned up */
		o->power_cut = false;
		sink->power_cut = true;
		return OTA_ERR_STORAGE;
	}
	if (o->slow_rate) {
		double due = sink->started + (double)sink->received / o->slow_rate;
		double wait = due - now_s();
		if (wait > 0 && !*o->stop)
			sleep_ms((unsigned)(wait * 1000.0));
	}
	return o->stop_aborts && *o->stop ? OTA_ERR_TRANSPORT : OTA_OK;
}

static enum ota_err update_keylist(struct ota_online *o, struct membuf *buf)
{
	enum ota_err err = fetch_envelope(o, "/v1/keylist", buf);
	if (err == OTA_OK)
		err = ota_agent_update_keylist(o->agent, buf->data, buf->len);
	if (err == OTA_OK)
		note(o, OTA_ONLINE_KEYLIST_UPDATED, OTA_OK);
	return err;
}

static enum ota_err update_rootlist(struct ota_online *o, struct membuf *buf)
{
	enum ota_err err = fetch_envelope(o, "/v1/rootlist", buf);
	if (err == OTA_OK) {
		const uint8_t *bufs[1] = {buf->data};
		size_t lens[1] = {buf->len};
		err = ota_agent_update_rootlist(o->agent, bufs, lens, 1);
	}
	return err;
}

void ota_online_update_lists(struct ota_online *o, bool rootlist, bool keylist)
{
	struct membuf buf = {.cap = OTA_MAX_ENVELOPE_BYTES};
	if (rootlist || keylist)
		buf.data = malloc(buf.cap);
	if (rootlist && buf.data)
		ota_online_report(o, update_rootlist(o, &buf) == OTA_OK
					     ? ota_online_idle_state(o->agent)
					     : FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED);
	if (keylist && buf.data)
		ota_online_report(o, update_keylist(o, &buf) == OTA_OK
					     ? ota_online_idle_state(o->agent)
					     : FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED);
	free(buf.data);
}

/*
 * The reboot: the boot step in process, then the self-test (or, without
 * one, confirm: being up is the health check). Reports each step;
 * returns OTA_OK once confirmed.
 */
enum ota_err ota_online_boot_and_confirm(struct ota_online *o)
{
	unsigned slot = 0;
	struct ota_agent_status st;
	ota_agent_request_reboot(o->agent);
	enum ota_err err = ota_agent_boot(o->agent, &slot);
	if (err != OTA_OK) {
		ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_FAILED);
		note(o, OTA_ONLINE_FAILED, err);
		return err;
	}
	ota_agent_status(o->agent, &st);
	if (st.phase != OTA_PHASE_TRIAL) {
		/* the pending image did not verify again: the core recorded why */
		ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED);
		err = st.last_error ? st.last_error : OTA_ERR_INTERNAL;
		note(o, OTA_ONLINE_REJECTED, err);
		return err;
	}
	ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_TRIAL);
	err = o->selftest ? ota_agent_selftest(o->agent) : ota_agent_confirm(o->agent);
	ota_online_report(o, err == OTA_OK ? FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_CONFIRMED
					   : FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REVERTED);
	note(o, err == OTA_OK ? OTA_ONLINE_CONFIRMED : OTA_ONLINE_REVERTED, err);
	return err;
}

void ota_online_resume(struct ota_online *o)
{
	if (o->agent->state.phase == OTA_PHASE_PENDING)
		(void)ota_online_boot_and_confirm(o);
	else if (o->agent->state.phase == OTA_PHASE_TRIAL)
		ota_online_report(o, (o->selftest ? ota_agent_selftest(o->agent)
						  : ota_agent_confirm(o->agent)) == OTA_OK
					     ? FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_CONFIRMED
					     : FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REVERTED);
}

/* Manifest first, verified by the core; then the image, resumed with Range. */
enum ota_err ota_online_install(struct ota_online *o, const char *artifact)
{
	char path[OTA_ONLINE_ARTIFACT_MAX + 32];
	struct membuf manifest = {.cap = OTA_MAX_ENVELOPE_BYTES};
	struct membuf kl = {.cap = OTA_MAX_ENVELOPE_BYTES};
	enum ota_err err;
	enum ota_online_note outcome = OTA_ONLINE_FAILED;

	snprintf(o->artifact, sizeof(o->artifact), "%s", artifact);
	o->progress_permille = 0;
	manifest.data = malloc(manifest.cap);
	kl.data = malloc(kl.cap);
	if (!manifest.data || !kl.data) {
		err = OTA_ERR_NOMEM;
		goto out;
	}
	note(o, OTA_ONLINE_DOWNLOAD_START, OTA_OK);
	ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_DOWNLOADING);
	snprintf(path, sizeof(path), "/v1/manifests/%s", artifact);
	err = fetch_envelope(o, path, &manifest);
	if (err != OTA_OK)
		goto failed;
	ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_VERIFYING);
	err = ota_agent_begin(o->agent, manifest.data, manifest.len, NULL, 0, NULL, NULL, 0);
	if (err == OTA_ERR_KEY_UNKNOWN && update_keylist(o, &kl) == OTA_OK) {
		/* the manifest's key may be in a newer KeyList: one more try */
		ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_VERIFYING);
		err = ota_agent_begin(o->agent, manifest.data, manifest.len, NULL, 0, NULL, NULL,
				      0);
	}
	if (err != OTA_OK)
		goto rejected;

	uint64_t size = ota_agent_image_size(o->agent);
	snprintf(path, sizeof(path), "/v1/images/%s", artifact);
	for (unsigned attempt = 0;; attempt++) {
		struct image_sink sink = {.o = o, .size = size, .started = now_s()};
		struct ota_https_response resp;
		uint64_t offset = ota_agent_offset(o->agent);
		ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_DOWNLOADING);
		err = ota_https_get(o->https, o->config->server_url, path, offset, size - offset,
				    image_put, &sink, &resp);
		if (err == OTA_OK)
			break;
		if (sink.power_cut) {
			o->power_cycle(o->arg);
			attempt = 0;
		} else if (sink.core_err != OTA_OK) {
			err = sink.core_err; /* recorded by the core, slot erased */
			goto rejected;
		} else if (err == OTA_ERR_SIZE || err == OTA_ERR_PIN ||
			   attempt >= o->config->download_retries || (o->stop_aborts && *o->stop)) {
			char detail[96];
			snprintf(detail, sizeof(detail), "image download: status %d", resp.status);
			(void)ota_agent_abort(o->agent, err, detail, err != OTA_ERR_SIZE);
			goto failed;
		} else {
			/* keep the hashed prefix; begin again re-verifies and re-hashes it */
			(void)ota_agent_abort(o->agent, err, "download interrupted", true);
			if (!o->quiet)
				fprintf(stderr, "ota-agent: download interrupted (%s), retrying\n",
					ota_err_name(err));
			unsigned wait = resp.retry_after_s ? resp.retry_after_s : 1u << attempt;
			sleep_s(o, wait > 60 ? 60 : wait);
		}
		if (*o->stop) {
			err = OTA_ERR_TRANSPORT;
			goto failed;
		}
		err = ota_agent_begin(o->agent, manifest.data, manifest.len, NULL, 0, NULL, NULL,
				      0);
		if (err != OTA_OK)
			goto rejected;
	}
	err = ota_agent_finish(o->agent);
	if (err != OTA_OK)
		goto rejected;
	o->progress_permille = 1000;
	ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_PENDING);
	err = ota_online_boot_and_confirm(o);
	goto done;
rejected:
	outcome = OTA_ONLINE_REJECTED;
	ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED);
	goto counted;
failed:
	ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_FAILED);
counted:
	note(o, outcome, err);
done:
	note(o, OTA_ONLINE_DOWNLOAD_END, err);
out:
	free(manifest.data);
	free(kl.data);
	return err;
}
