/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The online install policy (fleetota/online.h): one copy for every port,
 * so what a device fetches, believes and retries is decided once. Bytes
 * move only through the port's fetch and wait operations.
 */
#include <string.h>

#include "fleetota/freshness.h"
#include "fleetota/hex.h"
#include "fleetota/online.h"
#include "text-internal.h"

/* The work area's parts. */
#define WORK_MANIFEST 0u
#define WORK_KEYLIST OTA_MAX_ENVELOPE_BYTES
#define WORK_REPORT (2u * OTA_MAX_ENVELOPE_BYTES)

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
	r.device_id = (char *)o->device_id;
	r.seq = seq;
	r.state = state;
	r.error = st.last_error ? (char *)ota_err_name(st.last_error) : "";
	r.error_detail = st.last_error_detail;
	r.version = st.confirmed.valid ? st.confirmed.version : "";
	r.version_code = st.confirmed.valid ? st.confirmed.version_code : 0;
	r.security_counter = st.security_counter;
	r.keylist_version = st.keylist_version;
	r.rootlist_version = st.rootlist_version;
	r.model = (char *)o->model;
	r.hw_revision = (char *)o->hw_revision;
	r.progress_permille = o->progress_permille;
	r.campaign_id = o->campaign;
	r.artifact = o->artifact;
	r.time = st.latest_time;
	r.active_slot = st.running_slot;
	r.pending_version = st.phase != OTA_PHASE_IDLE ? st.target.version : "";
	/* the confirmed image: the base a delta for this device must start from */
	if (st.confirmed.valid) {
		r.running_sha256.data = st.confirmed.sha256;
		r.running_sha256.len = OTA_SHA256_BYTES;
	}
	struct ota_freshness fresh;
	if (ota_agent_freshness(o->agent, &fresh) == OTA_OK) {
		r.timestamp_issued_at = fresh.issued_at;
		r.timestamp_expires_at = fresh.expires_at;
		r.current_version_code = fresh.version_code;
		r.freshness_error = fresh.frozen ? (char *)ota_err_name(OTA_ERR_FROZEN) : "";
	}
	if (o->health_open) {
		struct ota_port_health h;
		ota_online_health(o, &h);
		uint64_t boots = h.unrequested_boots >= o->health_base
					 ? h.unrequested_boots - o->health_base
					 : 0;
		r.health_known = true;
		r.unexpected_reboots = boots > UINT32_MAX ? UINT32_MAX : (uint32_t)boots;
		r.health_permille = h.permille > 1000 ? 1000 : h.permille;
	}
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
	uint8_t *buf = o->work + WORK_REPORT;
	fleetota__v1__status_report__pack(&r, buf);
	o->report_send(o->arg, buf, len);
}

void ota_online_health(const struct ota_online *o, struct ota_port_health *ret)
{
	struct ota_port_health h = {.permille = 1000, .unrequested_boots = 0};
	const struct ota_port_ops *ops = o->agent->port.ops;
	if (ops->health && ops->health(o->agent->port.ctx, &h) != OTA_OK) {
		/* a port that cannot tell is not reported healthy */
		h.permille = 0;
	}
	*ret = h;
}

void ota_online_health_open(struct ota_online *o)
{
	struct ota_port_health h;
	ota_online_health(o, &h);
	o->health_base = h.unrequested_boots;
	o->health_open = true;
}

