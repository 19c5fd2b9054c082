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
#include "fleetota/freshness.h"
#include "fleetota/limits.h"
#include "fleetota/online.h"
#include "ota.pb-c.h"
#include "ota_agent_cli.h"
#include "ota_https.h"
#include "ota_linux.h"
#include "ota_mqtt.h"

#define EXIT_REJECTED 1
#define EXIT_SETUP 2
#define ARTIFACT_MAX OTA_ONLINE_ARTIFACT_MAX

struct online {
	struct ota_agent *agent;
	const struct ota_config *config;
	struct ota_linux_port *port;
	struct ota_https https;
	struct ota_mqtt *mqtt; /* NULL for fetch */
	uint64_t report_seq;
	struct ota_online online; /* the core's install policy, its artifact and campaign */
	uint8_t *online_work; /* OTA_ONLINE_WORK_BYTES */

	/* handed over from Paho's thread */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool want_report;
	bool want_keylist;
	bool want_rootlist;
	bool want_firmware;
	char next_artifact[ARTIFACT_MAX + 1];
	char next_campaign[ARTIFACT_MAX + 1];
	/* what a repeated Notify is checked against (ota_online_notify_duplicate) */
	uint64_t notify_seq;
	char running_artifact[ARTIFACT_MAX + 1];
	char running_campaign[ARTIFACT_MAX + 1];
	char done_artifact[ARTIFACT_MAX + 1]; /* the last confirmed install */
	char done_campaign[ARTIFACT_MAX + 1];
	uint32_t next_health_window; /* Notify.health_window_seconds */
	uint64_t health_until; /* the open health window closes then (epoch s) */
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ---- report sequence (strictly increasing across restarts) ----------- */

static void report_seq_path(const struct online *o, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/report_seq", o->config->state_dir);
}

static uint64_t report_seq_load(const struct online *o)
{
	char path[OTA_CONFIG_MAX_PATH + 32];
	char text[OTA_LINUX_COUNTER_TEXT_BYTES] = {0};
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

static bool stopping(void *arg)
{
	(void)arg;
	return stop_requested != 0;
}

/* ---- status reports (fleetota/online.h builds them) ------------------- */

static bool report_begin(void *arg, const struct ota_agent_status *st, uint64_t *seq)
{
	struct online *o = arg;
	(void)st;
	if (!o->mqtt)
		return false;
	o->report_seq++;
	report_seq_store(o);
	*seq = o->report_seq;
	return true;
}

static void report_send(void *arg, const uint8_t *buf, size_t len)
{
	struct online *o = arg;
	if (ota_mqtt_publish_status(o->mqtt, buf, len) != OTA_OK)
		fprintf(stderr, "ota-agent: status report not queued\n");
}

static void note(void *arg, enum ota_online_note what, enum ota_err err)
{
	(void)arg;
	if (what == OTA_ONLINE_RETRY)
		fprintf(stderr, "ota-agent: download interrupted (%s), retrying\n",
			ota_err_name(err));
}

/* ---- setup ------------------------------------------------------------ */

static int online_open(struct online *o, struct ota_agent *agent, const struct ota_config *config,
		       struct ota_linux_port *port)
{
	char err[OTA_LINUX_RUN_ERR_BYTES];
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
	/* the TLS session outlives the process: one full handshake per campaign */
	char session_file[OTA_CONFIG_MAX_PATH + 16];
	snprintf(session_file, sizeof(session_file), "%s/tls_session", config->state_dir);
	struct ota_https_config hc = {.ca_file = config->ca_file,
				      .cert_file = config->device_cert,
				      .key_file = config->device_key,
				      .pins = config->server_pins,
				      .n_pins = config->n_server_pins,
				      .stall_timeout_s = config->stall_timeout_s,
				      .session_file = session_file};
	o->online_work = malloc(OTA_ONLINE_WORK_BYTES);
	if (!o->online_work) {
		fprintf(stderr, "ota-agent: out of memory\n");
		return -1;
	}
	if (ota_https_init(&o->https, &hc, err, sizeof(err)) != OTA_OK) {
		fprintf(stderr, "ota-agent: https: %s\n", err);
		free(o->online_work);
		return -1;
	}
	/* the port's transport: this HTTPS client, this server */
	port->https = &o->https;
	port->server_url = config->server_url;
	port->stop = &stop_requested;
	o->online = (struct ota_online){.agent = agent,
					.device_id = config->device_id,
					.model = config->model,
					.hw_revision = config->hw_revision,
					.download_retries = config->download_retries,
					.selftest = port->selftest_cmd != NULL,
					.work = o->online_work,
					.arg = o,
					.stopping = stopping,
					.report_begin = report_begin,
					.report_send = report_send,
					.note = note};
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->wake, NULL);
	o->report_seq = report_seq_load(o);
	return 0;
}

static void online_close(struct online *o)
{
	ota_mqtt_stop(o->mqtt);
	o->mqtt = NULL;
	o->port->https = NULL;
	ota_https_free(&o->https);
	free(o->online_work);
	o->online_work = NULL;
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->wake);
}

