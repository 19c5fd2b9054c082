/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_WEBAPI_H
#define FLEETOTA_WEBAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>

#include "fleetota/err.h"

/*
 * The operator REST API of ota-server (web-api/openapi.yaml is the
 * contract). It runs on the server's libevent loop and uses the server's
 * PostgreSQL pool (srv_db) and metrics; it owns neither.
 *
 * Wiring in ota-server (loop thread):
 *   webapi_new(base, db, metrics, &cfg, &api);   before srv_db_start(db):
 *                                               it registers its statements
 *   ...run the loop...
 *   webapi_free(api);                           before srv_db_free(db)
 */
struct srv_conn_limits;
struct srv_conns;
struct srv_db;
struct srv_metrics;
struct webapi;

/* Request body limits (bytes). JSON bodies are small; see docs/api.md. */
#define WEBAPI_MAX_JSON_BODY (64u * 1024u)
/* Default bound of an uploaded .otab bundle (written to disk, see below). */
#define WEBAPI_DEFAULT_MAX_UPLOAD (64u * 1024u * 1024u)
/* Hard ceiling of max_upload_bytes. */
#define WEBAPI_MAX_UPLOAD_CEILING (1024u * 1024u * 1024u)
/*
 * Largest request body the admin listener reads (libevent buffers a body
 * whole before the API sees it): one chunk of an upload session, or a
 * whole small bundle on POST /api/v1/artifacts. Bigger bundles go through
 * upload sessions (docs/api.md), which write chunk by chunk to disk.
 */
#define WEBAPI_UPLOAD_CHUNK_MAX (8u * 1024u * 1024u)
/* Open upload sessions, all tokens together, and their declared bytes. */
#define WEBAPI_UPLOAD_MAX_SESSIONS 16u
#define WEBAPI_UPLOAD_MAX_TOTAL_BYTES (4ull * 1024ull * 1024ull * 1024ull)
/* Lifetime of an upload session (from its creation), and the purge period. */
#define WEBAPI_UPLOAD_TTL_SEC (24u * 3600u)
#define WEBAPI_UPLOAD_PURGE_SEC 60u
/* Deadlines (ms) of a request's database calls and of /healthz's round trip. */
#define WEBAPI_DEFAULT_DB_TIMEOUT_MS 3000u
#define WEBAPI_DEFAULT_HEALTHZ_TIMEOUT_MS 1000u
/* Page size: default and maximum items of one list response. */
#define WEBAPI_PAGE_DEFAULT 100u
#define WEBAPI_PAGE_MAX 500u
/* A bearer token: "fota_" + 43 characters of base64url (32 random bytes). */
#define WEBAPI_TOKEN_PREFIX "fota_"
#define WEBAPI_TOKEN_CHARS 48u

struct webapi_config {
	const char *listen; /* "ADDR:PORT"; loopback recommended */
	const char *store_dir; /* the server's content-addressed image store */
	const char *tls_cert; /* optional (NULL or ""): serve HTTPS */
	const char *tls_key; /* with tls_cert */
	uint64_t max_upload_bytes; /* largest bundle; 0 = WEBAPI_DEFAULT_MAX_UPLOAD */
	unsigned timeout_sec; /* idle/read timeout of a connection; 0 = 30 */
	unsigned max_header_bytes; /* 0 = 8192 */
	double rate_per_sec; /* per client address; 0 = 50 */
	double rate_burst; /* 0 = 200 */
	struct srv_conns *conns; /* required: the server's connection guard */
	const struct srv_conn_limits *conn_limits; /* required: deadlines and caps */
	/* deadline of each database call of a request (503 "timeout"); 0 = default */
	unsigned db_timeout_ms;
	/* deadline of /healthz's round trip to the database; 0 = default */
	unsigned healthz_timeout_ms;
	/* the operator console's assets, served at /console/; NULL or "" = none */
	const char *console_dir;
};

/*
 * Registers the API's prepared statements with db (so call it before
 * srv_db_start()), binds the listener and installs it on base. Borrowed:
 * base, db, metrics and cfg's strings (copied). OTA_OK and *ret_api;
 * OTA_ERR_INVALID_ARG (bad config), OTA_ERR_TRANSPORT (cannot bind),
 * OTA_ERR_STORAGE (store_dir unusable, TLS files unreadable).
 */
enum ota_err webapi_new(struct event_base *base, struct srv_db *db, struct srv_metrics *metrics,
			const struct webapi_config *cfg, struct webapi **ret_api);

/* The bound port (useful with port 0 in tests). */
uint16_t webapi_port(const struct webapi *api);

/* Closes the listener; requests waiting on the database get no reply. */
void webapi_free(struct webapi *api);

/*
 * `ota-server token create --role ROLE [--name NAME]`: creates a bearer
 * token (audit actor "cli") through its own short-lived loop and database
 * connection to conninfo, waiting at most 15 s for the database, and
 * prints the token once on out (it is stored only as a SHA-256 hash, so
 * it cannot be shown again). argv starts after "token". Returns a process
 * exit code (0, 1 failure, 2 usage) and prints errors on err.
 */
int webapi_token_cli(const char *conninfo, int argc, char **argv, FILE *out, FILE *err);

#endif
