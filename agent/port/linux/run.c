/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The online agent: `ota-agent run` (MQTT notifications + HTTPS delivery)
 * and `ota-agent fetch ARTIFACT` (one online install, no MQTT). Every
 * decision is the core's; this file moves bytes and reports.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fleetota/arena.h"
#include "fleetota/limits.h"
#include "ota.pb-c.h"
#include "ota_agent_cli.h"
#include "ota_https.h"
#include "ota_mqtt.h"

#define EXIT_REJECTED 1
#define EXIT_SETUP 2
#define ARTIFACT_MAX 128u

struct online {
	struct ota_agent *agent;
	const struct ota_config *config;
	struct ota_linux_port *port;
	struct ota_https https;
	struct ota_mqtt *mqtt; /* NULL for fetch */
	uint64_t report_seq;
	char artifact[ARTIFACT_MAX + 1];
	char campaign[ARTIFACT_MAX + 1];
	uint32_t progress_permille;

	/* handed over from Paho's thread */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool want_report;
	bool want_keylist;
	bool want_rootlist;
	bool want_firmware;
	char next_artifact[ARTIFACT_MAX + 1];
	char next_campaign[ARTIFACT_MAX + 1];
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static bool artifact_ok(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > ARTIFACT_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return s[0] != '.';
}

/* ---- report sequence (strictly increasing across restarts) ----------- */

static void report_seq_path(const struct online *o, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/report_seq", o->config->state_dir);
}

static uint64_t report_seq_load(const struct online *o)
{
	char path[OTA_CONFIG_MAX_PATH + 32];
	char text[32] = {0};
	report_seq_path(o, path, sizeof(path));
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	return strtoull(text, NULL, 10);
}

static void report_seq_store(const struct online *o)
{
	char path[OTA_CONFIG_MAX_PATH + 32];
	char tmp[OTA_CONFIG_MAX_PATH + 40];
	report_seq_path(o, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%llu\n", (unsigned long long)o->report_seq);
	if (fflush(f) == 0 && fsync(fileno(f)) == 0 && fclose(f) == 0)
		(void)rename(tmp, path);
	else
		unlink(tmp);
}

/* ---- status reports --------------------------------------------------- */

static void report(struct online *o, Fleetota__V1__DeviceState state)
{
	struct ota_agent_status st;
	Fleetota__V1__StatusReport r = FLEETOTA__V1__STATUS_REPORT__INIT;
	Fleetota__V1__Event events[OTA_MAX_REPORT_EVENTS];
	Fleetota__V1__Event *event_ptrs[OTA_MAX_REPORT_EVENTS];
	struct ota_event raw[OTA_MAX_REPORT_EVENTS];
	ota_agent_status(o->agent, &st);
	if (!o->mqtt)
		return;
	o->report_seq++;
	report_seq_store(o);
	r.device_id = (char *)o->config->device_id;
	r.seq = o->report_seq;
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
	for (uint64_t seq = first; seq < st.next_event_seq && n < OTA_MAX_REPORT_EVENTS; seq++) {
		if (ota_agent_event(o->agent, seq, &raw[n]) != OTA_OK)
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
	if (ota_mqtt_publish_status(o->mqtt, buf, len) != OTA_OK)
		fprintf(stderr, "ota-agent: status report not queued\n");
	free(buf);
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
static enum ota_err fetch_envelope(struct online *o, const char *path, struct membuf *buf)
{
	struct ota_https_response resp;
	buf->len = 0;
	enum ota_err err = ota_https_get(&o->https, o->config->server_url, path, 0, buf->cap,
					 membuf_put, buf, &resp);
	if (err != OTA_OK) {
		char detail[96];
		snprintf(detail, sizeof(detail), "GET %.48s: status %d", path, resp.status);
		(void)ota_agent_record_failure(o->agent, err, detail);
	}
	return err;
}

struct image_sink {
	struct online *o;
	enum ota_err core_err; /* the core refused a chunk (it already recorded why) */
	uint64_t size;
};

static enum ota_err image_put(void *arg, const uint8_t *data, size_t len)
{
	struct image_sink *s = arg;
	enum ota_err err = ota_agent_write(s->o->agent, data, len);
	if (err != OTA_OK) {
		s->core_err = err;
		return err;
	}
	uint64_t done = ota_agent_offset(s->o->agent);
	s->o->progress_permille = s->size ? (uint32_t)(done * 1000u / s->size) : 0;
	return OTA_OK;
}

static void sleep_s(unsigned s)
{
	for (unsigned i = 0; i < s * 10 && !stop_requested; i++) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
		nanosleep(&ts, NULL);
	}
}

static enum ota_err update_keylist(struct online *o, struct membuf *buf)
{
	enum ota_err err = fetch_envelope(o, "/v1/keylist", buf);
	if (err == OTA_OK)
		err = ota_agent_update_keylist(o->agent, buf->data, buf->len);
	return err;
}

static enum ota_err update_rootlist(struct online *o, struct membuf *buf)
{
	enum ota_err err = fetch_envelope(o, "/v1/rootlist", buf);
	if (err == OTA_OK) {
		const uint8_t *bufs[1] = {buf->data};
		size_t lens[1] = {buf->len};
		err = ota_agent_update_rootlist(o->agent, bufs, lens, 1);
	}
	return err;
}

/*
 * This port's reboot: the boot step in process, then the self-test (or,
 * without one, confirm: being up is this port's health check). Reports
 * each step; returns OTA_OK once confirmed.
 */
static enum ota_err boot_and_confirm(struct online *o)
{
	unsigned slot = 0;
	struct ota_agent_status st;
	ota_agent_request_reboot(o->agent);
	enum ota_err err = ota_agent_boot(o->agent, &slot);
	if (err != OTA_OK) {
		report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_FAILED);
		return err;
	}
	ota_agent_status(o->agent, &st);
	if (st.phase != OTA_PHASE_TRIAL) {
		/* the pending image did not verify again: the core recorded why */
		report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED);
		return st.last_error ? st.last_error : OTA_ERR_INTERNAL;
	}
	report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_TRIAL);
	err = o->port->selftest_cmd ? ota_agent_selftest(o->agent) : ota_agent_confirm(o->agent);
	report(o, err == OTA_OK ? FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_CONFIRMED
				: FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REVERTED);
	return err;
}

