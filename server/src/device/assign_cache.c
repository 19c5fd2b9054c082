/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign_cache-internal.h"
#include "http-internal.h"
#include "log-internal.h"
#include "srv-limits.h"

#define STMT "dlv_changes"
#define BLOB_BUCKETS 256u
#define MAX_BUCKETS (1u << 20)

/* The only SQL: one function call (migrations/code/delivery_changes.sql). */
static const char sql_changes[] =
	"SELECT version, oldest, seq, device_id, artifact_id FROM delivery_changes_since($1, $2)";

/* One manifest's bytes, shared by every entry that answers with it. */
struct blob {
	struct blob *next;
	unsigned refs;
	uint64_t hash;
	size_t len;
	char data[];
};

/* One answer: key is "device\0artifact\0variant\0". */
struct entry {
	struct entry *next;
	struct blob *blob;
	double added; /* srv_now() */
	size_t key_len;
	char key[];
};

struct srv_assign_cache {
	struct event_base *base;
	struct srv_db *db;
	struct srv_metrics *metrics;
	struct srv_assign_cache_config config;
	struct event *ev_poll;
	struct entry **buckets; /* by device */
	size_t n_buckets;
	size_t n_entries;
	struct blob *blobs[BLOB_BUCKETS];
	uint64_t generation;
	long long applied; /* last change applied; -1: none yet */
	uint64_t reconnects; /* the pool's reconnect count at the last poll */
	double good_poll_sent; /* send time of the last poll that succeeded; 0: never */
	bool polling;
	bool *alive; /* the poll in flight's view of this cache (NULL when none) */
};

