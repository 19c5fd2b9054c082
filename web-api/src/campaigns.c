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

#include "campaigns-internal.h"
#include "db-internal.h"
#include "webapi-internal.h"

static const char sql_list[] =
	"SELECT json_build_object('items', COALESCE(json_agg(json_build_object("
	"'id', k.campaign_id, 'kind', k.kind, 'artifact', k.artifact_id, "
	"'keylist_version', k.keylist_version, 'rootlist_version', k.rootlist_version, "
	"'state', k.state, 'reason', k.state_reason, 'current_stage', k.current_stage, "
	"'priority', k.priority, 'created_by', k.created_by, 'created_at', k.created_at) "
	"ORDER BY k.campaign_id), '[]'::json), 'next_cursor', "
	"CASE WHEN count(*) = $3::int THEN max(k.campaign_id) END)::text FROM ("
	"SELECT * FROM campaigns WHERE ($1::text IS NULL OR state = $1) "
	"AND campaign_id > COALESCE($2::text, '') ORDER BY campaign_id LIMIT $3::int) k";

static const char sql_create[] = "SELECT rollout_api_create($1::jsonb, $2)::text";

static const char sql_get[] = "SELECT rollout_status($1)::text";

static const char sql_devices[] =
	"SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM campaigns WHERE campaign_id = $1) THEN NULL "
	"ELSE (SELECT json_build_object('items', COALESCE(json_agg(json_build_object("
	"'device_id', m.device_id, 'stage', m.stage_no, 'step', m.step, 'state', m.state, "
	"'error', m.error, 'already', m.already, 'reconciled', m.reconciled, "
	"'notify_count', m.notify_count, 'notified_at', m.notified_at, "
	"'last_report_at', m.last_report_at, 'reported_version_code', "
	"m.reported_version_code, 'updated_at', m.updated_at, 'attempts', m.attempts, "
	"'retry_at', m.retry_at) ORDER BY m.device_id), "
	"'[]'::json), 'next_cursor', CASE WHEN count(*) = $4::int THEN max(m.device_id) END)"
	"::text FROM (SELECT * FROM campaign_devices WHERE campaign_id = $1 "
	"AND ($2::text IS NULL OR state = $2) AND device_id > COALESCE($3::text, '') "
	"ORDER BY device_id LIMIT $4::int) m) END";

/* $2 = start | approve | pause | resume | cancel */
static const char sql_action[] = "SELECT rollout_api_action($1, $2, $3)::text";

static const char sql_keyrotation[] =
	"SELECT json_build_object('min_share', rollout_setting('keyrotation_min_share', "
	"'0.98')::numeric, 'latest_keylist', (SELECT max(version) FROM keylists), "
	"'coverage', COALESCE((SELECT json_agg(json_build_object('keylist_version', "
	"c.keylist_version, 'devices', c.devices, 'share', c.share, 'last_seen', c.last_seen) "
	"ORDER BY c.keylist_version) FROM rollout_keylist_coverage() c), '[]'::json), "
	"'stragglers', COALESCE((SELECT json_agg(json_build_object('device_id', s.device_id, "
	"'keylist_version', s.keylist_version, 'model', s.model, 'version', s.version, "
	"'last_seen', s.last_seen)) FROM rollout_keylist_stragglers(COALESCE($1::bigint, "
	"(SELECT max(version) FROM keylists), 0), $2::int) s), '[]'::json))::text";

static const char sql_purge[] = "SELECT rollout_purge($1::timestamptz, $2::int, $3)::text";

enum ota_err wa_campaigns_prepare(struct srv_db *db)
{
	enum ota_err err = srv_db_prepare(db, "wa_campaign_list", sql_list);

	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_campaign_create", sql_create);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_campaign_get", sql_get);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_campaign_devices", sql_devices);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_campaign_action", sql_action);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_keyrotation", sql_keyrotation);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_retention_purge", sql_purge);
	return err;
}

