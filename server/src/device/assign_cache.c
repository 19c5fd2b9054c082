/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign_cache-internal.h"
#include "fleetota/limits.h"
#include "http-internal.h"
#include "log-internal.h"
#include "srv-limits.h"

#define STMT "dlv_changes"
#define STMT_PREFILL "dlv_prefill"
#define STMT_MARK "dlv_mark"
#define BLOB_BUCKETS 256u
#define MAX_BUCKETS (1u << 20)
#define MAX_ARTIFACT_ID 128u
#define STORE_NAME_BYTES 64u
/* prefills in flight at once (one per artifact of a tick, usually one) */
#define MAX_PREFILLS 4u
/* delivery marks waiting (beyond: dropped and counted), and per batch */
#define MARK_QUEUE_MAX 65536u
#define MARK_BATCH 1000u
/* devices forgotten while prefills are in flight, noted one by one (beyond: all) */
#define FORGOT_MAX 4096u

/* The SQL: function calls (migrations/code/delivery_changes.sql, delivery.sql). */
static const char sql_changes[] =
	"SELECT version, oldest, seq, device_id, artifact_id FROM delivery_changes_since($1, $2)";
static const char sql_prefill[] =
	"SELECT device_id, manifest, store_path, image_size FROM delivery_prefill($1::text[], $2)";
static const char sql_mark[] =
	"SELECT device_id, artifact_id FROM delivery_mark_full($1::text[], $2::text[])";

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
	struct blob *image; /* prefilled: the image's store name with its NUL; else NULL */
	uint64_t image_size;
	bool mark; /* prefilled: the delivery mark is queued when first served */
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
	struct request *requests; /* prefills and mark batches in flight */
	unsigned prefilling;
	/*
	 * While prefills are in flight: the devices the polls forgot meanwhile
	 * (a prefill keeps none of those: its answer may predate the change),
	 * and how many times everything was forgotten (then it keeps nothing).
	 */
	char **forgot;
	size_t n_forgot;
	uint64_t forgot_all;
	bool marking;
	char **marks; /* keys "device\0artifact\0" of delivery marks to write */
	size_t n_marks;
};

/* A prefill or a batch of marks in flight. */
struct request {
	struct request *next;
	struct srv_assign_cache *cache; /* NULL: the cache was freed meanwhile */
	bool mark;
	size_t forgot_from; /* a prefill's: c->n_forgot when it was sent */
	uint64_t forgot_all; /* and c->forgot_all */
	char **keys; /* a mark batch's (owned) */
	size_t n_keys;
	char artifact[MAX_ARTIFACT_ID + 1];
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
	if (e->image != NULL)
		blob_put(c, e->image);
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
	c->forgot_all++;
	for (size_t i = 0; i < c->n_buckets; i++) {
		while (c->buckets[i] != NULL) {
			struct entry *e = c->buckets[i];

			c->buckets[i] = e->next;
			entry_free(c, e);
		}
	}
	c->metrics->manifest_cache_flushes++;
}

/* Queues the delivery mark of key "device\0artifact\0" (key_len bytes). */
static void queue_mark(struct srv_assign_cache *c, const char *key, size_t key_len)
{
	char *copy;

	if (c->marks == NULL)
		c->marks = calloc(MARK_QUEUE_MAX, sizeof(*c->marks));
	if (c->marks == NULL || c->n_marks >= MARK_QUEUE_MAX || (copy = malloc(key_len)) == NULL) {
		c->metrics->delivery_marks_dropped++;
		return;
	}
	memcpy(copy, key, key_len);
	c->marks[c->n_marks++] = copy;
}

/* The last poll that succeeded was sent within the staleness bound. */
static bool fresh(const struct srv_assign_cache *c, double now)
{
	return c->good_poll_sent != 0 && (now - c->good_poll_sent) * 1000.0 <= c->config.stale_ms;
}