static uint64_t fnv1a(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#define FNV_SEED 0xcbf29ce484222325ull

static size_t bucket_of(const struct srv_assign_cache *c, const char *device)
{
	return (size_t)(fnv1a(device, strlen(device), FNV_SEED) & (c->n_buckets - 1));
}

/* ---- blobs ---------------------------------------------------------- */

static struct blob *blob_get(struct srv_assign_cache *c, const char *data, size_t len)
{
	uint64_t hash = fnv1a(data, len, FNV_SEED);
	struct blob **head = &c->blobs[hash % BLOB_BUCKETS], *b;

	for (b = *head; b != NULL; b = b->next) {
		if (b->hash == hash && b->len == len && memcmp(b->data, data, len) == 0) {
			b->refs++;
			return b;
		}
	}
	b = malloc(sizeof(*b) + len);
	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->hash = hash;
	b->len = len;
	memcpy(b->data, data, len);
	b->next = *head;
	*head = b;
	return b;
}

static void blob_put(struct srv_assign_cache *c, struct blob *b)
{
	struct blob **p;

	if (--b->refs > 0)
		return;
	for (p = &c->blobs[b->hash % BLOB_BUCKETS]; *p != NULL; p = &(*p)->next) {
		if (*p == b) {
			*p = b->next;
			break;
		}
	}
	free(b);
}

/* ---- entries -------------------------------------------------------- */

/* key into buf ("device\0artifact\0variant\0"); 0 when too long */
static size_t make_key(char *buf, size_t size, const char *device, const char *artifact,
		       const char *variant)
{
	size_t d = strlen(device) + 1, a = strlen(artifact) + 1, v = strlen(variant) + 1;

	if (d + a + v > size || v > SRV_ASSIGN_CACHE_MAX_VARIANT + 1)
		return 0;
	memcpy(buf, device, d);
	memcpy(buf + d, artifact, a);
	memcpy(buf + d + a, variant, v);
	return d + a + v;
}

static void entry_free(struct srv_assign_cache *c, struct entry *e)
{
	blob_put(c, e->blob);
	free(e);
	c->n_entries--;
}

/* Forgets every entry of device (its bucket holds them all). */
static void forget_device(struct srv_assign_cache *c, const char *device)
{
	struct entry **p = &c->buckets[bucket_of(c, device)];

	while (*p != NULL) {
		struct entry *e = *p;

		if (strcmp(e->key, device) == 0) {
			*p = e->next;
			entry_free(c, e);
		} else {
			p = &e->next;
		}
	}
}

static void forget_all(struct srv_assign_cache *c)
{
	for (size_t i = 0; i < c->n_buckets; i++) {
		while (c->buckets[i] != NULL) {
			struct entry *e = c->buckets[i];

			c->buckets[i] = e->next;
			entry_free(c, e);
		}
	}
	c->metrics->manifest_cache_flushes++;
}

bool srv_assign_cache_get(struct srv_assign_cache *c, const char *device, const char *artifact,
			  const char *variant, const char **ret_data, size_t *ret_len)
{
	char key[SRV_ASSIGN_KEY_BYTES];
	size_t key_len = make_key(key, sizeof(key), device, artifact, variant);
	double now = srv_now();
	struct entry **p;

	if (c == NULL)
		return false;
	if (key_len == 0 || c->good_poll_sent == 0 ||
	    (now - c->good_poll_sent) * 1000.0 > c->config.stale_ms) {
		c->metrics->manifest_cache_misses++;
		return false;
	}
	for (p = &c->buckets[bucket_of(c, device)]; *p != NULL; p = &(*p)->next) {
		struct entry *e = *p;

		if (e->key_len != key_len || memcmp(e->key, key, key_len) != 0)
			continue;
		if ((now - e->added) * 1000.0 > c->config.ttl_ms) {
			*p = e->next;
			entry_free(c, e);
			break;
		}
		c->metrics->manifest_cache_hits++;
		*ret_data = e->blob->data;
		*ret_len = e->blob->len;
		return true;
	}
	c->metrics->manifest_cache_misses++;
	return false;
}

uint64_t srv_assign_cache_generation(const struct srv_assign_cache *c)
{
	return c != NULL ? c->generation : 0;
}

void srv_assign_cache_put(struct srv_assign_cache *c, const char *device, const char *artifact,
			  const char *variant, uint64_t generation, const char *data, size_t len)
{
	char key[SRV_ASSIGN_KEY_BYTES];
	size_t key_len = make_key(key, sizeof(key), device, artifact, variant);
	struct entry *e;

	if (c == NULL || key_len == 0 || generation != c->generation || c->good_poll_sent == 0)
		return;
	forget_device(c, device); /* one answer per device: its latest */
	if (c->n_entries >= c->config.max_entries) {
		forget_all(c);
		c->generation++;
	}
	e = malloc(sizeof(*e) + key_len);
	if (e == NULL)
		return;
	e->blob = blob_get(c, data, len);
	if (e->blob == NULL) {
		free(e);
		return;
	}
	e->added = srv_now();
	e->key_len = key_len;
	memcpy(e->key, key, key_len);
	e->next = c->buckets[bucket_of(c, device)];
	c->buckets[bucket_of(c, device)] = e;
	c->n_entries++;
}

/* ---- the poll ------------------------------------------------------- */

struct poll {
	struct srv_assign_cache *cache;
	bool alive; /* false: the cache was freed meanwhile */
	double sent;
};

static void apply(struct srv_assign_cache *c, const PGresult *res, double sent)
{
	int rows = PQntuples(res), changes = 0;
	long long version, oldest;
	bool forgot = false;

	if (rows < 1 || PQnfields(res) != 5 || PQgetisnull(res, 0, 0))
		return;
	version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	oldest = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	for (int i = 0; i < rows; i++)
		changes += !PQgetisnull(res, i, 2);
	/*
	 * Forget everything when the changes in between are not all here: the
	 * first poll, too far behind, too many at once, a database whose
	 * numbers went back (a restore, a failover that lost the last commits),
	 * or any reconnect of the pool since the last poll (after a failover
	 * that lost commits the numbers may also go on, naming other changes).
	 */
	if (c->applied < 0 || c->applied < oldest - 1 || version < c->applied ||
	    changes >= (int)SRV_ASSIGN_CACHE_POLL_LIMIT ||
	    c->metrics->db_reconnects != c->reconnects) {
		if (c->n_entries > 0 || c->applied >= 0)
			forget_all(c);
		forgot = true;
	} else {
		for (int i = 0; i < rows; i++) {
			if (PQgetisnull(res, i, 2))
				continue;
			if (PQgetisnull(res, i, 3)) {
				forget_all(c); /* an artifact, or everything */
				forgot = true;
				break;
			}
			forget_device(c, PQgetvalue(res, i, 3));
			forgot = true;
		}
	}
	if (forgot)
		c->generation++;
	c->reconnects = c->metrics->db_reconnects;
	c->applied = version;
	c->good_poll_sent = sent;
}

static void poll_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct poll *p = arg;
	struct srv_assign_cache *c = p->cache;

	if (p->alive) {
		c->polling = false;
		c->alive = NULL;
		if (err == OTA_OK)
			apply(c, res, p->sent);
	}
	free(p);
}

