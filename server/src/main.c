/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ota-server --config FILE          run the server
 * ota-server migrate --config FILE  apply database migrations and exit
 * ota-server token create --role ROLE [--name NAME] --config FILE
 *                                   print a new REST API bearer token once
 * ota-server --version | --help     (also after a subcommand)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#include "fleetota-version.h"
#include "device.h"
#include "log-internal.h"
#include "migrate-internal.h"
#include "reload-internal.h"
#include "rollout.h"
#include "server-internal.h"
#include "service-internal.h"
#include "webapi.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ota-server [--log-format text|json] --config FILE\n"
		     "       ota-server migrate --config FILE\n"
		     "       ota-server token create --role viewer|operator|admin [--name NAME] "
		     "--config FILE\n"
		     "       ota-server --version | --help\n");
}

/* --help and --version anywhere answer at once (exit 0), before the config. */
static bool early_answer(int argc, char **argv)
{
	static const char *const sub_help[][2] = {
		{"migrate", "usage: ota-server migrate --config FILE\n"
			    "Applies the database migrations (migrations_dir) and exits.\n"},
		{"token", "usage: ota-server token create --role viewer|operator|admin "
			  "[--name NAME] --config FILE\n"
			  "Prints a new REST API bearer token once (stored hashed).\n"},
	};

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("ota-server %s\n", fleetota_version());
			return true;
		}
		if (strcmp(argv[i], "--help") != 0 && strcmp(argv[i], "-h") != 0)
			continue;
		for (size_t k = 0; k < sizeof(sub_help) / sizeof(sub_help[0]); k++) {
			if (strcmp(argv[1], sub_help[k][0]) == 0) {
				fputs(sub_help[k][1], stdout);
				return true;
			}
		}
		usage(stdout);
		printf("Runs the campaign server: device delivery (mTLS), MQTT reports and "
		       "notifications, the REST API, the rollout engine.\n"
		       "--log-format json: one JSON object per log line (ts, level, msg).\n");
		return true;
	}
	return false;
}

