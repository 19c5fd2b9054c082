/* SPDX-License-Identifier: Apache-2.0 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "log-internal.h"
#include "reload-internal.h"
#include "server-internal.h"

#define TLS_FILES 5

struct file_stamp {
	bool exists;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct srv_reload {
	struct srv_server *srv;
	char *config_path;
	struct event *ev_hup;
	struct event *ev_timer;
	unsigned timer_sec;
	struct file_stamp loaded[TLS_FILES]; /* the TLS files as last tried */
};

static void stamp_files(const struct srv_config *cfg, struct file_stamp out[TLS_FILES])
{
	const char *paths[TLS_FILES] = {cfg->device_ca, cfg->device_crl, cfg->tls_cert,
					cfg->tls_key, cfg->device_ticket_keys};

	memset(out, 0, sizeof(struct file_stamp) * TLS_FILES);
	for (size_t i = 0; i < TLS_FILES; i++) {
		struct stat st;

		if (paths[i][0] == '\0' || stat(paths[i], &st) != 0)
			continue;
		out[i].exists = true;
		out[i].ino = st.st_ino;
		out[i].size = st.st_size;
		out[i].mtime = st.st_mtim;
	}
}

static bool same_stamps(const struct file_stamp a[TLS_FILES], const struct file_stamp b[TLS_FILES])
{
	for (size_t i = 0; i < TLS_FILES; i++) {
		if (a[i].exists != b[i].exists || a[i].ino != b[i].ino || a[i].size != b[i].size ||
		    a[i].mtime.tv_sec != b[i].mtime.tv_sec ||
		    a[i].mtime.tv_nsec != b[i].mtime.tv_nsec)
			return false;
	}
	return true;
}

/* The device listener's TLS files into its live context; why in the log. */
static void reload_tls(struct srv_reload *reload, const char *why)
{
	const struct srv_config *cfg = reload->srv->config;
	char err[SRV_TLS_ERR_BYTES];

	stamp_files(cfg, reload->loaded);
	if (reload->srv->device_tls == NULL)
		return;
	if (srv_tls_server_reload(reload->srv->device_tls, cfg->tls_cert, cfg->tls_key,
				  cfg->device_ca, cfg->device_crl, err) != OTA_OK) {
		srv_log(SRV_LOG_ERROR, "reload (%s): device TLS kept as it was: %s", why, err);
		return;
	}
	if (srv_tickets_load(reload->srv->device_tls, cfg->device_ticket_keys, err, sizeof(err)) !=
	    OTA_OK)
		srv_log(SRV_LOG_ERROR, "reload (%s): TLS ticket keys kept as they were: %s", why,
			err);
	srv_log(SRV_LOG_INFO,
		"reload (%s): device listener CA, CRL, certificate and key reloaded for new "
		"connections",
		why);
}

static void arm_timer(struct srv_reload *reload)
{
	struct timeval every = {(time_t)reload->srv->config->device_reload_sec, 0};

	reload->timer_sec = reload->srv->config->device_reload_sec;
	event_del(reload->ev_timer);
	if (reload->timer_sec > 0)
		event_add(reload->ev_timer, &every);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_reload *reload = arg;
	struct file_stamp now[TLS_FILES];

	(void)fd;
	(void)what;
	stamp_files(reload->srv->config, now);
	if (!same_stamps(now, reload->loaded))
		reload_tls(reload, "files changed");
}

static void hup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv_reload *reload = arg;
	struct srv_server *srv = reload->srv;
	struct srv_config *fresh = NULL;
	char err[SRV_CONFIG_ERR_BYTES], applied[SRV_CONFIG_ERR_BYTES],
		restart[SRV_CONFIG_ERR_BYTES];

	(void)fd;
	(void)what;
	if (srv_config_load(reload->config_path, &fresh, err) != OTA_OK) {
		srv_log(SRV_LOG_ERROR, "reload (SIGHUP): config not applied: %s", err);
		return;
	}
	if (srv_config_update(srv->config, fresh, applied, restart) != OTA_OK)
		srv_log(SRV_LOG_ERROR, "reload (SIGHUP): out of memory, config partly applied");
	srv_config_free(fresh);
	srv_log_set_level((enum srv_log_level)srv_log_level_from_name(srv->config->log_level));
	if (srv->ratelimit != NULL)
		srv_ratelimit_set(srv->ratelimit, srv->config->rate_per_sec,
				  srv->config->rate_burst);
	if (srv->config->device_reload_sec != reload->timer_sec)
		arm_timer(reload);
	srv_log(SRV_LOG_INFO, "reload (SIGHUP): config %s: applied: %s", reload->config_path,
		applied[0] != '\0' ? applied : "no change");
	if (restart[0] != '\0')
		srv_log(SRV_LOG_WARN,
			"reload (SIGHUP): changed but need a restart (running values kept): %s",
			restart);
	reload_tls(reload, "SIGHUP");
}

enum ota_err srv_reload_start(struct srv_server *srv, const char *config_path,
			      struct srv_reload **ret_reload)
{
	struct srv_reload *reload = calloc(1, sizeof(*reload));

	if (reload == NULL)
		return OTA_ERR_NOMEM;
	reload->srv = srv;
	reload->config_path = strdup(config_path);
	reload->ev_hup = evsignal_new(srv->base, SIGHUP, hup_cb, reload);
	reload->ev_timer = event_new(srv->base, -1, EV_PERSIST, timer_cb, reload);
	if (reload->config_path == NULL || reload->ev_hup == NULL || reload->ev_timer == NULL ||
	    event_add(reload->ev_hup, NULL) != 0) {
		srv_reload_stop(reload);
		return OTA_ERR_NOMEM;
	}
	stamp_files(srv->config, reload->loaded);
	arm_timer(reload);
	*ret_reload = reload;
	return OTA_OK;
}

void srv_reload_stop(struct srv_reload *reload)
{
	if (reload == NULL)
		return;
	if (reload->ev_hup != NULL)
		event_free(reload->ev_hup);
	if (reload->ev_timer != NULL)
		event_free(reload->ev_timer);
	free(reload->config_path);
	free(reload);
}
