/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_ARENA_H
#define FLEETOTA_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/*
 * A bump allocator over caller-owned memory. Every protobuf decode in
 * fleetota goes through one, so input can never make us allocate more than
 * the arena holds: a message that needs more fails to decode (OTA_ERR_FORMAT).
 * Nothing is freed individually; ota_arena_reset() drops everything at once.
 */
struct ota_arena {
	uint8_t *base;
	size_t cap;
	size_t used;
	ProtobufCAllocator allocator;
};

/* Borrows buf (must outlive the arena and everything decoded into it). */
void ota_arena_init(struct ota_arena *arena, void *buf, size_t cap);

/* Forgets every allocation; pointers into the arena become invalid. */
void ota_arena_reset(struct ota_arena *arena);

/* 16-byte aligned, or NULL when the arena is full. */
void *ota_arena_alloc(struct ota_arena *arena, size_t size);

#endif
