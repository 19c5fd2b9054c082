/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_LOG_INTERNAL_H
#define SRV_LOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * One line per event on stderr (journald and containers collect it). Never
 * log secrets: no token, key or password reaches these functions.
 */
enum srv_log_level {
	SRV_LOG_ERROR = 0,
	SRV_LOG_WARN = 1,
	SRV_LOG_INFO = 2,
	SRV_LOG_DEBUG = 3,
};

/*
 * text: "2026-01-02T03:04:05.678Z ota-server info: message"
 * json: {"ts":"2026-01-02T03:04:05.678Z","level":"info","msg":"message"}
 *       (one object per line; access lines add their fields)
 */
enum srv_log_format {
	SRV_LOG_TEXT = 0,
	SRV_LOG_JSON = 1,
};

void srv_log_set_level(enum srv_log_level level);
/* "error", "warn", "info", "debug"; -1 for anything else. */
int srv_log_level_from_name(const char *name);
void srv_log_set_format(enum srv_log_format format);
/* "text", "json"; -1 for anything else. */
int srv_log_format_from_name(const char *name);
void srv_log(enum srv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A libpq notice processor (PQsetNoticeProcessor): PostgreSQL's notices and
 * warnings become log lines (level warn) instead of raw text on stderr.
 */
void srv_log_pg_notice(void *arg, const char *message);

/* One answered HTTP request (the REST API's access log, level info). */
struct srv_log_access {
	const char *method;
	const char *path; /* without the query string (it may carry secrets) */
	int status;
	size_t bytes; /* response body */
	double duration_ms;
	const char *actor; /* "token:ID:NAME" or "" before authentication */
	const char *peer; /* client address */
};

void srv_log_access(const struct srv_log_access *access);

#endif
