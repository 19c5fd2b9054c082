/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Many MQTT sessions on one libevent loop (fleet_mqtt.h). Each session is
 * a libmosquitto client that never runs a thread of its own: the loop
 * watches its socket, calls mosquitto_loop_read when it is readable and
 * mosquitto_loop_write when libmosquitto wants to write and it is
 * writable; one timer a second drives every session's keep-alive
 * (mosquitto_loop_misc), connect deadlines and reconnect backoff.
 *
 * After every libmosquitto call the session is re-synced: a socket that
 * libmosquitto closed (error, keep-alive, broker gone) has its events freed
 * at once, before any other descriptor can be opened on this thread, and a
 * retry is scheduled.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/ssl.h>

#include "fleet_mqtt.h"
#include "fleetota/limits.h"
#include "ota_linux.h"

#define HOST_MAX 256u
#define CONNECT_DEADLINE_S 30
#define BACKOFF_MIN_S 1u
#define BACKOFF_MAX_S 30u
/* Reports queued at the loop for one session beyond which new ones are dropped. */
#define PENDING_MAX 64u
/* Reads in one readiness callback at most (a session cannot hold the loop). */
#define READ_ROUNDS_MAX 64u

struct pending {
	struct pending *next;
	struct fleet_mq_session *session;
	size_t len;
	uint8_t payload[];
};

struct fleet_mq_session {
	struct fleet_mq *mq;
	struct mosquitto *mosq;
	size_t index; /* in mq->sessions */
	struct event ev; /* the socket's one event: read, and write while libmosquitto wants it */
	short ev_mask; /* 0: no event */
	int fd;
	bool connected; /* CONNACK accepted, not lost since */
	bool started; /* the first connect went out */
	time_t attempt_at; /* when the running attempt began (0: none) */
	time_t retry_at; /* when to try again (0: not waiting) */
	unsigned backoff_s;
	unsigned pending; /* under mq->lock */
	char cmd_topic[OTA_MQTT_TOPIC_MAX];
	char status_topic[OTA_MQTT_TOPIC_MAX];
	ota_mqtt_message_fn on_message;
	ota_mqtt_connected_fn on_connected;
	void *arg;
};

struct fleet_mq {
	struct event_base *base;
	struct event *tick;
	struct event *drain;
	struct fleet_mq_session **sessions;
	size_t n_sessions;
	size_t cap_sessions;
	unsigned connected;
	unsigned connecting; /* attempts under way: no CONNACK yet */
	bool out_of_fds; /* a socket or file could not be opened: EMFILE or ENFILE */
	pthread_mutex_t lock; /* the hand-over queue */
	struct pending *head;
	struct pending *tail;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
	mosquitto_lib_init();
}

/* ---- the socket's events -------------------------------------------------- */

static void on_io(evutil_socket_t fd, short what, void *arg);

/*
 * One event per socket, so that a socket libmosquitto already closed is
 * removed from the loop by a single delete (an error libevent expects).
 */
static void drop_events(struct fleet_mq_session *s)
{
	if (s->ev_mask)
		event_del(&s->ev);
	s->ev_mask = 0;
	s->fd = -1;
}

static void set_connected(struct fleet_mq_session *s, bool up)
{
	if (s->connected == up)
		return;
	s->connected = up;
	if (up)
		s->mq->connected++;
	else
		s->mq->connected--;
}

/* An attempt begins (now) or ends (0). */
static void set_attempt(struct fleet_mq_session *s, time_t at)
{
	if (!s->attempt_at && at)
		s->mq->connecting++;
	else if (s->attempt_at && !at)
		s->mq->connecting--;
	s->attempt_at = at;
}

static void schedule_retry(struct fleet_mq_session *s)
{
	set_connected(s, false);
	set_attempt(s, 0);
	if (s->retry_at)
		return;
	/* spread the sessions of a broker that went away over the next second */
	s->retry_at = time(NULL) + s->backoff_s + (time_t)(s->index % 2u);
	s->backoff_s = s->backoff_s * 2u > BACKOFF_MAX_S ? BACKOFF_MAX_S : s->backoff_s * 2u;
}