/* Manifest first, verified by the core; then the image, resumed with Range. */
static enum ota_err install_online(struct online *o, const char *artifact)
{
	char path[ARTIFACT_MAX + 32];
	struct membuf manifest = {.cap = OTA_MAX_ENVELOPE_BYTES};
	struct membuf kl = {.cap = OTA_MAX_ENVELOPE_BYTES};
	enum ota_err err;

	snprintf(o->artifact, sizeof(o->artifact), "%s", artifact);
	o->progress_permille = 0;
	manifest.data = malloc(manifest.cap);
	kl.data = malloc(kl.cap);
	if (!manifest.data || !kl.data) {
		err = OTA_ERR_NOMEM;
		goto out;
	}
	report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_DOWNLOADING);
	snprintf(path, sizeof(path), "/v1/manifests/%s", artifact);
	err = fetch_envelope(o, path, &manifest);
	if (err != OTA_OK)
		goto failed;
	report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_VERIFYING);
	err = ota_agent_begin(o->agent, manifest.data, manifest.len, NULL, 0, NULL, NULL, 0);
	if (err == OTA_ERR_KEY_UNKNOWN && update_keylist(o, &kl) == OTA_OK) {
		/* the manifest's key may be in a newer KeyList: one more try */
		report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_VERIFYING);
		err = ota_agent_begin(o->agent, manifest.data, manifest.len, NULL, 0, NULL, NULL,
				      0);
	}
	if (err != OTA_OK)
		goto rejected;

	uint64_t size = ota_agent_image_size(o->agent);
	snprintf(path, sizeof(path), "/v1/images/%s", artifact);
	for (unsigned attempt = 0;; attempt++) {
		struct image_sink sink = {.o = o, .size = size};
		struct ota_https_response resp;
		uint64_t offset = ota_agent_offset(o->agent);
		report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_DOWNLOADING);
		err = ota_https_get(&o->https, o->config->server_url, path, offset, size - offset,
				    image_put, &sink, &resp);
		if (err == OTA_OK)
			break;
		if (sink.core_err != OTA_OK) {
			err = sink.core_err; /* recorded by the core, slot erased */
			goto rejected;
		}
		if (err == OTA_ERR_SIZE || err == OTA_ERR_PIN ||
		    attempt >= o->config->download_retries) {
			char detail[96];
			snprintf(detail, sizeof(detail), "image download: status %d", resp.status);
			(void)ota_agent_abort(o->agent, err, detail, err != OTA_ERR_SIZE);
			goto failed;
		}
		/* keep the hashed prefix; begin again re-verifies and re-hashes it */
		(void)ota_agent_abort(o->agent, err, "download interrupted", true);
		fprintf(stderr, "ota-agent: download interrupted (%s), retrying\n",
			ota_err_name(err));
		unsigned wait = resp.retry_after_s ? resp.retry_after_s : 1u << attempt;
		sleep_s(wait > 60 ? 60 : wait);
		if (stop_requested) {
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
	report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_PENDING);

	err = boot_and_confirm(o);
	goto out;
