/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_RATELIMIT_INTERNAL_H
#define SRV_RATELIMIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "fleetota/err.h"

/*
 * Per-key token buckets (key = device id): each request takes one token,
 * tokens refill at rate per second up to burst. Bounded: at most
 * max_entries buckets; when full, buckets that refilled completely are
 * forgotten (they carry no state), then the oldest in the slot is.
 * Loop thread only.
 */
struct srv_ratelimit;

/* Longest key kept (longer keys are truncated for hashing and storage). */
#define SRV_RATELIMIT_MAX_KEY 128u

enum ota_err srv_ratelimit_new(double rate, double burst, size_t max_entries,
			       struct srv_ratelimit **ret_rl);
void srv_ratelimit_free(struct srv_ratelimit *rl);

/* New rate and burst for every bucket from now on (a reload). */
enum ota_err srv_ratelimit_set(struct srv_ratelimit *rl, double rate, double burst);

/*
 * Takes one token for key at time now (seconds, monotonic). true when
 * allowed; false when the bucket is empty, and then *ret_retry_after_sec
 * (if not NULL) is the whole number of seconds until a token is back (>= 1).
 */
bool srv_ratelimit_take(struct srv_ratelimit *rl, const char *key, double now,
			unsigned *ret_retry_after_sec);

/* Buckets currently held. */
size_t srv_ratelimit_size(const struct srv_ratelimit *rl);

#endif
