/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Store files mapped once and kept mapped while they are being served, and
 * for a while after (docs/server.md, "Image delivery"). Store files are
 * immutable and content-addressed; a file replaced by rename is another
 * inode, so mappings are keyed by device and inode. Each request streams
 * references into the shared mapping: no mmap, page fault or munmap per
 * chunk once the pages are mapped, and no descriptor held per download.
 *
 * One event loop owns a cache: no locks.
 */
#ifndef FLEETOTA_SRV_IMAGE_MAP_INTERNAL_H
#define FLEETOTA_SRV_IMAGE_MAP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"

struct event_base;
struct srv_image_maps;
struct srv_image_map;

/* A cache on BASE: unused mappings are unmapped after IDLE_MS, and beyond
 * MAX_IDLE of them the least recently used one goes at once. */
enum ota_err srv_image_maps_new(struct event_base *base, unsigned idle_ms, unsigned max_idle,
				struct srv_image_maps **out);
/* Unmaps every mapping nobody holds; held ones go when their last holder
 * lets go (the cache must outlive no request: free it after the listener). */
void srv_image_maps_free(struct srv_image_maps *maps);

/* The mapping of the open store file FD (SIZE bytes, size > 0), from the
 * cache or mapped now; one hold for the caller. FD may be closed after. */
enum ota_err srv_image_map_get(struct srv_image_maps *maps, int fd, uint64_t size,
			       struct srv_image_map **out);
const uint8_t *srv_image_map_data(const struct srv_image_map *m);
void srv_image_map_hold(struct srv_image_map *m);
void srv_image_map_release(struct srv_image_map *m);

/* Mappings held or idle (the tests check the cache by it). */
unsigned srv_image_maps_count(const struct srv_image_maps *maps);

#endif
