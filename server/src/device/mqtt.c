/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <event2/event.h>

#include "fleetota/limits.h"
#include "log-internal.h"
#include "mqtt.h"
#include "server-internal.h"
#include "srv-limits.h"

#define SESSION_EXPIRY_SEC 3600
#define CONNECT_RETRY_SEC 1

enum msg_kind {
	MSG_RESULT, /* payload: the receiver's result */
	MSG_CONNECTED,
	MSG_CONNECT_FAILED,
	MSG_LOST,
	MSG_TOO_BIG,
	MSG_ACK, /* a tracked publish's PUBACK (token) */
	MSG_NACK, /* a tracked publish failed or was refused (token) */
};

struct mqtt_msg {
	struct mqtt_msg *next;
	enum msg_kind kind;
	MQTTAsync_token token;
	char topic[SRV_MAX_TOPIC_BYTES + 1];
	size_t len;
	uint8_t payload[];
};

/* A tracked publish waiting for its PUBACK, by delivery token. */
struct ack_slot {
	uint64_t seq;
	uint64_t fence;
	MQTTAsync_token token;
	bool used;
};

struct srv_mqtt {
	struct srv_server *srv;
	const struct srv_mqtt_receiver *receiver;
	void *receiver_state;
	MQTTAsync client;
	pthread_mutex_t lock;
	struct mqtt_msg *head;
	struct mqtt_msg *tail;
	size_t queued;
	uint64_t dropped;
	struct event *ev_wake;
	struct event *ev_retry;
	atomic_bool connected;
	bool ever_connected; /* loop thread: a later connect is a reconnect */
	char sub_topic[128];
	MQTTProperties connect_props;
	struct ack_slot *acks; /* SRV_MQTT_ACK_SLOTS, loop thread only */
	MQTTAsync_token last_token;
	srv_mqtt_ack_fn ack_fn;
	void *ack_arg;
};

/* ---- Paho threads: copy, queue, wake; nothing else -------------------- */

static void push_token(struct srv_mqtt *mqtt, enum msg_kind kind, const char *topic,
		       size_t topic_len, const void *payload, size_t len, MQTTAsync_token token)
{
	struct mqtt_msg *m = malloc(sizeof(*m) + len);

	if (m == NULL)
		return;
	m->next = NULL;
	m->kind = kind;
	m->token = token;
	if (topic_len > SRV_MAX_TOPIC_BYTES)
		topic_len = SRV_MAX_TOPIC_BYTES; /* the loop refuses a clipped topic */
	if (topic != NULL)
		memcpy(m->topic, topic, topic_len);
	m->topic[topic != NULL ? topic_len : 0] = '\0';
	m->len = len;
	if (len > 0)
		memcpy(m->payload, payload, len);
	pthread_mutex_lock(&mqtt->lock);
	if (mqtt->queued >= SRV_MQTT_QUEUE_MAX && kind == MSG_RESULT) {
		mqtt->dropped++;
		pthread_mutex_unlock(&mqtt->lock);
		free(m);
		return;
	}
	if (mqtt->tail != NULL)
		mqtt->tail->next = m;
	else
		mqtt->head = m;
	mqtt->tail = m;
	mqtt->queued++;
	pthread_mutex_unlock(&mqtt->lock);
	event_active(mqtt->ev_wake, EV_READ, 0);
}

static void push(struct srv_mqtt *mqtt, enum msg_kind kind, const char *topic, size_t topic_len,
		 const void *payload, size_t len)
{
	push_token(mqtt, kind, topic, topic_len, payload, len, 0);
}

/* QoS 1: Paho calls this on the PUBACK. MQTT 5 refusals come as codes >= 0x80. */
static void on_publish_success(void *context, MQTTAsync_successData5 *response)
{
	enum msg_kind kind =
		response->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR ? MSG_NACK : MSG_ACK;

	push_token(context, kind, NULL, 0, NULL, 0, response->token);
}

static void on_publish_failure(void *context, MQTTAsync_failureData5 *response)
{
	push_token(context, MSG_NACK, NULL, 0, NULL, 0, response->token);
}

