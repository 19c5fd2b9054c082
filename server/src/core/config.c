/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"
#include "log-internal.h"
#include "srv-limits.h"

enum key_type {
	KEY_STRING,
	KEY_UINT,
	KEY_DOUBLE,
	KEY_BOOL,
};

struct key_def {
	const char *name;
	enum key_type type;
	size_t offset;
	const char *default_value;
	bool required;
	double min;
	double max;
};

#define OFF(field) offsetof(struct srv_config, field)

static const struct key_def key_defs[] = {
	{"db_conninfo", KEY_STRING, OFF(db_conninfo), NULL, true, 0, 0},
	{"db_pool_size", KEY_UINT, OFF(db_pool_size), "4", false, 1, 64},
	{"db_queue_max", KEY_UINT, OFF(db_queue_max), "4096", false, 16, 1000000},
	{"db_timeout_ms", KEY_UINT, OFF(db_timeout_ms), "5000", false, 10, 3600000},
	{"db_prepared_statements", KEY_BOOL, OFF(db_prepared_statements), "true", false, 0, 0},
	{"db_retry_timeout_ms", KEY_UINT, OFF(db_retry_timeout_ms), "30000", false, 10, 3600000},
	{"migrations_dir", KEY_STRING, OFF(migrations_dir), SRV_DEFAULT_MIGRATIONS_DIR, false, 0,
	 0},
	{"migrate_on_start", KEY_BOOL, OFF(migrate_on_start), "false", false, 0, 0},
	{"db_wait_sec", KEY_UINT, OFF(db_wait_sec), "60", false, 0, 3600},
	{"device_listen", KEY_STRING, OFF(device_listen), "127.0.0.1:8443", false, 0, 0},
	{"tls_cert", KEY_STRING, OFF(tls_cert), NULL, true, 0, 0},
	{"tls_key", KEY_STRING, OFF(tls_key), NULL, true, 0, 0},
	{"device_ca", KEY_STRING, OFF(device_ca), NULL, true, 0, 0},
	{"device_crl", KEY_STRING, OFF(device_crl), "", false, 0, 0},
	{"device_ticket_keys", KEY_STRING, OFF(device_ticket_keys), "", false, 0, 0},
	{"device_session_sec", KEY_UINT, OFF(device_session_sec), "86400", false, 60, 604800},
	{"device_write_gather", KEY_BOOL, OFF(device_write_gather), "false", false, 0, 0},
	{"store_dir", KEY_STRING, OFF(store_dir), NULL, true, 0, 0},
	{"rate_per_sec", KEY_DOUBLE, OFF(rate_per_sec), "5", false, 0.001, 1e6},
	{"rate_burst", KEY_DOUBLE, OFF(rate_burst), "20", false, 1, 1e6},
	{"report_rate_per_sec", KEY_DOUBLE, OFF(report_rate_per_sec), "2", false, 0.001, 1e6},
	{"report_burst", KEY_DOUBLE, OFF(report_burst), "30", false, 1, 1e6},
	{"report_journal_dir", KEY_STRING, OFF(report_journal_dir), "", false, 0, 0},
	{"report_journal_sync", KEY_BOOL, OFF(report_journal_sync), "true", false, 0, 0},
	{"report_journal_max_mb", KEY_UINT, OFF(report_journal_max_mb), "256", false, 1, 65536},
	{"report_batch_linger_ms", KEY_UINT, OFF(report_batch_linger_ms), "50", false, 0, 1000},
	{"manifest_cache", KEY_BOOL, OFF(manifest_cache), "true", false, 0, 0},
	{"manifest_cache_poll_ms", KEY_UINT, OFF(manifest_cache_poll_ms), "200", false, 10, 60000},
	{"manifest_cache_stale_ms", KEY_UINT, OFF(manifest_cache_stale_ms), "1000", false, 20,
	 600000},
	{"manifest_cache_ttl_sec", KEY_UINT, OFF(manifest_cache_ttl_sec), "60", false, 1, 86400},
	{"manifest_cache_max", KEY_UINT, OFF(manifest_cache_max), "100000", false, 1, 10000000},
	{"http_timeout_sec", KEY_UINT, OFF(http_timeout_sec), "30", false, 1, 3600},
	{"http_max_header_bytes", KEY_UINT, OFF(http_max_header_bytes), "8192", false, 512, 65536},
	{"http_handshake_timeout_sec", KEY_UINT, OFF(http_handshake_timeout_sec), "10", false, 1,
	 600},
	{"http_header_timeout_sec", KEY_UINT, OFF(http_header_timeout_sec), "20", false, 1, 600},
	{"http_request_timeout_sec", KEY_UINT, OFF(http_request_timeout_sec), "120", false, 1,
	 3600},
	{"device_max_conns", KEY_UINT, OFF(device_max_conns), "4096", false, 8, 1000000},
	{"device_max_conns_per_peer", KEY_UINT, OFF(device_max_conns_per_peer), "1024", false, 1,
	 1000000},
	{"mqtt_url", KEY_STRING, OFF(mqtt_url), "", false, 0, 0},
	{"mqtt_ca", KEY_STRING, OFF(mqtt_ca), "", false, 0, 0},
	{"mqtt_cert", KEY_STRING, OFF(mqtt_cert), "", false, 0, 0},
	{"mqtt_key", KEY_STRING, OFF(mqtt_key), "", false, 0, 0},
	{"device_reload_sec", KEY_UINT, OFF(device_reload_sec), "60", false, 0, 86400},
	{"mqtt_client_id", KEY_STRING, OFF(mqtt_client_id), "", false, 0, 0},
	{"mqtt_share_group", KEY_STRING, OFF(mqtt_share_group), "fleetota", false, 0, 0},
	{"notify_poll_ms", KEY_UINT, OFF(notify_poll_ms), "1000", false, 50, 3600000},
	{"notify_batch", KEY_UINT, OFF(notify_batch), "100", false, 1, 10000},
	{"admin_listen", KEY_STRING, OFF(admin_listen), "", false, 0, 0},
	{"admin_tls_cert", KEY_STRING, OFF(admin_tls_cert), "", false, 0, 0},
	{"admin_tls_key", KEY_STRING, OFF(admin_tls_key), "", false, 0, 0},
	{"console_dir", KEY_STRING, OFF(console_dir), "", false, 0, 0},
	{"admin_db_timeout_ms", KEY_UINT, OFF(admin_db_timeout_ms), "3000", false, 10, 3600000},
	{"healthz_timeout_ms", KEY_UINT, OFF(healthz_timeout_ms), "1000", false, 10, 60000},
	{"admin_max_upload_bytes", KEY_UINT, OFF(admin_max_upload_bytes), "67108864", false, 1024,
	 1073741824},
	{"admin_max_conns", KEY_UINT, OFF(admin_max_conns), "256", false, 8, 100000},
	{"admin_max_conns_per_peer", KEY_UINT, OFF(admin_max_conns_per_peer), "32", false, 1,
	 100000},
	{"log_level", KEY_STRING, OFF(log_level), "info", false, 0, 0},
	{"timestamp_key", KEY_STRING, OFF(timestamp_key), "", false, 0, 0},
	{"timestamp_lifetime_sec", KEY_UINT, OFF(timestamp_lifetime_sec), "86400", false, 8,
	 604800},
};

