/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_HTTPS_H
#define OTA_HTTPS_H

/*
 * A small HTTPS GET client for device delivery (DESIGN.md section 4):
 * mutual TLS with the device certificate, trust ONLY in the configured CA
 * file, the server's SubjectPublicKeyInfo SHA-256 pinned (a list, for
 * rotation), bounded headers, bounded bodies, stall and slow-drip
 * timeouts, Range for resume. Blocking, one request per connection; used
 * by ota-agent run and the fleet simulator.
 *
 * The client keeps the TLS session of its last successful request (in
 * memory) and offers it on the next connection to the same host and port:
 * the manifest -> image pair and the next cycles resume instead of making
 * a full mutual-TLS handshake. The server's key is checked against the
 * pins on every connection, resumed or not; a failed connection forgets
 * the session, and a handshake that fails with a session offered is tried
 * once more at once without it (a server that cannot resume may refuse
 * the handshake instead of ignoring the session).
 *
 * With session_file set the session also outlives the process (one full
 * handshake per device per campaign, across restarts): the file holds the
 * session (i2d_SSL_SESSION, a secret: mode 0600, written by temp file and
 * rename, at most OTA_HTTPS_SESSION_FILE_MAX_BYTES) and what it is bound
 * to: the "host:port", and the SHA-256 of the CA file, the device
 * certificate and the pins. A file bound to anything else (a new
 * certificate, CA or pin list), unreadable, too large or not a session is
 * ignored and replaced; a forgotten session deletes it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "fleetota/agent-limits.h"
#include "fleetota/err.h"
#include "fleetota/limits.h"
#include "linux-limits.h"

struct ota_https_config {
	const char *ca_file; /* the only trust anchor for the server */
	const char *cert_file; /* device certificate (PEM chain) */
	const char *key_file; /* device private key */
	const uint8_t (*pins)[OTA_SHA256_BYTES]; /* accepted server SPKI SHA-256 values */
	size_t n_pins; /* at least one */
	unsigned stall_timeout_s; /* no byte for this long: OTA_ERR_TIMEOUT */
	const char *session_file; /* NULL: sessions are kept in memory only */
};

struct ota_https {
	SSL_CTX *ctx;
	uint8_t pins[OTA_HTTPS_MAX_PINS][OTA_SHA256_BYTES];
	size_t n_pins;
	unsigned stall_timeout_s;
	SSL_SESSION *session; /* of the last successful request, or NULL */
	char session_key[OTA_HTTPS_SESSION_KEY_BYTES]; /* its "host:port" */
	uint64_t connections; /* TLS connections made */
	uint64_t resumed; /* of which resumed a session */
	char session_file[OTA_HTTPS_SESSION_PATH_BYTES]; /* "" = none */
	uint8_t binding[OTA_SHA256_BYTES]; /* SHA-256 of CA file, device certificate, pins */
};

/* What came back. */
struct ota_https_response {
	int status;
	uint64_t body_bytes; /* bytes handed to the body callback */
	unsigned retry_after_s; /* from a 429, 0 if absent */
	/* the fatal TLS alert the server sent: "TLS alert certificate revoked (44)"; "" if none */
	char tls_alert[OTA_FETCH_DETAIL_BYTES];
};

/* Receives body bytes in order; a non-OTA_OK return aborts the request. */
typedef enum ota_err (*ota_https_body_fn)(void *arg, const uint8_t *data, size_t len);

/*
 * Loads the CA, certificate and key. OTA_OK, or OTA_ERR_TRANSPORT with a
 * line in err (err_cap bytes).
 */
enum ota_err ota_https_init(struct ota_https *client, const struct ota_https_config *config,
			    char *err, size_t err_cap);
void ota_https_free(struct ota_https *client);

/*
 * GET base_url + path ("https://host:port" + "/v1/..."). With range_from >
 * 0 asks for "Range: bytes=range_from-" and accepts 206 from exactly that
 * offset. The body goes to fn; more than max_body bytes is OTA_ERR_SIZE
 * (also when Content-Length announces it). A status other than 200/206 is
 * OTA_ERR_TRANSPORT with ret->status set. Errors: OTA_ERR_TRANSPORT
 * (connect, TLS, certificate not from the CA, protocol), OTA_ERR_PIN
 * (server key not pinned), OTA_ERR_TIMEOUT (stall or slow drip),
 * OTA_ERR_SIZE, or fn's error. *ret is written in every case.
 */
enum ota_err ota_https_get(struct ota_https *client, const char *base_url, const char *path,
			   uint64_t range_from, uint64_t max_body, ota_https_body_fn fn, void *arg,
			   struct ota_https_response *ret);

/* Parses a hex SHA-256 pin. */
bool ota_https_pin_parse(const char *hex, uint8_t out[OTA_SHA256_BYTES]);

#endif
