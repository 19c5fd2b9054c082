/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "webapi-internal.h"

static bool alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* First character alphanumeric, then alphanumerics or one of extra. */
static bool word_valid(const char *s, size_t max, const char *extra)
{
	size_t i;

	if (s == NULL || !alnum(s[0]))
		return false;
	for (i = 1; s[i] != '\0'; i++) {
		if (i >= max || !(alnum(s[i]) || strchr(extra, s[i]) != NULL))
			return false;
	}
	return true;
}

bool wa_id_valid(const char *s, size_t max)
{
	return word_valid(s, max, "._-");
}

bool wa_name_valid(const char *s)
{
	return word_valid(s, WA_MAX_NAME, " ._@:-");
}

bool wa_tag_valid(const char *s)
{
	return word_valid(s, WA_MAX_TAG, "._:=/-");
}

bool wa_text_valid(const char *s)
{
	size_t len;

	if (s == NULL)
		return false;
	len = strlen(s);
	if (len == 0 || len > WA_MAX_TEXT)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

bool wa_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	unsigned long long v;
	char *end = NULL;

	if (s == NULL || s[0] < '0' || s[0] > '9' || strlen(s) > 20)
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*ret = v;
	return true;
}
