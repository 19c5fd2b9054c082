/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_TICKETS_INTERNAL_H
#define SRV_TICKETS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <openssl/ssl.h>

#include "fleetota/err.h"

/*
 * TLS session tickets of the device listener, shared by replicas through a
 * ticket key file (docs/server.md, "TLS sessions"):
 *
 *   one key per line, 160 hex digits = 80 bytes: a 16-byte key name, a
 *   32-byte HMAC-SHA256 secret, a 32-byte AES-256 key (`openssl rand -hex
 *   80`); '#' comments and blank lines are ignored; at most
 *   SRV_TICKETS_MAX_KEYS keys. Every key decrypts; the second-to-last
 *   encrypts (the only one when there is one). Rotation: append a new key
 *   and drop the first, on every replica, in any order: a replica that
 *   rotated encrypts with a key the others already accept, and accepts
 *   theirs.
 *
 * Without a file each process makes random keys at start: sessions then
 * resume only on the replica that issued them.
 */

#define SRV_TICKETS_MAX_KEYS 16u
#define SRV_TICKETS_MAX_FILE_BYTES 8192u

/* Counters of the device listener's handshakes (loop thread only). */
struct srv_tls_metrics {
	uint64_t full_handshakes;
	uint64_t resumed; /* SSL_session_reused */
	uint64_t resumed_cached; /* ... of which TLS 1.2 from the session cache, not the ticket */
	uint64_t resume_rechecked; /* ticket from another CA/CRL: certificate verified again */
	uint64_t resume_refused; /* ... and it failed, or expired: full handshake */
	uint64_t ticket_unknown_key; /* no key of ours decrypts it: full handshake */
	uint64_t peer_reverified; /* a connection's certificate verified again after a reload */
	uint64_t
		verify_cached; /* full handshakes whose chain was found verified (no X509_verify_cert) */
};

/*
 * Installs the ticket keys of path (NULL or "": random keys of this
 * process) on ctx, replacing the ones it had; safe on a live context
 * (reload). OTA_OK, or OTA_ERR_STORAGE (cannot read, or readable by
 * group/others) / OTA_ERR_FORMAT (a bad line, no key, too many) with a
 * message in err (never key bytes); on error ctx keeps its keys.
 */
enum ota_err srv_tickets_load(SSL_CTX *ctx, const char *path, char *err, size_t err_cap);

/*
 * The TLS 1.2 session cache's side of the key callback (tls.c registers it
 * with srv_tickets_set_cache; loop thread only). key_name and iv are a
 * ticket's, SRV_TLS_TICKET_ID_BYTES / 2 bytes each. put: a TLS 1.2 ticket
 * of ssl's session is being issued under them. take: a TLS 1.2 ClientHello
 * offers such a ticket under the current encrypting key; true when the
 * cache will resume it (the callback then declines to decrypt the ticket),
 * false for the ticket path.
 */
struct srv_tickets_cache {
	void (*put)(SSL *ssl, const unsigned char *key_name, const unsigned char *iv);
	bool (*take)(SSL *ssl, const unsigned char *key_name, const unsigned char *iv);
};

/* Installs cache (borrowed, static; NULL: none) for every context's key callback. */
void srv_tickets_set_cache(const struct srv_tickets_cache *cache);

/* Appends the Prometheus text of metrics to out. */
void srv_tls_metrics_render(const struct srv_tls_metrics *metrics, struct evbuffer *out);

#endif
