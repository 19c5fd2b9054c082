/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_TLS_INTERNAL_H
#define SRV_TLS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "tickets-internal.h"
#include "fleetota/err.h"

/* TLS server contexts of the listeners (tls.c). */

#define SRV_TLS_ERR_BYTES 256u

/*
 * A TLS server context (TLS 1.2+): cert chain and key; when client_ca is
 * set, a client certificate is required and verified against it (and
 * against the CRL file crl when not NULL/empty); a chain verified before
 * under the same CA and CRL (no reload since) and still within its validity
 * is not verified again (the client's proof of its key always is; docs/
 * server.md, "Verified client certificates"). OTA_OK and *ret_ctx, or
 * OTA_ERR_STORAGE/OTA_ERR_FORMAT with a message in err.
 */
enum ota_err srv_tls_server_ctx(const char *cert, const char *key, const char *client_ca,
				const char *crl, SSL_CTX **ret_ctx, char err[SRV_TLS_ERR_BYTES]);

/*
 * Reloads a live context made by srv_tls_server_ctx from the same kind of
 * files: a complete new context is built and checked first, then its
 * certificate chain, key, client CA list and verify store (CA + CRL) replace
 * live's; only new handshakes use them (open connections keep going, and
 * srv_tls_peer_verified checks them again). Sessions from before do not
 * resume. On error live is unchanged: OTA_ERR_STORAGE/FORMAT/NOMEM and err.
 */
enum ota_err srv_tls_server_reload(SSL_CTX *live, const char *cert, const char *key,
				   const char *client_ca, const char *crl,
				   char err[SRV_TLS_ERR_BYTES]);

/*
 * true when ssl's client certificate verified at the handshake and still
 * verifies against its context's current store (checked again, once, after
 * each srv_tls_server_reload): a certificate revoked since is refused.
 */
bool srv_tls_peer_verified(SSL *ssl);

/*
 * Sessions on a context made by srv_tls_server_ctx: resumption through
 * tickets only (keys: srv_tickets_load), sessions valid lifetime_sec, a
 * resumed client certificate checked against the current CA and CRL when
 * they changed since the ticket was issued, handshakes counted in metrics
 * (borrowed, must outlive ctx). OTA_OK or OTA_ERR_NOMEM.
 */
enum ota_err srv_tls_sessions_enable(SSL_CTX *ctx, unsigned lifetime_sec,
				     struct srv_tls_metrics *metrics);

/*
 * Sends ssl's close_notify when its handshake is done and it has not sent
 * one: one non-blocking try (a full socket buffer means none), so that
 * clients keep their session. Call just before the connection is freed,
 * only when every byte of the reply was written.
 */
void srv_tls_close_notify(SSL *ssl);

/*
 * The subject CN of the first certificate in the PEM file path into out
 * (cap bytes): exactly one CN, printable ASCII without spaces. OTA_OK, or
 * OTA_ERR_STORAGE/OTA_ERR_FORMAT with a message in err.
 */
enum ota_err srv_tls_cert_cn(const char *path, char *out, size_t cap, char err[SRV_TLS_ERR_BYTES]);

/* HTTP methods a route accepts (evhttp's EVHTTP_REQ_* bits). */

#endif
