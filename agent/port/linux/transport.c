/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Linux port's transport operations (fleetota/port.h): the HTTPS
 * client moves the bytes; what to fetch, what to believe and when to
 * retry is the core's (agent/src/online.c).
 */
#include <string.h>
#include <time.h>

#include "ota_https.h"
#include "ota_linux.h"

enum ota_err ota_linux_fetch(void *ctx, const struct ota_fetch_request *req, ota_port_sink_fn sink,
			     void *sink_arg, struct ota_fetch_result *ret)
{
	struct ota_linux_port *lx = ctx;
	struct ota_https_response resp = {0};
	memset(ret, 0, sizeof(*ret));
	if (!lx->https || !lx->server_url)
		return OTA_ERR_TRANSPORT;
	enum ota_err err = ota_https_get(lx->https, lx->server_url, req->path, req->offset,
					 req->max_bytes, sink, sink_arg, &resp);
	ret->status = resp.status;
	ret->body_bytes = resp.body_bytes;
	ret->retry_after_s = resp.retry_after_s;
	memcpy(ret->detail, resp.tls_alert, sizeof(ret->detail));
	return err;
}

void ota_linux_wait(void *ctx, unsigned seconds)
{
	const struct ota_linux_port *lx = ctx;
	const struct timespec step = {.tv_sec = 0, .tv_nsec = 100L * 1000000L};
	for (unsigned i = 0; i < seconds * 10u && !(lx->stop && *lx->stop); i++)
		nanosleep(&step, NULL);
}