int wa_campaign_status_from_sqlstate(const char *sqlstate, const char **ret_code)
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
	int status = err == OTA_ERR_STORAGE
			     ? wa_campaign_status_from_sqlstate(wa_sqlstate(res), &code)
			     : 0;

	if (status != 0) {
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		char field[64] = "";

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
	if (!wa_id_valid(ctx->path_arg, 128)) {
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

void wa_h_campaigns_list(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"state", "cursor", "limit", NULL};
	static const char *const states[] = {"draft",	  "awaiting_approval", "running", "paused",
					     "completed", "cancelled",	       "failed",  NULL};
	const char *params[3];
	char limit[16];

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	params[0] = wa_query(ctx, "state");
	if (params[0] != NULL && !state_valid(params[0], states)) {
		wa_reply_error(ctx, 400, "bad_request", "not a campaign state", "state");
		return;
	}
	params[1] = wa_query(ctx, "cursor");
	if (params[1] != NULL && !wa_id_valid(params[1], 128)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[2] = limit;
	wa_db(ctx, "wa_campaign_list", 3, params, reply_200);
}

void wa_h_campaigns_create(struct wa_ctx *ctx)
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
	wa_db(ctx, "wa_campaign_create", 2, params, reply_201);
	free(text);
}

void wa_h_campaigns_get(struct wa_ctx *ctx)
{
	const char *params[1] = {ctx->path_arg};

	if (!campaign_arg(ctx, NULL))
		return;
	ctx->etag = true; /* pollers: If-None-Match -> 304 while nothing changed */
	wa_db(ctx, "wa_campaign_get", 1, params, reply_200);
}

void wa_h_campaigns_devices(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"state", "cursor", "limit", NULL};
	static const char *const states[] = {"pending",	  "notified", "downloading", "installed",
					     "confirmed", "failed",   "timed_out",   "superseded",
					     "cancelled", NULL};
	const char *params[4];
	char limit[16];

	if (!campaign_arg(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	params[0] = ctx->path_arg;
	params[1] = wa_query(ctx, "state");
	if (params[1] != NULL && !state_valid(params[1], states)) {
		wa_reply_error(ctx, 400, "bad_request", "not a device state", "state");
		return;
	}
	params[2] = wa_query(ctx, "cursor");
	if (params[2] != NULL && !wa_id_valid(params[2], 64)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[3] = limit;
	wa_db(ctx, "wa_campaign_devices", 4, params, reply_200);
}

/* POST /api/v1/campaigns/{id}/ACTION: the action is the route's last segment. */
void wa_h_campaigns_action(struct wa_ctx *ctx)
{
	static const char *const actions[] = {"start",	"approve", "pause",
					      "resume", "cancel",  NULL};
	const char *uri = evhttp_request_get_uri(ctx->req);
	char action[16] = "";
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
	wa_db(ctx, "wa_campaign_action", 3, params, reply_200);
}

void wa_h_keyrotation(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"min_version", "limit", NULL};
	const char *params[2];
	const char *min_version = wa_query(ctx, "min_version");
	uint64_t v;
	char limit[16];

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	if (min_version != NULL && !wa_parse_u64(min_version, 1, INT64_MAX, &v)) {
		wa_reply_error(ctx, 400, "bad_request", "a KeyList version", "min_version");
		return;
	}
	params[0] = min_version;
	params[1] = limit;
	wa_db(ctx, "wa_keyrotation", 2, params, reply_200);
}

void wa_h_retention_purge(struct wa_ctx *ctx)
{
	static const char *const none[] = {NULL};
	const json_t *before = json_object_get(ctx->json, "before");
	const json_t *max_rows = json_object_get(ctx->json, "max_rows");
	const char *key;
	json_t *value;
	char rows[24] = "10000";
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
	wa_db(ctx, "wa_retention_purge", 3, params, reply_200);
}
