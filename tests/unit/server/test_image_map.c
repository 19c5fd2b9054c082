/* SPDX-License-Identifier: Apache-2.0 */
/* The shared store-file mappings of image delivery (image_map.c). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "image_map-internal.h"

struct fixture {
	char dir[64];
	char path[96];
	struct event_base *base;
};

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* A mapping of the file at path (size bytes) from the cache; the descriptor goes. */
static struct srv_image_map *map_path(struct srv_image_maps *maps, const char *path, uint64_t size)
{
	struct srv_image_map *m = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(srv_image_map_get(maps, fd, size, &m), OTA_OK);
	close(fd);
	return m;
}

/* The same, of a file written now with text. */
static struct srv_image_map *map_new_file(struct srv_image_maps *maps, const char *path,
					  const char *text)
{
	close(write_file(path, text));
	return map_path(maps, path, strlen(text));
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/fleetota-image-map-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/store-file", fx->dir);
	fx->base = event_base_new();
	assert_non_null(fx->base);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	unlink(fx->path);
	rmdir(fx->dir);
	event_base_free(fx->base);
	free(fx);
	return 0;
}

/* Two downloads of one file share one mapping; the descriptor may go. */
static void test_shared(void **state)
{
	struct fixture *fx = *state;
	struct srv_image_maps *maps;
	struct srv_image_map *a, *b;

	assert_int_equal(srv_image_maps_new(fx->base, 60000, 4, &maps), OTA_OK);
	a = map_new_file(maps, fx->path, "firmware bytes");
	b = map_path(maps, fx->path, 14);
	assert_ptr_equal(a, b);
	assert_int_equal(srv_image_maps_count(maps), 1);
	assert_memory_equal(srv_image_map_data(a), "firmware bytes", 14);
	srv_image_map_release(a);
	srv_image_map_release(b);
	assert_int_equal(srv_image_maps_count(maps), 1); /* idle, kept */
	srv_image_maps_free(maps);
}

/* A size that is not the file's is refused; an empty file is not mapped. */
static void test_wrong_size(void **state)
{
	struct fixture *fx = *state;
	struct srv_image_maps *maps;
	struct srv_image_map *m = NULL;
	int fd = write_file(fx->path, "12345");

	assert_int_equal(srv_image_maps_new(fx->base, 60000, 4, &maps), OTA_OK);
	assert_int_equal(srv_image_map_get(maps, fd, 6, &m), OTA_ERR_STORAGE);
	assert_int_equal(srv_image_map_get(maps, fd, 0, &m), OTA_ERR_STORAGE);
	assert_null(m);
	assert_int_equal(srv_image_maps_count(maps), 0);
	close(fd);
	srv_image_maps_free(maps);
}

/* A store file replaced by rename is another inode: a new mapping, and the
 * old one still shows the old bytes to whoever holds it. */
static void test_replaced(void **state)
{
	struct fixture *fx = *state;
	struct srv_image_maps *maps;
	struct srv_image_map *old, *new;
	char tmp[128];

	assert_int_equal(srv_image_maps_new(fx->base, 60000, 4, &maps), OTA_OK);
	old = map_new_file(maps, fx->path, "old!");
	snprintf(tmp, sizeof(tmp), "%s.tmp", fx->path);
	close(write_file(tmp, "new!"));
	assert_int_equal(rename(tmp, fx->path), 0);
	new = map_path(maps, fx->path, 4);
	assert_ptr_not_equal(old, new);
	assert_memory_equal(srv_image_map_data(old), "old!", 4);
	assert_memory_equal(srv_image_map_data(new), "new!", 4);
	assert_int_equal(srv_image_maps_count(maps), 2);
	srv_image_map_release(old);
	srv_image_map_release(new);
	srv_image_maps_free(maps);
}

/* Beyond max_idle unused mappings, the least recently released goes; a held
 * one never does. */
static void test_max_idle(void **state)
{
	struct fixture *fx = *state;
	struct srv_image_maps *maps;
	struct srv_image_map *m[3];
	char path[3][128];

	assert_int_equal(srv_image_maps_new(fx->base, 60000, 1, &maps), OTA_OK);
	for (int i = 0; i < 3; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/f%d", fx->dir, i);
		m[i] = map_new_file(maps, path[i], "abc");
	}
	assert_int_equal(srv_image_maps_count(maps), 3);
	srv_image_map_release(m[0]);
	assert_int_equal(srv_image_maps_count(maps), 3); /* one idle: allowed */
	srv_image_map_release(m[1]);
	assert_int_equal(srv_image_maps_count(maps), 2); /* m[0] went */
	assert_memory_equal(srv_image_map_data(m[2]), "abc", 3);
	srv_image_map_release(m[2]);
	assert_int_equal(srv_image_maps_count(maps), 1);
	srv_image_maps_free(maps);
	for (int i = 0; i < 3; i++)
		unlink(path[i]);
}

/* Unused mappings are unmapped after the idle time, on the loop. */
static void test_idle_sweep(void **state)
{
	struct fixture *fx = *state;
	struct srv_image_maps *maps;
	struct srv_image_map *held, *idle;
	struct timeval run = {.tv_sec = 0, .tv_usec = 300000};
	char other[128];

	assert_int_equal(srv_image_maps_new(fx->base, 100, 4, &maps), OTA_OK);
	held = map_new_file(maps, fx->path, "held");
	snprintf(other, sizeof(other), "%s/other", fx->dir);
	idle = map_new_file(maps, other, "idle");
	srv_image_map_release(idle);
	assert_int_equal(srv_image_maps_count(maps), 2);
	event_base_loopexit(fx->base, &run);
	event_base_dispatch(fx->base);
	assert_int_equal(srv_image_maps_count(maps), 1);
	assert_memory_equal(srv_image_map_data(held), "held", 4);
	srv_image_map_release(held);
	srv_image_maps_free(maps);
	unlink(other);
}

/* The cache may go while a download still holds a mapping (shutdown): the
 * mapping stays readable until its last holder lets go. */
static void test_free_while_held(void **state)
{
	struct fixture *fx = *state;
	struct srv_image_maps *maps;
	struct srv_image_map *m;

	assert_int_equal(srv_image_maps_new(fx->base, 60000, 4, &maps), OTA_OK);
	m = map_new_file(maps, fx->path, "still here");
	srv_image_maps_free(maps);
	assert_memory_equal(srv_image_map_data(m), "still here", 10);
	srv_image_map_hold(m);
	srv_image_map_release(m);
	assert_memory_equal(srv_image_map_data(m), "still here", 10);
	srv_image_map_release(m); /* unmapped and freed here (ASan sees a leak otherwise) */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_while_held, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
