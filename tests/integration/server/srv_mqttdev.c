/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One scripted device's MQTT session (MQTT 5 + TLS, Paho): it receives its
 * commands and publishes its reports over the same connection. The broker
 * makes the certificate's CN the client id (use_username_as_clientid), so a
 * second client of the same device (a mosquitto_pub per report next to a
 * mosquitto_sub) takes the session over, and each side's reconnect takes it
 * back: messages of either may be lost on the way.
 *
 *   srv_mqttdev HOST PORT CA CERT KEY DEVICE
 *
 * A persistent session (clean start off, session expiry one hour) with a
 * QoS 1 subscription to fleetota/v1/DEVICE/cmd. Prints "subscribed" once
 * the broker granted it, then each message on the topic as one line of hex.
 * Reads file paths on stdin, one a line: publishes each file's bytes on
 * fleetota/v1/DEVICE/status with QoS 1 and waits for the broker's
 * acknowledgement before reading the next line. A report not acknowledged
 * (in 30 s, or with a failure reason code) or a lost connection ends the
 * tool with status 1 and a message naming the device on stderr; the end of
 * stdin ends it with status 0.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>

#define DEV_REPORT_MAX_BYTES 65536
#define DEV_ACK_TIMEOUT_S 30
#define DEV_SESSION_EXPIRY_S 3600
#define DEV_CONNECT_ATTEMPTS 5
#define DEV_CONNECT_TIMEOUT_S 20

static const char *device;
/* the acknowledgement the main thread waits for (set by the callback thread) */
static pthread_mutex_t ack_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ack_cond = PTHREAD_COND_INITIALIZER;
static MQTTClient_deliveryToken ack_token = -1;
static int ack_reason;

