/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's `key = value` config file: bounded, strict, clear errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota_linux.h"

enum key_kind {
	KEY_STRING,
	KEY_U64,
	KEY_BOOL,
	KEY_UINT,
	KEY_PINS,
};

struct key_spec {
	const char *name;
	enum key_kind kind;
	size_t offset;
	size_t size;
};

#define STR_KEY(n)                                              \
	{                                                       \
#n, KEY_STRING, offsetof(struct ota_config, n), \
			sizeof(((struct ota_config *)0)->n)     \
	}

static const struct key_spec keys[] = {
	STR_KEY(state_dir),
	STR_KEY(device_id),
	STR_KEY(model),
	STR_KEY(hw_revision),
	STR_KEY(server_url),
	STR_KEY(broker_url),
	STR_KEY(ca_file),
	STR_KEY(device_cert),
	STR_KEY(device_key),
	STR_KEY(selftest_cmd),
	STR_KEY(decrypt_key),
	STR_KEY(product_key),
	{"server_pins", KEY_PINS, 0, 0},
	{"slot_size", KEY_U64, offsetof(struct ota_config, slot_size), 0},
	{"checkpoint_bytes", KEY_U64, offsetof(struct ota_config, checkpoint_bytes), 0},
	{"trust_clock", KEY_BOOL, offsetof(struct ota_config, trust_clock), 0},
	{"stall_timeout", KEY_UINT, offsetof(struct ota_config, stall_timeout_s), 0},
	{"report_interval", KEY_UINT, offsetof(struct ota_config, report_interval_s), 0},
	{"download_retries", KEY_UINT, offsetof(struct ota_config, download_retries), 0},
	{"freshness_max_age", KEY_U64, offsetof(struct ota_config, freshness_max_age_s), 0},
	{"timestamp_interval", KEY_UINT, offsetof(struct ota_config, timestamp_interval_s), 0},
};

