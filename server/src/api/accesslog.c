/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The REST API's access log: one line per answered request. It names the
 * caller by token id and name (wa_ctx.actor), never by the token, and logs
 * the path without its query string.
 */
#include <stdlib.h>

#include "log-internal.h"
#include "webapi-internal.h"

static const char *method_name(enum evhttp_cmd_type method)
{
	switch (method) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	default:
		return "OTHER";
	}
}

void wa_access_log(const struct wa_ctx *ctx, int status, size_t bytes, double duration_ms)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ctx->req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	struct evhttp_connection *conn = evhttp_request_get_connection(ctx->req);
	char *peer = NULL;
	ev_uint16_t peer_port = 0;
	struct srv_log_access access = {
		.method = method_name(ctx->method),
		.path = path != NULL ? path : "?",
		.status = status,
		.bytes = bytes,
		.duration_ms = duration_ms,
		.actor = ctx->actor,
		.peer = "?",
	};

	if (conn != NULL)
		evhttp_connection_get_peer(conn, &peer, &peer_port);
	if (peer != NULL)
		access.peer = peer;
	srv_log_access(&access);
}
