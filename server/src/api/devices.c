/* SPDX-License-Identifier: Apache-2.0 */
/* Devices: list with filters, show with recent events, tags, decommission, clear suspect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-internal.h"
#include "webapi-internal.h"

/* Events shown with one device. */
#define WA_DEVICE_EVENTS 50

/* The Device schema of openapi.yaml, from a devices row aliased d. */
#define DEVICE_JSON                                                                            \
	"json_build_object('device_id', d.device_id, 'model', d.model, 'hw_revision', "        \
	"d.hw_revision, 'version', d.version, 'version_code', d.version_code, "                \
	"'security_counter', d.security_counter, 'keylist_version', d.keylist_version, "       \
	"'rootlist_version', d.rootlist_version, 'keylist_key_ids', "                          \
	"ARRAY(SELECT encode(k, 'hex') FROM unnest(d.keylist_key_ids) k), "                    \
	"'pending_version', d.pending_version, 'active_slot', d.active_slot, 'tags', d.tags, " \
	"'state', d.state, 'last_error', d.last_error, 'last_error_detail', "                  \
	"d.last_error_detail, 'last_seen', d.last_seen, 'created_at', d.created_at, "          \
	"'decommissioned', d.decommissioned, 'decommissioned_at', d.decommissioned_at, "       \
	"'suspect', d.suspect, 'suspect_reason', d.suspect_reason, 'suspect_at', d.suspect_at)"

const char wa_sql_device_json[] = DEVICE_JSON;

static const char sql_list[] =
	"SELECT json_build_object('items', COALESCE(json_agg(" DEVICE_JSON
	" ORDER BY d.device_id), '[]'::json), 'next_cursor', "
	"CASE WHEN count(*) = $12::int THEN max(d.device_id) END)::text FROM ("
	"SELECT * FROM devices d WHERE ($1::text IS NULL OR d.model = $1) "
	"AND ($2::text IS NULL OR d.hw_revision = $2) AND ($3::text IS NULL OR d.version = $3) "
	"AND ($4::text IS NULL OR d.state = $4) AND ($5::text IS NULL OR d.tags @> ARRAY[$5]) "
	"AND ($6::bigint IS NULL OR d.keylist_version = $6::bigint) "
	"AND ($7::double precision IS NULL OR d.last_seen >= now() - make_interval(secs => "
	"$7::double precision)) "
	"AND ($8::double precision IS NULL OR d.last_seen IS NULL OR d.last_seen < now() - "
	"make_interval(secs => $8::double precision)) "
	"AND ($9::boolean IS NULL OR d.decommissioned = $9::boolean) "
	"AND ($10::bigint IS NULL OR d.version_code = $10::bigint) "
	"AND ($13::boolean IS NULL OR d.suspect = $13::boolean) "
	"AND d.device_id > COALESCE($11::text, '') ORDER BY d.device_id LIMIT $12::int) d";

static const char sql_get[] =
	"SELECT (" DEVICE_JSON "::jsonb || jsonb_build_object('events', COALESCE((SELECT "
	"jsonb_agg(e ORDER BY e.id DESC) FROM (SELECT id, seq, kind, error, version, "
	"version_code, security_counter, detail, campaign_id, device_time, received_at FROM "
	"device_events WHERE device_id = $1 ORDER BY id DESC LIMIT 50) e), '[]'::jsonb), "
	"'assignments', COALESCE((SELECT jsonb_agg(x ORDER BY x.created_at) FROM (SELECT "
	"artifact_id, campaign_id, state, error, created_at, updated_at FROM assignments "
	"WHERE device_id = $1) x), '[]'::jsonb), 'groups', ARRAY(SELECT group_id FROM "
	"device_group_members WHERE device_id = $1 ORDER BY group_id)))::text "
	"FROM devices d WHERE d.device_id = $1";