/* The process is ready once a database connection is up (listeners are bound). */
static bool server_ready(void *arg)
{
	const struct srv_server *srv = arg;

	return srv_db_ready(srv->db);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct event_base *base = arg;

	(void)what;
	srv_log(SRV_LOG_INFO, "signal %d: shutting down", (int)sig);
	srv_service_stopping();
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

static int run_server(struct srv_config *config, const char *config_path)
{
	struct srv_server srv;
	struct event *ev_int = NULL, *ev_term = NULL;
	struct webapi *api = NULL;
	struct srv_rollout *rollout = NULL;
	struct srv_reload *reload = NULL;
	struct srv_service *service = NULL;
	int status = 1;

	memset(&srv, 0, sizeof(srv));
	srv.config = config;
	signal(SIGHUP, SIG_IGN); /* until srv_reload_start: a reload, never an exit */
	if (config->db_wait_sec > 0 &&
	    srv_migrate_wait_db(config->db_conninfo, config->db_wait_sec) != OTA_OK)
		return 1;
	if (config->migrate_on_start && run_migrate(config) != 0)
		return 1;
	if (evthread_use_pthreads() != 0) {
		srv_log(SRV_LOG_ERROR, "libevent without pthreads");
		return 1;
	}
	/*
	 * epoll's changelist: the event changes of one loop turn go to the
	 * kernel once, at its end, and an add undone in the same turn costs
	 * nothing. evhttp turns a connection's read and write events off and
	 * on around every request (docs/server.md, "Per-request system
	 * calls"). No descriptor of this process is dup()ed, which the
	 * changelist cannot tell apart.
	 */
	struct event_config *ev_cfg = event_config_new();
	if (ev_cfg == NULL)
		goto out;
	(void)event_config_set_flag(ev_cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	srv.base = event_base_new_with_config(ev_cfg);
	event_config_free(ev_cfg);
	if (srv.base == NULL)
		goto out;
	if (srv_conns_new(srv.base, srv.metrics.conns, &srv.conns) != OTA_OK)
		goto out;
	if (srv_db_new(srv.base, config->db_conninfo, config->db_pool_size, config->db_queue_max,
		       &srv.metrics, &srv.db) != OTA_OK ||
	    srv_db_set_deadlines(srv.db, config->db_timeout_ms, config->db_retry_timeout_ms) !=
		    OTA_OK ||
	    srv_db_set_prepared(srv.db, config->db_prepared_statements) != OTA_OK)
		goto out;
	if (srv_delivery_prepare(srv.db) != OTA_OK || srv_report_prepare(&srv) != OTA_OK ||
	    srv_notifier_prepare(&srv) != OTA_OK || srv_rollout_prepare(&srv) != OTA_OK)
		goto out;
	if (config->admin_listen[0] != '\0') {
		struct srv_conn_limits admin_limits;
		struct webapi_config api_cfg = {
			.listen = config->admin_listen,
			.store_dir = config->store_dir,
			.tls_cert = config->admin_tls_cert,
			.tls_key = config->admin_tls_key,
			.max_upload_bytes = config->admin_max_upload_bytes,
			.timeout_sec = config->http_timeout_sec,
			.max_header_bytes = config->http_max_header_bytes,
			.conns = srv.conns,
			.conn_limits = &admin_limits,
			.db_timeout_ms = config->admin_db_timeout_ms,
			.healthz_timeout_ms = config->healthz_timeout_ms,
			.console_dir = config->console_dir,
		};

		srv_config_conn_limits(config, SRV_LISTENER_ADMIN, &admin_limits);

		/* before srv_db_start: it registers its statements */
		if (webapi_new(srv.base, srv.db, &srv.metrics, &api_cfg, &api) != OTA_OK)
			goto out;
	}
	if (srv_db_start(srv.db) != OTA_OK)
		goto out;
	if (srv_timestamp_start(&srv, &srv.timestamps) != OTA_OK)
		goto out;
	if (srv_delivery_start(&srv) != OTA_OK)
		goto out;
	if (config->mqtt_url[0] != '\0') {
		if (srv_mqtt_start(&srv, &srv_report_receiver, &srv.mqtt) != OTA_OK)
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
	/* SIGHUP and the device TLS timer: reload without dropping connections */
	if (srv_reload_start(&srv, config_path, &reload) != OTA_OK)
		goto out;
	if (srv_service_start(srv.base, server_ready, &srv, &service) != OTA_OK)
		goto out;
	srv_log(SRV_LOG_INFO, "ota-server %s running", fleetota_version());
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
	srv_service_stopping();
	srv_service_free(service);
	srv_reload_stop(reload);
	srv_conns_stop(srv.conns);
	srv_mqtt_stop(srv.mqtt);
	srv.mqtt = NULL;
	srv_db_free(srv.db);
	srv.db = NULL;
	webapi_free(api);
	srv_notifier_stop(srv.notifier);
	srv_rollout_stop(rollout);
	srv_delivery_stop(&srv);
	srv_timestamp_stop(srv.timestamps);
	srv.timestamps = NULL;
	/*
	 * Connections closed just now still have deferred callbacks (TLS)
	 * holding their last reference: two more turns of the loop release
	 * them, then the guard goes.
	 */
	if (srv.base != NULL) {
		event_base_loop(srv.base, EVLOOP_NONBLOCK);
		event_base_loop(srv.base, EVLOOP_NONBLOCK);
	}
	srv_conns_free(srv.conns); /* after every listener, before the loop */
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
	int level, status, log_format = SRV_LOG_TEXT;

	if (early_answer(argc, argv))
		return 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "migrate") == 0 && i == 1) {
			migrate = true;
		} else if (strcmp(argv[i], "token") == 0 && i == 1) {
			token = true;
		} else if (token && strcmp(argv[i], "--config") != 0 && n_token_args < 8) {
			token_args[n_token_args++] = argv[i];
		} else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			config_path = argv[++i];
		} else if (strcmp(argv[i], "--log-format") == 0 && i + 1 < argc &&
			   (log_format = srv_log_format_from_name(argv[i + 1])) >= 0) {
			i++;
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
	srv_log_set_format((enum srv_log_format)log_format);
	signal(SIGPIPE, SIG_IGN);
	if (token)
		status = webapi_token_cli(config->db_conninfo, n_token_args, token_args, stdout,
					  stderr);
	else
		status = migrate ? run_migrate(config) : run_server(config, config_path);
	srv_config_free(config);
	return status;
}
