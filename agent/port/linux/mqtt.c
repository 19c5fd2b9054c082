/* SPDX-License-Identifier: Apache-2.0 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTAsync.h>

#include "fleetota/limits.h"
#include "ota_linux.h"
#include "ota_mqtt.h"

struct ota_mqtt {
	MQTTAsync client;
	MQTTProperties connect_props;
	char cmd_topic[OTA_MQTT_TOPIC_MAX];
	char status_topic[OTA_MQTT_TOPIC_MAX];
	char ca_file[OTA_CONFIG_MAX_PATH];
	char cert_file[OTA_CONFIG_MAX_PATH];
	char key_file[OTA_CONFIG_MAX_PATH];
	ota_mqtt_message_fn on_message;
	ota_mqtt_connected_fn on_connected;
	void *arg;
	atomic_bool connected;
};

static bool topic_level_ok(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 128)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '/' || s[i] == '+' || s[i] == '#' || (unsigned char)s[i] < 0x21)
			return false;
	}
	return true;
}

static int cb_message(void *context, char *topic, int topic_len, MQTTAsync_message *message)
{
	struct ota_mqtt *m = context;
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	/* only our own cmd topic, and only bounded payloads */
	if (tlen == strlen(m->cmd_topic) && memcmp(topic, m->cmd_topic, tlen) == 0 &&
	    message->payloadlen >= 0 && (size_t)message->payloadlen <= OTA_MAX_MQTT_PAYLOAD_BYTES)
		m->on_message(m->arg, message->payload, (size_t)message->payloadlen);
	MQTTAsync_freeMessage(&message);
	MQTTAsync_free(topic);
	return 1;
}

static void cb_lost(void *context, char *cause)
{
	struct ota_mqtt *m = context;
	(void)cause;
	atomic_store(&m->connected, false);
}

static void cb_connected(void *context, char *cause)
{
	struct ota_mqtt *m = context;
	MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
	(void)cause;
	/* subscribe on every (re)connect: the broker may have dropped the session */
	MQTTAsync_subscribe(m->client, m->cmd_topic, 1, &opts);
	atomic_store(&m->connected, true);
	if (m->on_connected)
		m->on_connected(m->arg);
}

static void copy_path(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

enum ota_err ota_mqtt_start(const struct ota_mqtt_config *config, ota_mqtt_message_fn on_message,
			    ota_mqtt_connected_fn on_connected, void *arg,
			    struct ota_mqtt **ret_mqtt)
{
	if (!config->url || !config->device_id || !topic_level_ok(config->device_id) || !on_message)
		return OTA_ERR_INVALID_ARG;
	struct ota_mqtt *m = calloc(1, sizeof(*m));
	if (!m)
		return OTA_ERR_NOMEM;
	snprintf(m->cmd_topic, sizeof(m->cmd_topic), "fleetota/v1/%s/cmd", config->device_id);
	snprintf(m->status_topic, sizeof(m->status_topic), "fleetota/v1/%s/status",
		 config->device_id);
	copy_path(m->ca_file, sizeof(m->ca_file), config->ca_file);
	copy_path(m->cert_file, sizeof(m->cert_file), config->cert_file);
	copy_path(m->key_file, sizeof(m->key_file), config->key_file);
	m->on_message = on_message;
	m->on_connected = on_connected;
	m->arg = arg;
	atomic_init(&m->connected, false);

	MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer5;
	create.sendWhileDisconnected = 1;
	create.maxBufferedMessages = 64;
	create.deleteOldestMessages = 1;
	if (MQTTAsync_createWithOptions(&m->client, config->url, config->device_id,
					MQTTCLIENT_PERSISTENCE_NONE, NULL,
					&create) != MQTTASYNC_SUCCESS) {
		free(m);
		return OTA_ERR_TRANSPORT;
	}
	MQTTAsync_setCallbacks(m->client, m, cb_lost, cb_message, NULL);
	MQTTAsync_setConnected(m->client, m, cb_connected);

	MQTTProperty expiry;
	memset(&expiry, 0, sizeof(expiry));
	expiry.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
	expiry.value.integer4 = OTA_MQTT_SESSION_EXPIRY_S;
	MQTTProperties_add(&m->connect_props, &expiry);

	MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	ssl.trustStore = m->ca_file;
	ssl.keyStore = m->cert_file;
	ssl.privateKey = m->key_file;
	ssl.enableServerCertAuth = 1;
	ssl.verify = 1;
	ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
	opts.ssl = &ssl;
	opts.keepAliveInterval = 30;
	opts.cleanstart = 0;
	opts.connectProperties = &m->connect_props;
	opts.automaticReconnect = 1;
	opts.minRetryInterval = 1;
	opts.maxRetryInterval = 30;
	opts.connectTimeout = 10;
	if (MQTTAsync_connect(m->client, &opts) != MQTTASYNC_SUCCESS) {
		ota_mqtt_stop(m);
		return OTA_ERR_TRANSPORT;
	}
	*ret_mqtt = m;
	return OTA_OK;
}

enum ota_err ota_mqtt_publish_status(struct ota_mqtt *mqtt, const uint8_t *payload, size_t len)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
	if (len > OTA_MAX_MQTT_PAYLOAD_BYTES)
		return OTA_ERR_SIZE;
	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = 1;
	return MQTTAsync_sendMessage(mqtt->client, mqtt->status_topic, &msg, &opts) ==
			       MQTTASYNC_SUCCESS
		       ? OTA_OK
		       : OTA_ERR_TRANSPORT;
}

bool ota_mqtt_is_connected(struct ota_mqtt *mqtt)
{
	return atomic_load(&mqtt->connected);
}

void ota_mqtt_stop(struct ota_mqtt *mqtt)
{
	if (!mqtt)
		return;
	if (MQTTAsync_isConnected(mqtt->client)) {
		MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer5;
		opts.timeout = 1000;
		MQTTAsync_disconnect(mqtt->client, &opts);
	}
	MQTTAsync_destroy(&mqtt->client);
	MQTTProperties_free(&mqtt->connect_props);
	free(mqtt);
}