/* After every libmosquitto call: the events follow the socket. */
static void sync_session(struct fleet_mq_session *s)
{
	int fd = mosquitto_socket(s->mosq);
	if (fd != s->fd)
		drop_events(s);
	if (fd < 0) {
		schedule_retry(s);
		return;
	}
	short mask = EV_READ | EV_PERSIST | (mosquitto_want_write(s->mosq) ? EV_WRITE : 0);
	if (mask == s->ev_mask)
		return;
	if (s->ev_mask)
		event_del(&s->ev);
	s->ev_mask = 0;
	if (event_assign(&s->ev, s->mq->base, fd, mask, on_io, s) != 0 ||
	    event_add(&s->ev, NULL) != 0) {
		mosquitto_disconnect(s->mosq);
		s->fd = -1;
		schedule_retry(s);
		return;
	}
	s->ev_mask = mask;
	s->fd = fd;
}

/* Reads until OpenSSL holds no decrypted bytes the socket would not signal again. */
static void read_all(struct fleet_mq_session *s)
{
	for (unsigned i = 0; i < READ_ROUNDS_MAX; i++) {
		mosquitto_loop_read(s->mosq, 1);
		SSL *ssl = mosquitto_socket(s->mosq) >= 0 ? mosquitto_ssl_get(s->mosq) : NULL;
		if (!ssl || SSL_pending(ssl) <= 0)
			break;
	}
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct fleet_mq_session *s = arg;
	(void)fd;
	/*
	 * Until the CONNACK the TLS handshake may be what wants to write:
	 * libmosquitto advances it from loop_read, not loop_write.
	 */
	if ((what & EV_READ) || !s->connected)
		read_all(s);
	if ((what & EV_WRITE) && mosquitto_socket(s->mosq) >= 0)
		mosquitto_loop_write(s->mosq, 1);
	sync_session(s);
}

/* ---- libmosquitto's callbacks (inside loop_read) ---------------------------- */

static void cb_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
		       const mosquitto_property *props)
{
	struct fleet_mq_session *s = obj;
	(void)flags;
	(void)props;
	if (rc != 0)
		return; /* refused: the broker closes, the retry follows */
	set_connected(s, true);
	set_attempt(s, 0);
	s->backoff_s = BACKOFF_MIN_S;
	/* subscribe on every (re)connect: the broker may have dropped the session */
	mosquitto_subscribe_v5(mosq, NULL, s->cmd_topic, 1, 0, NULL);
	if (s->on_connected)
		s->on_connected(s->arg);
}

static void cb_disconnect(struct mosquitto *mosq, void *obj, int rc,
			  const mosquitto_property *props)
{
	struct fleet_mq_session *s = obj;
	(void)mosq;
	(void)rc;
	(void)props;
	set_connected(s, false);
}

static void cb_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
		       const mosquitto_property *props)
{
	struct fleet_mq_session *s = obj;
	(void)mosq;
	(void)props;
	/* only our own cmd topic, and only bounded payloads */
	if (msg->topic && strcmp(msg->topic, s->cmd_topic) == 0 && msg->payloadlen >= 0 &&
	    (size_t)msg->payloadlen <= OTA_MAX_MQTT_PAYLOAD_BYTES)
		s->on_message(s->arg, msg->payload, (size_t)msg->payloadlen);
}

/* ---- connecting ------------------------------------------------------------------ */

/*
 * After a libmosquitto call that may open a file or a socket (errno was
 * cleared before it): a failure for want of a descriptor is not retried
 * like a lost connection, it is reported (fleet_mq_out_of_descriptors).
 */
static bool check_fds(struct fleet_mq *mq, int rc)
{
	if (rc != MOSQ_ERR_SUCCESS && (errno == EMFILE || errno == ENFILE))
		mq->out_of_fds = true;
	return rc == MOSQ_ERR_SUCCESS;
}

static void attempt(struct fleet_mq_session *s)
{
	/* libmosquitto closes the old socket and may reuse its number */
	drop_events(s);
	s->retry_at = 0;
	set_attempt(s, time(NULL));
	errno = 0;
	(void)check_fds(s->mq, mosquitto_reconnect_async(s->mosq));
	sync_session(s);
}

static bool parse_url(const char *url, char *host, size_t cap, int *port)
{
	static const char *const schemes[] = {"ssl://", "mqtts://"};
	const char *rest = NULL;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !rest; i++) {
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
			rest = url + strlen(schemes[i]);
	}
	const char *colon = rest ? strrchr(rest, ':') : NULL;
	if (!colon || colon == rest || (size_t)(colon - rest) >= cap)
		return false;
	char *end = NULL;
	long p = strtol(colon + 1, &end, 10);
	if (!end || *end || p < 1 || p > 65535)
		return false;
	memcpy(host, rest, (size_t)(colon - rest));
	host[colon - rest] = '\0';
	*port = (int)p;
	return true;
}