int ota_agent_fetch(struct ota_agent *agent, const struct ota_config *config,
		    struct ota_linux_port *port, const char *artifact)
{
	struct online o;
	if (!artifact || !ota_online_artifact_ok(artifact)) {
		fprintf(stderr, "ota-agent: fetch needs a valid artifact id\n");
		return EXIT_SETUP;
	}
	if (online_open(&o, agent, config, port) != 0)
		return EXIT_SETUP;
	enum ota_err err = ota_online_install(&o.online, artifact);
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

int ota_agent_freshness_once(struct ota_agent *agent, const struct ota_config *config,
			     struct ota_linux_port *port)
{
	struct online o;
	struct ota_freshness f;
	enum ota_err ts_err = OTA_OK;
	if (online_open(&o, agent, config, port) != 0)
		return EXIT_SETUP;
	enum ota_err verdict = ota_online_freshness(&o.online, &ts_err);
	online_close(&o);
	if (ts_err != OTA_OK)
		fprintf(stderr, "ota-agent: timestamp: %s\n", ota_err_name(ts_err));
	if (ota_agent_freshness(agent, &f) != OTA_OK)
		memset(&f, 0, sizeof(f));
	if (verdict != OTA_OK) {
		printf("rejected: %s: no fresh timestamp since %llu\n", ota_err_name(verdict),
		       (unsigned long long)(f.issued_at ? f.expires_at : f.since));
		return EXIT_REJECTED;
	}
	printf("fresh: %s current %s (code %llu), timestamp issued %llu expires %llu\n",
	       config->model, f.version[0] ? f.version : "-", (unsigned long long)f.version_code,
	       (unsigned long long)f.issued_at, (unsigned long long)f.expires_at);
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
	const struct ota_online_install_ref busy[] = {
		{o->want_firmware ? o->next_artifact : NULL, o->next_campaign},
		{o->running_artifact, o->running_campaign},
		{o->done_artifact, o->done_campaign},
	};
	if (n &&
	    !ota_online_notify_duplicate(&o->notify_seq, n, busy, sizeof(busy) / sizeof(busy[0]))) {
		switch (n->kind) {
		case FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_FIRMWARE:
			if (n->artifact && ota_online_artifact_ok(n->artifact)) {
				snprintf(o->next_artifact, sizeof(o->next_artifact), "%s",
					 n->artifact);
				snprintf(o->next_campaign, sizeof(o->next_campaign), "%.128s",
					 n->campaign_id ? n->campaign_id : "");
				o->next_health_window = n->health_window_seconds;
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

/* Default health window when the Notify named none. */

/* After an install: the in-process boot consumed the reboot marker; a
 * confirm opens the health window, kept in the state directory. */
static void health_after_install(struct online *o, unsigned reboots_before)
{
	if (o->port->reboots_requested != reboots_before)
		(void)ota_linux_boot_note(o->port);
	if (!o->online.health_open)
		return;
	uint32_t window = o->online.health_window_s ? o->online.health_window_s
						    : OTA_LINUX_HEALTH_WINDOW_DEFAULT_S;
	o->health_until = (uint64_t)time(NULL) + window;
	(void)ota_linux_health_window_save(o->port, o->health_until, o->online.health_base);
}

/* A restart keeps an open window; a passed one closes (reports stop carrying health). */
static void health_tick(struct online *o, bool at_start)
{
	uint64_t now = (uint64_t)time(NULL);
	if (at_start &&
	    ota_linux_health_window_load(o->port, &o->health_until, &o->online.health_base) &&
	    o->health_until > now)
		o->online.health_open = true;
	if (o->online.health_open && now >= o->health_until) {
		ota_online_health_close(&o->online);
		(void)ota_linux_health_window_save(o->port, 0, 0);
	}
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
	health_tick(&o, true);
	ota_online_report(&o.online, ota_online_idle_state(agent));
	/* a restart left an update pending or on trial: finish what was started */
	unsigned reboots_before = port->reboots_requested;
	ota_online_resume(&o.online);
	health_after_install(&o, reboots_before);
	unsigned interval = config->report_interval_s ? config->report_interval_s : 300;
	unsigned idle_s = 0;
	/* signed freshness (fleetota/freshness.h): at start, then every timestamp_interval */
	bool freshness = config->freshness_max_age_s > 0;
	unsigned ts_interval = config->timestamp_interval_s ? config->timestamp_interval_s : 3600;
	unsigned ts_idle_s = ts_interval;
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
			if (rc == ETIMEDOUT)
				ts_idle_s++;
		}
		firmware = o.want_firmware;
		keylist = o.want_keylist;
		rootlist = o.want_rootlist;
		want_report = o.want_report;
		memcpy(artifact, o.next_artifact, sizeof(artifact));
		if (firmware) {
			memcpy(o.online.campaign, o.next_campaign, sizeof(o.online.campaign));
			memcpy(o.running_artifact, o.next_artifact, sizeof(o.running_artifact));
			memcpy(o.running_campaign, o.next_campaign, sizeof(o.running_campaign));
			o.online.health_window_s = o.next_health_window;
		}
		o.want_firmware = o.want_keylist = o.want_rootlist = o.want_report = false;
		pthread_mutex_unlock(&o.lock);

		ota_online_update_lists(&o.online, rootlist, keylist);
		if (freshness && ts_idle_s >= ts_interval) {
			ts_idle_s = 0;
			(void)ota_online_freshness(&o.online, NULL);
		}
		health_tick(&o, false);
		if (firmware) {
			reboots_before = port->reboots_requested;
			enum ota_err err = ota_online_install(&o.online, artifact);
			health_after_install(&o, reboots_before);
			pthread_mutex_lock(&o.lock);
			if (err == OTA_OK) {
				memcpy(o.done_artifact, o.running_artifact,
				       sizeof(o.done_artifact));
				memcpy(o.done_campaign, o.running_campaign,
				       sizeof(o.done_campaign));
			}
			o.running_artifact[0] = o.running_campaign[0] = '\0';
			pthread_mutex_unlock(&o.lock);
		} else if (want_report)
			ota_online_report(&o.online, ota_online_idle_state(agent));
	}
	fprintf(stderr, "ota-agent: stopping\n");
	online_close(&o);
	return 0;
}
