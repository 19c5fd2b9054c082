/* SPDX-License-Identifier: Apache-2.0 */
#include "fleetota/arena.h"

#define ARENA_ALIGN 16u

static void *arena_pb_alloc(void *data, size_t size)
{
	return ota_arena_alloc(data, size);
}

static void arena_pb_free(void *data, void *ptr)
{
	(void)data;
	(void)ptr;
}

void ota_arena_init(struct ota_arena *arena, void *buf, size_t cap)
{
	arena->base = buf;
	arena->cap = cap;
	arena->used = 0;
	arena->allocator.alloc = arena_pb_alloc;
	arena->allocator.free = arena_pb_free;
	arena->allocator.allocator_data = arena;
}

void ota_arena_reset(struct ota_arena *arena)
{
	arena->used = 0;
}

void *ota_arena_alloc(struct ota_arena *arena, size_t size)
{
	size_t start = (arena->used + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
	if (size == 0)
		size = 1;
	if (start > arena->cap || size > arena->cap - start)
		return NULL;
	arena->used = start + size;
	return arena->base + start;
}
