/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config-internal.h"

static const char minimal[] = "# comment\n"
			      "db_conninfo = host=/tmp port=5432 dbname=x\n"
			      "tls_cert = /c.pem\n"
			      "tls_key = /k.pem\n"
			      "\n"
			      "device_ca = /ca.pem\n"
			      "  store_dir=/store  \r\n";

static enum ota_err parse(const char *text, struct srv_config **cfg, char *err)
{
	return srv_config_parse(text, strlen(text), false, cfg, err);
}

static void test_minimal_defaults(void **state)
{
	struct srv_config *cfg = NULL;
	char err[SRV_CONFIG_ERR_BYTES];

	(void)state;
	assert_int_equal(parse(minimal, &cfg, err), OTA_OK);
	assert_string_equal(cfg->db_conninfo, "host=/tmp port=5432 dbname=x");
	assert_string_equal(cfg->store_dir, "/store");
	assert_int_equal(cfg->db_pool_size, 4);
	/* every database call has a deadline; the queue is bounded by both */
	assert_int_equal(cfg->db_queue_max, 4096);
	assert_int_equal(cfg->db_timeout_ms, 5000);
	assert_int_equal(cfg->db_retry_timeout_ms, 30000);
	assert_true(cfg->db_prepared_statements);
	assert_int_equal(cfg->admin_db_timeout_ms, 3000);
	assert_int_equal(cfg->healthz_timeout_ms, 1000);
	assert_string_equal(cfg->device_listen, "127.0.0.1:8443");
	assert_false(cfg->migrate_on_start);
	assert_true(cfg->rate_per_sec > 4.99 && cfg->rate_per_sec < 5.01);
	assert_string_equal(cfg->mqtt_url, "");
	srv_config_free(cfg);
}

static void expect_error(const char *extra, const char *needle)
{
	struct srv_config *cfg = NULL;
	char err[SRV_CONFIG_ERR_BYTES];
	char *text = malloc(strlen(minimal) + strlen(extra) + 1);

	assert_non_null(text);
	strcpy(text, minimal);
	strcat(text, extra);
	assert_int_equal(parse(text, &cfg, err), OTA_ERR_FORMAT);
	assert_null(cfg);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' does not contain '%s'", err, needle);
	free(text);
}

static void test_errors_name_the_line(void **state)
{
	(void)state;
	expect_error("prot = 1\n", "line 8: unknown key 'prot'");
	expect_error("db_pool_size = 0\n", "out of range");
	expect_error("db_pool_size = 4x\n", "not a number");
	expect_error("db_pool_size = -1\n", "not a number");
	expect_error("db_timeout_ms = 0\n", "out of range");
	expect_error("healthz_timeout_ms = 60001\n", "out of range");
	expect_error("db_queue_max = 1000001\n", "out of range");
	expect_error("rate_per_sec = nan\n", "not a number");
	expect_error("migrate_on_start = maybe\n", "true or false");
	expect_error("just words\n", "expected 'key = value'");
	expect_error("device_listen = 127.0.0.1\n", "device_listen");
	expect_error("device_listen = 127.0.0.1:99999\n", "device_listen");
	expect_error("log_level = loud\n", "log_level");
	expect_error("mqtt_url = ssl://127.0.0.1:8883\n", "mqtt_url needs");
}

static void test_missing_required(void **state)
{
	struct srv_config *cfg = NULL;
	char err[SRV_CONFIG_ERR_BYTES];

	(void)state;
	assert_int_equal(parse("tls_cert = a\n", &cfg, err), OTA_ERR_FORMAT);
	assert_non_null(strstr(err, "missing required key 'db_conninfo'"));
}

static void test_env_overrides(void **state)
{
	struct srv_config *cfg = NULL;
	char err[SRV_CONFIG_ERR_BYTES];

	(void)state;
	setenv("OTA_SERVER_DB_POOL_SIZE", "7", 1);
	setenv("OTA_SERVER_STORE_DIR", "/env-store", 1);
	assert_int_equal(srv_config_parse(minimal, strlen(minimal), true, &cfg, err), OTA_OK);
	assert_int_equal(cfg->db_pool_size, 7);
	assert_string_equal(cfg->store_dir, "/env-store");
	srv_config_free(cfg);
	setenv("OTA_SERVER_DB_POOL_SIZE", "seven", 1);
	assert_int_equal(srv_config_parse(minimal, strlen(minimal), true, &cfg, err),
			 OTA_ERR_FORMAT);
	assert_non_null(strstr(err, "OTA_SERVER_DB_POOL_SIZE"));
	unsetenv("OTA_SERVER_DB_POOL_SIZE");
	unsetenv("OTA_SERVER_STORE_DIR");
}

static void test_limits(void **state)
{
	struct srv_config *cfg = NULL;
	char err[SRV_CONFIG_ERR_BYTES];
	size_t len = SRV_CONFIG_MAX_LINE + 10;
	char *text = malloc(SRV_CONFIG_MAX_BYTES + 2);

	(void)state;
	assert_non_null(text);
	memset(text, 'a', len);
	text[len] = '\0';
	assert_int_equal(parse(text, &cfg, err), OTA_ERR_FORMAT);
	assert_non_null(strstr(err, "longer than"));
	memset(text, '\n', SRV_CONFIG_MAX_BYTES + 1);
	assert_int_equal(srv_config_parse(text, SRV_CONFIG_MAX_BYTES + 1, false, &cfg, err),
			 OTA_ERR_FORMAT);
	assert_int_equal(srv_config_parse("a\0b = c\n", 8, false, &cfg, err), OTA_ERR_FORMAT);
	free(text);
}

