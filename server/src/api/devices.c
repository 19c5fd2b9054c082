/* SPDX-License-Identifier: Apache-2.0 */
/* Devices: list with filters, show with recent events, tags, decommission, clear suspect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-internal.h"
#include "webapi-internal.h"

/*
 * The statements (migrations/code/api_devices.sql), in one table. The
 * Device JSON is api_device_json(), also that of observe.c's search
 * (api_device_search).
 */
enum { STMT_LIST, STMT_GET, STMT_TAGS, STMT_DECOMMISSION, STMT_CLEAR_SUSPECT };
static const struct srv_db_stmt stmts[] = {
	[STMT_LIST] =
		{"wa_device_list",
		 "SELECT api_device_list($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
		 13},
	[STMT_GET] = {"wa_device_get", "SELECT api_device_get($1)", 1},
	[STMT_TAGS] = {"wa_device_tags", "SELECT api_device_set_tags($1, $2, $3)", 3},
	[STMT_DECOMMISSION] = {"wa_device_decommission",
			       "SELECT device, found FROM api_device_decommission($1, $2)", 2},
	[STMT_CLEAR_SUSPECT] = {"wa_device_clear_suspect",
				"SELECT api_device_clear_suspect($1, $2)", 2},
};

enum ota_err wa_devices_prepare(struct srv_db *db)
{
	return srv_db_prepare_stmts(db, stmts, sizeof(stmts) / sizeof(stmts[0]));
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
	char limit[WA_LIMIT_TEXT_BYTES];
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
	wa_db_stmt(ctx, &stmts[STMT_LIST], params, wa_reply_db_text);
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
	wa_db_stmt(ctx, &stmts[STMT_GET], params, reply_one);
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
	wa_db_stmt(ctx, &stmts[STMT_TAGS], params, reply_one);
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
	wa_db_stmt(ctx, &stmts[STMT_DECOMMISSION], params, decommissioned);
}

void wa_h_devices_clear_suspect(struct wa_ctx *ctx)
{
	const char *params[2] = {ctx->path_arg, ctx->actor};

	if (!device_arg(ctx))
		return;
	wa_db_stmt(ctx, &stmts[STMT_CLEAR_SUSPECT], params, reply_one);
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