static void set_err(char *err, unsigned line, const char *what, const char *arg)
{
	snprintf(err, OTA_CONFIG_ERR_BYTES, "line %u: %s%s%.64s%s", line, what, arg ? " '" : "",
		 arg ? arg : "", arg ? "'" : "");
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
		s[--len] = '\0';
	return s;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool parse_pins(char *value, struct ota_config *cfg)
{
	cfg->n_server_pins = 0;
	char *save = NULL;
	for (char *tok = strtok_r(value, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		if (strlen(tok) != 2u * OTA_SHA256_BYTES ||
		    cfg->n_server_pins >= OTA_CONFIG_MAX_PINS)
			return false;
		uint8_t *pin = cfg->server_pins[cfg->n_server_pins];
		for (size_t i = 0; i < OTA_SHA256_BYTES; i++) {
			int hi = hexval(tok[2 * i]);
			int lo = hexval(tok[2 * i + 1]);
			if (hi < 0 || lo < 0)
				return false;
			pin[i] = (uint8_t)(hi << 4 | lo);
		}
		cfg->n_server_pins++;
	}
	return cfg->n_server_pins > 0;
}

static bool parse_u64(const char *value, uint64_t max, uint64_t *ret)
{
	char *end = NULL;
	if (value[0] < '0' || value[0] > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(value, &end, 10);
	if (errno || !end || *end != '\0' || v > max)
		return false;
	*ret = v;
	return true;
}

static enum ota_err apply(struct ota_config *cfg, const struct key_spec *spec, char *value,
			  unsigned line, char *err)
{
	uint8_t *base = (uint8_t *)cfg;
	uint64_t v = 0;
	switch (spec->kind) {
	case KEY_STRING:
		if (strlen(value) >= spec->size) {
			set_err(err, line, "value too long for", spec->name);
			return OTA_ERR_FORMAT;
		}
		memcpy(base + spec->offset, value, strlen(value) + 1);
		return OTA_OK;
	case KEY_U64:
		if (!parse_u64(value, UINT64_MAX / 2, &v)) {
			set_err(err, line, "not a number for", spec->name);
			return OTA_ERR_FORMAT;
		}
		memcpy(base + spec->offset, &v, sizeof(v));
		return OTA_OK;
	case KEY_UINT: {
		if (!parse_u64(value, 86400u * 365u, &v)) {
			set_err(err, line, "not a number of seconds for", spec->name);
			return OTA_ERR_FORMAT;
		}
		unsigned u = (unsigned)v;
		memcpy(base + spec->offset, &u, sizeof(u));
		return OTA_OK;
	}
	case KEY_BOOL: {
		bool b;
		if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 ||
		    strcmp(value, "1") == 0)
			b = true;
		else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
			 strcmp(value, "0") == 0)
			b = false;
		else {
			set_err(err, line, "not true/false for", spec->name);
			return OTA_ERR_FORMAT;
		}
		memcpy(base + spec->offset, &b, sizeof(b));
		return OTA_OK;
	}
	case KEY_PINS:
		if (!parse_pins(value, cfg)) {
			set_err(err, line,
				"server_pins: want 1..8 comma-separated SHA-256 hex values", NULL);
			return OTA_ERR_FORMAT;
		}
		return OTA_OK;
	}
	return OTA_ERR_INTERNAL;
}

enum ota_err ota_config_parse(const char *text, size_t len, struct ota_config *ret_config,
			      char err[OTA_CONFIG_ERR_BYTES])
{
	struct ota_config cfg;
	char line_buf[OTA_CONFIG_MAX_LINE + 1];
	unsigned line_no = 0;
	size_t pos = 0;
	uint32_t seen = 0;

	err[0] = '\0';
	memset(&cfg, 0, sizeof(cfg));
	cfg.slot_size = OTA_LINUX_DEFAULT_SLOT_SIZE;
	cfg.stall_timeout_s = 30;
	cfg.report_interval_s = 300;
	cfg.download_retries = 5;
	cfg.timestamp_interval_s = 3600;
	if (!text || len > OTA_CONFIG_MAX_BYTES) {
		set_err(err, 0, "config larger than 64 KiB", NULL);
		return OTA_ERR_FORMAT;
	}
	while (pos < len) {
		size_t start = pos;
		while (pos < len && text[pos] != '\n')
			pos++;
		size_t line_len = pos - start;
		if (pos < len)
			pos++; /* the newline */
		line_no++;
		if (line_len > OTA_CONFIG_MAX_LINE) {
			set_err(err, line_no, "line longer than 1024 bytes", NULL);
			return OTA_ERR_FORMAT;
		}
		memcpy(line_buf, text + start, line_len);
		line_buf[line_len] = '\0';
		if (strlen(line_buf) != line_len) {
			set_err(err, line_no, "NUL byte in line", NULL);
			return OTA_ERR_FORMAT;
		}
		char *line = trim(line_buf);
		if (*line == '\0' || *line == '#')
			continue;
		char *eq = strchr(line, '=');
		if (!eq) {
			set_err(err, line_no, "expected key = value", NULL);
			return OTA_ERR_FORMAT;
		}
		*eq = '\0';
		char *key = trim(line);
		char *value = trim(eq + 1);
		const struct key_spec *spec = NULL;
		size_t index = 0;
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (strcmp(keys[i].name, key) == 0) {
				spec = &keys[i];
				index = i;
			}
		}
		if (!spec) {
			set_err(err, line_no, "unknown key", key);
			return OTA_ERR_FORMAT;
		}
		if (seen & (1u << index)) {
			set_err(err, line_no, "key given twice", key);
			return OTA_ERR_FORMAT;
		}
		seen |= 1u << index;
		enum ota_err e = apply(&cfg, spec, value, line_no, err);
		if (e != OTA_OK)
			return e;
	}
	const char *required[] = {"state_dir", "device_id", "model", "hw_revision"};
	const char *values[] = {cfg.state_dir, cfg.device_id, cfg.model, cfg.hw_revision};
	for (size_t i = 0; i < 4; i++) {
		if (values[i][0] == '\0') {
			snprintf(err, OTA_CONFIG_ERR_BYTES, "missing required key '%s'",
				 required[i]);
			return OTA_ERR_FORMAT;
		}
	}
	if (cfg.slot_size == 0) {
		snprintf(err, OTA_CONFIG_ERR_BYTES, "slot_size must be positive");
		return OTA_ERR_FORMAT;
	}
	*ret_config = cfg;
	return OTA_OK;
}

enum ota_err ota_config_load(const char *path, struct ota_config *ret_config,
			     char err[OTA_CONFIG_ERR_BYTES])
{
	char *buf = malloc(OTA_CONFIG_MAX_BYTES + 1);
	if (!buf) {
		snprintf(err, OTA_CONFIG_ERR_BYTES, "out of memory");
		return OTA_ERR_NOMEM;
	}
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, OTA_CONFIG_ERR_BYTES, "%.100s: %s", path, strerror(errno));
		free(buf);
		return OTA_ERR_NOT_FOUND;
	}
	size_t len = fread(buf, 1, OTA_CONFIG_MAX_BYTES + 1, f);
	bool read_error = ferror(f) != 0;
	fclose(f);
	enum ota_err e;
	if (read_error) {
		snprintf(err, OTA_CONFIG_ERR_BYTES, "%.100s: read error", path);
		e = OTA_ERR_STORAGE;
	} else {
		e = ota_config_parse(buf, len, ret_config, err);
	}
	free(buf);
	return e;
}
