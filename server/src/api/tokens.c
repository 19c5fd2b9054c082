/* SPDX-License-Identifier: Apache-2.0 */
/* Bearer tokens, the caller's identity, the audit trail, and the CLI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "db-internal.h"
#include "webapi-internal.h"

/* The statements (migrations/code/api_tokens.sql), in one table. */
enum { STMT_CREATE, STMT_LIST, STMT_REVOKE, STMT_AUDIT };
static const struct srv_db_stmt stmts[] = {
	[STMT_CREATE] = {"wa_token_create", "SELECT api_token_create($1, $2, $3, $4)", 4},
	[STMT_LIST] = {"wa_token_list", "SELECT api_token_list($1, $2)", 2},
	[STMT_REVOKE] = {"wa_token_revoke", "SELECT token, found FROM api_token_revoke($1, $2)", 2},
	[STMT_AUDIT] = {"wa_audit_list", "SELECT api_audit_list($1, $2, $3, $4, $5)", 5},
};

/* Replies 200 with the single JSON text column of res. */
static void reply_row(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
}

static void wa_h_me(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};

	if (!wa_query_only(ctx, allowed))
		return;
	wa_reply_json(ctx, 200,
		      json_pack("{s:I, s:s, s:s}", "token_id", (json_int_t)ctx->token_id, "role",
				wa_role_name(ctx->role), "actor", ctx->actor));
}

static void wa_h_tokens_list(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"limit", "cursor", NULL};
	const char *cursor;
	char limit[WA_LIMIT_TEXT_BYTES];
	uint64_t id;
	const char *params[2];

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	cursor = wa_query(ctx, "cursor");
	if (cursor != NULL && !wa_parse_u64(cursor, 0, INT64_MAX, &id)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[0] = cursor;
	params[1] = limit;
	wa_db_stmt(ctx, &stmts[STMT_LIST], params, reply_row);
}

struct token_state {
	char token[WEBAPI_TOKEN_CHARS + 1];
};

static void token_state_free(void *p)
{
	if (p != NULL)
		OPENSSL_cleanse(p, sizeof(struct token_state));
	free(p);
}

static void token_created(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	struct token_state *st = ctx->state;
	json_t *row;

	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	row = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	if (row == NULL) {
		wa_reply_error(ctx, 500, "internal", "out of memory", NULL);
		return;
	}
	json_object_set_new(row, "token", json_string(st->token));
	wa_reply_json(ctx, 201, row);
}

static void wa_h_tokens_create(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};
	const json_t *name = json_object_get(ctx->json, "name");
	const json_t *role = json_object_get(ctx->json, "role");
	const char *key;
	json_t *value;
	struct token_state *st;
	char hash[SRV_SHA256_HEX_BYTES];
	const char *params[4];

	if (!wa_query_only(ctx, allowed))
		return;
	json_object_foreach(ctx->json, key, value)
	{
		if (strcmp(key, "name") != 0 && strcmp(key, "role") != 0) {
			wa_reply_error(ctx, 400, "bad_request", "unknown field", key);
			return;
		}
	}
	if (!json_is_string(name) || !wa_name_valid(json_string_value(name))) {
		wa_reply_error(ctx, 400, "bad_request",
			       "name: 1..64 of letters, digits, space, . _ @ : -", "name");
		return;
	}
	if (!json_is_string(role) || wa_role_from_name(json_string_value(role)) == WA_ROLE_NONE) {
		wa_reply_error(ctx, 400, "bad_request", "role: viewer, operator or admin", "role");
		return;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL || wa_token_generate(st->token) != OTA_OK ||
	    wa_token_hash(st->token, hash) != OTA_OK) {
		token_state_free(st);
		wa_reply_error(ctx, 500, "internal", "cannot make a token", NULL);
		return;
	}
	ctx->state = st;
	ctx->state_free = token_state_free;
	params[0] = json_string_value(name);
	params[1] = json_string_value(role);
	params[2] = hash;
	params[3] = ctx->actor;
	wa_db_stmt(ctx, &stmts[STMT_CREATE], params, token_created);
}

static void token_revoked(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	if (err != OTA_OK) {
		wa_reply_db_error(ctx, err, res);
		return;
	}
	if (!PQgetisnull(res, 0, 0)) {
		wa_reply_text(ctx, 200, PQgetvalue(res, 0, 0));
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "0") == 0)
		wa_reply_error(ctx, 404, "not_found", "no such token", NULL);
	else
		wa_reply_error(ctx, 409, "conflict", "token already revoked", NULL);
}

static void wa_h_tokens_revoke(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {NULL};
	uint64_t id;
	const char *params[2];

	if (!wa_query_only(ctx, allowed))
		return;
	if (!wa_parse_u64(ctx->path_arg, 1, INT64_MAX, &id)) {
		wa_reply_error(ctx, 400, "bad_request", "token id must be a positive integer",
			       "token_id");
		return;
	}
	params[0] = ctx->path_arg;
	params[1] = ctx->actor;
	wa_db_stmt(ctx, &stmts[STMT_REVOKE], params, token_revoked);
}

