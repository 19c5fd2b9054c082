/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "http-internal.h"
#include "log-internal.h"

struct srv_http_listener {
	struct evhttp *http;
	srv_http_admit admit;
	const struct srv_http_route *routes;
	size_t n_routes;
	void *ctx;
	uint16_t port;
};

bool srv_id_valid(const char *id, size_t max_len)
{
	size_t i;

	if (id == NULL || id[0] == '\0' || id[0] == '.' || id[0] == '-' || id[0] == '_')
		return false;
	for (i = 0; id[i] != '\0'; i++) {
		char c = id[i];

		if (i >= max_len)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 206:
		return "Partial Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 416:
		return "Range Not Satisfiable";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Error";
	}
}

/*
 * The reply alone in out, one chain of len bytes, goes into the socket now
 * as one TLS record, and evhttp hears that it was written (its write
 * callback: the request is done, the connection reads the next one). The
 * bufferevent would write it on the next loop turn instead, after
 * watching the socket for writability: an epoll_wait turn and two
 * epoll_ctl per reply. When the record cannot go out now (a full socket,
 * an error) nothing changes: the bufferevent writes the same bytes from
 * the same place when the socket is writable, as OpenSSL's retry
 * requires, or sees the error itself.
 */
static void write_now(struct bufferevent *bev, struct evbuffer *out, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	bufferevent_data_cb writecb = NULL;
	void *cbarg = NULL;
	const void *data = evbuffer_pullup(out, -1);

	if (ssl == NULL || data == NULL || !SSL_is_init_finished(ssl))
		return;
	ERR_clear_error();
	if (SSL_write(ssl, data, (int)len) != (int)len) {
		ERR_clear_error(); /* the bufferevent's SSL_write reports it again */
		return;
	}
	evbuffer_drain(out, len);
	bufferevent_getcb(bev, NULL, &writecb, NULL, &cbarg);
	if (writecb != NULL)
		writecb(bev, cbarg); /* may free the request and the connection */
}

void srv_http_send_reply(struct evhttp_request *req, int status, const char *reason,
			 struct evbuffer *body)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = NULL;
	struct evbuffer *out = NULL;
	size_t len;

	/* only a reply alone in the buffer: a record the TLS layer is still
	 * retrying must keep its bytes where they are */
	if (evcon != NULL) {
		bev = evhttp_connection_get_bufferevent(evcon);
		out = bufferevent_get_output(bev);
		if (evbuffer_get_length(out) != 0)
			out = NULL;
	}
	evhttp_send_reply(req, status, reason, body); /* queues; req may not be touched after */
	if (out == NULL)
		return;
	len = evbuffer_get_length(out);
	if (len > 0 && len <= SRV_HTTP_ONE_RECORD_BYTES)
		write_now(bev, out, len);
}

void srv_http_send_error(struct evhttp_request *req, int status, const char *code,
			 const char *message)
{
	struct evbuffer *body = evbuffer_new();
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);

	evhttp_add_header(headers, "Content-Type", "application/json");
	evhttp_add_header(headers, "Cache-Control", "no-store");
	if (body != NULL)
		evbuffer_add_printf(body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
				    code, message);
	srv_http_send_reply(req, status, reason_phrase(status), body);
	if (body != NULL)
		evbuffer_free(body);
}

enum ota_err srv_http_peer_cn(struct evhttp_request *req, char *out, size_t cap)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	X509_NAME *name;
	X509_NAME_ENTRY *entry;
	ASN1_STRING *data;
	X509 *cert;
	SSL *ssl;
	int idx, len;

	if (evcon == NULL)
		return OTA_ERR_NOT_FOUND;
	bev = evhttp_connection_get_bufferevent(evcon);
	ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
	if (ssl == NULL)
		return OTA_ERR_NOT_FOUND;
	cert = SSL_get0_peer_certificate(ssl);
	if (cert == NULL || !srv_tls_peer_verified(ssl))
		return OTA_ERR_NOT_FOUND;
	name = X509_get_subject_name(cert);
	idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (idx < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
		return OTA_ERR_NOT_FOUND; /* none, or ambiguous */
	entry = X509_NAME_get_entry(name, idx);
	data = X509_NAME_ENTRY_get_data(entry);
	len = ASN1_STRING_length(data);
	if (len <= 0 || (size_t)len >= cap)
		return OTA_ERR_NOT_FOUND;
	memcpy(out, ASN1_STRING_get0_data(data), (size_t)len);
	out[len] = '\0';
	if (strlen(out) != (size_t)len)
		return OTA_ERR_NOT_FOUND;
	return OTA_OK;
}

static void dispatch_cb(struct evhttp_request *req, void *arg)
{
	struct srv_http_listener *listener = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);

	if (path == NULL) {
		srv_http_send_error(req, 400, "bad_request", "no path");
		return;
	}
	if (listener->admit != NULL && !listener->admit(req, listener->ctx))
		return;
	for (size_t i = 0; i < listener->n_routes; i++) {
		const struct srv_http_route *route = &listener->routes[i];
		size_t prefix_len = strlen(route->prefix);

		if (strncmp(path, route->prefix, prefix_len) != 0)
			continue;
		if (!((unsigned)method & route->methods)) {
			srv_http_send_error(req, 405, "method_not_allowed", "method not allowed");
			return;
		}
		route->handler(req, path + prefix_len, listener->ctx);
		return;
	}
	srv_http_send_error(req, 404, "not_found", "no such resource");
}

enum ota_err srv_http_listener_new(struct event_base *base, const struct srv_http_opts *opts,
				   struct srv_http_listener **ret_listener)
{
	struct srv_http_listener *listener;
	struct timeval timeout = {(time_t)opts->timeout_sec, 0};
	unsigned methods = 0;
	enum ota_err err;

	if (opts->conns == NULL || opts->limits == NULL)
		return OTA_ERR_INVALID_ARG;
	listener = calloc(1, sizeof(*listener));
	if (listener == NULL)
		return OTA_ERR_NOMEM;
	listener->admit = opts->admit;
	listener->routes = opts->routes;
	listener->n_routes = opts->n_routes;
	listener->ctx = opts->ctx;
	listener->http = evhttp_new(base);
	if (listener->http == NULL) {
		free(listener);
		return OTA_ERR_NOMEM;
	}
	for (size_t i = 0; i < opts->n_routes; i++)
		methods |= opts->routes[i].methods;
	evhttp_set_allowed_methods(listener->http, (ev_uint16_t)methods);
	evhttp_set_timeout_tv(listener->http, &timeout);
	evhttp_set_max_headers_size(listener->http, (ev_ssize_t)opts->max_header_bytes);
	evhttp_set_max_body_size(listener->http, (ev_ssize_t)opts->max_body_bytes);
	evhttp_set_default_content_type(listener->http, "application/octet-stream");
	err = srv_conns_listen(opts->conns, opts->kind, listener->http, opts->addr, opts->port,
			       opts->tls, opts->limits, dispatch_cb, listener, &listener->port);
	if (err != OTA_OK) {
		srv_http_listener_free(listener);
		return err;
	}
	*ret_listener = listener;
	return OTA_OK;
}

uint16_t srv_http_listener_port(const struct srv_http_listener *listener)
{
	return listener->port;
}

void srv_http_listener_free(struct srv_http_listener *listener)
{
	if (listener == NULL)
		return;
	if (listener->http != NULL)
		evhttp_free(listener->http);
	free(listener);
}
