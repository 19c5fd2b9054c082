/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A device publishing StatusReports over MQTT 5 + TLS with QoS 1
 * (libmosquitto, its network loop on a thread of this tool; every message
 * is acknowledged by the broker before the tool exits 0; mosquitto_pub -l
 * exits with messages unsent):
 *
 *   srv_mqttpub HOST PORT CA CERT KEY DEVICE FIRST_SEQ COUNT [PER_SEC]
 *
 * Reports FIRST_SEQ .. FIRST_SEQ+COUNT-1 on fleetota/v1/DEVICE/status, each
 * with state idle, version 1.0.<seq>, version_code <seq> and one event
 * (seq = report seq, kind booted). PER_SEC > 0 paces them: report i is sent
 * at i / PER_SEC s after the first, whatever is in flight (as many as the
 * broker's receive maximum; the rest wait in libmosquitto's queue), so the
 * rate holds without the stalls of a synchronous client's full window.
 * Prints "published N in S s first_at=T" (T: wall clock of the first
 * publish, to compare with a database timestamp) and exits 0 when the
 * broker acknowledged all. A lost connection ends it at once with status 1
 * (a broker that kicks the session: server_revoke).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "ota.pb-c.h"

struct pub {
	struct mosquitto *mosq;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int connack; /* -1 until CONNACK, then its reason code */
	bool closing; /* our own DISCONNECT */
	int lost; /* 0, or why the connection ended */
	unsigned long long acked;
	int refused; /* the first PUBACK reason code >= 128 */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timespec ts_at(double s)
{
	struct timespec ts;

	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	return ts;
}

static size_t pack_report(const char *device, unsigned long long seq, uint8_t *buf, size_t cap)
{
	Fleetota__V1__StatusReport r = FLEETOTA__V1__STATUS_REPORT__INIT;
	Fleetota__V1__Event e = FLEETOTA__V1__EVENT__INIT;
	Fleetota__V1__Event *events[1] = {&e};
	char version[32];
	size_t len;

	snprintf(version, sizeof(version), "1.0.%llu", seq);
	r.device_id = (char *)device;
	r.seq = seq;
	r.state = FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_IDLE;
	r.version = version;
	r.version_code = seq;
	r.security_counter = 1;
	r.keylist_version = 1;
	r.rootlist_version = 1;
	r.model = "fx-model";
	r.hw_revision = "rev-a";
	e.seq = seq;
	e.kind = FLEETOTA__V1__EVENT_KIND__EVENT_KIND_BOOTED;
	e.version = version;
	e.version_code = seq;
	r.events = events;
	r.n_events = 1;
	len = fleetota__v1__status_report__get_packed_size(&r);
	if (len > cap)
		return 0;
	return fleetota__v1__status_report__pack(&r, buf);
}

static void on_connect(struct mosquitto *mosq, void *arg, int rc, int flags,
		       const mosquitto_property *props)
{
	struct pub *p = arg;

	(void)mosq;
	(void)flags;
	(void)props;
	pthread_mutex_lock(&p->lock);
	p->connack = rc;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void on_disconnect(struct mosquitto *mosq, void *arg, int rc,
			  const mosquitto_property *props)
{
	struct pub *p = arg;

	(void)mosq;
	(void)props;
	pthread_mutex_lock(&p->lock);
	if (!p->closing && p->lost == 0)
		p->lost = rc != 0 ? rc : MOSQ_ERR_CONN_LOST;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void on_publish(struct mosquitto *mosq, void *arg, int mid, int reason,
		       const mosquitto_property *props)
{
	struct pub *p = arg;

	(void)mosq;
	(void)mid;
	(void)props;
	pthread_mutex_lock(&p->lock);
	p->acked++;
	if (reason >= 128 && p->refused == 0)
		p->refused = reason;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* The network loop (no reconnect: a lost session ends the tool). */
static void *loop_main(void *arg)
{
	struct pub *p = arg;

	for (;;) {
		int rc = mosquitto_loop(p->mosq, 100, 1);

		pthread_mutex_lock(&p->lock);
		if (rc != MOSQ_ERR_SUCCESS) {
			if (!p->closing && p->lost == 0)
				p->lost = rc;
			if (p->connack < 0)
				p->connack = MQTT_RC_UNSPECIFIED;
			pthread_cond_broadcast(&p->cond);
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		pthread_mutex_unlock(&p->lock);
	}
}

static const char *lost_text(int rc)
{
	return rc > 0 && rc < 128 ? mosquitto_strerror(rc) : mosquitto_reason_string(rc);
}

/* Waits (lock held) until done(p) or the connection is lost or SECONDS pass. */
static bool wait_until(struct pub *p, bool (*done)(const struct pub *, unsigned long long),
		       unsigned long long arg, double seconds)
{
	struct timespec until;
	double end;

	clock_gettime(CLOCK_REALTIME, &until);
	end = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + seconds;
	until = ts_at(end);
	while (!done(p, arg) && p->lost == 0) {
		if (pthread_cond_timedwait(&p->cond, &p->lock, &until) != 0)
			break;
	}
	return done(p, arg);
}

static bool connacked(const struct pub *p, unsigned long long arg)
{
	(void)arg;
	return p->connack >= 0;
}

static bool all_acked(const struct pub *p, unsigned long long count)
{
	return p->acked >= count;
}

int main(int argc, char **argv)
{
	struct pub p = {.connack = -1};
	char topic[128];
	unsigned long long first, count, per_sec = 0, i = 0;
	double start = 0, first_at = 0;
	struct timespec wall;
	pthread_t loop;
	bool loop_started = false;
	int status = 1, rc;

	if (argc < 9) {
		fprintf(stderr, "usage: srv_mqttpub HOST PORT CA CERT KEY DEVICE FIRST_SEQ COUNT "
				"[PER_SEC]\n");
		return 2;
	}
	first = strtoull(argv[7], NULL, 10);
	count = strtoull(argv[8], NULL, 10);
	if (argc > 9)
		per_sec = strtoull(argv[9], NULL, 10);
	snprintf(topic, sizeof(topic), "fleetota/v1/%s/status", argv[6]);
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);
	mosquitto_lib_init();
	p.mosq = mosquitto_new(argv[6], true, &p);
	if (p.mosq == NULL)
		goto out;
	mosquitto_connect_v5_callback_set(p.mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(p.mosq, on_disconnect);
	mosquitto_publish_v5_callback_set(p.mosq, on_publish);
	/* the loop runs on our thread: publish only queues and wakes it */
	if (mosquitto_int_option(p.mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5) !=
		    MOSQ_ERR_SUCCESS ||
	    mosquitto_threaded_set(p.mosq, true) != MOSQ_ERR_SUCCESS ||
	    mosquitto_tls_set(p.mosq, argv[3], NULL, argv[4], argv[5], NULL) != MOSQ_ERR_SUCCESS ||
	    mosquitto_tls_opts_set(p.mosq, 1, NULL, NULL) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mosquitto options\n");
		goto out;
	}
	rc = mosquitto_connect_bind_v5(p.mosq, argv[1], atoi(argv[2]), 30, NULL, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "connect: %s\n", mosquitto_strerror(rc));
		goto out;
	}
	if (pthread_create(&loop, NULL, loop_main, &p) != 0)
		goto out;
	loop_started = true;
	pthread_mutex_lock(&p.lock);
	if (!wait_until(&p, connacked, 0, 30) || p.connack != 0) {
		fprintf(stderr, "connect: %s\n",
			p.connack < 0 ? "no CONNACK in 30 s" : mosquitto_reason_string(p.connack));
		pthread_mutex_unlock(&p.lock);
		goto out;
	}
	pthread_mutex_unlock(&p.lock);
	clock_gettime(CLOCK_REALTIME, &wall);
	first_at = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
	start = now_s();
	for (i = 0; i < count; i++) {
		uint8_t buf[512];
		size_t len = pack_report(argv[6], first + i, buf, sizeof(buf));
		int lost;

		if (len == 0)
			goto out;
		if (per_sec > 0) {
			struct timespec due = ts_at(start + (double)i / (double)per_sec);

			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) != 0) {
			}
		}
		pthread_mutex_lock(&p.lock);
		lost = p.lost;
		pthread_mutex_unlock(&p.lock);
		if (lost != 0) {
			fprintf(stderr, "publish %llu: connection lost (%s)\n", first + i,
				lost_text(lost));
			goto out;
		}
		rc = mosquitto_publish_v5(p.mosq, NULL, topic, (int)len, buf, 1, false, NULL);
		if (rc != MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "publish %llu: %s\n", first + i, mosquitto_strerror(rc));
			goto out;
		}
	}
	pthread_mutex_lock(&p.lock);
	if (!wait_until(&p, all_acked, count, 60) || p.refused != 0) {
		fprintf(stderr, "completion: %llu of %llu acknowledged%s%s\n", p.acked, count,
			p.refused != 0 ? ", refused: " : "",
			p.refused != 0 ? mosquitto_reason_string(p.refused)
			: p.lost != 0  ? lost_text(p.lost)
				       : "");
		pthread_mutex_unlock(&p.lock);
		goto out;
	}
	pthread_mutex_unlock(&p.lock);
	printf("published %llu in %.3f s first_at=%.6f\n", count, now_s() - start, first_at);
	status = 0;
out:
	if (loop_started) {
		pthread_mutex_lock(&p.lock);
		p.closing = true;
		pthread_mutex_unlock(&p.lock);
		/* the loop ends once the DISCONNECT is written (or at once when the
		 * connection is gone already) */
		mosquitto_disconnect_v5(p.mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL);
		pthread_join(loop, NULL);
	}
	mosquitto_destroy(p.mosq);
	mosquitto_lib_cleanup();
	pthread_mutex_destroy(&p.lock);
	pthread_cond_destroy(&p.cond);
	return status;
}