#define N_KEYS (sizeof(key_defs) / sizeof(key_defs[0]))

/*
 * What SIGHUP applies to a running server (reload.c does the applying);
 * every other key needs a restart. docs/server.md has the same list.
 */
static const char *const live_keys[] = {
	"log_level",	     "rate_per_sec",	   "rate_burst",   "device_ca",
	"device_crl",	     "device_ticket_keys", "tls_cert",	   "tls_key",
	"device_reload_sec", "notify_poll_ms",	   "notify_batch",
};

static void set_err(char err[SRV_CONFIG_ERR_BYTES], const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_err(char err[SRV_CONFIG_ERR_BYTES], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, SRV_CONFIG_ERR_BYTES, fmt, ap);
	va_end(ap);
}

static const struct key_def *find_key(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strcmp(key_defs[i].name, name) == 0)
			return &key_defs[i];
	}
	return NULL;
}

/* Stores value into the field of def; "where" names the source for errors. */
static enum ota_err set_value(struct srv_config *config, const struct key_def *def,
			      const char *value, const char *where, char err[SRV_CONFIG_ERR_BYTES])
{
	char *field = (char *)config + def->offset;
	char *end = NULL;

	switch (def->type) {
	case KEY_STRING: {
		char *copy = strdup(value);

		if (copy == NULL)
			return OTA_ERR_NOMEM;
		free(*(char **)(void *)field);
		*(char **)(void *)field = copy;
		return OTA_OK;
	}
	case KEY_UINT: {
		unsigned long long v;

		errno = 0;
		if (value[0] == '\0' || value[0] == '-' || !isdigit((unsigned char)value[0]))
			goto bad_number;
		v = strtoull(value, &end, 10);
		if (errno != 0 || *end != '\0')
			goto bad_number;
		if ((double)v < def->min || (double)v > def->max) {
			set_err(err, "%s: %s = %s is out of range [%.0f, %.0f]", where, def->name,
				value, def->min, def->max);
			return OTA_ERR_FORMAT;
		}
		*(unsigned *)(void *)field = (unsigned)v;
		return OTA_OK;
	}
	case KEY_DOUBLE: {
		double v;

		errno = 0;
		if (value[0] == '\0')
			goto bad_number;
		v = strtod(value, &end);
		if (errno != 0 || *end != '\0' || !isfinite(v))
			goto bad_number;
		if (v < def->min || v > def->max) {
			set_err(err, "%s: %s = %s is out of range [%g, %g]", where, def->name,
				value, def->min, def->max);
			return OTA_ERR_FORMAT;
		}
		*(double *)(void *)field = v;
		return OTA_OK;
	}
	case KEY_BOOL:
		if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 ||
		    strcmp(value, "1") == 0) {
			*(bool *)(void *)field = true;
		} else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
			   strcmp(value, "0") == 0) {
			*(bool *)(void *)field = false;
		} else {
			set_err(err, "%s: %s must be true or false, not '%s'", where, def->name,
				value);
			return OTA_ERR_FORMAT;
		}
		return OTA_OK;
	}
	return OTA_ERR_INTERNAL;

