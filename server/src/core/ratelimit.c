/* SPDX-License-Identifier: Apache-2.0 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit-internal.h"

struct bucket {
	struct bucket *next;
	double tokens;
	double updated;
	char key[SRV_RATELIMIT_MAX_KEY + 1];
};

struct srv_ratelimit {
	double rate;
	double burst;
	size_t max_entries;
	size_t entries;
	size_t n_slots;
	struct bucket **slots;
};

static uint64_t hash_key(const char *key)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; key[i] != '\0' && i < SRV_RATELIMIT_MAX_KEY; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ull;
	}
	return h;
}

enum ota_err srv_ratelimit_new(double rate, double burst, size_t max_entries,
			       struct srv_ratelimit **ret_rl)
{
	struct srv_ratelimit *rl;

	if (!(rate > 0) || !(burst >= 1) || max_entries == 0)
		return OTA_ERR_INVALID_ARG;
	rl = calloc(1, sizeof(*rl));
	if (rl == NULL)
		return OTA_ERR_NOMEM;
	rl->rate = rate;
	rl->burst = burst;
	rl->max_entries = max_entries;
	rl->n_slots = 1024;
	while (rl->n_slots < max_entries && rl->n_slots < (1u << 20))
		rl->n_slots <<= 1;
	rl->slots = calloc(rl->n_slots, sizeof(*rl->slots));
	if (rl->slots == NULL) {
		free(rl);
		return OTA_ERR_NOMEM;
	}
	*ret_rl = rl;
	return OTA_OK;
}

enum ota_err srv_ratelimit_set(struct srv_ratelimit *rl, double rate, double burst)
{
	if (!(rate > 0) || !(burst >= 1))
		return OTA_ERR_INVALID_ARG;
	rl->rate = rate;
	rl->burst = burst;
	return OTA_OK;
}

void srv_ratelimit_free(struct srv_ratelimit *rl)
{
	if (rl == NULL)
		return;
	for (size_t i = 0; i < rl->n_slots; i++) {
		struct bucket *b = rl->slots[i];

		while (b != NULL) {
			struct bucket *next = b->next;

			free(b);
			b = next;
		}
	}
	free(rl->slots);
	free(rl);
}

size_t srv_ratelimit_size(const struct srv_ratelimit *rl)
{
	return rl->entries;
}

static double refill(const struct srv_ratelimit *rl, const struct bucket *b, double now)
{
	double tokens = b->tokens;

	if (now > b->updated)
		tokens += (now - b->updated) * rl->rate;
	return tokens > rl->burst ? rl->burst : tokens;
}

/* Forgets every bucket that is full again at now. */
static void sweep(struct srv_ratelimit *rl, double now)
{
	for (size_t i = 0; i < rl->n_slots; i++) {
		struct bucket **link = &rl->slots[i];

		while (*link != NULL) {
			struct bucket *b = *link;

			if (refill(rl, b, now) >= rl->burst) {
				*link = b->next;
				free(b);
				rl->entries--;
			} else {
				link = &b->next;
			}
		}
	}
}

bool srv_ratelimit_take(struct srv_ratelimit *rl, const char *key, double now,
			unsigned *ret_retry_after_sec)
{
	size_t slot = (size_t)(hash_key(key) & (rl->n_slots - 1));
	struct bucket *b;
	double tokens;

	for (b = rl->slots[slot]; b != NULL; b = b->next) {
		if (strncmp(b->key, key, SRV_RATELIMIT_MAX_KEY) == 0)
			break;
	}
	if (b == NULL) {
		if (rl->entries >= rl->max_entries)
			sweep(rl, now);
		if (rl->entries >= rl->max_entries) {
			/* Still full: recycle the first bucket found from this slot on. */
			size_t victim = slot;

			while (rl->slots[victim] == NULL)
				victim = (victim + 1) & (rl->n_slots - 1);
			b = rl->slots[victim];
			rl->slots[victim] = b->next;
			rl->entries--;
		} else {
			b = malloc(sizeof(*b));
			if (b == NULL)
				return true; /* fail open: rate limiting is not access control */
		}
		snprintf(b->key, sizeof(b->key), "%s", key);
		b->tokens = rl->burst;
		b->updated = now;
		b->next = rl->slots[slot];
		rl->slots[slot] = b;
		rl->entries++;
	}
	tokens = refill(rl, b, now);
	if (now > b->updated)
		b->updated = now;
	if (tokens >= 1.0) {
		b->tokens = tokens - 1.0;
		return true;
	}
	b->tokens = tokens;
	if (ret_retry_after_sec != NULL) {
		double wait = ceil((1.0 - tokens) / rl->rate);

		*ret_retry_after_sec = wait < 1.0 ? 1u : (wait > 86400.0 ? 86400u : (unsigned)wait);
	}
	return false;
}