/* Receiver results go to the loop for metrics and logs. */
void srv_mqtt_post_result(struct srv_mqtt *mqtt, const void *result, size_t len)
{
	push(mqtt, MSG_RESULT, NULL, 0, result, len);
}

/*
 * Paho sends the PUBACK when this returns (see ingest-internal.h): the
 * report is stored (or refused, or held by the budget) before that.
 */
static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *message)
{
	struct srv_mqtt *mqtt = context;
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	char topic_copy[SRV_MAX_TOPIC_BYTES + 1];

	if (message->payloadlen < 0 || (size_t)message->payloadlen > OTA_MAX_MQTT_PAYLOAD_BYTES) {
		push(mqtt, MSG_TOO_BIG, topic, tlen, NULL, 0);
	} else {
		/* a clipped or NUL-carrying topic is refused by the decoder */
		if (tlen > SRV_MAX_TOPIC_BYTES)
			tlen = SRV_MAX_TOPIC_BYTES;
		memcpy(topic_copy, topic, tlen);
		topic_copy[tlen] = '\0';
		if (!mqtt->receiver->message(mqtt->receiver_state, topic_copy, message->payload,
					     (size_t)message->payloadlen)) {
			/*
			 * Shutting down and not stored: never acknowledge it.
			 * The broker gives it to the next server (shared
			 * subscription, persistent session); srv_mqtt_stop
			 * leaves Paho alone while this thread waits here.
			 */
			for (;;)
				pause();
		}
	}
	MQTTAsync_freeMessage(&message);
	MQTTAsync_free(topic);
	return 1;
}

static void on_connection_lost(void *context, char *cause)
{
	struct srv_mqtt *mqtt = context;

	(void)cause;
	atomic_store(&mqtt->connected, false);
	push(mqtt, MSG_LOST, NULL, 0, NULL, 0);
}

static void on_subscribe_failure(void *context, MQTTAsync_failureData5 *response)
{
	struct srv_mqtt *mqtt = context;

	(void)response;
	push(mqtt, MSG_CONNECT_FAILED, "subscribe", 9, NULL, 0);
}

static void on_connected(void *context, char *cause)
{
	struct srv_mqtt *mqtt = context;
	MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;

	(void)cause;
	opts.context = mqtt;
	opts.onFailure5 = on_subscribe_failure;
	/* Re-subscribe on every (re)connect: the broker may have lost our session. */
	MQTTAsync_subscribe(mqtt->client, mqtt->sub_topic, 1, &opts);
	atomic_store(&mqtt->connected, true);
	push(mqtt, MSG_CONNECTED, NULL, 0, NULL, 0);
}

static void on_connect_failure(void *context, MQTTAsync_failureData5 *response)
{
	struct srv_mqtt *mqtt = context;

	(void)response;
	push(mqtt, MSG_CONNECT_FAILED, "connect", 7, NULL, 0);
}

/* ---- loop thread ---------------------------------------------------- */

static void ack_done(struct srv_mqtt *mqtt, MQTTAsync_token token, bool acked)
{
	struct ack_slot *slot;

	if (mqtt->acks == NULL || token <= 0)
		return;
	slot = &mqtt->acks[(unsigned)token % SRV_MQTT_ACK_SLOTS];
	if (!slot->used || slot->token != token)
		return;
	slot->used = false;
	if (acked) {
		mqtt->srv->metrics.notifies_sent++;
		if (mqtt->ack_fn != NULL)
			mqtt->ack_fn(mqtt->ack_arg, slot->seq, slot->fence);
	}
}

