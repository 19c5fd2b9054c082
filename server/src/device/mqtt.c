/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <event2/event.h>

#include "clock-internal.h"
#include "fleetota/limits.h"
#include "log-internal.h"
#include "mqtt.h"
#include "server-internal.h"
#include "srv-limits.h"

#define SESSION_EXPIRY_SEC 3600
/* Back-off between connect attempts: doubles from the first to the cap. */
#define CONNECT_RETRY_MIN_MS 1000u
#define CONNECT_RETRY_MAX_MS 5000u
/*
 * A connection lost within SHORT_SESSION_S of being made is "short". In a
 * row they mean that something ends our sessions as soon as we have them:
 * mostly another process with our identity, which the broker gives our
 * session to (mosquitto 2.0 closes the old connection without the MQTT 5
 * DISCONNECT "session taken over" that other brokers send). After each
 * short one: 2 s, doubling, up to the cap, so two such processes take the
 * session from each other less and less often.
 */
#define SHORT_SESSION_S 30.0
#define SHORT_RETRY_FIRST_MS 2000u
#define SHORT_RETRY_MAX_MS 16000u
/* Publishes waiting for the client thread (beyond: refused, not published). */
#define CMD_QUEUE_MAX 10000u

enum msg_kind {
	MSG_RESULT, /* payload: the receiver's result */
	MSG_CONNECTED,
	MSG_CONNECT_FAILED,
	MSG_SUBSCRIBE_FAILED,
	MSG_LOST,
	MSG_DISCONNECTED, /* the broker's DISCONNECT (token: its reason code) */
	MSG_TAKEN_OVER, /* the broker gave our session to another connection */
	MSG_TOO_BIG,
	MSG_SENT, /* Paho took a publish (token; tracked: seq, fence) */
	MSG_ACK, /* a tracked publish's PUBACK (token) */
	MSG_NACK, /* a tracked publish failed or was refused (token) */
};

struct mqtt_msg {
	struct mqtt_msg *next;
	enum msg_kind kind;
	MQTTAsync_token token;
	bool tracked;
	uint64_t seq;
	uint64_t fence;
	char topic[SRV_MAX_TOPIC_BYTES + 1];
	size_t len;
	uint8_t payload[];
};

/* What the loop hands to the client thread: the loop never calls Paho. */
enum cmd_kind {
	CMD_CONNECT,
	CMD_PUBLISH,
};

struct mqtt_cmd {
	struct mqtt_cmd *next;
	enum cmd_kind kind;
	bool tracked; /* publish with the fence property; its PUBACK is reported */
	uint64_t seq;
	uint64_t fence;
	char topic[SRV_MAX_TOPIC_BYTES];
	size_t len;
	uint8_t payload[];
};

enum ack_state {
	ACK_FREE,
	ACK_WAITING, /* sent, its PUBACK not seen yet */
	ACK_EARLY, /* PUBACK seen before the loop learnt the token (MSG_SENT) */
	ACK_EARLY_NACK,
};

/* A tracked publish waiting for its PUBACK, by delivery token. */
struct ack_slot {
	uint64_t seq;
	uint64_t fence;
	MQTTAsync_token token;
	enum ack_state state;
};