static int on_message(void *ctx, char *topic, int topic_len, MQTTClient_message *m)
{
	const unsigned char *p = m->payload;

	(void)ctx;
	(void)topic_len;
	for (int i = 0; i < m->payloadlen; i++)
		printf("%02x", p[i]);
	putchar('\n');
	fflush(stdout);
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

static void on_lost(void *ctx, char *cause)
{
	(void)ctx;
	fprintf(stderr, "srv_mqttdev %s: connection lost: %s\n", device, cause ? cause : "-");
	_exit(1);
}

static void on_published(void *ctx, MQTTClient_deliveryToken dt, int packet_type,
			 MQTTProperties *props, enum MQTTReasonCodes reason)
{
	(void)ctx;
	(void)packet_type;
	(void)props;
	pthread_mutex_lock(&ack_lock);
	ack_token = dt;
	ack_reason = (int)reason;
	pthread_cond_signal(&ack_cond);
	pthread_mutex_unlock(&ack_lock);
}

/* publish FILE on TOPIC with QoS 1; 0 once the broker acknowledged it */
static int publish_file(MQTTClient client, const char *topic, const char *path)
{
	static unsigned char buf[DEV_REPORT_MAX_BYTES];
	MQTTProperties props = MQTTProperties_initializer;
	MQTTClient_deliveryToken token = 0;
	struct timespec deadline;
	MQTTResponse resp;
	size_t len;
	FILE *f;
	int rc, reason;

	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "srv_mqttdev %s: %s: cannot open\n", device, path);
		return -1;
	}
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	/* one report at a time: the last acknowledgement is the previous one's */
	pthread_mutex_lock(&ack_lock);
	ack_token = -1;
	pthread_mutex_unlock(&ack_lock);
	resp = MQTTClient_publish5(client, topic, (int)len, buf, 1, 0, &props, &token);
	rc = resp.reasonCode;
	MQTTResponse_free(resp);
	if (rc != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "srv_mqttdev %s: report %s not sent: %s\n", device, path,
			MQTTClient_strerror(rc));
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += DEV_ACK_TIMEOUT_S;
	pthread_mutex_lock(&ack_lock);
	while (ack_token != token && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&ack_cond, &ack_lock, &deadline);
	reason = ack_reason;
	pthread_mutex_unlock(&ack_lock);
	if (rc == ETIMEDOUT) {
		fprintf(stderr, "srv_mqttdev %s: report %s not acknowledged in %d s\n", device,
			path, DEV_ACK_TIMEOUT_S);
		return -1;
	}
	if (reason >= MQTTREASONCODE_UNSPECIFIED_ERROR) {
		fprintf(stderr, "srv_mqttdev %s: report %s refused: %s\n", device, path,
			MQTTReasonCode_toString((enum MQTTReasonCodes)reason));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	MQTTClient client;
	MQTTClient_createOptions create = MQTTClient_createOptions_initializer;
	MQTTClient_connectOptions conn = MQTTClient_connectOptions_initializer5;
	MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
	MQTTProperties conn_props = MQTTProperties_initializer;
	MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
			       .value.integer4 = DEV_SESSION_EXPIRY_S};
	MQTTResponse resp;
	char url[128], cmd_topic[128], status_topic[128], line[4096];
	int rc, status = 1;

	if (argc != 7) {
		fprintf(stderr, "usage: srv_mqttdev HOST PORT CA CERT KEY DEVICE\n");
		return 2;
	}
	device = argv[6];
	snprintf(url, sizeof(url), "ssl://%s:%s", argv[1], argv[2]);
	snprintf(cmd_topic, sizeof(cmd_topic), "fleetota/v1/%s/cmd", device);
	snprintf(status_topic, sizeof(status_topic), "fleetota/v1/%s/status", device);
	create.MQTTVersion = MQTTVERSION_5;
	if (MQTTClient_createWithOptions(&client, url, device, MQTTCLIENT_PERSISTENCE_NONE, NULL,
					 &create) != MQTTCLIENT_SUCCESS)
		return 1;
	if (MQTTClient_setCallbacks(client, NULL, on_lost, on_message, NULL) !=
		    MQTTCLIENT_SUCCESS ||
	    MQTTClient_setPublished(client, NULL, on_published) != MQTTCLIENT_SUCCESS)
		goto destroy;
	ssl.trustStore = argv[3];
	ssl.keyStore = argv[4];
	ssl.privateKey = argv[5];
	ssl.enableServerCertAuth = 1;
	ssl.verify = 1;
	conn.ssl = &ssl;
	conn.cleanstart = 0;
	conn.keepAliveInterval = 30;
	conn.connectTimeout = DEV_CONNECT_TIMEOUT_S;
	MQTTProperties_add(&conn_props, &expiry);
	/* a handshake may time out on a loaded machine: try again (a device
	 * reconnects); nothing is lost before the first subscription */
	for (int attempt = 1;; attempt++) {
		resp = MQTTClient_connect5(client, &conn, &conn_props, NULL);
		rc = resp.reasonCode;
		MQTTResponse_free(resp);
		if (rc == MQTTCLIENT_SUCCESS)
			break;
		fprintf(stderr, "srv_mqttdev %s: connect (attempt %d): %s\n", device, attempt,
			MQTTClient_strerror(rc));
		if (attempt == DEV_CONNECT_ATTEMPTS) {
			MQTTProperties_free(&conn_props);
			goto destroy;
		}
		sleep(1);
	}
	MQTTProperties_free(&conn_props);
	resp = MQTTClient_subscribe5(client, cmd_topic, 1, NULL, NULL);
	rc = resp.reasonCode;
	MQTTResponse_free(resp);
	if (rc != 1) {
		fprintf(stderr, "srv_mqttdev %s: subscribe: granted %d\n", device, rc);
		goto disconnect;
	}
	printf("subscribed\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] && publish_file(client, status_topic, line) != 0)
			goto disconnect;
	}
	status = 0;
disconnect:
	MQTTClient_setCallbacks(client, NULL, NULL, on_message, NULL);
	MQTTClient_disconnect5(client, 1000, MQTTREASONCODE_SUCCESS, NULL);
destroy:
	MQTTClient_destroy(&client);
	return status;
}
