/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Read-only views that the operator console (and any poller) follows: a
 * campaign's event history and its failures by error name, a fleet
 * summary by model / version / state, and a device search with the
 * dynamic-group filter language. Their answers, and the campaign status,
 * carry an ETag: a poller that sends it back in If-None-Match gets 304 with
 * no body while nothing changed (docs/console.md says why polling, not
 * server-sent events).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "db-internal.h"
#include "hex-internal.h"
#include "webapi-internal.h"

/* Seconds since last_seen under which a device counts as online (default). */
#define WA_ONLINE_SECONDS_DEFAULT 600u
/* Distinct (model, version, state) rows of one fleet summary. */
#define WA_FLEET_BREAKDOWN_MAX 500

/* The statements (migrations/code/api_observe.sql), in one table. */
enum { STMT_EVENTS, STMT_FAILURES, STMT_FLEET, STMT_DEVICES };
static const struct srv_db_stmt stmts[] = {
	[STMT_EVENTS] = {"wa_campaign_events", "SELECT api_campaign_events($1, $2, $3)", 3},
	[STMT_FAILURES] = {"wa_campaign_failures", "SELECT api_campaign_failures($1)", 1},
	[STMT_FLEET] = {"wa_fleet_summary", "SELECT api_fleet_summary($1, $2)", 2},
	/* migrations/code/api_devices.sql */
	[STMT_DEVICES] = {"wa_fleet_devices", "SELECT api_device_search($1, $2, $3, $4)", 4},
};

/* ---- ETag ------------------------------------------------------------- */

bool wa_etag_not_modified(struct wa_ctx *ctx, const char *text)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char hex[2 * 16 + 1];
	char tag[sizeof(hex) + 2];
	const char *inm;

	if (EVP_Digest(text, strlen(text), md, &md_len, EVP_sha256(), NULL) != 1 || md_len < 16)
		return false; /* no ETag: the client gets the body */
	srv_hex_encode(md, 16, hex);
	snprintf(tag, sizeof(tag), "\"%s\"", hex);
	wa_add_header(ctx, "ETag", tag);
	inm = wa_header(ctx, "If-None-Match");
	/* one tag, or a list of them: a match anywhere counts (RFC 9110 13.1.2) */
	return inm != NULL && (strstr(inm, tag) != NULL || strcmp(inm, "*") == 0);
}

/* ---- handlers --------------------------------------------------------- */

static void reply_found(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		wa_reply_error(ctx, 404, "not_found", "no such campaign", NULL);
		return;
	}
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

static bool campaign_id_ok(struct wa_ctx *ctx)
{
	if (!wa_id_valid(ctx->path_arg, 128)) {
		wa_reply_error(ctx, 400, "bad_request", "not a campaign id", "campaign_id");
		return false;
	}
	return true;
}

static void wa_h_campaigns_events(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"cursor", "limit", NULL};
	const char *params[3];
	char limit[WA_LIMIT_TEXT_BYTES];
	uint64_t id;

	if (!wa_query_only(ctx, allowed) || !campaign_id_ok(ctx) || !wa_query_limit(ctx, limit))
		return;
	params[0] = ctx->path_arg;
	params[1] = wa_query(ctx, "cursor");
	if (params[1] != NULL && !wa_parse_u64(params[1], 0, INT64_MAX, &id)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[2] = limit;
	ctx->etag = true;
	wa_db_stmt(ctx, &stmts[STMT_EVENTS], params, reply_found);
}

static void wa_h_campaigns_failures(struct wa_ctx *ctx)
{
	static const char *const none[] = {NULL};
	const char *params[1] = {ctx->path_arg};

	if (!wa_query_only(ctx, none) || !campaign_id_ok(ctx))
		return;
	ctx->etag = true;
	wa_db_stmt(ctx, &stmts[STMT_FAILURES], params, reply_found);
}

static void wa_h_fleet_summary(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"online_seconds", NULL};
	const char *online = NULL;
	char seconds[SRV_U64_TEXT_BYTES], rows[SRV_U32_TEXT_BYTES];
	uint64_t v = WA_ONLINE_SECONDS_DEFAULT;
	const char *params[2];

	if (!wa_query_only(ctx, allowed))
		return;
	online = wa_query(ctx, "online_seconds");
	if (online != NULL && !wa_parse_u64(online, 1, 30u * 86400u, &v)) {
		wa_reply_error(ctx, 400, "bad_request", "seconds in 1..2592000", "online_seconds");
		return;
	}
	snprintf(seconds, sizeof(seconds), "%llu", (unsigned long long)v);
	snprintf(rows, sizeof(rows), "%d", WA_FLEET_BREAKDOWN_MAX);
	params[0] = seconds;
	params[1] = rows;
	ctx->etag = true;
	wa_db_stmt(ctx, &stmts[STMT_FLEET], params, wa_reply_db_text);
}

/* A filter the compiler (filter.sql) refused is a 400 naming why. */
static void fleet_devices_done(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (!wa_filter_error(ctx, err, res))
		wa_reply_db_text(ctx, err, res);
}

/*
 * GET /api/v1/fleet/devices?filter=JSON&q=TEXT: the GroupFilter language of
 * dynamic groups (compiled by filter.sql, its values never SQL text), plus
 * a device id substring; paged by device id like GET /api/v1/devices.
 */
static void wa_h_fleet_devices(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"filter", "q", "cursor", "limit", NULL};
	const char *params[4];
	const char *text, *cursor, *q;
	char limit[WA_LIMIT_TEXT_BYTES];
	json_t *filter;
	json_error_t jerr;

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	cursor = wa_query(ctx, "cursor");
	if (cursor != NULL && !wa_id_valid(cursor, 64)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	q = wa_query(ctx, "q");
	if (q != NULL && !wa_text_valid(q)) {
		wa_reply_error(ctx, 400, "bad_request", "1..128 printable characters", "q");
		return;
	}
	text = wa_query(ctx, "filter");
	if (text != NULL) {
		/* the same JSON the database would take, and duplicate keys refused */
		filter = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
		if (filter == NULL) {
			wa_reply_error(ctx, 400, "bad_request", "filter is not JSON", "filter");
			return;
		}
		json_decref(filter);
	}
	params[0] = text;
	params[1] = q;
	params[2] = cursor;
	params[3] = limit;
	wa_db_stmt(ctx, &stmts[STMT_DEVICES], params, fleet_devices_done);
}

/* ---- the resource ----------------------------------------------------- */

static const struct wa_route routes[] = {
	{EVHTTP_REQ_GET, "/api/v1/campaigns/*/events", WA_ROLE_VIEWER, WA_BODY_NONE,
	 wa_h_campaigns_events},
	{EVHTTP_REQ_GET, "/api/v1/campaigns/*/failures", WA_ROLE_VIEWER, WA_BODY_NONE,
	 wa_h_campaigns_failures},
	{EVHTTP_REQ_GET, "/api/v1/fleet", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_fleet_summary},
	{EVHTTP_REQ_GET, "/api/v1/fleet/devices", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_fleet_devices},
};

const struct wa_resource wa_observe_resource = {WA_TABLE(routes), WA_TABLE(stmts)};