struct srv_mqtt {
	struct srv_server *srv;
	const struct srv_mqtt_receiver *receiver;
	void *receiver_state;
	MQTTAsync client;
	pthread_mutex_t lock; /* the loop queue */
	struct mqtt_msg *head;
	struct mqtt_msg *tail;
	size_t queued;
	uint64_t dropped;
	struct event *ev_wake;
	struct event *ev_retry;
	atomic_bool connected;
	/*
	 * The client thread: the only caller of MQTTAsync_connect and
	 * MQTTAsync_sendMessage. Paho holds its client mutex while a report is
	 * stored in messageArrived (ingest-internal.h), which a database hang
	 * makes last; these calls wait for that mutex, so the loop must not
	 * make them.
	 */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t cmd_lock; /* cmd_*, stopping, busy */
	pthread_cond_t cmd_cond; /* a command, stop, or idle (wait_last) */
	struct mqtt_cmd *cmd_head;
	struct mqtt_cmd *cmd_tail;
	size_t cmd_queued;
	bool stopping;
	bool busy; /* the thread is inside Paho with one command */
	atomic_int last_token; /* the last tracked publish Paho took */
	/* loop thread */
	bool ever_connected; /* a later connect is a reconnect */
	bool connecting; /* a connect queued or in flight */
	unsigned connect_failures; /* in a row: the back-off */
	unsigned short_streak; /* short sessions in a row (SHORT_SESSION_S) */
	double connected_at;
	char client_id[SRV_MQTT_MAX_CLIENT_ID + 1];
	char sub_topic[SRV_MQTT_SUB_TOPIC_BYTES];
	MQTTProperties connect_props;
	struct ack_slot *acks; /* SRV_MQTT_ACK_SLOTS */
	srv_mqtt_ack_fn ack_fn;
	void *ack_arg;
};

/* ---- Paho threads: copy, queue, wake; nothing else -------------------- */