bad_number:
	set_err(err, "%s: %s = '%s' is not a number", where, def->name, value);
	return OTA_ERR_FORMAT;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*end = '\0';
	return s;
}

static enum ota_err parse_text(struct srv_config *config, const char *text, size_t len,
			       char err[SRV_CONFIG_ERR_BYTES])
{
	char line[SRV_CONFIG_MAX_LINE + 1];
	size_t pos = 0;
	unsigned lineno = 0;

	if (len > SRV_CONFIG_MAX_BYTES) {
		set_err(err, "config is larger than %u bytes", SRV_CONFIG_MAX_BYTES);
		return OTA_ERR_FORMAT;
	}
	while (pos < len) {
		size_t start = pos, line_len;
		char *key, *value, *eq;
		const struct key_def *def;
		char where[SRV_CONFIG_WHERE_BYTES];
		enum ota_err err_code;

		while (pos < len && text[pos] != '\n')
			pos++;
		line_len = pos - start;
		if (pos < len)
			pos++;
		lineno++;
		snprintf(where, sizeof(where), "line %u", lineno);
		if (line_len > SRV_CONFIG_MAX_LINE) {
			set_err(err, "%s: longer than %u bytes", where, SRV_CONFIG_MAX_LINE);
			return OTA_ERR_FORMAT;
		}
		memcpy(line, text + start, line_len);
		line[line_len] = '\0';
		if (strlen(line) != line_len) {
			set_err(err, "%s: contains a NUL byte", where);
			return OTA_ERR_FORMAT;
		}
		key = trim(line);
		if (key[0] == '\0' || key[0] == '#')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL) {
			set_err(err, "%s: expected 'key = value'", where);
			return OTA_ERR_FORMAT;
		}
		*eq = '\0';
		value = trim(eq + 1);
		key = trim(key);
		def = find_key(key);
		if (def == NULL) {
			set_err(err, "%s: unknown key '%.64s'", where, key);
			return OTA_ERR_FORMAT;
		}
		err_code = set_value(config, def, value, where, err);
		if (err_code != OTA_OK)
			return err_code;
	}
	return OTA_OK;
}

static enum ota_err apply_env(struct srv_config *config, char err[SRV_CONFIG_ERR_BYTES])
{
	for (size_t i = 0; i < N_KEYS; i++) {
		char name[SRV_CONFIG_ENV_NAME_BYTES];
		const char *value;
		size_t j;
		enum ota_err err_code;

		snprintf(name, sizeof(name), "OTA_SERVER_%s", key_defs[i].name);
		for (j = strlen("OTA_SERVER_"); name[j] != '\0'; j++)
			name[j] = (char)toupper((unsigned char)name[j]);
		value = getenv(name);
		if (value == NULL)
			continue;
		if (strlen(value) > SRV_CONFIG_MAX_LINE) {
			set_err(err, "%s: longer than %u bytes", name, SRV_CONFIG_MAX_LINE);
			return OTA_ERR_FORMAT;
		}
		err_code = set_value(config, &key_defs[i], value, name, err);
		if (err_code != OTA_OK)
			return err_code;
	}
	return OTA_OK;
}

