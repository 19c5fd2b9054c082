/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded text building (text-internal.h). */
#include "fleetota/agent-limits.h"
#include "text-internal.h"

void ota_text_init(struct ota_text *t, char *buf, size_t cap)
{
	t->p = buf;
	t->cap = cap;
	t->len = 0;
	buf[0] = '\0';
}

void ota_text_strn(struct ota_text *t, const char *s, size_t max)
{
	for (size_t i = 0; s && i < max && s[i] && t->len + 1 < t->cap; i++)
		t->p[t->len++] = s[i];
	t->p[t->len] = '\0';
}

void ota_text_str(struct ota_text *t, const char *s)
{
	ota_text_strn(t, s, SIZE_MAX);
}

void ota_text_u64(struct ota_text *t, uint64_t v)
{
	char digits[OTA_AGENT_U64_TEXT_BYTES];
	size_t n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(digits));
	while (n && t->len + 1 < t->cap)
		t->p[t->len++] = digits[--n];
	t->p[t->len] = '\0';
}

void ota_text_int(struct ota_text *t, int v)
{
	if (v < 0) {
		ota_text_str(t, "-");
		/* -(v + 1) + 1 does not overflow for INT_MIN */
		ota_text_u64(t, (uint64_t)(-(v + 1)) + 1u);
		return;
	}
	ota_text_u64(t, (uint64_t)v);
}