static int add_session(struct fleet_mq *mq, struct fleet_mq_session *s)
{
	if (mq->n_sessions == mq->cap_sessions) {
		size_t cap = mq->cap_sessions ? mq->cap_sessions * 2u : 256u;
		struct fleet_mq_session **a = realloc(mq->sessions, cap * sizeof(*a));
		if (!a)
			return -1;
		mq->sessions = a;
		mq->cap_sessions = cap;
	}
	s->index = mq->n_sessions;
	mq->sessions[mq->n_sessions++] = s;
	return 0;
}

static void free_session(struct fleet_mq_session *s)
{
	drop_events(s);
	mosquitto_destroy(s->mosq);
	free(s);
}

enum ota_err fleet_mq_start(struct fleet_mq *mq, const struct ota_mqtt_config *config,
			    ota_mqtt_message_fn on_message, ota_mqtt_connected_fn on_connected,
			    void *arg, struct fleet_mq_session **ret)
{
	char host[HOST_MAX];
	int port = 0;
	if (!config->url || !config->device_id || !ota_mqtt_topic_level_ok(config->device_id) ||
	    !on_message || !parse_url(config->url, host, sizeof(host), &port))
		return OTA_ERR_INVALID_ARG;
	struct fleet_mq_session *s = calloc(1, sizeof(*s));
	if (!s)
		return OTA_ERR_NOMEM;
	s->mq = mq;
	s->fd = -1;
	s->backoff_s = BACKOFF_MIN_S;
	s->on_message = on_message;
	s->on_connected = on_connected;
	s->arg = arg;
	ota_mqtt_topics(config->device_id, s->cmd_topic, s->status_topic);
	/* clean start off: the broker keeps the session (and the QoS 1 Notify) while away */
	s->mosq = mosquitto_new(config->device_id, false, s);
	if (!s->mosq) {
		free(s);
		return OTA_ERR_TRANSPORT;
	}
	mosquitto_property *props = NULL;
	errno = 0;
	/* mosquitto_tls_set opens the CA, certificate and key files to check them */
	bool ok = mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5) ==
			  MOSQ_ERR_SUCCESS &&
		  check_fds(mq, mosquitto_tls_set(s->mosq, config->ca_file, NULL, config->cert_file,
						  config->key_file, NULL)) &&
		  mosquitto_tls_opts_set(s->mosq, SSL_VERIFY_PEER, "tlsv1.2", NULL) ==
			  MOSQ_ERR_SUCCESS &&
		  mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
					       OTA_MQTT_SESSION_EXPIRY_S) == MOSQ_ERR_SUCCESS &&
		  add_session(mq, s) == 0;
	if (!ok) {
		mosquitto_property_free_all(&props);
		free_session(s);
		return OTA_ERR_TRANSPORT;
	}
	mosquitto_connect_v5_callback_set(s->mosq, cb_connect);
	mosquitto_disconnect_v5_callback_set(s->mosq, cb_disconnect);
	mosquitto_message_v5_callback_set(s->mosq, cb_message);
	/*
	 * The one call that takes CONNECT properties blocks for the TCP
	 * connect (not for TLS); reconnects keep the properties and do not block.
	 */
	set_attempt(s, time(NULL));
	s->started = true;
	errno = 0;
	(void)check_fds(mq, mosquitto_connect_bind_v5(s->mosq, host, port, OTA_MQTT_KEEPALIVE_S,
						      NULL, props));
	mosquitto_property_free_all(&props);
	sync_session(s);
	*ret = s;
	return OTA_OK;
}

/* ---- the hand-over from other threads ----------------------------------------- */

static void drain(evutil_socket_t fd, short what, void *arg)
{
	struct fleet_mq *mq = arg;
	(void)fd;
	(void)what;
	pthread_mutex_lock(&mq->lock);
	struct pending *p = mq->head;
	mq->head = mq->tail = NULL;
	for (struct pending *q = p; q; q = q->next)
		q->session->pending--;
	pthread_mutex_unlock(&mq->lock);
	while (p) {
		struct pending *next = p->next;
		struct fleet_mq_session *s = p->session;
		/* not connected: libmosquitto keeps a QoS 1 message for the reconnect */
		(void)mosquitto_publish_v5(s->mosq, NULL, s->status_topic, (int)p->len, p->payload,
					   1, false, NULL);
		sync_session(s);
		free(p);
		p = next;
	}
}

