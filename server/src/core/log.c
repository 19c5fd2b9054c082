/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log-internal.h"
#include "srv-limits.h"

/* A message longer than this is cut (the line stays one line). */
#define LOG_MSG_MAX 2048

static enum srv_log_level log_level = SRV_LOG_INFO;
static enum srv_log_format log_format = SRV_LOG_TEXT;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void srv_log_set_level(enum srv_log_level level)
{
	log_level = level;
}

static int name_index(const char *name, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(name, names[i]) == 0)
			return (int)i;
	}
	return -1;
}

int srv_log_level_from_name(const char *name)
{
	return name_index(name, level_names, sizeof(level_names) / sizeof(level_names[0]));
}

void srv_log_set_format(enum srv_log_format format)
{
	log_format = format;
}

int srv_log_format_from_name(const char *name)
{
	static const char *const names[] = {"text", "json"};

	return name_index(name, names, sizeof(names) / sizeof(names[0]));
}

static void timestamp(char *stamp, size_t size)
{
	struct timespec now;
	struct tm tm;
	char secs[SRV_LOG_SECS_BYTES];

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(secs, sizeof(secs), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp, size, "%s.%03ldZ", secs, now.tv_nsec / 1000000L);
}

/* A JSON string's contents (RFC 8259 escapes; bytes >= 0x80 pass as they are). */
static void put_json_string(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
}

/* Text lines stay one line: control characters become '_'. */
static void put_text(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		fputc(*p < 0x20 || *p == 0x7f ? '_' : *p, out);
}

/* Starts a line: the JSON object is left open for more fields. */
static void line_start(FILE *out, enum srv_log_level level, const char *msg)
{
	char stamp[SRV_LOG_STAMP_BYTES];

	timestamp(stamp, sizeof(stamp));
	if (log_format == SRV_LOG_JSON) {
		fprintf(out, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", stamp,
			level_names[level]);
		put_json_string(out, msg);
		fputc('"', out);
	} else {
		fprintf(out, "%s ota-server %s: ", stamp, level_names[level]);
		put_text(out, msg);
	}
}

static void line_end(FILE *out)
{
	fputs(log_format == SRV_LOG_JSON ? "}\n" : "\n", out);
}

void srv_log(enum srv_log_level level, const char *fmt, ...)
{
	char msg[LOG_MSG_MAX];
	size_t len;
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* libpq's messages end with a newline */
	len = strlen(msg);
	while (len > 0 && msg[len - 1] == '\n')
		msg[--len] = '\0';
	flockfile(stderr);
	line_start(stderr, level, msg);
	line_end(stderr);
	funlockfile(stderr);
}

void srv_log_pg_notice(void *arg, const char *message)
{
	(void)arg;
	srv_log(SRV_LOG_WARN, "postgresql: %s", message);
}

void srv_log_access(const struct srv_log_access *a)
{
	if (SRV_LOG_INFO > log_level)
		return;
	flockfile(stderr);
	line_start(stderr, SRV_LOG_INFO, "access");
	if (log_format == SRV_LOG_JSON) {
		fputs(",\"method\":\"", stderr);
		put_json_string(stderr, a->method);
		fputs("\",\"path\":\"", stderr);
		put_json_string(stderr, a->path);
		fprintf(stderr, "\",\"status\":%d,\"bytes\":%zu,\"duration_ms\":%.3f,\"actor\":\"",
			a->status, a->bytes, a->duration_ms);
		put_json_string(stderr, a->actor);
		fputs("\",\"peer\":\"", stderr);
		put_json_string(stderr, a->peer);
		fputc('"', stderr);
	} else {
		fputc(' ', stderr);
		put_text(stderr, a->method);
		fputc(' ', stderr);
		put_text(stderr, a->path);
		fprintf(stderr, " %d %zu bytes %.3f ms actor=", a->status, a->bytes,
			a->duration_ms);
		put_text(stderr, a->actor[0] != '\0' ? a->actor : "-");
		fputs(" peer=", stderr);
		put_text(stderr, a->peer);
	}
	line_end(stderr);
	funlockfile(stderr);
}