/* Queues a copy of *tmpl (its topic a C string) and payload for the loop. */
static void post(struct srv_mqtt *mqtt, const struct mqtt_msg *tmpl, const void *payload,
		 size_t len)
{
	struct mqtt_msg *m = malloc(sizeof(*m) + len);

	if (m == NULL)
		return;
	*m = *tmpl;
	m->next = NULL;
	m->len = len;
	if (len > 0)
		memcpy(m->payload, payload, len);
	pthread_mutex_lock(&mqtt->lock);
	if (mqtt->queued >= SRV_MQTT_QUEUE_MAX && m->kind == MSG_RESULT) {
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

/* kind with a topic (clipped: the loop refuses a clipped topic) */
static void post_topic(struct srv_mqtt *mqtt, enum msg_kind kind, const char *topic,
		       size_t topic_len)
{
	struct mqtt_msg m = {.kind = kind};

	if (topic_len > SRV_MAX_TOPIC_BYTES)
		topic_len = SRV_MAX_TOPIC_BYTES;
	memcpy(m.topic, topic, topic_len);
	m.topic[topic_len] = '\0';
	post(mqtt, &m, NULL, 0);
}

static void post_kind(struct srv_mqtt *mqtt, enum msg_kind kind, MQTTAsync_token token)
{
	struct mqtt_msg m = {.kind = kind, .token = token};

	post(mqtt, &m, NULL, 0);
}

/* QoS 1: Paho calls this on the PUBACK. MQTT 5 refusals come as codes >= 0x80. */
static void on_publish_success(void *context, MQTTAsync_successData5 *response)
{
	enum msg_kind kind =
		response->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR ? MSG_NACK : MSG_ACK;

	post_kind(context, kind, response->token);
}

static void on_publish_failure(void *context, MQTTAsync_failureData5 *response)
{
	post_kind(context, MSG_NACK, response->token);
}

/* Receiver results go to the loop for metrics and logs. */
void srv_mqtt_post_result(struct srv_mqtt *mqtt, const void *result, size_t len)
{
	struct mqtt_msg m = {.kind = MSG_RESULT};

	post(mqtt, &m, result, len);
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
		post_topic(mqtt, MSG_TOO_BIG, topic, tlen);
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
	post_kind(mqtt, MSG_LOST, 0);
}

/* The broker's DISCONNECT (MQTT 5): a take-over is worth its own message. */
static void on_disconnected(void *context, MQTTProperties *props, enum MQTTReasonCodes reason)
{
	struct srv_mqtt *mqtt = context;

	(void)props;
	atomic_store(&mqtt->connected, false);
	if (reason == MQTTREASONCODE_SESSION_TAKEN_OVER)
		post_kind(mqtt, MSG_TAKEN_OVER, 0);
	else
		post_kind(mqtt, MSG_DISCONNECTED, (MQTTAsync_token)reason);
}

static void on_subscribe_failure(void *context, MQTTAsync_failureData5 *response)
{
	(void)response;
	post_kind(context, MSG_SUBSCRIBE_FAILED, 0);
}

static void on_connect_success(void *context, MQTTAsync_successData5 *response)
{
	struct srv_mqtt *mqtt = context;
	MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;

	(void)response;
	opts.context = mqtt;
	opts.onFailure5 = on_subscribe_failure;
	/* Re-subscribe on every (re)connect: the broker may have lost our session. */
	MQTTAsync_subscribe(mqtt->client, mqtt->sub_topic, 1, &opts);
	atomic_store(&mqtt->connected, true);
	post_kind(mqtt, MSG_CONNECTED, 0);
}

static void on_connect_failure(void *context, MQTTAsync_failureData5 *response)
{
	(void)response;
	post_kind(context, MSG_CONNECT_FAILED, 0);
}

/* ---- the client thread: every call into Paho that may wait ----------- */

static void client_connect(struct srv_mqtt *mqtt)
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
	/*
	 * Reconnects are ours (the loop's back-off): Paho's automatic reconnect
	 * would fight a client that took our session over once a second, and
	 * must not run beside a connect of ours.
	 */
	opts.automaticReconnect = 0;
	opts.connectTimeout = 10;
	opts.context = mqtt;
	opts.onSuccess5 = on_connect_success;
	opts.onFailure5 = on_connect_failure;
	rc = MQTTAsync_connect(mqtt->client, &opts);
	if (rc != MQTTASYNC_SUCCESS) {
		srv_log(SRV_LOG_WARN, "mqtt connect: %s", MQTTAsync_strerror(rc));
		post_kind(mqtt, MSG_CONNECT_FAILED, 0);
	}
}

#define FENCE_PROPERTY "fleetota-fence"

static void client_publish(struct srv_mqtt *mqtt, const struct mqtt_cmd *cmd)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
	struct mqtt_msg sent = {
		.kind = MSG_SENT, .tracked = cmd->tracked, .seq = cmd->seq, .fence = cmd->fence};
	char fence[SRV_U64_TEXT_BYTES];
	int rc;

	msg.payload = (void *)cmd->payload;
	msg.payloadlen = (int)cmd->len;
	msg.qos = 1;
	if (cmd->tracked) {
		MQTTProperty prop;

		snprintf(fence, sizeof(fence), "%" PRIu64, cmd->fence);
		memset(&prop, 0, sizeof(prop));
		prop.identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
		prop.value.data.data = FENCE_PROPERTY;
		prop.value.data.len = (int)strlen(FENCE_PROPERTY);
		prop.value.value.data = fence;
		prop.value.value.len = (int)strlen(fence);
		if (MQTTProperties_add(&msg.properties, &prop) != 0) {
			srv_log(SRV_LOG_WARN, "notify %s: out of memory", cmd->topic);
			return;
		}
		opts.context = mqtt;
		opts.onSuccess5 = on_publish_success;
		opts.onFailure5 = on_publish_failure;
	}
	rc = MQTTAsync_sendMessage(mqtt->client, cmd->topic, &msg, &opts);
	MQTTProperties_free(&msg.properties);
	if (rc != MQTTASYNC_SUCCESS) {
		/* a tracked one stays unacknowledged: issued again after the lease */
		srv_log(SRV_LOG_WARN, "notify %s: %s", cmd->topic, MQTTAsync_strerror(rc));
		return;
	}
	if (cmd->tracked && opts.token > 0)
		atomic_store(&mqtt->last_token, opts.token);
	sent.token = opts.token;
	post(mqtt, &sent, NULL, 0);
}