static enum ota_err check(const struct srv_config *config, char err[SRV_CONFIG_ERR_BYTES])
{
	char addr[SRV_LISTEN_ADDR_BYTES];
	uint16_t port;

	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *def = &key_defs[i];
		const char *value;

		if (def->type != KEY_STRING || !def->required)
			continue;
		value = *(char *const *)(const void *)((const char *)config + def->offset);
		if (value == NULL || value[0] == '\0') {
			set_err(err, "missing required key '%s'", def->name);
			return OTA_ERR_FORMAT;
		}
	}
	if (srv_config_split_listen(config->device_listen, addr, sizeof(addr), &port) != OTA_OK) {
		set_err(err, "device_listen = '%.64s' is not ADDR:PORT", config->device_listen);
		return OTA_ERR_FORMAT;
	}
	if (config->admin_listen[0] != '\0' &&
	    srv_config_split_listen(config->admin_listen, addr, sizeof(addr), &port) != OTA_OK) {
		set_err(err, "admin_listen = '%.64s' is not ADDR:PORT", config->admin_listen);
		return OTA_ERR_FORMAT;
	}
	if (srv_log_level_from_name(config->log_level) < 0) {
		set_err(err, "log_level = '%.32s' is not error, warn, info or debug",
			config->log_level);
		return OTA_ERR_FORMAT;
	}
	if (config->mqtt_url[0] != '\0' &&
	    (config->mqtt_ca[0] == '\0' || config->mqtt_cert[0] == '\0' ||
	     config->mqtt_key[0] == '\0')) {
		set_err(err, "mqtt_url needs mqtt_ca, mqtt_cert and mqtt_key");
		return OTA_ERR_FORMAT;
	}
	if (config->http_handshake_timeout_sec > config->http_header_timeout_sec ||
	    config->http_header_timeout_sec > config->http_request_timeout_sec) {
		set_err(err, "need http_handshake_timeout_sec <= http_header_timeout_sec <= "
			     "http_request_timeout_sec");
		return OTA_ERR_FORMAT;
	}
	if (config->rate_burst < 1.0) {
		set_err(err, "rate_burst must be at least 1");
		return OTA_ERR_FORMAT;
	}
	return OTA_OK;
}

enum ota_err srv_config_parse(const char *text, size_t len, bool use_env,
			      struct srv_config **ret_config, char err[SRV_CONFIG_ERR_BYTES])
{
	struct srv_config *config;
	enum ota_err err_code = OTA_OK;

	err[0] = '\0';
	config = calloc(1, sizeof(*config));
	if (config == NULL)
		return OTA_ERR_NOMEM;
	for (size_t i = 0; i < N_KEYS && err_code == OTA_OK; i++) {
		const char *def = key_defs[i].default_value;

		err_code = set_value(config, &key_defs[i], def != NULL ? def : "", "default", err);
	}
	if (err_code == OTA_OK)
		err_code = parse_text(config, text, len, err);
	if (err_code == OTA_OK && use_env)
		err_code = apply_env(config, err);
	if (err_code == OTA_OK)
		err_code = check(config, err);
	if (err_code != OTA_OK) {
		if (err_code == OTA_ERR_NOMEM)
			set_err(err, "out of memory");
		srv_config_free(config);
		return err_code;
	}
	*ret_config = config;
	return OTA_OK;
}

enum ota_err srv_config_load(const char *path, struct srv_config **ret_config,
			     char err[SRV_CONFIG_ERR_BYTES])
{
	char *text;
	size_t len;
	FILE *f;
	enum ota_err err_code;

	f = fopen(path, "re");
	if (f == NULL) {
		set_err(err, "%s: %s", path, strerror(errno));
		return OTA_ERR_STORAGE;
	}
	text = malloc(SRV_CONFIG_MAX_BYTES + 1);
	if (text == NULL) {
		fclose(f);
		return OTA_ERR_NOMEM;
	}
	len = fread(text, 1, SRV_CONFIG_MAX_BYTES + 1, f);
	if (ferror(f)) {
		set_err(err, "%s: read error", path);
		fclose(f);
		free(text);
		return OTA_ERR_STORAGE;
	}
	fclose(f);
	err_code = srv_config_parse(text, len, true, ret_config, err);
	free(text);
	if (err_code != OTA_OK) {
		char msg[SRV_CONFIG_ERR_BYTES];

		snprintf(msg, sizeof(msg), "%s", err);
		set_err(err, "%s: %s", path, msg);
	}
	return err_code;
}

