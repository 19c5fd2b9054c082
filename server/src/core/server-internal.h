/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_SERVER_INTERNAL_H
#define SRV_SERVER_INTERNAL_H

#include <event2/event.h>
#include <openssl/ssl.h>

#include "config-internal.h"
#include "db-internal.h"
#include "http-internal.h"
#include "metrics-internal.h"
#include "ratelimit-internal.h"

struct srv_mqtt;
struct srv_notifier;
struct srv_assign_cache;
struct srv_image_maps;

/*
 * One ota-server process: one loop and the modules on it. Modules keep a
 * pointer to this and use its db, metrics and config; the REST API and the
 * rollout engine hang off it the same way (their own listener / timers).
 */
struct srv_server {
	struct event_base *base;
	struct srv_config *config;
	struct srv_metrics metrics;
	struct srv_db *db;
	struct srv_ratelimit *ratelimit;
	struct srv_conns *conns; /* the listeners' connection guard */
	SSL_CTX *device_tls;
	struct srv_http_listener *device_listener;
	struct srv_mqtt *mqtt;
	struct srv_notifier *notifier;
	struct srv_timestamps *timestamps; /* NULL: no timestamp role (timestamp-internal.h) */
	struct srv_assign_cache *assign_cache; /* NULL: manifest_cache = false */
	struct srv_image_maps *image_maps; /* store files being served */
};

#endif