static void connect_now(struct srv_mqtt *mqtt);

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	connect_now(arg);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_mqtt *mqtt = arg;
	struct srv_server *srv = mqtt->srv;
	struct mqtt_msg *list, *m;
	uint64_t dropped;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&mqtt->lock);
	list = mqtt->head;
	mqtt->head = mqtt->tail = NULL;
	mqtt->queued = 0;
	dropped = mqtt->dropped;
	mqtt->dropped = 0;
	pthread_mutex_unlock(&mqtt->lock);
	srv->metrics.rejections[SRV_REJECT_QUEUE_FULL] += dropped;
	while ((m = list) != NULL) {
		list = m->next;
		switch (m->kind) {
		case MSG_RESULT:
			mqtt->receiver->result(mqtt->receiver_state, m->payload, m->len);
			break;
		case MSG_TOO_BIG:
			srv->metrics.reports_received++;
			srv_metrics_reject(&srv->metrics, SRV_REJECT_REPORT_TOO_BIG);
			srv_log(SRV_LOG_WARN, "report on '%.80s' refused: too big", m->topic);
			break;
		case MSG_CONNECTED:
			if (mqtt->ever_connected)
				srv->metrics.mqtt_reconnects++;
			mqtt->ever_connected = true;
			srv_log(SRV_LOG_INFO, "mqtt connected, subscribed to %s", mqtt->sub_topic);
			break;
		case MSG_LOST:
			srv_log(SRV_LOG_WARN, "mqtt connection lost (reconnecting)");
			break;
		case MSG_ACK:
		case MSG_NACK:
			ack_done(mqtt, m->token, m->kind == MSG_ACK);
			break;
		case MSG_CONNECT_FAILED: {
			struct timeval delay = {CONNECT_RETRY_SEC, 0};

			srv_log(SRV_LOG_WARN, "mqtt %s failed, retrying", m->topic);
			if (strcmp(m->topic, "connect") == 0)
				evtimer_add(mqtt->ev_retry, &delay);
			break;
		}
		}
		free(m);
	}
}

static void connect_now(struct srv_mqtt *mqtt)
{
	const struct srv_config *cfg = mqtt->srv->config;
	MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	int rc;

	ssl.trustStore = cfg->mqtt_ca;
	ssl.keyStore = cfg->mqtt_cert;
	ssl.privateKey = cfg->mqtt_key;
	ssl.enableServerCertAuth = 1;
	ssl.verify = 1;
	ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
	opts.ssl = &ssl;
	opts.keepAliveInterval = 20;
	opts.cleanstart = 0; /* keep the session: QoS 1 reports wait for us */
	opts.connectProperties = &mqtt->connect_props;
	opts.automaticReconnect = 1;
	opts.minRetryInterval = 1;
	opts.maxRetryInterval = 5;
	opts.connectTimeout = 10;
	opts.context = mqtt;
	opts.onFailure5 = on_connect_failure;
	rc = MQTTAsync_connect(mqtt->client, &opts);
	if (rc != MQTTASYNC_SUCCESS) {
		struct timeval delay = {CONNECT_RETRY_SEC, 0};

		srv_log(SRV_LOG_WARN, "mqtt connect: %s", MQTTAsync_strerror(rc));
		evtimer_add(mqtt->ev_retry, &delay);
	}
}

bool srv_mqtt_connected(const struct srv_mqtt *mqtt)
{
	return mqtt != NULL && atomic_load(&((struct srv_mqtt *)mqtt)->connected);
}

#define FENCE_PROPERTY "fleetota-fence"

/* Publishes one Notify; *ret_token is Paho's delivery token. */
static enum ota_err publish_notify(struct srv_mqtt *mqtt, const char *device,
				   const Fleetota__V1__Notify *notify, const char *fence,
				   MQTTAsync_token *ret_token)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
	uint8_t buf[OTA_MAX_MQTT_PAYLOAD_BYTES];
	char topic[SRV_MAX_TOPIC_BYTES];
	size_t len;
	int rc;

	if (mqtt == NULL || !srv_id_valid(device, SRV_MAX_DEVICE_ID))
		return OTA_ERR_INVALID_ARG;
	len = fleetota__v1__notify__get_packed_size(notify);
	if (len > sizeof(buf))
		return OTA_ERR_SIZE;
	fleetota__v1__notify__pack(notify, buf);
	snprintf(topic, sizeof(topic), "fleetota/v1/%s/cmd", device);
	msg.payload = buf;
	msg.payloadlen = (int)len;
	msg.qos = 1;
	if (fence != NULL) {
		MQTTProperty prop;

		memset(&prop, 0, sizeof(prop));
		prop.identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
		prop.value.data.data = FENCE_PROPERTY;
		prop.value.data.len = (int)strlen(FENCE_PROPERTY);
		prop.value.value.data = (char *)fence;
		prop.value.value.len = (int)strlen(fence);
		if (MQTTProperties_add(&msg.properties, &prop) != 0)
			return OTA_ERR_NOMEM;
		opts.context = mqtt;
		opts.onSuccess5 = on_publish_success;
		opts.onFailure5 = on_publish_failure;
	}
	rc = MQTTAsync_sendMessage(mqtt->client, topic, &msg, &opts);
	MQTTProperties_free(&msg.properties);
	if (rc != MQTTASYNC_SUCCESS) {
		srv_log(SRV_LOG_WARN, "notify %s: %s", device, MQTTAsync_strerror(rc));
		return OTA_ERR_TRANSPORT;
	}
	*ret_token = opts.token;
	return OTA_OK;
}

