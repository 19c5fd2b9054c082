/* SPDX-License-Identifier: Apache-2.0 */
/* Shared mappings of store files (image_map-internal.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>

#include "image_map-internal.h"
#include "log-internal.h"

struct srv_image_map {
	TAILQ_ENTRY(srv_image_map) entry; /* in maps->all: most recently released last */
	struct srv_image_maps *maps; /* NULL once the cache is gone */
	dev_t dev;
	ino_t ino;
	uint64_t size;
	uint8_t *data;
	unsigned holds;
	struct timespec idle_since;
};

TAILQ_HEAD(srv_image_map_list, srv_image_map);

struct srv_image_maps {
	struct srv_image_map_list all;
	struct event *sweep;
	unsigned idle_ms;
	unsigned max_idle;
	unsigned count;
	unsigned idle;
};

static void unmap(struct srv_image_map *m)
{
	if (m->maps != NULL) {
		TAILQ_REMOVE(&m->maps->all, m, entry);
		m->maps->count--;
	}
	(void)munmap(m->data, (size_t)m->size);
	free(m);
}

static uint64_t ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec < t->tv_sec)
		return 0;
	return (uint64_t)(now.tv_sec - t->tv_sec) * 1000u +
	       (uint64_t)((now.tv_nsec - t->tv_nsec) / 1000000);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_image_maps *maps = arg;
	struct srv_image_map *m, *next;

	(void)fd;
	(void)what;
	for (m = TAILQ_FIRST(&maps->all); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (m->holds == 0 && ms_since(&m->idle_since) >= maps->idle_ms) {
			maps->idle--;
			unmap(m);
		}
	}
}

enum ota_err srv_image_maps_new(struct event_base *base, unsigned idle_ms, unsigned max_idle,
				struct srv_image_maps **out)
{
	struct srv_image_maps *maps = calloc(1, sizeof(*maps));
	struct timeval every = {.tv_sec = idle_ms / 2000u,
				.tv_usec = (idle_ms / 2u % 1000u) * 1000};

	if (maps == NULL)
		return OTA_ERR_NOMEM;
	TAILQ_INIT(&maps->all);
	maps->idle_ms = idle_ms;
	maps->max_idle = max_idle;
	maps->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, maps);
	if (maps->sweep == NULL || event_add(maps->sweep, &every) != 0) {
		srv_image_maps_free(maps);
		return OTA_ERR_NOMEM;
	}
	*out = maps;
	return OTA_OK;
}

void srv_image_maps_free(struct srv_image_maps *maps)
{
	struct srv_image_map *m;

	if (maps == NULL)
		return;
	if (maps->sweep != NULL)
		event_free(maps->sweep);
	while ((m = TAILQ_FIRST(&maps->all)) != NULL) {
		TAILQ_REMOVE(&maps->all, m, entry);
		m->maps = NULL;
		if (m->holds == 0)
			unmap(m);
	}
	free(maps);
}

enum ota_err srv_image_map_get(struct srv_image_maps *maps, int fd, uint64_t size,
			       struct srv_image_map **out)
{
	struct srv_image_map *m;
	struct stat st;
	void *data;

	if (size == 0 || size > SIZE_MAX || fstat(fd, &st) != 0 || (uint64_t)st.st_size != size)
		return OTA_ERR_STORAGE;
	for (m = TAILQ_FIRST(&maps->all); m != NULL; m = TAILQ_NEXT(m, entry)) {
		if (m->dev == st.st_dev && m->ino == st.st_ino && m->size == size) {
			srv_image_map_hold(m);
			*out = m;
			return OTA_OK;
		}
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return OTA_ERR_NOMEM;
	data = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	if (data == MAP_FAILED) {
		srv_log(SRV_LOG_ERROR, "store file mapping (%llu bytes): %s",
			(unsigned long long)size, strerror(errno));
		free(m);
		return OTA_ERR_STORAGE;
	}
	m->maps = maps;
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	m->size = size;
	m->data = data;
	m->holds = 1;
	TAILQ_INSERT_TAIL(&maps->all, m, entry);
	maps->count++;
	*out = m;
	return OTA_OK;
}

const uint8_t *srv_image_map_data(const struct srv_image_map *m)
{
	return m->data;
}

void srv_image_map_hold(struct srv_image_map *m)
{
	if (m->holds++ == 0 && m->maps != NULL)
		m->maps->idle--;
}

void srv_image_map_release(struct srv_image_map *m)
{
	struct srv_image_maps *maps = m->maps;

	if (--m->holds > 0)
		return;
	if (maps == NULL) { /* the cache went first */
		unmap(m);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &m->idle_since);
	TAILQ_REMOVE(&maps->all, m, entry);
	TAILQ_INSERT_TAIL(&maps->all, m, entry);
	if (++maps->idle <= maps->max_idle)
		return;
	/* the least recently released idle one */
	for (m = TAILQ_FIRST(&maps->all); m != NULL; m = TAILQ_NEXT(m, entry)) {
		if (m->holds == 0) {
			maps->idle--;
			unmap(m);
			return;
		}
	}
}

unsigned srv_image_maps_count(const struct srv_image_maps *maps)
{
	return maps->count;
}
