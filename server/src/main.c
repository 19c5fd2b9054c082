/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ota-server --config FILE          run the server
 * ota-server migrate --config FILE  apply database migrations and exit
 * ota-server token create --role ROLE [--name NAME] --config FILE
 *                                   print a new REST API bearer token once
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#include "fleetota/webapi.h"
#include "log-internal.h"
#include "migrate-internal.h"
#include "mqtt-internal.h"
#include "notify-internal.h"
#include "report-internal.h"
#include "rollout-internal.h"
#include "server-internal.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ota-server --config FILE\n"
		     "       ota-server migrate --config FILE\n"
		     "       ota-server token create --role viewer|operator|admin [--name NAME] "
		     "--config FILE\n");
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct event_base *base = arg;

	(void)what;
	srv_log(SRV_LOG_INFO, "signal %d: shutting down", (int)sig);
	event_base_loopexit(base, NULL);
}

static int run_migrate(const struct srv_config *config)
{
	unsigned applied = 0;
	enum ota_err err = srv_migrate(config->db_conninfo, config->migrations_dir, &applied);

	if (err != OTA_OK) {
		fprintf(stderr, "ota-server: migrate failed: %s\n", ota_err_name(err));
		return 1;
	}
	srv_log(SRV_LOG_INFO, "migrations: %u applied, schema up to date", applied);
	return 0;
}

static int run_server(struct srv_config *config)
{
	struct srv_server srv;
	struct event *ev_int = NULL, *ev_term = NULL;
	struct webapi *api = NULL;
	struct srv_rollout *rollout = NULL;
	int status = 1;

	memset(&srv, 0, sizeof(srv));
	srv.config = config;
	if (config->db_wait_sec > 0 &&
	    srv_migrate_wait_db(config->db_conninfo, config->db_wait_sec) != OTA_OK)
		return 1;
	if (config->migrate_on_start && run_migrate(config) != 0)
		return 1;
	if (evthread_use_pthreads() != 0) {
		srv_log(SRV_LOG_ERROR, "libevent without pthreads");
		return 1;
	}
	srv.base = event_base_new();
	if (srv.base == NULL)
		goto out;
	if (srv_db_new(srv.base, config->db_conninfo, config->db_pool_size, config->db_queue_max,
		       &srv.metrics, &srv.db) != OTA_OK)
		goto out;
	if (srv_delivery_prepare(srv.db) != OTA_OK || srv_report_prepare(&srv) != OTA_OK ||
	    srv_notifier_prepare(&srv) != OTA_OK || srv_rollout_prepare(&srv) != OTA_OK)
		goto out;
	if (config->admin_listen[0] != '\0') {
		struct webapi_config api_cfg = {
			.listen = config->admin_listen,
			.store_dir = config->store_dir,
			.tls_cert = config->admin_tls_cert,
			.tls_key = config->admin_tls_key,
			.max_upload_bytes = config->admin_max_upload_bytes,
			.timeout_sec = config->http_timeout_sec,
			.max_header_bytes = config->http_max_header_bytes,
		};

		/* before srv_db_start: it registers its statements */
		if (webapi_new(srv.base, srv.db, &srv.metrics, &api_cfg, &api) != OTA_OK)
			goto out;
	}
	if (srv_db_start(srv.db) != OTA_OK)
		goto out;
	if (srv_delivery_start(&srv) != OTA_OK)
		goto out;
	if (config->mqtt_url[0] != '\0') {
		if (srv_mqtt_start(&srv, &srv.mqtt) != OTA_OK)
			goto out;
		if (srv_notifier_start(&srv, &srv.notifier) != OTA_OK)
			goto out;
		if (srv_rollout_start(&srv, &rollout) != OTA_OK)
			goto out;
	} else {
		srv_log(SRV_LOG_WARN, "mqtt_url not set: no notifications, no reports");
	}
	ev_int = evsignal_new(srv.base, SIGINT, signal_cb, srv.base);
	ev_term = evsignal_new(srv.base, SIGTERM, signal_cb, srv.base);
	if (ev_int == NULL || ev_term == NULL || event_add(ev_int, NULL) != 0 ||
	    event_add(ev_term, NULL) != 0)
		goto out;
	srv_log(SRV_LOG_INFO, "ota-server running");
	if (event_base_dispatch(srv.base) < 0)
		goto out;
	status = 0;
out:
	if (status != 0)
		srv_log(SRV_LOG_ERROR, "ota-server could not start or failed");
	/*
	 * Order matters: Paho threads stop first (no new work), then every
	 * pending query is answered (BUSY) while requests are still alive, then
	 * the listeners close.
	 */
	srv_mqtt_stop(srv.mqtt);
	srv.mqtt = NULL;
	srv_db_free(srv.db);
	srv.db = NULL;
	webapi_free(api);
	srv_notifier_stop(srv.notifier);
	srv_rollout_stop(rollout);
	srv_delivery_stop(&srv);
	if (ev_int != NULL)
		event_free(ev_int);
	if (ev_term != NULL)
		event_free(ev_term);
	if (srv.base != NULL)
		event_base_free(srv.base);
	libevent_global_shutdown();
	return status;
}

int main(int argc, char **argv)
{
	char err[SRV_CONFIG_ERR_BYTES];
	struct srv_config *config = NULL;
	const char *config_path = NULL;
	bool migrate = false, token = false;
	char *token_args[8];
	int n_token_args = 0;
	int level, status;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "migrate") == 0 && i == 1) {
			migrate = true;
		} else if (strcmp(argv[i], "token") == 0 && i == 1) {
			token = true;
		} else if (token && strcmp(argv[i], "--config") != 0 && n_token_args < 8) {
			token_args[n_token_args++] = argv[i];
		} else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			config_path = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "ota-server: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (config_path == NULL) {
		usage(stderr);
		return 2;
	}
	if (srv_config_load(config_path, &config, err) != OTA_OK) {
		fprintf(stderr, "ota-server: config: %s\n", err);
		return 2;
	}
	level = srv_log_level_from_name(config->log_level);
	srv_log_set_level((enum srv_log_level)level);
	signal(SIGPIPE, SIG_IGN);
	if (token)
		status = webapi_token_cli(config->db_conninfo, n_token_args, token_args, stdout,
					  stderr);
	else
		status = migrate ? run_migrate(config) : run_server(config);
	srv_config_free(config);
	return status;
}