enum ota_err srv_mqtt_notify(struct srv_mqtt *mqtt, const char *device,
			     const Fleetota__V1__Notify *notify)
{
	MQTTAsync_token token;
	enum ota_err err = publish_notify(mqtt, device, notify, NULL, &token);

	if (err == OTA_OK)
		mqtt->srv->metrics.notifies_sent++;
	return err;
}

void srv_mqtt_set_ack_handler(struct srv_mqtt *mqtt, srv_mqtt_ack_fn fn, void *arg)
{
	mqtt->ack_fn = fn;
	mqtt->ack_arg = arg;
}

enum ota_err srv_mqtt_notify_tracked(struct srv_mqtt *mqtt, const char *device,
				     const Fleetota__V1__Notify *notify, uint64_t fence)
{
	char fence_text[24];
	MQTTAsync_token token = 0;
	enum ota_err err;

	snprintf(fence_text, sizeof(fence_text), "%" PRIu64, fence);
	err = publish_notify(mqtt, device, notify, fence_text, &token);
	if (err != OTA_OK)
		return err;
	/*
	 * Filled before the loop can see the PUBACK (it is queued to this
	 * thread). A token Paho re-uses belongs to a publish it gave up on.
	 */
	if (token > 0) {
		struct ack_slot *slot = &mqtt->acks[(unsigned)token % SRV_MQTT_ACK_SLOTS];

		*slot = (struct ack_slot){notify->seq, fence, token, true};
		mqtt->last_token = token;
	}
	return OTA_OK;
}

void srv_mqtt_wait_last(struct srv_mqtt *mqtt, unsigned timeout_ms)
{
	if (mqtt != NULL && mqtt->last_token > 0)
		(void)MQTTAsync_waitForCompletion(mqtt->client, mqtt->last_token, timeout_ms);
}

/*
 * The broker makes the client id the certificate CN (use_identity_as_username
 * + use_username_as_clientid), so ours is the CN of mqtt_cert: a configured
 * mqtt_client_id must equal it. A CN that is also a valid device id is
 * refused: a device certificate could carry it and take our session.
 */
static bool client_id_from_cert(const struct srv_config *cfg, char *out, size_t cap)
{
	char err[SRV_TLS_ERR_BYTES];

	if (srv_tls_cert_cn(cfg->mqtt_cert, out, cap, err) != OTA_OK) {
		srv_log(SRV_LOG_ERROR, "mqtt_cert: %s", err);
		return false;
	}
	if (srv_id_valid(out, SRV_MAX_DEVICE_ID)) {
		srv_log(SRV_LOG_ERROR,
			"mqtt_cert %s: CN '%s' is a valid device id, so a device certificate "
			"could take the server's MQTT identity; use a server identity such as "
			"CN=ota-server:NAME (scripts/pki.sh server DIR NAME)",
			cfg->mqtt_cert, out);
		return false;
	}
	if (cfg->mqtt_client_id[0] != '\0' && strcmp(cfg->mqtt_client_id, out) != 0) {
		srv_log(SRV_LOG_ERROR,
			"mqtt_client_id '%s' is not the CN '%s' of mqtt_cert %s: the broker uses "
			"the certificate CN as client id (leave mqtt_client_id empty)",
			cfg->mqtt_client_id, out, cfg->mqtt_cert);
		return false;
	}
	return true;
}