rejected:
	report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED);
	goto out;
failed:
	report(o, FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_FAILED);
out:
	free(manifest.data);
	free(kl.data);
	return err;
}

/* ---- setup ------------------------------------------------------------ */

static int online_open(struct online *o, struct ota_agent *agent, const struct ota_config *config,
		       struct ota_linux_port *port)
{
	char err[256];
	memset(o, 0, sizeof(*o));
	o->agent = agent;
	o->config = config;
	o->port = port;
	if (!agent->state.provisioned) {
		fprintf(stderr, "ota-agent: not provisioned\n");
		return -1;
	}
	if (!config->server_url[0]) {
		fprintf(stderr, "ota-agent: server_url is not configured\n");
		return -1;
	}
	struct ota_https_config hc = {.ca_file = config->ca_file,
				      .cert_file = config->device_cert,
				      .key_file = config->device_key,
				      .pins = config->server_pins,
				      .n_pins = config->n_server_pins,
				      .stall_timeout_s = config->stall_timeout_s};
	if (ota_https_init(&o->https, &hc, err, sizeof(err)) != OTA_OK) {
		fprintf(stderr, "ota-agent: https: %s\n", err);
		return -1;
	}
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->wake, NULL);
	o->report_seq = report_seq_load(o);
	return 0;
}

static void online_close(struct online *o)
{
	ota_mqtt_stop(o->mqtt);
	o->mqtt = NULL;
	ota_https_free(&o->https);
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->wake);
}

int ota_agent_fetch(struct ota_agent *agent, const struct ota_config *config,
		    struct ota_linux_port *port, const char *artifact)
{
	struct online o;
	if (!artifact || !artifact_ok(artifact)) {
		fprintf(stderr, "ota-agent: fetch needs a valid artifact id\n");
		return EXIT_SETUP;
	}
	if (online_open(&o, agent, config, port) != 0)
		return EXIT_SETUP;
	enum ota_err err = install_online(&o, artifact);
	online_close(&o);
	if (err != OTA_OK) {
		struct ota_agent_status st;
		ota_agent_status(agent, &st);
		printf("rejected: %s: %s\n", ota_err_name(err),
		       st.last_error == err ? st.last_error_detail : ota_err_describe(err));
		return EXIT_REJECTED;
	}
	struct ota_agent_status st;
	ota_agent_status(agent, &st);
	printf("confirmed: %s (security counter %llu)\n", st.confirmed.version,
	       (unsigned long long)st.security_counter);
	return 0;
}

/* ---- the daemon ------------------------------------------------------- */

/* On Paho's thread: decode the hint and hand it over. */
static void on_cmd(void *arg, const uint8_t *payload, size_t len)
{
	struct online *o = arg;
	static uint8_t mem[OTA_MAX_MQTT_PAYLOAD_BYTES * 2];
	struct ota_arena arena;
	pthread_mutex_lock(&o->lock);
	ota_arena_init(&arena, mem, sizeof(mem));
	Fleetota__V1__Notify *n = fleetota__v1__notify__unpack(&arena.allocator, len, payload);
	if (n) {
		switch (n->kind) {
		case FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_FIRMWARE:
			if (n->artifact && artifact_ok(n->artifact)) {
				snprintf(o->next_artifact, sizeof(o->next_artifact), "%s",
					 n->artifact);
				snprintf(o->next_campaign, sizeof(o->next_campaign), "%.128s",
					 n->campaign_id ? n->campaign_id : "");
				o->want_firmware = true;
			}
			break;
		case FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_KEYLIST:
			o->want_keylist = true;
			break;
		case FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_ROOTLIST:
			o->want_rootlist = true;
			break;
		default:
			o->want_report = true;
			break;
		}
		pthread_cond_signal(&o->wake);
	}
	pthread_mutex_unlock(&o->lock);
}