static void *client_main(void *arg)
{
	struct srv_mqtt *mqtt = arg;
	struct mqtt_cmd *cmd;

	pthread_mutex_lock(&mqtt->cmd_lock);
	for (;;) {
		while (mqtt->cmd_head == NULL && !mqtt->stopping)
			pthread_cond_wait(&mqtt->cmd_cond, &mqtt->cmd_lock);
		if (mqtt->stopping)
			break;
		cmd = mqtt->cmd_head;
		mqtt->cmd_head = cmd->next;
		if (mqtt->cmd_head == NULL)
			mqtt->cmd_tail = NULL;
		mqtt->cmd_queued--;
		mqtt->busy = true;
		pthread_mutex_unlock(&mqtt->cmd_lock);
		if (cmd->kind == CMD_CONNECT)
			client_connect(mqtt);
		else
			client_publish(mqtt, cmd);
		free(cmd);
		pthread_mutex_lock(&mqtt->cmd_lock);
		mqtt->busy = false;
		pthread_cond_broadcast(&mqtt->cmd_cond);
	}
	pthread_mutex_unlock(&mqtt->cmd_lock);
	return NULL;
}

/* Loop thread: hands cmd to the client thread (false: the queue is full). */
static bool submit(struct srv_mqtt *mqtt, struct mqtt_cmd *cmd)
{
	pthread_mutex_lock(&mqtt->cmd_lock);
	if (cmd->kind == CMD_PUBLISH && mqtt->cmd_queued >= CMD_QUEUE_MAX) {
		pthread_mutex_unlock(&mqtt->cmd_lock);
		free(cmd);
		return false;
	}
	cmd->next = NULL;
	if (mqtt->cmd_tail != NULL)
		mqtt->cmd_tail->next = cmd;
	else
		mqtt->cmd_head = cmd;
	mqtt->cmd_tail = cmd;
	mqtt->cmd_queued++;
	pthread_cond_broadcast(&mqtt->cmd_cond);
	pthread_mutex_unlock(&mqtt->cmd_lock);
	return true;
}

/* Stops and joins the client thread; what it had not done is dropped. */
static void client_stop(struct srv_mqtt *mqtt)
{
	struct mqtt_cmd *cmd;

	if (mqtt->thread_started) {
		pthread_mutex_lock(&mqtt->cmd_lock);
		mqtt->stopping = true;
		pthread_cond_broadcast(&mqtt->cmd_cond);
		pthread_mutex_unlock(&mqtt->cmd_lock);
		pthread_join(mqtt->thread, NULL);
		mqtt->thread_started = false;
	}
	while ((cmd = mqtt->cmd_head) != NULL) {
		mqtt->cmd_head = cmd->next;
		free(cmd);
	}
	mqtt->cmd_tail = NULL;
	mqtt->cmd_queued = 0;
}

/* ---- loop thread ---------------------------------------------------- */

static void ack_complete(struct srv_mqtt *mqtt, struct ack_slot *slot, bool acked)
{
	slot->state = ACK_FREE;
	if (acked) {
		mqtt->srv->metrics.notifies_sent++;
		if (mqtt->ack_fn != NULL)
			mqtt->ack_fn(mqtt->ack_arg, slot->seq, slot->fence);
	}
}

/*
 * The client thread reports the token of a tracked publish (MSG_SENT) after
 * Paho took it, so its PUBACK may come first: it waits in the slot.
 */
static void ack_sent(struct srv_mqtt *mqtt, const struct mqtt_msg *m)
{
	struct ack_slot *slot;
	bool early, acked;

	if (!m->tracked) {
		mqtt->srv->metrics.notifies_sent++;
		return;
	}
	if (m->token <= 0)
		return;
	slot = &mqtt->acks[(unsigned)m->token % SRV_MQTT_ACK_SLOTS];
	early = (slot->state == ACK_EARLY || slot->state == ACK_EARLY_NACK) &&
		slot->token == m->token;
	acked = slot->state == ACK_EARLY;
	/* A token Paho re-uses belongs to a publish it gave up on. */
	*slot = (struct ack_slot){m->seq, m->fence, m->token, ACK_WAITING};
	if (early)
		ack_complete(mqtt, slot, acked);
}

