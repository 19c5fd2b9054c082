/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Campaigns, key-rotation coverage and retention through the REST API. The
 * rollout engine is SQL (migrations/code/rollout_*.sql): these handlers only
 * check the request's shape, call its functions with the caller as actor
 * (they write the audit rows) and return the JSON the database builds.
 * Engine errors carry SQLSTATEs of class FO, mapped to HTTP here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-internal.h"
#include "webapi-internal.h"

/*
 * The statements, in one table: the engine's functions (rollout_*.sql) and
 * the API's reads (api_campaigns.sql).
 */
enum { STMT_LIST, STMT_CREATE, STMT_GET, STMT_DEVICES, STMT_ACTION, STMT_KEYROTATION, STMT_PURGE };
static const struct srv_db_stmt stmts[] = {
	[STMT_LIST] = {"wa_campaign_list", "SELECT api_campaign_list($1, $2, $3)", 3},
	[STMT_CREATE] = {"wa_campaign_create", "SELECT rollout_api_create($1::jsonb, $2)::text", 2},
	[STMT_GET] = {"wa_campaign_get", "SELECT rollout_status($1)::text", 1},
	[STMT_DEVICES] = {"wa_campaign_devices", "SELECT api_campaign_devices($1, $2, $3, $4)", 4},
	/* $2 = start | approve | pause | resume | cancel */
	[STMT_ACTION] = {"wa_campaign_action", "SELECT rollout_api_action($1, $2, $3)::text", 3},
	[STMT_KEYROTATION] = {"wa_keyrotation", "SELECT api_keyrotation($1, $2)", 2},
	[STMT_PURGE] = {"wa_retention_purge",
			"SELECT rollout_purge($1::timestamptz, $2::int, $3)::text", 3},
};

static int campaign_status_from_sqlstate(const char *sqlstate, const char **ret_code)
{
	static const struct {
		const char *sqlstate;
		int status;
		const char *code;
	} map[] = {
		{"FO404", 404, "not_found"},
		{"FO409", 409, "conflict"},
		{"FO403", 403, "forbidden"},
		{"FO422", 422, "invalid_campaign"},
		{"FO412", 409, "keyrotation_coverage"},
		{"22007", 400, "bad_request"},
		{"22008", 400, "bad_request"},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (sqlstate != NULL && strcmp(sqlstate, map[i].sqlstate) == 0) {
			*ret_code = map[i].code;
			return map[i].status;
		}
	}
	return 0;
}

/* Engine refusals become 4xx with the engine's message; anything else 5xx. */
static void reply_engine_error(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	const char *code = NULL;
	int status =
		err == OTA_ERR_STORAGE ? campaign_status_from_sqlstate(wa_sqlstate(res), &code) : 0;

	if (status != 0) {
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		char field[WA_CAMPAIGN_FIELD_BYTES] = "";

		if (msg == NULL)
			msg = code;
		/* FO422 messages start with the field: "stages[1].percent: ..." */
		if (status == 422) {
			size_t n = strcspn(msg, ":");

			if (msg[n] == ':' && n < sizeof(field) && strcspn(msg, " ") > n) {
				memcpy(field, msg, n);
				field[n] = '\0';
			}
		}
		wa_reply_error(ctx, status, code, msg, field[0] != '\0' ? field : NULL);
		return;
	}
	wa_reply_db_error(ctx, err, res);
}

static void reply_row(struct wa_ctx *ctx, enum ota_err err, const PGresult *res, int status)
{
	if (err != OTA_OK) {
		reply_engine_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		wa_reply_error(ctx, 404, "not_found", "no such campaign", NULL);
		return;
	}
	wa_reply_text(ctx, status, PQgetvalue(res, 0, 0));
}

static void reply_200(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	reply_row(ctx, err, res, 200);
}

static void reply_201(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	reply_row(ctx, err, res, 201);
}

static bool campaign_arg(struct wa_ctx *ctx, const char *const *allowed)
{
	static const char *const none[] = {NULL};

	if (!wa_query_only(ctx, allowed != NULL ? allowed : none))
		return false;
	if (!wa_id_valid(ctx->path_arg, WA_MAX_OBJECT_ID)) {
		wa_reply_error(ctx, 400, "bad_request", "not a campaign id", "campaign_id");
		return false;
	}
	return true;
}

