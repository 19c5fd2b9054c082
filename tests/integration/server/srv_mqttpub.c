/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A device publishing StatusReports over MQTT 5 + TLS with QoS 1 (Paho's
 * synchronous client, so every message is acknowledged by the broker before
 * the tool exits; mosquitto_pub -l exits with messages unsent):
 *
 *   srv_mqttpub HOST PORT CA CERT KEY DEVICE FIRST_SEQ COUNT [PER_SEC]
 *
 * Reports FIRST_SEQ .. FIRST_SEQ+COUNT-1 on fleetota/v1/DEVICE/status, each
 * with state idle, version 1.0.<seq>, version_code <seq> and one event
 * (seq = report seq, kind booted). PER_SEC > 0 paces them. Prints
 * "published N in S s first_at=T" (T: wall clock of the first publish, to
 * compare with a database timestamp) and exits 0 when the broker
 * acknowledged all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTClient.h>

#include "ota.pb-c.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

int main(int argc, char **argv)
{
	MQTTClient client;
	MQTTClient_createOptions create = MQTTClient_createOptions_initializer;
	MQTTClient_connectOptions conn = MQTTClient_connectOptions_initializer5;
	MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTResponse resp;
	MQTTClient_deliveryToken token = 0;
	char url[128], topic[128];
	unsigned long long first, count, per_sec = 0;
	double start, first_at;
	struct timespec wall;
	int rc, status = 1;

	if (argc < 9) {
		fprintf(stderr, "usage: srv_mqttpub HOST PORT CA CERT KEY DEVICE FIRST_SEQ COUNT "
				"[PER_SEC]\n");
		return 2;
	}
	first = strtoull(argv[7], NULL, 10);
	count = strtoull(argv[8], NULL, 10);
	if (argc > 9)
		per_sec = strtoull(argv[9], NULL, 10);
	snprintf(url, sizeof(url), "ssl://%s:%s", argv[1], argv[2]);
	snprintf(topic, sizeof(topic), "fleetota/v1/%s/status", argv[6]);
	create.MQTTVersion = MQTTVERSION_5;
	if (MQTTClient_createWithOptions(&client, url, argv[6], MQTTCLIENT_PERSISTENCE_NONE, NULL,
					 &create) != MQTTCLIENT_SUCCESS)
		return 1;
	ssl.trustStore = argv[3];
	ssl.keyStore = argv[4];
	ssl.privateKey = argv[5];
	ssl.enableServerCertAuth = 1;
	ssl.verify = 1;
	conn.ssl = &ssl;
	conn.cleanstart = 1;
	conn.keepAliveInterval = 30;
	conn.maxInflightMessages = 20;
	resp = MQTTClient_connect5(client, &conn, NULL, NULL);
	if (resp.reasonCode != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "connect: %s\n", MQTTClient_strerror(resp.reasonCode));
		goto out;
	}
	MQTTResponse_free(resp);
	clock_gettime(CLOCK_REALTIME, &wall);
	first_at = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
	start = now_s();
	for (unsigned long long i = 0; i < count; i++) {
		uint8_t buf[512];
		size_t len = pack_report(argv[6], first + i, buf, sizeof(buf));

		if (len == 0)
			goto out;
		if (per_sec > 0) {
			double due = start + (double)i / (double)per_sec;

			while (now_s() < due) {
				struct timespec ts = {0, 1000000L};

				nanosleep(&ts, NULL);
			}
		}
		resp = MQTTClient_publish5(client, topic, (int)len, buf, 1, 0, &props, &token);
		if (resp.reasonCode != MQTTCLIENT_SUCCESS) {
			fprintf(stderr, "publish %llu: %s\n", first + i,
				MQTTClient_strerror(resp.reasonCode));
			goto out;
		}
		MQTTResponse_free(resp);
	}
	rc = MQTTClient_waitForCompletion(client, token, 60000);
	if (rc != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "completion: %s\n", MQTTClient_strerror(rc));
		goto out;
	}
	printf("published %llu in %.3f s first_at=%.6f\n", count, now_s() - start, first_at);
	status = 0;
out:
	MQTTClient_disconnect5(client, 1000, MQTTREASONCODE_SUCCESS, NULL);
	MQTTClient_destroy(&client);
	return status;
}