static void ack_done(struct srv_mqtt *mqtt, MQTTAsync_token token, bool acked)
{
	struct ack_slot *slot;

	if (token <= 0)
		return;
	slot = &mqtt->acks[(unsigned)token % SRV_MQTT_ACK_SLOTS];
	if (slot->state == ACK_WAITING && slot->token == token)
		ack_complete(mqtt, slot, acked);
	else
		*slot = (struct ack_slot){0, 0, token, acked ? ACK_EARLY : ACK_EARLY_NACK};
}

static void request_connect(struct srv_mqtt *mqtt)
{
	struct mqtt_cmd *cmd = calloc(1, sizeof(*cmd));

	if (cmd == NULL) {
		struct timeval delay = {CONNECT_RETRY_MIN_MS / 1000u, 0};

		evtimer_add(mqtt->ev_retry, &delay);
		return;
	}
	cmd->kind = CMD_CONNECT;
	mqtt->connecting = true;
	(void)submit(mqtt, cmd); /* a connect is never refused */
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	request_connect(arg);
}

/* Connects again after delay_ms, unless a connect is already under way. */
static void reconnect_after(struct srv_mqtt *mqtt, unsigned delay_ms)
{
	struct timeval delay = {(time_t)(delay_ms / 1000u),
				(suseconds_t)((delay_ms % 1000u) * 1000u)};

	if (mqtt->connecting)
		return;
	evtimer_add(mqtt->ev_retry, &delay); /* a pending retry moves to the new time */
}

static unsigned doubled(unsigned first_ms, unsigned times, unsigned cap_ms)
{
	unsigned ms = first_ms;

	while (times-- > 0 && ms < cap_ms)
		ms *= 2u;
	return ms < cap_ms ? ms : cap_ms;
}

/* The connection is gone (taken_over: the broker said so). */
static void lost(struct srv_mqtt *mqtt, bool taken_over)
{
	const char *cert = mqtt->srv->config->mqtt_cert;
	unsigned delay_ms;

	if (!taken_over && srv_now() - mqtt->connected_at >= SHORT_SESSION_S) {
		mqtt->short_streak = 0;
		srv_log(SRV_LOG_WARN, "mqtt connection lost (reconnecting)");
		reconnect_after(mqtt, CONNECT_RETRY_MIN_MS);
		return;
	}
	mqtt->srv->metrics.mqtt_short_sessions++;
	mqtt->short_streak++;
	delay_ms = doubled(SHORT_RETRY_FIRST_MS, mqtt->short_streak - 1u, SHORT_RETRY_MAX_MS);
	if (taken_over)
		srv_log(SRV_LOG_ERROR,
			"mqtt session taken over by another client with this identity (%s, the "
			"CN of %s): each replica needs its own mqtt_cert (docs/scaling.md); "
			"reconnecting in %u ms",
			mqtt->client_id, cert, delay_ms);
	else if (mqtt->short_streak >= 2)
		srv_log(SRV_LOG_ERROR,
			"mqtt connection lost %u times in a row within %.0f s of connecting: "
			"another process probably uses this MQTT identity (%s, the CN of %s) and "
			"the broker gives it our session; each replica needs its own mqtt_cert "
			"(docs/scaling.md); reconnecting in %u ms",
			mqtt->short_streak, SHORT_SESSION_S, mqtt->client_id, cert, delay_ms);
	else
		srv_log(SRV_LOG_WARN,
			"mqtt connection lost soon after connecting (reconnecting in %u ms)",
			delay_ms);
	reconnect_after(mqtt, delay_ms);
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
			mqtt->connecting = false;
			mqtt->connect_failures = 0;
			mqtt->connected_at = srv_now();
			srv_log(SRV_LOG_INFO, "mqtt connected, subscribed to %s", mqtt->sub_topic);
			break;
		case MSG_LOST:
			lost(mqtt, false);
			break;
		case MSG_DISCONNECTED:
			srv_log(SRV_LOG_WARN, "mqtt: the broker closed the connection (%s, 0x%02x)",
				MQTTReasonCode_toString((enum MQTTReasonCodes)m->token),
				(unsigned)m->token);
			lost(mqtt, false);
			break;
		case MSG_TAKEN_OVER:
			lost(mqtt, true);
			break;
		case MSG_SENT:
			ack_sent(mqtt, m);
			break;
		case MSG_ACK:
		case MSG_NACK:
			ack_done(mqtt, m->token, m->kind == MSG_ACK);
			break;
		case MSG_SUBSCRIBE_FAILED:
			srv_log(SRV_LOG_WARN, "mqtt subscribe to %s failed", mqtt->sub_topic);
			break;
		case MSG_CONNECT_FAILED: {
			unsigned delay_ms = doubled(CONNECT_RETRY_MIN_MS, mqtt->connect_failures,
						    CONNECT_RETRY_MAX_MS);

			mqtt->connecting = false;
			mqtt->connect_failures++;
			mqtt->short_streak = 0; /* the broker is away, not taken */
			srv_log(SRV_LOG_WARN, "mqtt connect failed, retrying in %u ms", delay_ms);
			reconnect_after(mqtt, delay_ms);
			break;
		}
		}
		free(m);
	}
}