/* A reload applies live keys, names the restart keys, and keeps their values. */
static void test_update_live_and_restart(void **state)
{
	struct srv_config *live = NULL, *fresh = NULL;
	char err[SRV_CONFIG_ERR_BYTES], applied[SRV_CONFIG_ERR_BYTES],
		restart[SRV_CONFIG_ERR_BYTES];
	char text[1024];

	(void)state;
	assert_int_equal(parse(minimal, &live, err), OTA_OK);
	assert_int_equal(live->device_reload_sec, 60);
	assert_string_equal(live->mqtt_client_id, "");
	snprintf(text, sizeof(text),
		 "%slog_level = debug\nrate_burst = 7\ndevice_crl = /crl.pem\n"
		 "db_pool_size = 9\nmqtt_url = ssl://b:8883\nmqtt_ca = /a\nmqtt_cert = /c\n"
		 "mqtt_key = /k\n",
		 minimal);
	assert_int_equal(parse(text, &fresh, err), OTA_OK);
	assert_int_equal(srv_config_update(live, fresh, applied, restart), OTA_OK);
	assert_string_equal(applied, "device_crl, rate_burst, log_level");
	assert_string_equal(restart, "db_pool_size, mqtt_url, mqtt_ca, mqtt_cert, mqtt_key");
	assert_string_equal(live->log_level, "debug");
	assert_string_equal(live->device_crl, "/crl.pem");
	assert_true(live->rate_burst > 6.99 && live->rate_burst < 7.01);
	assert_int_equal(live->db_pool_size, 4);
	assert_string_equal(live->mqtt_url, "");
	/* the same again: nothing differs any more but the restart keys */
	assert_int_equal(srv_config_update(live, fresh, applied, restart), OTA_OK);
	assert_string_equal(applied, "");
	assert_string_equal(restart, "db_pool_size, mqtt_url, mqtt_ca, mqtt_cert, mqtt_key");
	srv_config_free(fresh);
	srv_config_free(live);
}

static void test_conn_limits(void **state)
{
	struct srv_config *cfg = NULL;
	struct srv_conn_limits dev, admin;
	char err[SRV_CONFIG_ERR_BYTES];
	char text[1024];

	(void)state;
	assert_int_equal(parse(minimal, &cfg, err), OTA_OK);
	srv_config_conn_limits(cfg, SRV_LISTENER_DEVICE, &dev);
	srv_config_conn_limits(cfg, SRV_LISTENER_ADMIN, &admin);
	assert_int_equal(dev.handshake_timeout_sec, 10);
	assert_int_equal(dev.header_timeout_sec, 20);
	assert_int_equal(dev.request_timeout_sec, 120);
	assert_int_equal(dev.max_conns, 4096);
	assert_int_equal(dev.max_conns_per_peer, 1024);
	assert_int_equal(admin.max_conns, 256);
	assert_int_equal(admin.max_conns_per_peer, 32);
	assert_int_equal(admin.header_timeout_sec, 20);
	srv_config_free(cfg);
	snprintf(text, sizeof(text), "%sdevice_max_conns = 100\ndevice_max_conns_per_peer = 7\n",
		 minimal);
	assert_int_equal(parse(text, &cfg, err), OTA_OK);
	srv_config_conn_limits(cfg, SRV_LISTENER_DEVICE, &dev);
	assert_int_equal(dev.max_conns, 100);
	assert_int_equal(dev.max_conns_per_peer, 7);
	srv_config_free(cfg);
	/* the handshake is part of the head, the head part of the request */
	expect_error("http_handshake_timeout_sec = 30\n", "http_handshake_timeout_sec <=");
	expect_error("http_request_timeout_sec = 5\n", "<= http_request_timeout_sec");
	expect_error("device_max_conns = 0\n", "out of range");
	expect_error("admin_max_conns_per_peer = 0\n", "out of range");
}

static void test_split_listen(void **state)
{
	char addr[64];
	uint16_t port = 0;

	(void)state;
	assert_int_equal(srv_config_split_listen("0.0.0.0:8443", addr, sizeof(addr), &port),
			 OTA_OK);
	assert_string_equal(addr, "0.0.0.0");
	assert_int_equal(port, 8443);
	assert_int_equal(srv_config_split_listen("[::1]:443", addr, sizeof(addr), &port), OTA_OK);
	assert_string_equal(addr, "::1");
	assert_int_equal(port, 443);
	assert_int_equal(srv_config_split_listen(":80", addr, sizeof(addr), &port), OTA_ERR_FORMAT);
	assert_int_equal(srv_config_split_listen("h:0", addr, sizeof(addr), &port), OTA_ERR_FORMAT);
	assert_int_equal(srv_config_split_listen("h:-1", addr, sizeof(addr), &port),
			 OTA_ERR_FORMAT);
	assert_int_equal(srv_config_split_listen("h", addr, sizeof(addr), &port), OTA_ERR_FORMAT);
	assert_int_equal(srv_config_split_listen("a-very-long-host-name:1", addr, 8, &port),
			 OTA_ERR_FORMAT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_errors_name_the_line),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_env_overrides),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_conn_limits),
		cmocka_unit_test(test_split_listen),
		cmocka_unit_test(test_update_live_and_restart),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