void ota_online_health_close(struct ota_online *o)
{
	o->health_open = false;
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

static bool stopping(struct ota_online *o)
{
	return o->stopping && o->stopping(o->arg);
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

/* The delivery API's path of what (DESIGN.md section 4). */
static void fetch_path(enum ota_fetch_what what, const char *artifact, const char *query, char *buf,
		       size_t cap)
{
	static const char *const prefix[] = {"/v1/manifests/", "/v1/images/", "/v1/keylist",
					     "/v1/rootlist", "/v1/timestamp/"};
	struct ota_text t;
	ota_text_init(&t, buf, cap);
	ota_text_str(&t, prefix[what]);
	if (what == OTA_FETCH_MANIFEST || what == OTA_FETCH_IMAGE || what == OTA_FETCH_TIMESTAMP) {
		ota_text_str(&t, artifact);
		ota_text_str(&t, query);
	}
}

/* One fetch through the port; *ret is written in every case. */
static enum ota_err transport_fetch(struct ota_online *o, const struct ota_fetch_request *req,
				    ota_port_sink_fn sink, void *sink_arg,
				    struct ota_fetch_result *ret)
{
	const struct ota_port *port = &o->agent->port;
	memset(ret, 0, sizeof(*ret));
	if (!port->ops->fetch)
		return OTA_ERR_INVALID_ARG;
	return port->ops->fetch(port->ctx, req, sink, sink_arg, ret);
}

/*
 * "<what>: status <n>" as the detail of a failed transfer, or "<what>: <the
 * transport's detail>" (a TLS alert) when there was no status.
 */
static void status_detail(char *buf, size_t cap, const char *what, size_t what_max,
			  const struct ota_fetch_result *res)
{
	struct ota_text t;
	ota_text_init(&t, buf, cap);
	ota_text_strn(&t, what, what_max);
	if (res->status == 0 && res->detail[0] != '\0') {
		ota_text_str(&t, ": ");
		ota_text_strn(&t, res->detail, sizeof(res->detail));
		return;
	}
	ota_text_str(&t, ": status ");
	ota_text_int(&t, res->status);
}

/* GET a signed object (at most one envelope) into buf. */
static enum ota_err fetch_envelope(struct ota_online *o, enum ota_fetch_what what,
				   const char *artifact, const char *query, struct membuf *buf)
{
	char path[OTA_ONLINE_ARTIFACT_MAX + 32];
	char what_text[OTA_ONLINE_DETAIL_PATH_MAX + 8];
	struct ota_fetch_result res;
	fetch_path(what, artifact, query, path, sizeof(path));
	struct ota_fetch_request req = {
		.what = what, .artifact = artifact, .path = path, .max_bytes = buf->cap};
	buf->len = 0;
	enum ota_err err = transport_fetch(o, &req, membuf_put, buf, &res);
	if (err != OTA_OK) {
		char detail[OTA_AGENT_DETAIL_BYTES];
		struct ota_text t;
		ota_text_init(&t, what_text, sizeof(what_text));
		ota_text_str(&t, "GET ");
		ota_text_strn(&t, path, OTA_ONLINE_DETAIL_PATH_MAX);
		status_detail(detail, sizeof(detail), what_text, sizeof(what_text), &res);
		(void)ota_agent_record_failure(o->agent, err, detail);
	}
	return err;
}

struct image_sink {
	struct ota_online *o;
	enum ota_err core_err; /* the core refused a chunk (it already recorded why) */
	uint64_t size;
};

static enum ota_err image_put(void *arg, const uint8_t *data, size_t len)
{
	struct image_sink *sink = arg;
	struct ota_online *o = sink->o;
	if (len > 0) {
		enum ota_err err = ota_agent_write(o->agent, data, len);
		if (err != OTA_OK) {
			sink->core_err = err;
			return err;
		}
	}
	uint64_t done = ota_agent_offset(o->agent);
	o->progress_permille = sink->size ? (uint32_t)(done * 1000u / sink->size) : 0;
	return o->stop_aborts && stopping(o) ? OTA_ERR_TRANSPORT : OTA_OK;
}

static enum ota_err update_keylist(struct ota_online *o, struct membuf *buf)
{
	enum ota_err err = fetch_envelope(o, OTA_FETCH_KEYLIST, "", "", buf);
	if (err == OTA_OK)
		err = ota_agent_update_keylist(o->agent, buf->data, buf->len);
	if (err == OTA_OK)
		note(o, OTA_ONLINE_KEYLIST_UPDATED, OTA_OK);
	return err;
}

static enum ota_err update_rootlist(struct ota_online *o, struct membuf *buf)
{
	enum ota_err err = fetch_envelope(o, OTA_FETCH_ROOTLIST, "", "", buf);
	if (err == OTA_OK) {
		const uint8_t *bufs[1] = {buf->data};
		size_t lens[1] = {buf->len};
		err = ota_agent_update_rootlist(o->agent, bufs, lens, 1);
	}
	return err;
}

void ota_online_update_lists(struct ota_online *o, bool rootlist, bool keylist)
{
	struct membuf buf = {.data = o->work + WORK_KEYLIST, .cap = OTA_MAX_ENVELOPE_BYTES};
	if (rootlist)
		ota_online_report(o, update_rootlist(o, &buf) == OTA_OK
					     ? ota_online_idle_state(o->agent)
					     : FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED);
	if (keylist)
		ota_online_report(o, update_keylist(o, &buf) == OTA_OK
					     ? ota_online_idle_state(o->agent)
					     : FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED);
}

/*
 * Signed freshness: the product line's current Timestamp, verified and
 * kept by the core, then the freeze judgement. A report goes out when the
 * freeze report opens or closes.
 */
enum ota_err ota_online_freshness(struct ota_online *o, enum ota_err *ret_timestamp_err)
{
	struct membuf buf = {.data = o->work + WORK_KEYLIST, .cap = OTA_MAX_ENVELOPE_BYTES};
	struct ota_freshness before;
	struct ota_freshness after;
	if (ota_agent_freshness(o->agent, &before) != OTA_OK)
		before.frozen = false;
	enum ota_err ts_err = fetch_envelope(o, OTA_FETCH_TIMESTAMP, o->model, "", &buf);
	if (ts_err == OTA_OK)
		ts_err = ota_agent_timestamp(o->agent, buf.data, buf.len);
	if (ret_timestamp_err)
		*ret_timestamp_err = ts_err;
	enum ota_err verdict = ota_agent_freshness_check(o->agent);
	if (ota_agent_freshness(o->agent, &after) == OTA_OK && after.frozen != before.frozen)
		ota_online_report(o, ota_online_idle_state(o->agent));
	return verdict;
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
	if (err == OTA_OK)
		ota_online_health_open(o);
	else
		ota_online_health_close(o);
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

static void backoff(struct ota_online *o, unsigned seconds)
{
	const struct ota_port *port = &o->agent->port;
	if (port->ops->wait)
		port->ops->wait(port->ctx, seconds);
}

/* 1 << attempt seconds, at most OTA_ONLINE_MAX_BACKOFF_S (no shift past the width). */
static unsigned backoff_s(unsigned attempt, unsigned retry_after_s)
{
	unsigned wait = retry_after_s;
	if (!wait)
		wait = attempt < 31u ? 1u << attempt : OTA_ONLINE_MAX_BACKOFF_S;
	return wait > OTA_ONLINE_MAX_BACKOFF_S ? OTA_ONLINE_MAX_BACKOFF_S : wait;
}

/* "/v1/manifests/ID?full=1": the full image even where a delta exists. */
#define FULL_QUERY "?full=1"
/* "/v1/images/ID?base=HEX": the delta from the base the manifest names. */
#define BASE_QUERY "?base="

/*
 * The delta errors a full image may not have: the payload (HASH, SIZE), or
 * a base the device does not run or an encoding it cannot apply (the
 * server's idea of the running image was stale).
 */
static bool delta_fallback(enum ota_err err)
{
	return err == OTA_ERR_HASH || err == OTA_ERR_SIZE || err == OTA_ERR_DELTA_BASE ||
	       err == OTA_ERR_DELTA_UNSUPPORTED;
}

/*
 * Manifest, verification, payload (resumed with Range), finish: the slot
 * is pending on OTA_OK. *ret_rejected: the core refused (else a transport
 * failure); *ret_delta: the manifest was a delta.
 */
static enum ota_err stage(struct ota_online *o, const char *artifact, bool full, bool *ret_rejected,
			  bool *ret_delta)
{
	char path[OTA_ONLINE_ARTIFACT_MAX + 32 + 2 * OTA_SHA256_BYTES];
	struct membuf manifest = {.data = o->work + WORK_MANIFEST, .cap = OTA_MAX_ENVELOPE_BYTES};
	struct membuf kl = {.data = o->work + WORK_KEYLIST, .cap = OTA_MAX_ENVELOPE_BYTES};
	uint8_t base[OTA_SHA256_BYTES];
	enum ota_err err;

	*ret_rejected = false;
	*ret_delta = false;
	err = fetch_envelope(o, OTA_FETCH_MANIFEST, artifact, full ? FULL_QUERY : "", &manifest);
	if (err != OTA_OK)
		return err;
	ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_VERIFYING);
	*ret_rejected = true;
	err = ota_agent_begin(o->agent, manifest.data, manifest.len, NULL, 0, NULL, NULL, 0);
	if (err == OTA_ERR_KEY_UNKNOWN && update_keylist(o, &kl) == OTA_OK) {
		/* the manifest's key may be in a newer KeyList: one more try */
		ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_VERIFYING);
		err = ota_agent_begin(o->agent, manifest.data, manifest.len, NULL, 0, NULL, NULL,
				      0);
	}
	if (err == OTA_ERR_DELTA_BASE || err == OTA_ERR_DELTA_UNSUPPORTED)
		*ret_delta = true;
	if (err != OTA_OK)
		return err;
	if (ota_agent_install_is_delta(o->agent, base)) {
		if (full) {
			/* asked for the full image, got a delta: not what was asked */
			(void)ota_agent_abort(o->agent, OTA_ERR_FORMAT,
					      "a delta, not the full image", false);
			return OTA_ERR_FORMAT;
		}
		*ret_delta = true;
	}

	uint64_t size = ota_agent_image_size(o->agent);
	fetch_path(OTA_FETCH_IMAGE, artifact, "", path, sizeof(path));
	if (*ret_delta) {
		struct ota_text t;
		char base_hex[2 * sizeof(base) + 1];
		ota_hex_encode(base, sizeof(base), base_hex);
		ota_text_init(&t, path + strlen(path), sizeof(path) - strlen(path));
		ota_text_str(&t, BASE_QUERY);
		ota_text_str(&t, base_hex);
	}
	for (unsigned attempt = 0;; attempt++) {
		struct image_sink sink = {.o = o, .size = size};
		struct ota_fetch_result res;
		uint64_t offset = ota_agent_offset(o->agent);
		struct ota_fetch_request req = {.what = OTA_FETCH_IMAGE,
						.artifact = artifact,
						.path = path,
						.offset = offset,
						.max_bytes = size - offset};
		ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_DOWNLOADING);
		err = transport_fetch(o, &req, image_put, &sink, &res);
		if (err == OTA_OK)
			break;
		if (res.restarted) {
			/* the device came up again from its records: start over from there */
			attempt = 0;
		} else if (sink.core_err != OTA_OK) {
			return sink.core_err; /* recorded by the core, slot erased */
		} else if (err == OTA_ERR_SIZE || err == OTA_ERR_PIN ||
			   attempt >= o->download_retries || (o->stop_aborts && stopping(o))) {
			char detail[OTA_AGENT_DETAIL_BYTES];
			status_detail(detail, sizeof(detail), "image download", SIZE_MAX, &res);
			(void)ota_agent_abort(o->agent, err, detail, err != OTA_ERR_SIZE);
			*ret_rejected = false;
			return err;
		} else {
			/* keep the hashed prefix; begin again re-verifies and re-hashes it */
			(void)ota_agent_abort(o->agent, err, "download interrupted", true);
			note(o, OTA_ONLINE_RETRY, err);
			backoff(o, backoff_s(attempt, res.retry_after_s));
		}
		if (stopping(o)) {
			*ret_rejected = false;
			return OTA_ERR_TRANSPORT;
		}
		err = ota_agent_begin(o->agent, manifest.data, manifest.len, NULL, 0, NULL, NULL,
				      0);
		if (err != OTA_OK)
			return err;
	}
	return ota_agent_finish(o->agent);
}

