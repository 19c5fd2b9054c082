/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_LOG_INTERNAL_H
#define SRV_LOG_INTERNAL_H

/* One line per event on stderr (containers collect it). Never log secrets. */
enum srv_log_level {
	SRV_LOG_ERROR = 0,
	SRV_LOG_WARN = 1,
	SRV_LOG_INFO = 2,
	SRV_LOG_DEBUG = 3,
};

void srv_log_set_level(enum srv_log_level level);
/* "error", "warn", "info", "debug"; -1 for anything else. */
int srv_log_level_from_name(const char *name);
void srv_log(enum srv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
