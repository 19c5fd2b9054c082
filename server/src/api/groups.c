/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device groups: static (explicit members) and dynamic (a filter compiled
 * by filter.c and evaluated by the database whenever the group is read).
 * A rollout engine table that references device_groups (ON DELETE
 * RESTRICT) makes deleting a group in use fail with 23503, answered 409.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-internal.h"
#include "webapi-internal.h"

extern const char wa_sql_device_json[];

#define GROUP_JSON                                                                         \
	"json_build_object('group_id', g.group_id, 'kind', g.kind, 'description', "        \
	"g.description, 'filter', g.filter, 'created_at', g.created_at, 'updated_at', "    \
	"g.updated_at, 'member_count', CASE WHEN g.kind = 'static' THEN (SELECT count(*) " \
	"FROM device_group_members m WHERE m.group_id = g.group_id) END)"

static const char sql_list[] =
	"SELECT json_build_object('items', COALESCE(json_agg(" GROUP_JSON
	" ORDER BY g.group_id), '[]'::json), 'next_cursor', "
	"CASE WHEN count(*) = $3::int THEN max(g.group_id) END)::text FROM ("
	"SELECT * FROM device_groups WHERE ($1::text IS NULL OR kind = $1) "
	"AND group_id > COALESCE($2::text, '') ORDER BY group_id LIMIT $3::int) g";

static const char sql_get[] =
	"SELECT " GROUP_JSON "::text, g.kind, g.filter::text FROM device_groups g "
	"WHERE g.group_id = $1";

static const char sql_create[] =
	"WITH g AS (INSERT INTO device_groups (group_id, kind, description, filter) "
	"VALUES ($1, $2, $3, $4::jsonb) RETURNING *), "
	"m AS (INSERT INTO device_group_members (group_id, device_id) SELECT g.group_id, s.x "
	"FROM g, (SELECT DISTINCT jsonb_array_elements_text($5::jsonb) x) s RETURNING 1), "
	"a AS (INSERT INTO audit (actor, action, object, after) SELECT $6, 'group.create', "
	"'group:' || g.group_id, to_jsonb(g) || jsonb_build_object('devices', $5::jsonb) "
	"FROM g) "
	"SELECT json_build_object('group_id', g.group_id, 'kind', g.kind, 'description', "
	"g.description, 'filter', g.filter, 'created_at', g.created_at, 'updated_at', "
	"g.updated_at, 'member_count', CASE WHEN g.kind = 'static' THEN (SELECT count(*) FROM "
	"m) END)::text FROM g";

static const char sql_delete[] =
	"WITH g AS (DELETE FROM device_groups WHERE group_id = $1 RETURNING *), "
	"a AS (INSERT INTO audit (actor, action, object, before) SELECT $2, 'group.delete', "
	"'group:' || g.group_id, to_jsonb(g) || jsonb_build_object('devices', COALESCE((SELECT "
	"jsonb_agg(device_id ORDER BY device_id) FROM device_group_members WHERE group_id = "
	"g.group_id), '[]'::jsonb)) FROM g) "
	"SELECT json_build_object('group_id', g.group_id, 'kind', g.kind, 'description', "
	"g.description, 'filter', g.filter, 'created_at', g.created_at, 'updated_at', "
	"g.updated_at, 'member_count', NULL)::text FROM g";

static const char sql_members[] =
	"WITH g AS (UPDATE device_groups SET updated_at = now() WHERE group_id = $1 "
	"AND kind = 'static' RETURNING *), "
	"old AS (SELECT COALESCE(jsonb_agg(device_id ORDER BY device_id), '[]'::jsonb) j "
	"FROM device_group_members WHERE group_id = $1), "
	"del AS (DELETE FROM device_group_members WHERE group_id IN (SELECT group_id FROM g) "
	"AND device_id NOT IN (SELECT jsonb_array_elements_text($2::jsonb)) RETURNING 1), "
	"ins AS (INSERT INTO device_group_members (group_id, device_id) SELECT g.group_id, s.x "
	"FROM g, (SELECT DISTINCT jsonb_array_elements_text($2::jsonb) x) s "
	"ON CONFLICT DO NOTHING RETURNING 1), "
	"a AS (INSERT INTO audit (actor, action, object, before, after) SELECT $3, "
	"'group.set_members', 'group:' || g.group_id, jsonb_build_object('devices', (SELECT j "
	"FROM old)), jsonb_build_object('devices', $2::jsonb) FROM g) "
	"SELECT (SELECT json_build_object('group_id', g.group_id, 'kind', g.kind, "
	"'description', g.description, 'filter', g.filter, 'created_at', g.created_at, "
	"'updated_at', g.updated_at, 'member_count', (SELECT count(DISTINCT x) FROM "
	"jsonb_array_elements_text($2::jsonb) x))::text FROM g), "
	"(SELECT kind FROM device_groups WHERE group_id = $1)";

