/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_ASSIGN_CACHE_INTERNAL_H
#define SRV_ASSIGN_CACHE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "db-internal.h"
#include "metrics-internal.h"

/*
 * The manifest path without a database round trip (docs/scaling.md, "The
 * manifest cache"): the manifests this replica answered, by device,
 * artifact and variant (the delivery's choice for that device, e.g. a
 * delta or the full image), kept while nothing that could change the
 * answer has happened. Loop thread only.
 *
 * Only positive answers are kept (the device known, not decommissioned,
 * the artifact assigned to it); a refusal always asks PostgreSQL. What can
 * withdraw or alter an answer (an assignment deleted, a device
 * decommissioned or running another image, an artifact changed or deleted)
 * is appended to delivery_changes by triggers, numbered in commit order
 * (migrations/code/delivery_changes.sql). Every poll_ms each replica reads
 * the changes after the last it applied, through the ordinary pool (so
 * through any pooler: no LISTEN) and forgets what they name.
 *
 * The bound: a change committed at time t is applied by the first poll
 * sent after t, so it stops delivery on every replica within poll_ms plus
 * one poll's round trip. When polls fail (database away, slow), the cache
 * answers nothing once the last poll that succeeded was sent more than
 * stale_ms ago: then every request goes to PostgreSQL, as without a cache,
 * and a withdrawal still takes effect at once. An entry also expires after
 * ttl_ms (what no trigger covers is re-read at that pace).
 */
struct srv_assign_cache;

struct srv_assign_cache_config {
	unsigned poll_ms; /* how often the change log is read */
	unsigned stale_ms; /* no hits when the last good poll was sent longer ago */
	unsigned ttl_ms; /* an entry answers at most this long */
	unsigned max_entries; /* beyond: everything is forgotten, filling starts again */
};

/* Longest variant name (the delivery's choice, e.g. "" or "full"). */
#define SRV_ASSIGN_CACHE_MAX_VARIANT 32u
/* Changes read per poll; more waiting: everything is forgotten. */
#define SRV_ASSIGN_CACHE_POLL_LIMIT 1000u
/* Devices asked for per prefill (delivery_prefill reads at most as many). */
#define SRV_ASSIGN_CACHE_MAX_PREFILL 10000u

/* Registers the poll statement. Before srv_db_start(). */
enum ota_err srv_assign_cache_prepare(struct srv_db *db);

/* Starts polling on base through db. metrics: hits, misses, flushes. */
enum ota_err srv_assign_cache_new(struct event_base *base, struct srv_db *db,
				  const struct srv_assign_cache_config *config,
				  struct srv_metrics *metrics, struct srv_assign_cache **ret_cache);

/* NULL is fine. A poll in flight is answered into nothing. */
void srv_assign_cache_free(struct srv_assign_cache *cache);

/*
 * The manifest kept for (device, artifact, variant): true with *ret_data
 * and *ret_len (owned by the cache, valid until the callback returns to
 * the loop) when fresh; false: ask PostgreSQL.
 */
bool srv_assign_cache_get(struct srv_assign_cache *cache, const char *device, const char *artifact,
			  const char *variant, const char **ret_data, size_t *ret_len);

/*
 * A number that changes whenever the cache forgets something. Take it
 * before sending the query whose answer srv_assign_cache_put will keep.
 */
uint64_t srv_assign_cache_generation(const struct srv_assign_cache *cache);

/*
 * Keeps a positive answer (data copied). Dropped when generation is no
 * longer current: a change was applied while the query ran, and the answer
 * may predate it.
 */
void srv_assign_cache_put(struct srv_assign_cache *cache, const char *device, const char *artifact,
			  const char *variant, uint64_t generation, const char *data, size_t len);

/*
 * Filled ahead of the requests: the replica that published a tick's
 * firmware notifications asks once what each of those devices would be
 * answered for artifact (delivery_prefill: the full image only, no delta)
 * and keeps it as srv_assign_cache_put would, dropped as a whole when a
 * change was applied while the query ran. Such an entry also answers the
 * image request without ?base= (srv_assign_cache_get_image), and the first
 * time it answers a manifest, the assignment's delivery mark ('full', what
 * delivery_manifest writes) is queued: each poll writes up to 1,000 of
 * them in one statement (delivery_mark_full). A replica that stops loses
 * the marks not yet written (rollout_status "delivery" counts them as not
 * yet delivered); the delivery itself is unaffected. Devices beyond
 * SRV_ASSIGN_CACHE_MAX_PREFILL, or when the cache is full, are not kept.
 */
void srv_assign_cache_prefill(struct srv_assign_cache *cache, const char *artifact,
			      const char *const *devices, size_t n);

/*
 * The full image of a prefilled answer for (device, artifact): true with
 * its store name (64 hex digits, owned by the cache, valid until the
 * callback returns to the loop) and size when fresh; false: ask PostgreSQL.
 */
bool srv_assign_cache_get_image(struct srv_assign_cache *cache, const char *device,
				const char *artifact, const char **ret_store_name,
				uint64_t *ret_size);

#endif
