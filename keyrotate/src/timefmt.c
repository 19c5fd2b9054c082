/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>
#include <time.h>

#include "kr.h"

/* Year 9999 ends here; later times are refused rather than overflowed. */

enum ota_err kr_u64_parse(const char *text, uint64_t *ret_value)
{
	uint64_t value = 0;
	if (!text || !*text)
		return OTA_ERR_FORMAT;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return OTA_ERR_FORMAT;
		unsigned digit = (unsigned)(*p - '0');
		if (value > (UINT64_MAX - digit) / 10)
			return OTA_ERR_FORMAT;
		value = value * 10 + digit;
	}
	*ret_value = value;
	return OTA_OK;
}

/* Exactly n digits at p. */
static int digits(const char *p, int n, unsigned *ret)
{
	unsigned v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	*ret = v;
	return 1;
}

static int leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, y >= 1970). */
static uint64_t days_from_civil(unsigned y, unsigned m, unsigned d)
{
	static const unsigned before[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
	uint64_t days = 0;
	for (unsigned year = 1970; year < y; year++)
		days += leap(year) ? 366 : 365;
	days += before[m - 1] + (m > 2 && leap(y) ? 1 : 0) + (d - 1);
	return days;
}

static enum ota_err parse_rfc3339(const char *s, uint64_t *ret)
{
	static const unsigned month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h = 0, mi = 0, sec = 0;
	size_t len = strlen(s);
	if (len < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d))
		return OTA_ERR_FORMAT;
	if (len != 10) {
		if (len != 20 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
		    !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) ||
		    s[16] != ':' || !digits(s + 17, 2, &sec) || (s[19] != 'Z' && s[19] != 'z'))
			return OTA_ERR_FORMAT;
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] ||
	    (mo == 2 && d == 29 && !leap(y)) || h > 23 || mi > 59 || sec > 59)
		return OTA_ERR_FORMAT;
	*ret = days_from_civil(y, mo, d) * 86400u + h * 3600u + mi * 60u + sec;
	return OTA_OK;
}

static enum ota_err parse_offset(const char *s, uint64_t now, uint64_t *ret)
{
	int negative = s[0] == '-';
	size_t len = strlen(s);
	char number[KR_U64_TEXT_BYTES];
	uint64_t unit, amount;
	if (len < 3 || len - 2 >= sizeof(number))
		return OTA_ERR_FORMAT;
	switch (s[len - 1]) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	default:
		return OTA_ERR_FORMAT;
	}
	memcpy(number, s + 1, len - 2);
	number[len - 2] = '\0';
	if (kr_u64_parse(number, &amount) != OTA_OK || amount > KR_TIME_MAX / unit)
		return OTA_ERR_FORMAT;
	amount *= unit;
	if (negative) {
		if (amount >= now)
			return OTA_ERR_FORMAT;
		*ret = now - amount;
	} else {
		if (now + amount > KR_TIME_MAX)
			return OTA_ERR_FORMAT;
		*ret = now + amount;
	}
	return OTA_OK;
}

enum ota_err kr_time_parse(const char *text, uint64_t now, uint64_t *ret_time)
{
	uint64_t t = 0;
	enum ota_err err;
	if (!text || !*text || strlen(text) > 32)
		return OTA_ERR_FORMAT;
	if (strcmp(text, "now") == 0) {
		t = now;
		err = OTA_OK;
	} else if (strcmp(text, "never") == 0) {
		t = 0;
		err = OTA_OK;
	} else if (text[0] == '+' || text[0] == '-') {
		err = parse_offset(text, now, &t);
	} else if (text[0] == '@') {
		err = kr_u64_parse(text + 1, &t);
	} else if (strlen(text) >= 10 && text[4] == '-') {
		err = parse_rfc3339(text, &t);
	} else {
		err = kr_u64_parse(text, &t);
	}
	if (err != OTA_OK || t > KR_TIME_MAX)
		return OTA_ERR_FORMAT;
	*ret_time = t;
	return OTA_OK;
}

const char *kr_time_format(uint64_t t, char *buf, size_t cap)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (t == 0) {
		snprintf(buf, cap, "unset");
	} else if (t > KR_TIME_MAX || !gmtime_r(&tt, &tm) ||
		   strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		snprintf(buf, cap, "@%llu", (unsigned long long)t);
	}
	return buf;
}