enum ota_err srv_mqtt_start(struct srv_server *srv, const struct srv_mqtt_receiver *receiver,
			    struct srv_mqtt **ret_mqtt)
{
	char client_id[SRV_MQTT_MAX_CLIENT_ID + 1];
	const struct srv_config *cfg = srv->config;
	MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer5;
	MQTTProperty expiry;
	struct srv_mqtt *mqtt;
	int rc;

	if (!client_id_from_cert(cfg, client_id, sizeof(client_id)))
		return OTA_ERR_INVALID_ARG;
	mqtt = calloc(1, sizeof(*mqtt));
	if (mqtt == NULL)
		return OTA_ERR_NOMEM;
	mqtt->srv = srv;
	mqtt->receiver = receiver;
	pthread_mutex_init(&mqtt->lock, NULL);
	atomic_init(&mqtt->connected, false);
	snprintf(mqtt->sub_topic, sizeof(mqtt->sub_topic), "$share/%s/fleetota/v1/+/status",
		 cfg->mqtt_share_group);
	mqtt->receiver_state = receiver->start(srv, mqtt);
	if (mqtt->receiver_state == NULL)
		goto fail;
	mqtt->ev_wake = event_new(srv->base, -1, 0, wake_cb, mqtt);
	mqtt->ev_retry = evtimer_new(srv->base, retry_cb, mqtt);
	mqtt->acks = calloc(SRV_MQTT_ACK_SLOTS, sizeof(*mqtt->acks));
	if (mqtt->ev_wake == NULL || mqtt->ev_retry == NULL || mqtt->acks == NULL)
		goto fail;
	create.sendWhileDisconnected = 1;
	create.maxBufferedMessages = 10000;
	create.deleteOldestMessages = 1;
	srv_log(SRV_LOG_INFO, "mqtt client id %s (the CN of %s)", client_id, cfg->mqtt_cert);
	rc = MQTTAsync_createWithOptions(&mqtt->client, cfg->mqtt_url, client_id,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &create);
	if (rc != MQTTASYNC_SUCCESS) {
		srv_log(SRV_LOG_ERROR, "mqtt client %s: %s", cfg->mqtt_url, MQTTAsync_strerror(rc));
		goto fail;
	}
	MQTTAsync_setCallbacks(mqtt->client, mqtt, on_connection_lost, on_message, NULL);
	MQTTAsync_setConnected(mqtt->client, mqtt, on_connected);
	memset(&expiry, 0, sizeof(expiry));
	expiry.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
	expiry.value.integer4 = SESSION_EXPIRY_SEC;
	MQTTProperties_add(&mqtt->connect_props, &expiry);
	connect_now(mqtt);
	*ret_mqtt = mqtt;
	return OTA_OK;
fail:
	srv_mqtt_stop(mqtt);
	return OTA_ERR_TRANSPORT;
}

void srv_mqtt_stop(struct srv_mqtt *mqtt)
{
	struct mqtt_msg *m;

	if (mqtt == NULL)
		return;
	mqtt->receiver->stop(mqtt->receiver_state);
	if (mqtt->receiver_state != NULL &&
	    !mqtt->receiver->idle(mqtt->receiver_state, SRV_MQTT_INGEST_DEADLINE_MS + 1000u)) {
		/*
		 * A report is inside Paho's callback, not stored: Paho holds its
		 * lock and must not acknowledge it, so Paho is left as it is
		 * (the process is about to exit; the broker redelivers).
		 */
		srv_log(SRV_LOG_WARN, "mqtt: a report is not stored; leaving it unacknowledged");
		return;
	}
	if (mqtt->client != NULL) {
		MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer5;

		opts.timeout = 1000;
		if (MQTTAsync_isConnected(mqtt->client))
			MQTTAsync_disconnect(mqtt->client, &opts);
		MQTTAsync_destroy(&mqtt->client);
	}
	MQTTProperties_free(&mqtt->connect_props);
	if (mqtt->ev_wake != NULL)
		event_free(mqtt->ev_wake);
	if (mqtt->ev_retry != NULL)
		event_free(mqtt->ev_retry);
	while ((m = mqtt->head) != NULL) {
		mqtt->head = m->next;
		free(m);
	}
	mqtt->receiver->free(mqtt->receiver_state);
	pthread_mutex_destroy(&mqtt->lock);
	free(mqtt->acks);
	free(mqtt);
}