static void on_connected(void *arg)
{
	struct online *o = arg;
	pthread_mutex_lock(&o->lock);
	o->want_report = true;
	pthread_cond_signal(&o->wake);
	pthread_mutex_unlock(&o->lock);
}

static Fleetota__V1__DeviceState idle_state(const struct ota_agent *agent)
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

int ota_agent_run(struct ota_agent *agent, const struct ota_config *config,
		  struct ota_linux_port *port)
{
	struct online o;
	if (!config->broker_url[0]) {
		fprintf(stderr, "ota-agent: broker_url is not configured\n");
		return EXIT_SETUP;
	}
	if (online_open(&o, agent, config, port) != 0)
		return EXIT_SETUP;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	struct ota_mqtt_config mc = {.url = config->broker_url,
				     .device_id = config->device_id,
				     .ca_file = config->ca_file,
				     .cert_file = config->device_cert,
				     .key_file = config->device_key};
	if (ota_mqtt_start(&mc, on_cmd, on_connected, &o, &o.mqtt) != OTA_OK) {
		fprintf(stderr, "ota-agent: mqtt client for %s could not start\n",
			config->broker_url);
		online_close(&o);
		return EXIT_SETUP;
	}
	fprintf(stderr, "ota-agent: running as %s\n", config->device_id);
	report(&o, idle_state(agent));
	/* a restart left an update pending or on trial: finish what was started */
	if (agent->state.phase == OTA_PHASE_PENDING)
		(void)boot_and_confirm(&o);
	else if (agent->state.phase == OTA_PHASE_TRIAL)
		report(&o, (port->selftest_cmd ? ota_agent_selftest(agent)
					       : ota_agent_confirm(agent)) == OTA_OK
				   ? FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_CONFIRMED
				   : FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REVERTED);
	unsigned interval = config->report_interval_s ? config->report_interval_s : 300;
	unsigned idle_s = 0;
	while (!stop_requested) {
		bool firmware, keylist, rootlist, want_report;
		char artifact[ARTIFACT_MAX + 1];
		pthread_mutex_lock(&o.lock);
		if (!o.want_firmware && !o.want_keylist && !o.want_rootlist && !o.want_report) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			/* wake at least every second to notice a stop request */
			until.tv_sec += 1;
			int rc = pthread_cond_timedwait(&o.wake, &o.lock, &until);
			if (rc == ETIMEDOUT && ++idle_s >= interval) {
				idle_s = 0;
				o.want_report = true;
			}
		}
		firmware = o.want_firmware;
		keylist = o.want_keylist;
		rootlist = o.want_rootlist;
		want_report = o.want_report;
		memcpy(artifact, o.next_artifact, sizeof(artifact));
		if (firmware)
			memcpy(o.campaign, o.next_campaign, sizeof(o.campaign));
		o.want_firmware = o.want_keylist = o.want_rootlist = o.want_report = false;
		pthread_mutex_unlock(&o.lock);

		struct membuf buf = {.cap = OTA_MAX_ENVELOPE_BYTES};
		if (rootlist || keylist)
			buf.data = malloc(buf.cap);
		if (rootlist && buf.data)
			report(&o, update_rootlist(&o, &buf) == OTA_OK
					   ? idle_state(agent)
					   : FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED);
		if (keylist && buf.data)
			report(&o, update_keylist(&o, &buf) == OTA_OK
					   ? idle_state(agent)
					   : FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED);
		free(buf.data);
		if (firmware)
			(void)install_online(&o, artifact);
		else if (want_report)
			report(&o, idle_state(agent));
	}
	fprintf(stderr, "ota-agent: stopping\n");
	online_close(&o);
	return 0;
}
