/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gathering write BIO under a TLS connection's bufferevent (wbio.c).
 * OpenSSL writes one TLS record per BIO_write; this BIO keeps the records
 * of one burst (what the bufferevent writes in one callback) and hands the
 * kernel up to SRV_WBIO_GATHER_BYTES of them in one writev(2). Nothing
 * waits for more data: what is gathered leaves at the latest when the
 * loop is done with the current callback, and at once on BIO_flush (the
 * end of a handshake flight, an alert, close_notify).
 */
#ifndef SRV_WBIO_INTERNAL_H
#define SRV_WBIO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

/* Up to this many bytes per write(2): four full TLS records. */
#define SRV_WBIO_GATHER_BYTES (64u * 1024u)

/*
 * Puts the gathering BIO under ssl's writes (its reads stay on the
 * socket). bev is the socket bufferevent_openssl of ssl, its descriptor
 * set already (a bufferevent_setfd replaces the BIOs). Returns false,
 * changing nothing, when there is no socket BIO or no memory: ssl then
 * writes as before.
 */
bool srv_wbio_attach(SSL *ssl, struct bufferevent *bev);

/* Writes what the BIO under ssl holds, without waiting; returns the bytes still held. */
size_t srv_wbio_flush(SSL *ssl);

/*
 * The connection is being let go (the guard's conn_free, right before
 * evhttp frees its bufferevent): the BIO writes what it can without
 * waiting, drops its event and gives back the write callback it held; from
 * then on it calls nothing of the bufferevent, whose free is in progress
 * (wbio.c, bev_alive). What the socket did not take is dropped with it.
 */
void srv_wbio_detach(SSL *ssl);

#endif
