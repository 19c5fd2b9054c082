/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_CONFIG_INTERNAL_H
#define SRV_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conns-internal.h"
#include "fleetota/err.h"

/* A config file is at most this big, a line at most this long. */
#define SRV_CONFIG_MAX_BYTES (64u * 1024u)
#define SRV_CONFIG_MAX_LINE 1024u
/* Room for one error message. */
#define SRV_CONFIG_ERR_BYTES 256u

/*
 * ota-server's configuration: `key = value` lines, `#` comments; every key
 * may be overridden by the environment variable OTA_SERVER_<KEY> (upper
 * case), which is how containers configure it. Strings are heap copies
 * owned by the struct. A new module adds its fields here and one row to
 * the table in config.c (the REST API: admin_listen, ...).
 */
struct srv_config {
	/* PostgreSQL */
	char *db_conninfo;
	unsigned db_pool_size;
	unsigned db_queue_max; /* queries waiting for a connection */
	unsigned db_timeout_ms; /* deadline of a database call (device paths, engine) */
	unsigned db_retry_timeout_ms; /* of a retried one (reports), queue wait included */
	bool manifest_cache; /* the in-memory assignment view (device/assign_cache-internal.h) */
	unsigned manifest_cache_poll_ms; /* how often the change log is read */
	unsigned manifest_cache_stale_ms; /* no hits beyond this without a good poll */
	unsigned manifest_cache_ttl_sec; /* an entry answers at most this long */
	unsigned manifest_cache_max; /* entries; beyond, everything is forgotten */
	bool db_prepared_statements; /* false: unnamed statements (PgBouncer < 1.21, transaction mode) */
	char *migrations_dir;
	bool migrate_on_start;
	unsigned db_wait_sec; /* at start: wait this long for the database (0 = no wait) */
	/* device listener (mTLS) */
	char *device_listen; /* "ADDR:PORT" */
	char *tls_cert;
	char *tls_key;
	char *device_ca;
	char *device_crl; /* optional */
	char *device_ticket_keys; /* optional: TLS ticket keys shared by replicas */
	unsigned device_session_sec; /* TLS session (ticket) lifetime */
	bool device_write_gather; /* several TLS records per write(2) (core/wbio.c); off by default */
	/* signed freshness: the timestamp role's key (PEM PKCS#8, 0600), "" = off */
	char *timestamp_key;
	unsigned timestamp_lifetime_sec; /* life of a signed Timestamp (8 .. 604800) */
	unsigned device_reload_sec; /* re-read CA/CRL/cert when changed; 0 = SIGHUP only */
	char *store_dir;
	double rate_per_sec; /* per-device token bucket refill */
	double rate_burst; /* bucket size */
	double report_rate_per_sec; /* per-device MQTT report budget */
	double report_burst;
	/* the report journal (device/journal-internal.h): "" = under store_dir */
	char *report_journal_dir;
	bool report_journal_sync; /* fsync each report before its acknowledgement */
	unsigned report_journal_max_mb; /* pending reports beyond: back-pressure */
	unsigned report_batch_linger_ms; /* the writer waits for a fuller batch */
	unsigned http_timeout_sec;
	unsigned http_max_header_bytes;
	/* connection guard of both listeners (conns-internal.h) */
	unsigned http_handshake_timeout_sec;
	unsigned http_header_timeout_sec;
	unsigned http_request_timeout_sec;
	unsigned device_max_conns;
	unsigned device_max_conns_per_peer;
	/* MQTT */
	char *mqtt_url; /* "ssl://127.0.0.1:8883"; empty = MQTT off */
	char *mqtt_ca;
	char *mqtt_cert;
	char *mqtt_key;
	char *mqtt_client_id; /* empty = the CN of mqtt_cert; else must equal it */
	char *mqtt_share_group;
	unsigned notify_poll_ms;
	unsigned notify_batch;
	/* REST API (issue 6): "ADDR:PORT"; empty = no admin listener */
	char *admin_listen;
	char *admin_tls_cert; /* optional: the REST API over HTTPS */
	char *admin_tls_key;
	char *console_dir; /* the operator console's assets (/console/); empty = none */
	unsigned admin_max_upload_bytes; /* largest .otab bundle (written to disk) */
	unsigned admin_max_conns;
	unsigned admin_max_conns_per_peer;
	unsigned admin_db_timeout_ms; /* deadline of each REST API database call */
	unsigned healthz_timeout_ms; /* of /healthz's round trip (SELECT 1) */
	char *log_level;
};

/*
 * Parses a config text (len bytes, need not be NUL-terminated) over the
 * defaults, then applies environment overrides when use_env is true, then
 * checks required keys and ranges. OTA_OK and *ret_config (free with
 * srv_config_free), or OTA_ERR_FORMAT with a message in err
 * ("line 3: unknown key 'prot'").
 */
enum ota_err srv_config_parse(const char *text, size_t len, bool use_env,
			      struct srv_config **ret_config, char err[SRV_CONFIG_ERR_BYTES]);

/* Reads path (bounded) and parses it as above, with the environment. */
enum ota_err srv_config_load(const char *path, struct srv_config **ret_config,
			     char err[SRV_CONFIG_ERR_BYTES]);

void srv_config_free(struct srv_config *config);

/* The deadlines and caps config gives the listener of kind. */
void srv_config_conn_limits(const struct srv_config *config, enum srv_listener_kind kind,
			    struct srv_conn_limits *ret_limits);

/*
 * For a reload (SIGHUP): every key whose value differs between live and
 * fresh is either applied (copied into live: the keys a running server
 * takes, see live_keys in config.c) and named in applied, or left as it is
 * and named in restart. Both lists are comma-separated ("" when none).
 * OTA_OK, or OTA_ERR_NOMEM (live then holds a mix; still valid).
 */
enum ota_err srv_config_update(struct srv_config *live, const struct srv_config *fresh,
			       char applied[SRV_CONFIG_ERR_BYTES],
			       char restart[SRV_CONFIG_ERR_BYTES]);

/*
 * Splits "ADDR:PORT" (IPv4 or a name; "[v6]:PORT"). addr must hold
 * addr_cap bytes. OTA_OK or OTA_ERR_FORMAT.
 */
enum ota_err srv_config_split_listen(const char *listen, char *addr, size_t addr_cap,
				     uint16_t *ret_port);

#endif
