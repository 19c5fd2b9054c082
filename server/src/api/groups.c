/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device groups: static (explicit members) and dynamic (a GroupFilter,
 * compiled by the database's one compiler, migrations/code/filter.sql, and
 * evaluated whenever the group is read). A rollout engine table that
 * references device_groups (ON DELETE RESTRICT) makes deleting a group in
 * use fail with 23503, answered 409.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-internal.h"
#include "webapi-internal.h"

/* The statements (migrations/code/api_groups.sql), in one table. */
enum { STMT_LIST, STMT_GET, STMT_CREATE, STMT_DELETE, STMT_MEMBERS, STMT_DEVICES };
static const struct srv_db_stmt stmts[] = {
	[STMT_LIST] = {"wa_group_list", "SELECT api_group_list($1, $2, $3)", 3},
	[STMT_GET] = {"wa_group_get", "SELECT api_group_get($1)", 1},
	[STMT_CREATE] = {"wa_group_create", "SELECT api_group_create($1, $2, $3, $4, $5, $6)", 6},
	[STMT_DELETE] = {"wa_group_delete", "SELECT api_group_delete($1, $2)", 2},
	[STMT_MEMBERS] = {"wa_group_members",
			  "SELECT grp, kind FROM api_group_set_members($1, $2, $3)", 3},
	[STMT_DEVICES] = {"wa_group_devices", "SELECT api_group_devices($1, $2, $3)", 3},
};

enum ota_err wa_groups_prepare(struct srv_db *db)
{
	return srv_db_prepare_stmts(db, stmts, sizeof(stmts) / sizeof(stmts[0]));
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
	char limit[WA_LIMIT_TEXT_BYTES];

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
	wa_db_stmt(ctx, &stmts[STMT_LIST], params, wa_reply_db_text);
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
	if (wa_filter_error(ctx, err, res))
		return;
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
		/* the database compiles it (FO400: 400 naming what is wrong) */
		filter_text = json_dumps(filter, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
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
	wa_db_stmt(ctx, &stmts[STMT_CREATE], params, group_written);
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
	wa_db_stmt(ctx, &stmts[STMT_GET], params, reply_group);
}

void wa_h_groups_delete(struct wa_ctx *ctx)
{
	const char *params[2] = {ctx->path_arg, ctx->actor};

	if (!group_arg(ctx, NULL))
		return;
	wa_db_stmt(ctx, &stmts[STMT_DELETE], params, reply_group);
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
	wa_db_stmt(ctx, &stmts[STMT_MEMBERS], params, members_set);
	free(text);
}

/* ---- members of a group (evaluated in SQL) --------------------------- */

static void group_devices_listed(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err == OTA_ERR_STORAGE && wa_filter_refused(res)) {
		wa_reply_error(ctx, 500, "internal", "stored filter does not compile", NULL);
		return;
	}
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (PQntuples(res) != 1) {
		wa_reply_error(ctx, 404, "not_found", "no such group", NULL);
		return;
	}
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

void wa_h_groups_devices(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"cursor", "limit", NULL};
	char limit[WA_LIMIT_TEXT_BYTES];
	const char *params[3];

	if (!group_arg(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	params[0] = ctx->path_arg;
	params[1] = wa_query(ctx, "cursor");
	if (params[1] != NULL && !wa_id_valid(params[1], WA_MAX_DEVICE_ID)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[2] = limit;
	wa_db_stmt(ctx, &stmts[STMT_DEVICES], params, group_devices_listed);
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