static void poll_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_assign_cache *c = arg;
	char since[SRV_U64_TEXT_BYTES], limit[SRV_U32_TEXT_BYTES];
	const char *params[2] = {since, limit};
	struct poll *p;

	(void)fd;
	(void)what;
	if (c->polling)
		return;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return;
	p->cache = c;
	p->alive = true;
	p->sent = srv_now();
	snprintf(since, sizeof(since), "%lld", c->applied < 0 ? -1 : c->applied);
	snprintf(limit, sizeof(limit), "%u", SRV_ASSIGN_CACHE_POLL_LIMIT);
	if (srv_db_exec(c->db, STMT, 2, params, false, SRV_DB_FAIL_FAST, poll_cb, p) != OTA_OK) {
		free(p);
		return;
	}
	c->polling = true;
	c->alive = &p->alive;
}

enum ota_err srv_assign_cache_prepare(struct srv_db *db)
{
	return srv_db_prepare(db, STMT, sql_changes);
}

enum ota_err srv_assign_cache_new(struct event_base *base, struct srv_db *db,
				  const struct srv_assign_cache_config *config,
				  struct srv_metrics *metrics, struct srv_assign_cache **ret_cache)
{
	struct srv_assign_cache *c;
	struct timeval every;

	if (config->poll_ms == 0 || config->stale_ms < config->poll_ms || config->max_entries == 0)
		return OTA_ERR_INVALID_ARG;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return OTA_ERR_NOMEM;
	c->base = base;
	c->db = db;
	c->metrics = metrics;
	c->config = *config;
	c->applied = -1;
	c->n_buckets = 1024;
	while (c->n_buckets < config->max_entries && c->n_buckets < MAX_BUCKETS)
		c->n_buckets *= 2;
	c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
	c->ev_poll = event_new(base, -1, EV_PERSIST, poll_timer_cb, c);
	every.tv_sec = config->poll_ms / 1000;
	every.tv_usec = (suseconds_t)(config->poll_ms % 1000) * 1000;
	if (c->buckets == NULL || c->ev_poll == NULL || event_add(c->ev_poll, &every) != 0) {
		srv_assign_cache_free(c);
		return OTA_ERR_NOMEM;
	}
	*ret_cache = c;
	return OTA_OK;
}

void srv_assign_cache_free(struct srv_assign_cache *c)
{
	if (c == NULL)
		return;
	if (c->alive != NULL)
		*c->alive = false;
	if (c->ev_poll != NULL)
		event_free(c->ev_poll);
	if (c->buckets != NULL) {
		for (size_t i = 0; i < c->n_buckets; i++) {
			while (c->buckets[i] != NULL) {
				struct entry *e = c->buckets[i];

				c->buckets[i] = e->next;
				entry_free(c, e);
			}
		}
		free(c->buckets);
	}
	free(c);
}