static const char sql_tags[] =
	"WITH old AS (SELECT tags FROM devices WHERE device_id = $1), "
	"d AS (UPDATE devices SET tags = ARRAY(SELECT DISTINCT t FROM "
	"jsonb_array_elements_text($2::jsonb) t ORDER BY 1) WHERE device_id = $1 RETURNING *), "
	"a AS (INSERT INTO audit (actor, action, object, before, after) SELECT $3, "
	"'device.set_tags', 'device:' || d.device_id, jsonb_build_object('tags', (SELECT "
	"to_jsonb(tags) FROM old)), jsonb_build_object('tags', to_jsonb(d.tags)) FROM d) "
	"SELECT " DEVICE_JSON "::text FROM d";

/* security_suspect_clear() audits; no row for an unknown device. */
static const char sql_clear_suspect[] =
	"SELECT " DEVICE_JSON "::text FROM security_suspect_clear($1, $2) d"
	" WHERE d.device_id IS NOT NULL";

static const char sql_decommission[] =
	"WITH d AS (UPDATE devices SET decommissioned = true, decommissioned_at = now() "
	"WHERE device_id = $1 AND NOT decommissioned RETURNING *), "
	"a AS (INSERT INTO audit (actor, action, object, before, after) SELECT $2, "
	"'device.decommission', 'device:' || d.device_id, '{\"decommissioned\": false}', "
	"jsonb_build_object('decommissioned', true, 'decommissioned_at', d.decommissioned_at) "
	"FROM d) "
	"SELECT (SELECT " DEVICE_JSON "::text FROM d), "
	"(SELECT count(*) FROM devices WHERE device_id = $1)";

enum ota_err wa_devices_prepare(struct srv_db *db)
{
	enum ota_err err = srv_db_prepare(db, "wa_device_list", sql_list);

	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_device_get", sql_get);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_device_tags", sql_tags);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_device_decommission", sql_decommission);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_device_clear_suspect", sql_clear_suspect);
	return err;
}

/* An optional true/false query parameter; false after a 400 reply. */
static bool bool_query(struct wa_ctx *ctx, const char *name, const char **ret_value)
{
	const char *s = wa_query(ctx, name);

	if (s != NULL && strcmp(s, "true") != 0 && strcmp(s, "false") != 0) {
		wa_reply_error(ctx, 400, "bad_request", "true or false", name);
		return false;
	}
	*ret_value = s;
	return true;
}

void wa_h_devices_list(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"model",
					      "hw_revision",
					      "version",
					      "state",
					      "tag",
					      "keylist_version",
					      "seen_within",
					      "not_seen_within",
					      "decommissioned",
					      "version_code",
					      "suspect",
					      "cursor",
					      "limit",
					      NULL};
	static const char *const text_filters[] = {"model", "hw_revision", "version", "state"};
	static const char *const num_filters[] = {"keylist_version", "seen_within",
						  "not_seen_within"};
	const char *params[13];
	char limit[16];
	uint64_t v;

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	for (size_t i = 0; i < 4; i++) {
		params[i] = wa_query(ctx, text_filters[i]);
		if (params[i] != NULL && !wa_text_valid(params[i])) {
			wa_reply_error(ctx, 400, "bad_request", "1..128 printable characters",
				       text_filters[i]);
			return;
		}
	}
	params[4] = wa_query(ctx, "tag");
	if (params[4] != NULL && !wa_tag_valid(params[4])) {
		wa_reply_error(ctx, 400, "bad_request", "not a tag", "tag");
		return;
	}
	for (size_t i = 0; i < 3; i++) {
		params[5 + i] = wa_query(ctx, num_filters[i]);
		if (params[5 + i] != NULL && !wa_parse_u64(params[5 + i], 0, INT64_MAX, &v)) {
			wa_reply_error(ctx, 400, "bad_request", "must be a non-negative integer",
				       num_filters[i]);
			return;
		}
	}
	if (!bool_query(ctx, "decommissioned", &params[8]) ||
	    !bool_query(ctx, "suspect", &params[12]))
		return;
	params[9] = wa_query(ctx, "version_code");
	if (params[9] != NULL && !wa_parse_u64(params[9], 0, INT64_MAX, &v)) {
		wa_reply_error(ctx, 400, "bad_request", "must be a non-negative integer",
			       "version_code");
		return;
	}
	params[10] = wa_query(ctx, "cursor");
	if (params[10] != NULL && !wa_id_valid(params[10], WA_MAX_DEVICE_ID)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[11] = limit;
	wa_db(ctx, "wa_device_list", 13, params, wa_reply_db_text);
}