void srv_config_free(struct srv_config *config)
{
	if (config == NULL)
		return;
	for (size_t i = 0; i < N_KEYS; i++) {
		if (key_defs[i].type == KEY_STRING)
			free(*(char **)(void *)((char *)config + key_defs[i].offset));
	}
	free(config);
}

static bool is_live(const char *name)
{
	for (size_t i = 0; i < sizeof(live_keys) / sizeof(live_keys[0]); i++) {
		if (strcmp(live_keys[i], name) == 0)
			return true;
	}
	return false;
}

static bool same_value(const struct srv_config *a, const struct srv_config *b,
		       const struct key_def *def)
{
	const void *fa = (const char *)a + def->offset, *fb = (const char *)b + def->offset;

	switch (def->type) {
	case KEY_STRING:
		return strcmp(*(char *const *)fa, *(char *const *)fb) == 0;
	case KEY_UINT:
		return *(const unsigned *)fa == *(const unsigned *)fb;
	case KEY_DOUBLE:
		return *(const double *)fa == *(const double *)fb;
	case KEY_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	}
	return false;
}

/* Appends ", name" (or "name") to list, ending in "..." when it is full. */
static void list_add(char list[SRV_CONFIG_ERR_BYTES], const char *name)
{
	size_t used = strlen(list);

	if (used + strlen(name) + 6 >= SRV_CONFIG_ERR_BYTES) {
		if (used + 4 < SRV_CONFIG_ERR_BYTES &&
		    (used < 3 || strcmp(list + used - 3, "...") != 0))
			strcat(list, "...");
		return;
	}
	snprintf(list + used, SRV_CONFIG_ERR_BYTES - used, "%s%s", used > 0 ? ", " : "", name);
}

enum ota_err srv_config_update(struct srv_config *live, const struct srv_config *fresh,
			       char applied[SRV_CONFIG_ERR_BYTES],
			       char restart[SRV_CONFIG_ERR_BYTES])
{
	applied[0] = restart[0] = '\0';
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *def = &key_defs[i];
		void *field = (char *)live + def->offset;
		const void *value = (const char *)fresh + def->offset;

		if (same_value(live, fresh, def))
			continue;
		if (!is_live(def->name)) {
			list_add(restart, def->name);
			continue;
		}
		switch (def->type) {
		case KEY_STRING: {
			char *copy = strdup(*(char *const *)value);

			if (copy == NULL)
				return OTA_ERR_NOMEM;
			free(*(char **)field);
			*(char **)field = copy;
			break;
		}
		case KEY_UINT:
			*(unsigned *)field = *(const unsigned *)value;
			break;
		case KEY_DOUBLE:
			*(double *)field = *(const double *)value;
			break;
		case KEY_BOOL:
			*(bool *)field = *(const bool *)value;
			break;
		}
		list_add(applied, def->name);
	}
	return OTA_OK;
}

enum ota_err srv_config_split_listen(const char *listen, char *addr, size_t addr_cap,
				     uint16_t *ret_port)
{
	const char *colon, *host = listen;
	size_t host_len;
	char *end = NULL;
	unsigned long port;

	if (listen == NULL)
		return OTA_ERR_FORMAT;
	colon = strrchr(listen, ':');
	if (colon == NULL || colon == listen)
		return OTA_ERR_FORMAT;
	host_len = (size_t)(colon - listen);
	if (listen[0] == '[') {
		if (host_len < 3 || listen[host_len - 1] != ']')
			return OTA_ERR_FORMAT;
		host++;
		host_len -= 2;
	}
	if (host_len + 1 > addr_cap)
		return OTA_ERR_FORMAT;
	if (!isdigit((unsigned char)colon[1]))
		return OTA_ERR_FORMAT;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port == 0 || port > 65535)
		return OTA_ERR_FORMAT;
	memcpy(addr, host, host_len);
	addr[host_len] = '\0';
	*ret_port = (uint16_t)port;
	return OTA_OK;
}

void srv_config_conn_limits(const struct srv_config *config, enum srv_listener_kind kind,
			    struct srv_conn_limits *ret_limits)
{
	bool device = kind == SRV_LISTENER_DEVICE;

	ret_limits->handshake_timeout_sec = config->http_handshake_timeout_sec;
	ret_limits->header_timeout_sec = config->http_header_timeout_sec;
	ret_limits->request_timeout_sec = config->http_request_timeout_sec;
	ret_limits->max_conns = device ? config->device_max_conns : config->admin_max_conns;
	ret_limits->max_conns_per_peer =
		device ? config->device_max_conns_per_peer : config->admin_max_conns_per_peer;
	ret_limits->write_gather = device && config->device_write_gather;
}
