/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log-internal.h"
#include "srv-limits.h"
#include "security-internal.h"
#include "server-internal.h"

/* The statement (migrations/code/security.sql). */
static const struct srv_db_stmt stmt_event = {"sec_event", "SELECT security_event($1, $2, $3)", 3};

enum ota_err srv_security_prepare(struct srv_db *db)
{
	return srv_db_prepare_stmts(db, &stmt_event, 1);
}

struct event_ctx {
	char device[SRV_MAX_DEVICE_ID + 1];
	enum srv_security_kind kind;
};

static void event_cb(void *arg, enum ota_err err, const PGresult *res)
{
	struct event_ctx *ctx = arg;

	if (err == OTA_OK && PQntuples(res) == 1) {
		if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
			srv_log(SRV_LOG_WARN, "device %s is flagged suspect (last event: %s)",
				ctx->device, srv_security_kind_name(ctx->kind));
	} else if (err != OTA_ERR_BUSY) {
		srv_log(SRV_LOG_ERROR, "security event %s of %s not recorded: %s",
			srv_security_kind_name(ctx->kind), ctx->device,
			res != NULL ? PQresultErrorMessage(res) : ota_err_name(err));
	}
	free(ctx);
}

void srv_security_record(struct srv_server *srv, const char *device, enum srv_security_kind kind,
			 const char *detail)
{
	struct event_ctx *ctx;
	const char *params[3];

	if ((unsigned)kind >= SRV__SECURITY_COUNT)
		return;
	srv->metrics.security_events[kind]++;
	srv_log(SRV_LOG_WARN, "security event %s: device %s: %s", srv_security_kind_name(kind),
		device, detail);
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return;
	snprintf(ctx->device, sizeof(ctx->device), "%s", device);
	ctx->kind = kind;
	params[0] = ctx->device;
	params[1] = srv_security_kind_name(kind);
	params[2] = detail;
	/* fail fast: a retried call after a lost connection could audit twice */
	if (srv_db_exec_stmt(srv->db, &stmt_event, params, false, SRV_DB_FAIL_FAST, event_cb,
			     ctx) != OTA_OK) {
		srv_log(SRV_LOG_ERROR, "security event %s of %s not recorded: database busy",
			srv_security_kind_name(kind), device);
		free(ctx);
	}
}