/*
 * Manifest first, verified by the core; then the image (or the delta the
 * server chose for this device's running image), resumed with Range. A
 * delta that fails is followed once by the full image (?full=1).
 */
enum ota_err ota_online_install(struct ota_online *o, const char *artifact)
{
	enum ota_err err;
	enum ota_online_note outcome = OTA_ONLINE_FAILED;
	bool rejected = false;
	bool delta = false;

	struct ota_text t;
	ota_text_init(&t, o->artifact, sizeof(o->artifact));
	ota_text_str(&t, artifact);
	o->progress_permille = 0;
	note(o, OTA_ONLINE_DOWNLOAD_START, OTA_OK);
	ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_DOWNLOADING);
	err = stage(o, artifact, false, &rejected, &delta);
	if (err != OTA_OK && rejected && delta && delta_fallback(err)) {
		/* the core recorded why; the full image is checked the same way */
		ota_online_report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED);
		o->progress_permille = 0;
		err = stage(o, artifact, true, &rejected, &delta);
	}
	if (err != OTA_OK) {
		if (rejected)
			goto rejected;
		goto failed;
	}
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
	return err;
}

/* ---- notifications ----------------------------------------------------- */

static bool same_install(const char *artifact, const char *campaign,
			 const struct ota_online_install_ref *ref)
{
	return artifact[0] != '\0' && ref->artifact != NULL &&
	       strncmp(artifact, ref->artifact, OTA_ONLINE_ARTIFACT_MAX) == 0 &&
	       strncmp(campaign, ref->campaign != NULL ? ref->campaign : "",
		       OTA_ONLINE_ARTIFACT_MAX) == 0;
}

bool ota_online_notify_duplicate(uint64_t *last_seq, const Fleetota__V1__Notify *n,
				 const struct ota_online_install_ref *busy, size_t nbusy)
{
	bool stale = n->seq != 0 && n->seq <= *last_seq;
	if (n->seq > *last_seq)
		*last_seq = n->seq;
	if (stale)
		return true;
	if (n->kind != FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_FIRMWARE || n->artifact == NULL)
		return false;
	for (size_t i = 0; i < nbusy; i++) {
		if (same_install(n->artifact, n->campaign_id != NULL ? n->campaign_id : "",
				 &busy[i]))
			return true;
	}
	return false;
}

bool ota_online_artifact_ok(const char *artifact)
{
	size_t len = 0;
	if (artifact[0] == '.')
		return false;
	for (; artifact[len] != '\0'; len++) {
		char c = artifact[len];
		if (len == OTA_ONLINE_ARTIFACT_MAX ||
		    !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return len > 0;
}