/* The entry of key, or NULL (none, or too old: then freed). */
static struct entry *find_live(struct srv_assign_cache *c, const char *device, const char *key,
			       size_t key_len, double now)
{
	for (struct entry **p = &c->buckets[bucket_of(c, device)]; *p != NULL; p = &(*p)->next) {
		struct entry *e = *p;

		if (e->key_len != key_len || memcmp(e->key, key, key_len) != 0)
			continue;
		if ((now - e->added) * 1000.0 > c->config.ttl_ms) {
			*p = e->next;
			entry_free(c, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

bool srv_assign_cache_get(struct srv_assign_cache *c, const char *device, const char *artifact,
			  const char *variant, const char **ret_data, size_t *ret_len)
{
	char key[SRV_ASSIGN_KEY_BYTES];
	size_t key_len = make_key(key, sizeof(key), device, artifact, variant);
	double now = srv_now();
	struct entry *e;

	if (c == NULL)
		return false;
	e = key_len == 0 || !fresh(c, now) ? NULL : find_live(c, device, key, key_len, now);
	if (e == NULL) {
		c->metrics->manifest_cache_misses++;
		return false;
	}
	c->metrics->manifest_cache_hits++;
	if (e->mark) {
		e->mark = false;
		queue_mark(c, e->key, key_len - strlen(variant) - 1);
	}
	*ret_data = e->blob->data;
	*ret_len = e->blob->len;
	return true;
}

bool srv_assign_cache_get_image(struct srv_assign_cache *c, const char *device,
				const char *artifact, const char **ret_store_name,
				uint64_t *ret_size)
{
	char key[SRV_ASSIGN_KEY_BYTES];
	size_t key_len = make_key(key, sizeof(key), device, artifact, "");
	double now = srv_now();
	struct entry *e;

	if (c == NULL || key_len == 0 || !fresh(c, now))
		return false;
	e = find_live(c, device, key, key_len, now);
	if (e == NULL || e->image == NULL)
		return false;
	c->metrics->image_cache_hits++;
	*ret_store_name = e->image->data;
	*ret_size = e->image_size;
	return true;
}

uint64_t srv_assign_cache_generation(const struct srv_assign_cache *c)
{
	return c != NULL ? c->generation : 0;
}

static void insert(struct srv_assign_cache *c, struct entry *e, const char *device, const char *key,
		   size_t key_len)
{
	e->added = srv_now();
	e->key_len = key_len;
	memcpy(e->key, key, key_len);
	e->next = c->buckets[bucket_of(c, device)];
	c->buckets[bucket_of(c, device)] = e;
	c->n_entries++;
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
	e = calloc(1, sizeof(*e) + key_len);
	if (e == NULL)
		return;
	e->blob = blob_get(c, data, len);
	if (e->blob == NULL) {
		free(e);
		return;
	}
	insert(c, e, device, key, key_len);
}

/* ---- prefills and delivery marks ------------------------------------ */

static struct request *request_new(struct srv_assign_cache *c)
{
	struct request *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->cache = c;
	q->next = c->requests;
	c->requests = q;
	return q;
}

/* Unlinks q from its cache's list (when the cache is still there). */
static void request_done(struct request *q)
{
	struct srv_assign_cache *c = q->cache;
	struct request **p;

	if (c != NULL) {
		for (p = &c->requests; *p != NULL; p = &(*p)->next) {
			if (*p == q) {
				*p = q->next;
				break;
			}
		}
		if (q->mark) {
			c->marking = false;
		} else if (--c->prefilling == 0) {
			for (size_t i = 0; i < c->n_forgot; i++)
				free(c->forgot[i]);
			c->n_forgot = 0;
		}
	}
	for (size_t i = 0; i < q->n_keys; i++)
		free(q->keys[i]);
	free(q->keys);
	free(q);
}

/* Appends "\"id\"," to a PostgreSQL array literal being built in buf. */
static size_t array_add(char *buf, size_t at, const char *id, size_t id_len)
{
	buf[at++] = '"';
	memcpy(buf + at, id, id_len);
	at += id_len;
	buf[at++] = '"';
	buf[at++] = ',';
	return at;
}

/* Closes the literal: "{...}" (the last comma replaced). */
static void array_end(char *buf, size_t at)
{
	if (at > 1)
		at--;
	buf[at++] = '}';
	buf[at] = '\0';
}

/* A device the polls forgot since the prefill that noted from was sent. */
static bool forgotten_since(const struct srv_assign_cache *c, size_t from, const char *device)
{
	for (size_t i = from; i < c->n_forgot; i++)
		if (strcmp(c->forgot[i], device) == 0)
			return true;
	return false;
}

/* A poll forgot device: noted while prefills are in flight (too many: all). */
static void note_forgotten(struct srv_assign_cache *c, const char *device)
{
	if (c->prefilling == 0)
		return;
	if (c->forgot == NULL)
		c->forgot = calloc(FORGOT_MAX, sizeof(*c->forgot));
	if (c->forgot == NULL || c->n_forgot >= FORGOT_MAX ||
	    (c->forgot[c->n_forgot] = strdup(device)) == NULL) {
		c->forgot_all++;
		return;
	}
	c->n_forgot++;
}

static void prefill_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct request *q = arg;
	struct srv_assign_cache *c = q->cache;
	int rows, info = -1, manifest_len;
	long long size;
	char key[SRV_ASSIGN_KEY_BYTES];

	if (c == NULL)
		goto done;
	if (err != OTA_OK || PQnfields(res) != 4) {
		srv_log(SRV_LOG_WARN, "manifest cache: prefill of %s failed: %s", q->artifact,
			res != NULL ? PQresultErrorMessage(res) : ota_err_name(err));
		goto done;
	}
	if (q->forgot_all != c->forgot_all || c->good_poll_sent == 0) {
		srv_log(SRV_LOG_DEBUG,
			"manifest cache: prefill of %s dropped (everything forgotten)",
			q->artifact);
		goto done; /* the answers may predate what was forgotten */
	}
	rows = PQntuples(res);
	for (int i = 0; i < rows && info < 0; i++)
		if (PQgetisnull(res, i, 0))
			info = i;
	if (info < 0 || PQgetisnull(res, info, 1) || PQgetisnull(res, info, 2) ||
	    PQgetisnull(res, info, 3))
		goto done;
	manifest_len = PQgetlength(res, info, 1);
	size = srv_db_get_int8(res, info, 3);
	if (manifest_len <= 0 || (size_t)manifest_len > OTA_MAX_ENVELOPE_BYTES ||
	    PQgetlength(res, info, 2) != (int)STORE_NAME_BYTES || size < 0)
		goto done;
	for (int i = 0; i < rows; i++) {
		const char *device = PQgetvalue(res, i, 0);
		size_t key_len;
		struct entry *e;
		char name[STORE_NAME_BYTES + 1];

		if (i == info || PQgetisnull(res, i, 0) ||
		    !srv_id_valid(device, SRV_MAX_DEVICE_ID) ||
		    forgotten_since(c, q->forgot_from, device) ||
		    (key_len = make_key(key, sizeof(key), device, q->artifact, "")) == 0)
			continue;
		forget_device(c, device); /* one answer per device: its latest */
		if (c->n_entries >= c->config.max_entries)
			break; /* full: the rest ask PostgreSQL */
		e = calloc(1, sizeof(*e) + key_len);
		if (e == NULL)
			break;
		memcpy(name, PQgetvalue(res, info, 2), STORE_NAME_BYTES);
		name[STORE_NAME_BYTES] = '\0';
		e->blob = blob_get(c, PQgetvalue(res, info, 1), (size_t)manifest_len);
		e->image = e->blob != NULL ? blob_get(c, name, sizeof(name)) : NULL;
		if (e->image == NULL) {
			if (e->blob != NULL)
				blob_put(c, e->blob);
			free(e);
			break;
		}
		e->image_size = (uint64_t)size;
		e->mark = true;
		insert(c, e, device, key, key_len);
		c->metrics->manifest_cache_prefilled++;
	}
done:
	request_done(q);
}

void srv_assign_cache_prefill(struct srv_assign_cache *c, const char *artifact,
			      const char *const *devices, size_t n)
{
	const char *params[2];
	struct request *q;
	char *list;
	size_t at = 0;

	if (c == NULL || n == 0 || c->prefilling >= MAX_PREFILLS || c->good_poll_sent == 0 ||
	    !srv_id_valid(artifact, MAX_ARTIFACT_ID))
		return;
	if (n > SRV_ASSIGN_CACHE_MAX_PREFILL)
		n = SRV_ASSIGN_CACHE_MAX_PREFILL;
	list = malloc(n * (SRV_MAX_DEVICE_ID + 3u) + 3u);
	if (list == NULL)
		return;
	list[at++] = '{';
	for (size_t i = 0; i < n; i++)
		if (srv_id_valid(devices[i], SRV_MAX_DEVICE_ID))
			at = array_add(list, at, devices[i], strlen(devices[i]));
	array_end(list, at);
	q = request_new(c);
	if (q == NULL) {
		free(list);
		return;
	}
	c->prefilling++;
	q->forgot_from = c->n_forgot;
	q->forgot_all = c->forgot_all;
	snprintf(q->artifact, sizeof(q->artifact), "%s", artifact);
	params[0] = list;
	params[1] = q->artifact;
	if (srv_db_exec(c->db, STMT_PREFILL, 2, params, true, SRV_DB_FAIL_FAST, prefill_cb, q) !=
	    OTA_OK)
		request_done(q);
	free(list);
}

/* Back into the queue (a failed batch, or rows the database skipped). */
static void requeue(struct srv_assign_cache *c, char *key)
{
	if (c->n_marks >= MARK_QUEUE_MAX) {
		c->metrics->delivery_marks_dropped++;
		free(key);
		return;
	}
	c->marks[c->n_marks++] = key;
}

static void mark_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct request *q = arg;
	struct srv_assign_cache *c = q->cache;

	if (c == NULL)
		goto done;
	if (err != OTA_OK || PQnfields(res) != 2) {
		for (size_t i = 0; i < q->n_keys; i++)
			requeue(c, q->keys[i]);
		q->n_keys = 0;
		goto done;
	}
	c->metrics->delivery_marks_written += q->n_keys - (size_t)PQntuples(res);
	/* skipped (held by another transaction): the next batch */
	for (int i = 0; i < PQntuples(res); i++) {
		const char *device = PQgetvalue(res, i, 0), *artifact = PQgetvalue(res, i, 1);
		size_t d = strlen(device) + 1, a = strlen(artifact) + 1;
		char *key;

		if (d + a > SRV_ASSIGN_KEY_BYTES || (key = malloc(d + a)) == NULL)
			continue;
		memcpy(key, device, d);
		memcpy(key + d, artifact, a);
		requeue(c, key);
	}
done:
	request_done(q);
}

/* Writes up to MARK_BATCH queued delivery marks in one statement. */
static void flush_marks(struct srv_assign_cache *c)
{
	const char *params[2];
	struct request *q;
	char *devs, *arts;
	size_t n = c->n_marks < MARK_BATCH ? c->n_marks : MARK_BATCH, at_d = 0, at_a = 0;

	if (n == 0 || c->marking)
		return;
	devs = malloc(n * (SRV_ASSIGN_KEY_BYTES + 3u) + 3u);
	arts = malloc(n * (SRV_ASSIGN_KEY_BYTES + 3u) + 3u);
	q = devs != NULL && arts != NULL ? request_new(c) : NULL;
	if (q == NULL || (q->keys = calloc(n, sizeof(*q->keys))) == NULL) {
		if (q != NULL) {
			q->mark = true;
			c->marking = true;
			request_done(q);
		}
		free(devs);
		free(arts);
		return;
	}
	q->mark = true;
	c->marking = true;
	devs[at_d++] = '{';
	arts[at_a++] = '{';
	/* the newest first; the queue keeps its older marks */
	for (size_t i = 0; i < n; i++) {
		char *key = c->marks[--c->n_marks];
		size_t d = strlen(key);

		q->keys[q->n_keys++] = key;
		at_d = array_add(devs, at_d, key, d);
		at_a = array_add(arts, at_a, key + d + 1, strlen(key + d + 1));
	}
	array_end(devs, at_d);
	array_end(arts, at_a);
	params[0] = devs;
	params[1] = arts;
	if (srv_db_exec(c->db, STMT_MARK, 2, params, false, SRV_DB_FAIL_FAST, mark_cb, q) != OTA_OK)
		mark_cb(q, OTA_ERR_BUSY, NULL);
	free(devs);
	free(arts);
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
			note_forgotten(c, PQgetvalue(res, i, 3));
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
	flush_marks(c);
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
	enum ota_err err;

	if ((err = srv_db_prepare(db, STMT, sql_changes)) != OTA_OK ||
	    (err = srv_db_prepare(db, STMT_PREFILL, sql_prefill)) != OTA_OK)
		return err;
	return srv_db_prepare(db, STMT_MARK, sql_mark);
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
	while (c->requests != NULL) {
		struct request *q = c->requests;

		c->requests = q->next;
		q->cache = NULL; /* its callback frees it */
	}
	for (size_t i = 0; i < c->n_marks; i++)
		free(c->marks[i]);
	free(c->marks);
	for (size_t i = 0; i < c->n_forgot; i++)
		free(c->forgot[i]);
	free(c->forgot);
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