static bool state_valid(const char *s, const char *const *states)
{
	for (size_t i = 0; states[i] != NULL; i++)
		if (strcmp(s, states[i]) == 0)
			return true;
	return false;
}

static void wa_h_campaigns_list(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"state", "cursor", "limit", NULL};
	static const char *const states[] = {"draft",	  "awaiting_approval", "running", "paused",
					     "completed", "cancelled",	       "failed",  NULL};
	const char *params[3];
	char limit[WA_LIMIT_TEXT_BYTES];

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	params[0] = wa_query(ctx, "state");
	if (params[0] != NULL && !state_valid(params[0], states)) {
		wa_reply_error(ctx, 400, "bad_request", "not a campaign state", "state");
		return;
	}
	params[1] = wa_query(ctx, "cursor");
	if (params[1] != NULL && !wa_id_valid(params[1], WA_MAX_OBJECT_ID)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[2] = limit;
	wa_db_stmt(ctx, &stmts[STMT_LIST], params, reply_200);
}

static void wa_h_campaigns_create(struct wa_ctx *ctx)
{
	static const char *const none[] = {NULL};
	const char *params[2];
	char *text;

	if (!wa_query_only(ctx, none))
		return;
	text = json_dumps(ctx->json, JSON_COMPACT);
	if (text == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	params[0] = text;
	params[1] = ctx->actor;
	wa_db_stmt(ctx, &stmts[STMT_CREATE], params, reply_201);
	free(text);
}

static void wa_h_campaigns_get(struct wa_ctx *ctx)
{
	const char *params[1] = {ctx->path_arg};

	if (!campaign_arg(ctx, NULL))
		return;
	ctx->etag = true; /* pollers: If-None-Match -> 304 while nothing changed */
	wa_db_stmt(ctx, &stmts[STMT_GET], params, reply_200);
}

static void wa_h_campaigns_devices(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"state", "cursor", "limit", NULL};
	static const char *const states[] = {"pending",	  "notified", "downloading", "installed",
					     "confirmed", "failed",   "timed_out",   "superseded",
					     "cancelled", NULL};
	const char *params[4];
	char limit[WA_LIMIT_TEXT_BYTES];

	if (!campaign_arg(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	params[0] = ctx->path_arg;
	params[1] = wa_query(ctx, "state");
	if (params[1] != NULL && !state_valid(params[1], states)) {
		wa_reply_error(ctx, 400, "bad_request", "not a device state", "state");
		return;
	}
	params[2] = wa_query(ctx, "cursor");
	if (params[2] != NULL && !wa_id_valid(params[2], WA_MAX_DEVICE_ID)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[3] = limit;
	wa_db_stmt(ctx, &stmts[STMT_DEVICES], params, reply_200);
}

/* POST /api/v1/campaigns/{id}/ACTION: the action is the route's last segment. */
static void wa_h_campaigns_action(struct wa_ctx *ctx)
{
	static const char *const actions[] = {"start",	"approve", "pause",
					      "resume", "cancel",  NULL};
	const char *uri = evhttp_request_get_uri(ctx->req);
	char action[WA_CAMPAIGN_ACTION_BYTES] = "";
	const char *params[3];

	if (!campaign_arg(ctx, NULL))
		return;
	if (uri != NULL) {
		size_t path_len = strcspn(uri, "?");
		size_t start = path_len;

		while (start > 0 && uri[start - 1] != '/')
			start--;
		if (path_len - start < sizeof(action)) {
			memcpy(action, uri + start, path_len - start);
			action[path_len - start] = '\0';
		}
	}
	if (!state_valid(action, actions)) {
		wa_reply_error(ctx, 404, "not_found", "no such action", NULL);
		return;
	}
	params[0] = ctx->path_arg;
	params[1] = action;
	params[2] = ctx->actor;
	wa_db_stmt(ctx, &stmts[STMT_ACTION], params, reply_200);
}

static void wa_h_keyrotation(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"min_version", "limit", NULL};
	const char *params[2];
	const char *min_version = wa_query(ctx, "min_version");
	uint64_t v;
	char limit[WA_LIMIT_TEXT_BYTES];

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	if (min_version != NULL && !wa_parse_u64(min_version, 1, INT64_MAX, &v)) {
		wa_reply_error(ctx, 400, "bad_request", "a KeyList version", "min_version");
		return;
	}
	params[0] = min_version;
	params[1] = limit;
	wa_db_stmt(ctx, &stmts[STMT_KEYROTATION], params, reply_200);
}

static void wa_h_retention_purge(struct wa_ctx *ctx)
{
	static const char *const none[] = {NULL};
	const json_t *before = json_object_get(ctx->json, "before");
	const json_t *max_rows = json_object_get(ctx->json, "max_rows");
	const char *key;
	json_t *value;
	char rows[SRV_U64_TEXT_BYTES] = "10000";
	const char *params[3];

	if (!wa_query_only(ctx, none))
		return;
	json_object_foreach(ctx->json, key, value)
	{
		if (strcmp(key, "before") != 0 && strcmp(key, "max_rows") != 0) {
			wa_reply_error(ctx, 400, "bad_request", "unknown field", key);
			return;
		}
	}
	if (before != NULL && (!json_is_string(before) || json_string_length(before) == 0 ||
			       json_string_length(before) > 40)) {
		wa_reply_error(ctx, 400, "bad_request", "an RFC 3339 time", "before");
		return;
	}
	if (max_rows != NULL) {
		if (!json_is_integer(max_rows) || json_integer_value(max_rows) < 1 ||
		    json_integer_value(max_rows) > 1000000) {
			wa_reply_error(ctx, 400, "bad_request", "1..1000000", "max_rows");
			return;
		}
		snprintf(rows, sizeof(rows), "%lld", (long long)json_integer_value(max_rows));
	}
	params[0] = before != NULL ? json_string_value(before) : NULL;
	params[1] = rows;
	params[2] = ctx->actor;
	wa_db_stmt(ctx, &stmts[STMT_PURGE], params, reply_200);
}

/* ---- the resource: campaigns, key rotation, retention ------------------ */

static const struct wa_route routes[] = {
	{EVHTTP_REQ_GET, "/api/v1/campaigns", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_campaigns_list},
	{EVHTTP_REQ_POST, "/api/v1/campaigns", WA_ROLE_OPERATOR, WA_BODY_JSON,
	 wa_h_campaigns_create},
	{EVHTTP_REQ_GET, "/api/v1/campaigns/*", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_campaigns_get},
	{EVHTTP_REQ_GET, "/api/v1/campaigns/*/devices", WA_ROLE_VIEWER, WA_BODY_NONE,
	 wa_h_campaigns_devices},
	{EVHTTP_REQ_POST, "/api/v1/campaigns/*/start", WA_ROLE_OPERATOR, WA_BODY_NONE,
	 wa_h_campaigns_action},
	{EVHTTP_REQ_POST, "/api/v1/campaigns/*/approve", WA_ROLE_OPERATOR, WA_BODY_NONE,
	 wa_h_campaigns_action},
	{EVHTTP_REQ_POST, "/api/v1/campaigns/*/pause", WA_ROLE_OPERATOR, WA_BODY_NONE,
	 wa_h_campaigns_action},
	{EVHTTP_REQ_POST, "/api/v1/campaigns/*/resume", WA_ROLE_OPERATOR, WA_BODY_NONE,
	 wa_h_campaigns_action},
	{EVHTTP_REQ_POST, "/api/v1/campaigns/*/cancel", WA_ROLE_OPERATOR, WA_BODY_NONE,
	 wa_h_campaigns_action},
	{EVHTTP_REQ_GET, "/api/v1/keyrotation", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_keyrotation},
	{EVHTTP_REQ_POST, "/api/v1/retention/purge", WA_ROLE_ADMIN, WA_BODY_JSON,
	 wa_h_retention_purge},
};

const struct wa_resource wa_campaigns_resource = {WA_TABLE(routes), WA_TABLE(stmts)};
