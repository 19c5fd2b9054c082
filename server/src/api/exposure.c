/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /api/v1/security/exposure: the fleet's exposure to fixed
 * vulnerabilities - devices still running a version that a signed security
 * fix replaces, per fix and per model, with the age of each fix. The view
 * is SQL (security_exposure in migrations/code/rollout_policy.sql); this
 * handler checks the query and returns the JSON the database builds.
 */
#include "db-internal.h"
#include "webapi-internal.h"

/* The statement (migrations/code/rollout_policy.sql). */
static const struct srv_db_stmt stmts[] = {
	{"wa_security_exposure", "SELECT security_exposure(NULL, $1)::text", 1},
};

static void wa_h_security_exposure(struct wa_ctx *ctx)
{
	static const char *const allowed[] = {"model", NULL};
	const char *params[1];

	if (!wa_query_only(ctx, allowed))
		return;
	params[0] = wa_query(ctx, "model");
	if (params[0] != NULL && !wa_text_valid(params[0])) {
		wa_reply_error(ctx, 400, "bad_request", "1..128 printable characters", "model");
		return;
	}
	wa_db_stmt(ctx, &stmts[0], params, wa_reply_db_text);
}

static const struct wa_route routes[] = {
	{EVHTTP_REQ_GET, "/api/v1/security/exposure", WA_ROLE_VIEWER, WA_BODY_NONE,
	 wa_h_security_exposure},
};

const struct wa_resource wa_exposure_resource = {WA_TABLE(routes), WA_TABLE(stmts)};