static bool device_arg(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};

	if (!wa_query_only(ctx, allowed))
		return false;
	if (!wa_id_valid(ctx->path_arg, WA_MAX_DEVICE_ID)) {
		wa_reply_error(ctx, 400, "bad_request", "not a device id", "device_id");
		return false;
	}
	return true;
}

static void reply_one(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		wa_reply_error(ctx, 404, "not_found", "no such device", NULL);
		return;
	}
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

void wa_h_devices_get(struct wa_ctx *ctx)
{
	const char *params[1] = {ctx->path_arg};

	if (!device_arg(ctx))
		return;
	wa_db(ctx, "wa_device_get", 1, params, reply_one);
}

void wa_h_devices_tags(struct wa_ctx *ctx)
{
	const json_t *tags = json_object_get(ctx->json, "tags");
	const char *params[3];
	char *text;
	size_t i;

	if (!device_arg(ctx))
		return;
	if (json_object_size(ctx->json) != 1 || !json_is_array(tags) ||
	    json_array_size(tags) > WA_MAX_TAGS) {
		wa_reply_error(ctx, 400, "bad_request", "body is {\"tags\": [at most 32 tags]}",
			       "tags");
		return;
	}
	for (i = 0; i < json_array_size(tags); i++) {
		const json_t *t = json_array_get(tags, i);

		if (!json_is_string(t) || !wa_tag_valid(json_string_value(t))) {
			wa_reply_error(ctx, 400, "bad_request",
				       "a tag is 1..64 of letters, digits and . _ : = / -", "tags");
			return;
		}
	}
	text = json_dumps(tags, JSON_COMPACT);
	if (text == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	params[0] = ctx->path_arg;
	params[1] = text;
	params[2] = ctx->actor;
	wa_db(ctx, "wa_device_tags", 3, params, reply_one);
	free(text);
}

static void decommissioned(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (!PQgetisnull(res, 0, 0))
		wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
	else if (strcmp(PQgetvalue(res, 0, 1), "0") == 0)
		wa_reply_error(ctx, 404, "not_found", "no such device", NULL);
	else
		wa_reply_error(ctx, 409, "conflict", "device already decommissioned", NULL);
}

void wa_h_devices_decommission(struct wa_ctx *ctx)
{
	const char *params[2] = {ctx->path_arg, ctx->actor};

	if (!device_arg(ctx))
		return;
	wa_db(ctx, "wa_device_decommission", 2, params, decommissioned);
}

void wa_h_devices_clear_suspect(struct wa_ctx *ctx)
{
	const char *params[2] = {ctx->path_arg, ctx->actor};

	if (!device_arg(ctx))
		return;
	wa_db(ctx, "wa_device_clear_suspect", 2, params, reply_one);
}

static const struct wa_route routes[] = {
	{EVHTTP_REQ_GET, "/api/v1/devices", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_devices_list},
	{EVHTTP_REQ_GET, "/api/v1/devices/*", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_devices_get},
	{EVHTTP_REQ_PUT, "/api/v1/devices/*/tags", WA_ROLE_OPERATOR, WA_BODY_JSON,
	 wa_h_devices_tags},
	{EVHTTP_REQ_POST, "/api/v1/devices/*/decommission", WA_ROLE_ADMIN, WA_BODY_NONE,
	 wa_h_devices_decommission},
	{EVHTTP_REQ_POST, "/api/v1/devices/*/clear-suspect", WA_ROLE_OPERATOR, WA_BODY_NONE,
	 wa_h_devices_clear_suspect},
};

const struct wa_resource wa_devices_resource = {WA_TABLE(routes), .prepare = wa_devices_prepare};