static const char sql_static_devices_head[] =
	"SELECT json_build_object('items', COALESCE(json_agg(%s ORDER BY d.device_id), "
	"'[]'::json), 'next_cursor', CASE WHEN count(*) = $%d::int THEN max(d.device_id) "
	"END)::text FROM (SELECT d.* FROM devices d WHERE ";

enum ota_err wa_groups_prepare(struct srv_db *db)
{
	enum ota_err err = srv_db_prepare(db, "wa_group_list", sql_list);

	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_group_get", sql_get);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_group_create", sql_create);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_group_delete", sql_delete);
	if (err == OTA_OK)
		err = srv_db_prepare(db, "wa_group_members", sql_members);
	return err;
}

static bool group_arg(struct wa_ctx *ctx, const char *const *allowed)
{
	static const char *const none[] = {NULL};

	if (!wa_query_only(ctx, allowed != NULL ? allowed : none))
		return false;
	if (!wa_id_valid(ctx->path_arg, WA_MAX_GROUP_ID)) {
		wa_reply_error(ctx, 400, "bad_request", "not a group id", "group_id");
		return false;
	}
	return true;
}

void wa_h_groups_list(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"kind", "cursor", "limit", NULL};
	const char *params[3];
	char limit[16];

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	params[0] = wa_query(ctx, "kind");
	if (params[0] != NULL && strcmp(params[0], "static") != 0 &&
	    strcmp(params[0], "dynamic") != 0) {
		wa_reply_error(ctx, 400, "bad_request", "static or dynamic", "kind");
		return;
	}
	params[1] = wa_query(ctx, "cursor");
	if (params[1] != NULL && !wa_id_valid(params[1], WA_MAX_GROUP_ID)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[2] = limit;
	wa_db(ctx, "wa_group_list", 3, params, wa_reply_db_text);
}

/* Checks a "devices" array of device ids; returns its JSON text or NULL. */
static char *device_list_json(struct wa_ctx *ctx, const json_t *devices)
{
	char *text;

	if (!json_is_array(devices) || json_array_size(devices) > WA_MAX_GROUP_MEMBERS) {
		wa_reply_error(ctx, 400, "bad_request", "devices: an array of at most 1000 ids",
			       "devices");
		return NULL;
	}
	for (size_t i = 0; i < json_array_size(devices); i++) {
		const json_t *d = json_array_get(devices, i);

		if (!json_is_string(d) || !wa_id_valid(json_string_value(d), WA_MAX_DEVICE_ID)) {
			wa_reply_error(ctx, 400, "bad_request", "devices: not a device id",
				       "devices");
			return NULL;
		}
	}
	text = json_dumps(devices, JSON_COMPACT);
	if (text == NULL)
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
	return text;
}

static void group_written(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err == OTA_ERR_STORAGE && strcmp(wa_sqlstate(res), "23505") == 0) {
		wa_reply_error(ctx, 409, "conflict", "a group with this id exists", "group_id");
		return;
	}
	if (err == OTA_ERR_STORAGE && strcmp(wa_sqlstate(res), "23503") == 0) {
		wa_reply_error(ctx, 422, "unknown_device", "devices: a device is not registered",
			       "devices");
		return;
	}
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	wa_reply_text(ctx, 201, PQgetvalue(res, 0, 0));
}