const char *srv_mqtt_client_id(const struct srv_mqtt *mqtt)
{
	return mqtt->client_id;
}

bool srv_mqtt_connected(const struct srv_mqtt *mqtt)
{
	return mqtt != NULL && atomic_load(&((struct srv_mqtt *)mqtt)->connected);
}

/* Packs a Notify for the client thread; OTA_OK when it took it. */
static enum ota_err queue_notify(struct srv_mqtt *mqtt, const char *device,
				 const Fleetota__V1__Notify *notify, bool tracked, uint64_t fence)
{
	struct mqtt_cmd *cmd;
	size_t len;

	if (mqtt == NULL || !srv_id_valid(device, SRV_MAX_DEVICE_ID))
		return OTA_ERR_INVALID_ARG;
	len = fleetota__v1__notify__get_packed_size(notify);
	if (len > OTA_MAX_MQTT_PAYLOAD_BYTES)
		return OTA_ERR_SIZE;
	cmd = calloc(1, sizeof(*cmd) + len);
	if (cmd == NULL)
		return OTA_ERR_NOMEM;
	cmd->kind = CMD_PUBLISH;
	cmd->tracked = tracked;
	cmd->seq = notify->seq;
	cmd->fence = fence;
	snprintf(cmd->topic, sizeof(cmd->topic), "fleetota/v1/%s/cmd", device);
	cmd->len = fleetota__v1__notify__pack(notify, cmd->payload);
	if (!submit(mqtt, cmd)) {
		srv_log(SRV_LOG_WARN, "notify %s: %u publishes wait for the MQTT client already",
			device, CMD_QUEUE_MAX);
		return OTA_ERR_TRANSPORT;
	}
	return OTA_OK;
}

enum ota_err srv_mqtt_notify(struct srv_mqtt *mqtt, const char *device,
			     const Fleetota__V1__Notify *notify)
{
	return queue_notify(mqtt, device, notify, false, 0);
}

void srv_mqtt_set_ack_handler(struct srv_mqtt *mqtt, srv_mqtt_ack_fn fn, void *arg)
{
	mqtt->ack_fn = fn;
	mqtt->ack_arg = arg;
}

enum ota_err srv_mqtt_notify_tracked(struct srv_mqtt *mqtt, const char *device,
				     const Fleetota__V1__Notify *notify, uint64_t fence)
{
	return queue_notify(mqtt, device, notify, true, fence);
}