enum ota_err fleet_mq_publish(struct fleet_mq_session *s, const uint8_t *payload, size_t len)
{
	if (len > OTA_MAX_MQTT_PAYLOAD_BYTES)
		return OTA_ERR_SIZE;
	struct pending *p = malloc(sizeof(*p) + len);
	if (!p)
		return OTA_ERR_NOMEM;
	p->next = NULL;
	p->session = s;
	p->len = len;
	memcpy(p->payload, payload, len);
	struct fleet_mq *mq = s->mq;
	pthread_mutex_lock(&mq->lock);
	if (s->pending >= PENDING_MAX) {
		pthread_mutex_unlock(&mq->lock);
		free(p);
		return OTA_ERR_TRANSPORT;
	}
	s->pending++;
	bool wake = !mq->head;
	if (mq->tail)
		mq->tail->next = p;
	else
		mq->head = p;
	mq->tail = p;
	pthread_mutex_unlock(&mq->lock);
	if (wake)
		event_active(mq->drain, EV_READ, 0);
	return OTA_OK;
}

/* ---- keep-alive, deadlines, retries: once a second ----------------------------- */

static void tick(evutil_socket_t fd, short what, void *arg)
{
	struct fleet_mq *mq = arg;
	(void)fd;
	(void)what;
	time_t now = time(NULL);
	for (size_t i = 0; i < mq->n_sessions; i++) {
		struct fleet_mq_session *s = mq->sessions[i];
		if (s->retry_at) {
			if (now >= s->retry_at)
				attempt(s);
			continue;
		}
		if (!s->connected && s->attempt_at && now - s->attempt_at >= CONNECT_DEADLINE_S) {
			attempt(s); /* a handshake or CONNACK that never came */
			continue;
		}
		mosquitto_loop_misc(s->mosq);
		sync_session(s);
	}
}

struct fleet_mq *fleet_mq_new(struct event_base *base)
{
	pthread_once(&lib_once, lib_init);
	struct fleet_mq *mq = calloc(1, sizeof(*mq));
	if (!mq)
		return NULL;
	mq->base = base;
	pthread_mutex_init(&mq->lock, NULL);
	mq->tick = event_new(base, -1, EV_PERSIST, tick, mq);
	mq->drain = event_new(base, -1, 0, drain, mq);
	struct timeval one = {1, 0};
	if (!mq->tick || !mq->drain || event_add(mq->tick, &one) != 0) {
		fleet_mq_free(mq);
		return NULL;
	}
	return mq;
}

void fleet_mq_stop(struct fleet_mq_session *s)
{
	if (!s)
		return;
	struct fleet_mq *mq = s->mq;
	/* what other threads handed over for it goes too */
	pthread_mutex_lock(&mq->lock);
	struct pending **pp = &mq->head;
	mq->tail = NULL;
	while (*pp) {
		struct pending *p = *pp;
		if (p->session == s) {
			*pp = p->next;
			free(p);
		} else {
			mq->tail = p;
			pp = &p->next;
		}
	}
	pthread_mutex_unlock(&mq->lock);
	if (s->connected) {
		/* a clean DISCONNECT (the session stays at the broker), written if it fits */
		mosquitto_disconnect_v5(s->mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL);
		mosquitto_loop_write(s->mosq, 1);
	}
	set_connected(s, false);
	set_attempt(s, 0);
	mq->sessions[s->index] = mq->sessions[mq->n_sessions - 1];
	mq->sessions[s->index]->index = s->index;
	mq->n_sessions--;
	free_session(s);
}

unsigned fleet_mq_connected(const struct fleet_mq *mq)
{
	return mq->connected;
}

unsigned fleet_mq_connecting(const struct fleet_mq *mq)
{
	return mq->connecting;
}

bool fleet_mq_out_of_descriptors(const struct fleet_mq *mq)
{
	return mq->out_of_fds;
}

void fleet_mq_free(struct fleet_mq *mq)
{
	if (!mq)
		return;
	while (mq->n_sessions)
		fleet_mq_stop(mq->sessions[mq->n_sessions - 1]);
	free(mq->sessions);
	while (mq->head) {
		struct pending *p = mq->head;
		mq->head = p->next;
		free(p);
	}
	if (mq->tick)
		event_free(mq->tick);
	if (mq->drain)
		event_free(mq->drain);
	pthread_mutex_destroy(&mq->lock);
	free(mq);
}