static void wa_h_audit_list(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"limit", "cursor", "actor", "action", "object", NULL};
	static const char *const text_filters[] = {"actor", "action", "object"};
	const char *params[5];
	char limit[WA_LIMIT_TEXT_BYTES];
	uint64_t id;

	if (!wa_query_only(ctx, allowed) || !wa_query_limit(ctx, limit))
		return;
	for (size_t i = 0; i < 3; i++) {
		params[i] = wa_query(ctx, text_filters[i]);
		if (params[i] != NULL && !wa_text_valid(params[i])) {
			wa_reply_error(ctx, 400, "bad_request", "1..128 printable characters",
				       text_filters[i]);
			return;
		}
	}
	params[3] = wa_query(ctx, "cursor");
	if (params[3] != NULL && !wa_parse_u64(params[3], 0, INT64_MAX, &id)) {
		wa_reply_error(ctx, 400, "bad_request", "bad cursor", "cursor");
		return;
	}
	params[4] = limit;
	wa_db_stmt(ctx, &stmts[STMT_AUDIT], params, reply_row);
}

/* ---- CLI: ota-server token create ----------------------------------- */

struct cli_state {
	struct event_base *base;
	FILE *out, *err;
	const char *token;
	int status;
};

static void cli_done(void *arg, enum ota_err err, const PGresult *res)
{
	struct cli_state *st = arg;

	if (st->token == NULL)
		return; /* gave up already */
	if (err != OTA_OK) {
		fprintf(st->err, "token: %s%s%s\n", ota_err_name(err), res != NULL ? ": " : "",
			res != NULL ? PQresultErrorMessage(res) : "");
		st->status = 1;
	} else {
		fprintf(st->out, "%s\n", st->token);
		fflush(st->out);
		st->status = 0;
	}
	event_base_loopbreak(st->base);
}

static void cli_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct cli_state *st = arg;

	(void)fd;
	(void)what;
	fprintf(st->err, "token: database not reachable within 15 s\n");
	st->status = 1;
	event_base_loopbreak(st->base);
}

int webapi_token_cli(const char *conninfo, int argc, char **argv, FILE *out, FILE *err)
{
	const char *role = NULL, *name = "bootstrap-admin";
	char token[WEBAPI_TOKEN_CHARS + 1], hash[SRV_SHA256_HEX_BYTES];
	struct cli_state st = {.out = out, .err = err, .token = token, .status = 1};
	struct timeval tv = {15, 0};
	struct event *timer = NULL;
	struct srv_metrics metrics = {0};
	struct srv_db *db = NULL;
	const char *params[4];

	if (argc < 1 || strcmp(argv[0], "create") != 0)
		goto usage;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
			role = argv[++i];
		else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[++i];
		else
			goto usage;
	}
	if (role == NULL || wa_role_from_name(role) == WA_ROLE_NONE) {
		fprintf(err, "token: --role must be viewer, operator or admin\n");
		return 2;
	}
	if (!wa_name_valid(name)) {
		fprintf(err, "token: --name: 1..64 of letters, digits, space, . _ @ : -\n");
		return 2;
	}
	if (wa_token_generate(token) != OTA_OK || wa_token_hash(token, hash) != OTA_OK) {
		fprintf(err, "token: cannot make a token\n");
		return 1;
	}
	st.base = event_base_new();
	if (st.base == NULL || srv_db_new(st.base, conninfo, 1, 16, &metrics, &db) != OTA_OK) {
		fprintf(err, "token: cannot set up the database connection\n");
		goto out;
	}
	params[0] = name;
	params[1] = role;
	params[2] = hash;
	params[3] = "cli";
	/* RETRY: the query waits for the first connection (bounded by the timer) */
	/* one statement once: unnamed, so it also runs through any pooler */
	if (srv_db_set_prepared(db, false) != OTA_OK ||
	    srv_db_prepare_stmts(db, &stmts[STMT_CREATE], 1) != OTA_OK ||
	    srv_db_start(db) != OTA_OK ||
	    srv_db_exec_stmt(db, &stmts[STMT_CREATE], params, false, SRV_DB_RETRY, cli_done, &st) !=
		    OTA_OK) {
		fprintf(err, "token: database unavailable\n");
		goto out;
	}
	timer = evtimer_new(st.base, cli_timeout, &st);
	if (timer != NULL)
		evtimer_add(timer, &tv);
	event_base_dispatch(st.base);
out:
	/* a query still queued is answered (OTA_ERR_BUSY) here, while st lives */
	st.token = NULL;
	srv_db_free(db);
	if (timer != NULL)
		event_free(timer);
	if (st.base != NULL)
		event_base_free(st.base);
	OPENSSL_cleanse(token, sizeof(token));
	return st.status;
usage:
	fprintf(err, "usage: ota-server token create --role viewer|operator|admin "
		     "[--name NAME] --config FILE\n");
	return 2;
}

/* ---- the resource: /me, tokens, audit ------------------------------ */

static const struct wa_route routes[] = {
	{EVHTTP_REQ_GET, "/api/v1/me", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_me},
	{EVHTTP_REQ_GET, "/api/v1/tokens", WA_ROLE_ADMIN, WA_BODY_NONE, wa_h_tokens_list},
	{EVHTTP_REQ_POST, "/api/v1/tokens", WA_ROLE_ADMIN, WA_BODY_JSON, wa_h_tokens_create},
	{EVHTTP_REQ_DELETE, "/api/v1/tokens/*", WA_ROLE_ADMIN, WA_BODY_NONE, wa_h_tokens_revoke},
	{EVHTTP_REQ_GET, "/api/v1/audit", WA_ROLE_VIEWER, WA_BODY_NONE, wa_h_audit_list},
};

const struct wa_resource wa_tokens_resource = {WA_TABLE(routes), WA_TABLE(stmts)};