void srv_mqtt_wait_last(struct srv_mqtt *mqtt, unsigned timeout_ms)
{
	double deadline = srv_now() + timeout_ms / 1000.0;
	MQTTAsync_token token;
	double left_ms;

	if (mqtt == NULL)
		return;
	/* first what the client thread has not handed to Paho yet */
	pthread_mutex_lock(&mqtt->cmd_lock);
	while ((mqtt->cmd_head != NULL || mqtt->busy) && srv_now() < deadline) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 10 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&mqtt->cmd_cond, &mqtt->cmd_lock, &until);
	}
	pthread_mutex_unlock(&mqtt->cmd_lock);
	token = atomic_load(&mqtt->last_token);
	left_ms = (deadline - srv_now()) * 1000.0;
	if (token > 0 && left_ms > 0)
		(void)MQTTAsync_waitForCompletion(mqtt->client, token, (unsigned long)left_ms);
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
	const struct srv_config *cfg = srv->config;
	MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer5;
	MQTTProperty expiry;
	struct srv_mqtt *mqtt;
	int rc;

	mqtt = calloc(1, sizeof(*mqtt));
	if (mqtt == NULL)
		return OTA_ERR_NOMEM;
	mqtt->srv = srv;
	mqtt->receiver = receiver;
	pthread_mutex_init(&mqtt->lock, NULL);
	pthread_mutex_init(&mqtt->cmd_lock, NULL);
	pthread_cond_init(&mqtt->cmd_cond, NULL);
	atomic_init(&mqtt->connected, false);
	atomic_init(&mqtt->last_token, 0);
	if (!client_id_from_cert(cfg, mqtt->client_id, sizeof(mqtt->client_id))) {
		srv_mqtt_stop(mqtt);
		return OTA_ERR_INVALID_ARG;
	}
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
	srv_log(SRV_LOG_INFO, "mqtt client id %s (the CN of %s)", mqtt->client_id, cfg->mqtt_cert);
	rc = MQTTAsync_createWithOptions(&mqtt->client, cfg->mqtt_url, mqtt->client_id,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &create);
	if (rc != MQTTASYNC_SUCCESS) {
		srv_log(SRV_LOG_ERROR, "mqtt client %s: %s", cfg->mqtt_url, MQTTAsync_strerror(rc));
		goto fail;
	}
	MQTTAsync_setCallbacks(mqtt->client, mqtt, on_connection_lost, on_message, NULL);
	MQTTAsync_setDisconnected(mqtt->client, mqtt, on_disconnected);
	memset(&expiry, 0, sizeof(expiry));
	expiry.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
	expiry.value.integer4 = SESSION_EXPIRY_SEC;
	MQTTProperties_add(&mqtt->connect_props, &expiry);
	if (pthread_create(&mqtt->thread, NULL, client_main, mqtt) != 0) {
		srv_log(SRV_LOG_ERROR, "mqtt: cannot start the client thread");
		goto fail;
	}
	mqtt->thread_started = true;
	request_connect(mqtt);
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
		 * lock and must not acknowledge it, so Paho (and the client
		 * thread, which may wait for that lock) is left as it is (the
		 * process is about to exit; the broker redelivers).
		 */
		srv_log(SRV_LOG_WARN, "mqtt: a report is not stored; leaving it unacknowledged");
		return;
	}
	client_stop(mqtt);
	if (mqtt->client != NULL) {
		MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer5;

		opts.timeout = 1000;
		if (MQTTAsync_isConnected(mqtt->client))
			MQTTAsync_disconnect(mqtt->client, &opts);
		MQTTAsync_destroy(&mqtt->client);
	}
	/* joins the receiver's threads: nothing posts to the loop queue after */
	mqtt->receiver->free(mqtt->receiver_state);
	MQTTProperties_free(&mqtt->connect_props);
	if (mqtt->ev_wake != NULL)
		event_free(mqtt->ev_wake);
	if (mqtt->ev_retry != NULL)
		event_free(mqtt->ev_retry);
	while ((m = mqtt->head) != NULL) {
		mqtt->head = m->next;
		free(m);
	}
	pthread_mutex_destroy(&mqtt->lock);
	pthread_mutex_destroy(&mqtt->cmd_lock);
	pthread_cond_destroy(&mqtt->cmd_cond);
	free(mqtt->acks);
	free(mqtt);
}