void wa_h_groups_create(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};
	static const char *const keys[] = {"group_id", "kind", "description", "filter", "devices"};
	const json_t *id = json_object_get(ctx->json, "group_id");
	const json_t *kind = json_object_get(ctx->json, "kind");
	const json_t *desc = json_object_get(ctx->json, "description");
	const json_t *filter = json_object_get(ctx->json, "filter");
	const json_t *devices = json_object_get(ctx->json, "devices");
	const char *key;
	json_t *value;
	struct wa_filter_sql compiled;
	char ferr[WA_FILTER_ERR_BYTES];
	char *filter_text = NULL, *devices_text = NULL;
	const char *params[6];
	bool dynamic;

	if (!wa_query_only(ctx, allowed))
		return;
	json_object_foreach(ctx->json, key, value)
	{
		bool known = false;

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			known = known || strcmp(key, keys[i]) == 0;
		if (!known) {
			wa_reply_error(ctx, 400, "bad_request", "unknown field", key);
			return;
		}
	}
	if (!json_is_string(id) || !wa_id_valid(json_string_value(id), WA_MAX_GROUP_ID)) {
		wa_reply_error(ctx, 400, "bad_request",
			       "group_id: 1..64 of letters, digits and . _ - (first alphanumeric)",
			       "group_id");
		return;
	}
	if (!json_is_string(kind) || (strcmp(json_string_value(kind), "static") != 0 &&
				      strcmp(json_string_value(kind), "dynamic") != 0)) {
		wa_reply_error(ctx, 400, "bad_request", "kind: static or dynamic", "kind");
		return;
	}
	dynamic = strcmp(json_string_value(kind), "dynamic") == 0;
	if (desc != NULL && (!json_is_string(desc) || json_string_length(desc) > 256)) {
		wa_reply_error(ctx, 400, "bad_request", "description: at most 256 characters",
			       "description");
		return;
	}
	if (dynamic) {
		if (devices != NULL || filter == NULL) {
			wa_reply_error(ctx, 400, "bad_request",
				       "a dynamic group has a filter and no devices", "filter");
			return;
		}
		if (wa_filter_compile(filter, 1, &compiled, ferr) != OTA_OK) {
			wa_reply_error(ctx, 400, "bad_request", ferr, "filter");
			return;
		}
		wa_filter_sql_clear(&compiled);
		filter_text = json_dumps(filter, JSON_COMPACT | JSON_SORT_KEYS);
		devices_text = strdup("[]");
	} else {
		if (filter != NULL) {
			wa_reply_error(ctx, 400, "bad_request", "a static group has no filter",
				       "filter");
			return;
		}
		devices_text = devices != NULL ? device_list_json(ctx, devices) : strdup("[]");
		if (devices_text == NULL)
			return;
	}
	if (devices_text == NULL || (dynamic && filter_text == NULL)) {
		free(filter_text);
		free(devices_text);
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	params[0] = json_string_value(id);
	params[1] = json_string_value(kind);
	params[2] = desc != NULL ? json_string_value(desc) : "";
	params[3] = filter_text;
	params[4] = devices_text;
	params[5] = ctx->actor;
	wa_db(ctx, "wa_group_create", 6, params, group_written);
	free(filter_text);
	free(devices_text);
}

static void reply_group(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err == OTA_ERR_STORAGE && strcmp(wa_sqlstate(res), "23503") == 0) {
		wa_reply_error(ctx, 409, "conflict", "the group is used by a campaign", NULL);
		return;
	}
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		wa_reply_error(ctx, 404, "not_found", "no such group", NULL);
		return;
	}
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

void wa_h_groups_get(struct wa_ctx *ctx)
{
	const char *params[1] = {ctx->path_arg};

	if (!group_arg(ctx, NULL))
		return;
	wa_db(ctx, "wa_group_get", 1, params, reply_group);
}

void wa_h_groups_delete(struct wa_ctx *ctx)
{
	const char *params[2] = {ctx->path_arg, ctx->actor};

	if (!group_arg(ctx, NULL))
		return;
	wa_db(ctx, "wa_group_delete", 2, params, reply_group);
}

static void members_set(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err == OTA_ERR_STORAGE && strcmp(wa_sqlstate(res), "23503") == 0) {
		wa_reply_error(ctx, 422, "unknown_device", "devices: a device is not registered",
			       "devices");
		return;
	}
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (!PQgetisnull(res, 0, 0))
		wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
	else if (PQgetisnull(res, 0, 1))
		wa_reply_error(ctx, 404, "not_found", "no such group", NULL);
	else
		wa_reply_error(ctx, 409, "conflict", "a dynamic group has no explicit members",
			       NULL);
}

void wa_h_groups_members(struct wa_ctx *ctx)
{
	const json_t *devices = json_object_get(ctx->json, "devices");
	const char *params[3];
	char *text;

	if (!group_arg(ctx, NULL))
		return;
	if (json_object_size(ctx->json) != 1 || devices == NULL) {
		wa_reply_error(ctx, 400, "bad_request", "body is {\"devices\": [...]}", "devices");
		return;
	}
	text = device_list_json(ctx, devices);
	if (text == NULL)
		return;
	params[0] = ctx->path_arg;
	params[1] = text;
	params[2] = ctx->actor;
	wa_db(ctx, "wa_group_members", 3, params, members_set);
	free(text);
}

