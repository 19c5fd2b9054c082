/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_TEXT_INTERNAL_H
#define OTA_TEXT_INTERNAL_H

/*
 * Bounded text building for the core's detail lines and log messages:
 * no snprintf (a microcontroller's C library formats with a heap and a
 * lot of code). Truncates at the buffer's end, always NUL terminated.
 */

#include <stddef.h>
#include <stdint.h>

struct ota_text {
	char *p;
	size_t cap; /* at least 1 */
	size_t len;
};

void ota_text_init(struct ota_text *t, char *buf, size_t cap);
/* Appends s (NULL appends nothing). */
void ota_text_str(struct ota_text *t, const char *s);
/* Appends at most max bytes of s. */
void ota_text_strn(struct ota_text *t, const char *s, size_t max);
/* Appends v in decimal. */
void ota_text_u64(struct ota_text *t, uint64_t v);
/* Appends v in decimal, with a '-' when negative. */
void ota_text_int(struct ota_text *t, int v);

#endif
