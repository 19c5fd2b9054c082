/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <string.h>

#include "range-internal.h"

/* Parses decimal digits at *p (at least one, no overflow). */
static bool parse_u64(const char **p, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return false;
	while (*s >= '0' && *s <= '9') {
		unsigned digit = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - digit) / 10)
			return false;
		v = v * 10 + digit;
		s++;
	}
	*p = s;
	*ret = v;
	return true;
}

enum srv_range_result srv_range_parse(const char *header, uint64_t size, uint64_t *ret_first,
				      uint64_t *ret_last)
{
	const char *p;
	uint64_t first, last;

	if (header == NULL || strnlen(header, SRV_RANGE_MAX_HEADER + 1) > SRV_RANGE_MAX_HEADER)
		return SRV_RANGE_NONE;
	if (strncmp(header, "bytes=", 6) != 0)
		return SRV_RANGE_NONE;
	p = header + 6;
	while (*p == ' ')
		p++;
	if (*p == '-') {
		uint64_t suffix;

		p++;
		if (!parse_u64(&p, &suffix))
			return SRV_RANGE_NONE;
		while (*p == ' ')
			p++;
		if (*p != '\0')
			return SRV_RANGE_NONE;
		if (suffix == 0 || size == 0)
			return SRV_RANGE_UNSATISFIABLE;
		first = suffix >= size ? 0 : size - suffix;
		last = size - 1;
	} else {
		if (!parse_u64(&p, &first) || *p != '-')
			return SRV_RANGE_NONE;
		p++;
		if (*p >= '0' && *p <= '9') {
			if (!parse_u64(&p, &last) || last < first)
				return SRV_RANGE_NONE;
		} else {
			last = UINT64_MAX;
		}
		while (*p == ' ')
			p++;
		if (*p != '\0')
			return SRV_RANGE_NONE;
		if (first >= size)
			return SRV_RANGE_UNSATISFIABLE;
		if (last >= size)
			last = size - 1;
	}
	*ret_first = first;
	*ret_last = last;
	return SRV_RANGE_OK;
}