/* ---- members of a group (evaluated in SQL) --------------------------- */

struct members_state {
	char cursor[80];
	bool has_cursor;
	char limit[16];
};

static void members_listed(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	wa_reply_db_text(ctx, err, res);
}

static void group_loaded(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct members_state *st = ctx->state;
	struct wa_filter_sql compiled = {0};
	const char *params[WA_FILTER_MAX_CONDITIONS + 3];
	char ferr[WA_FILTER_ERR_BYTES];
	char *sql;
	size_t cap = 12288, used;
	int n = 0;
	bool dynamic;

	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1) {
		wa_reply_error(ctx, 404, "not_found", "no such group", NULL);
		return;
	}
	dynamic = strcmp(PQgetvalue(res, 0, 1), "dynamic") == 0;
	sql = malloc(cap);
	if (sql == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	if (dynamic) {
		json_t *filter = json_loads(PQgetvalue(res, 0, 2), 0, NULL);

		err = filter != NULL ? wa_filter_compile(filter, 1, &compiled, ferr)
				     : OTA_ERR_FORMAT;
		json_decref(filter);
		if (err != OTA_OK) {
			free(sql);
			wa_reply_error(ctx, 500, "internal", "stored filter does not compile",
				       NULL);
			return;
		}
		for (int i = 0; i < compiled.n_params; i++)
			params[n++] = compiled.params[i];
	}
	/* $n+1 cursor, $n+2 limit, $n+3 group id (static) */
	used = (size_t)snprintf(sql, cap, sql_static_devices_head, wa_sql_device_json, n + 2);
	if (dynamic)
		used += (size_t)snprintf(sql + used, cap - used, "NOT d.decommissioned AND %s",
					 compiled.where);
	else
		used += (size_t)snprintf(sql + used, cap - used,
					 "d.device_id IN (SELECT device_id FROM "
					 "device_group_members WHERE group_id = $%d)",
					 n + 3);
	used += (size_t)snprintf(sql + used, cap - used,
				 " AND d.device_id > COALESCE($%d::text, '') ORDER BY d.device_id "
				 "LIMIT $%d::int) d",
				 n + 1, n + 2);
	if (used >= cap) {
		free(sql);
		wa_filter_sql_clear(&compiled);
		wa_reply_error(ctx, 500, "internal", "query too long", NULL);
		return;
	}
	params[n++] = st->has_cursor ? st->cursor : NULL;
	params[n++] = st->limit;
	if (!dynamic)
		params[n++] = ctx->path_arg;
	wa_db_sql(ctx, sql, n, params, members_listed);
	free(sql);
	wa_filter_sql_clear(&compiled);
}

void wa_h_groups_devices(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"cursor", "limit", NULL};
	struct members_state *st;
	const char *cursor;
	const char *params[1] = {ctx->path_arg};

	if (!group_arg(ctx, allowed))
		return;
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	ctx->state = st;
	ctx->state_free = free;
	if (!wa_query_limit(ctx, st->limit))
		return;
	cursor = wa_query(ctx, "cursor");
	if (cursor != NULL) {
		if (!wa_id_valid(cursor, WA_MAX_DEVICE_ID)) {
			wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
			return;
		}
		snprintf(st->cursor, sizeof(st->cursor), "%s", cursor);
		st->has_cursor = true;
	}
	wa_db(ctx, "wa_group_get", 1, params, group_loaded);
}

static const struct wa_route routes[] = {
	{EVHTTP_REQ_GET, "/api/v1/groups", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_groups_list},
	{EVHTTP_REQ_POST, "/api/v1/groups", WA_ROLE_OPERATOR, WA_BODY_JSON, wa_h_groups_create},
	{EVHTTP_REQ_GET, "/api/v1/groups/*", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_groups_get},
	{EVHTTP_REQ_DELETE, "/api/v1/groups/*", WA_ROLE_OPERATOR, WA_BODY_NONE, wa_h_groups_delete},
	{EVHTTP_REQ_PUT, "/api/v1/groups/*/members", WA_ROLE_OPERATOR, WA_BODY_JSON,
	 wa_h_groups_members},
	{EVHTTP_REQ_GET, "/api/v1/groups/*/devices", WA_ROLE_VIEWER, WA_BODY_NONE,
	 wa_h_groups_devices},
};

const struct wa_resource wa_groups_resource = {WA_TABLE(routes), .prepare = wa_groups_prepare};
