/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dynamic group filters: a small JSON language (openapi.yaml, GroupFilter).
 * Its one compiler is the database's (migrations/code/filter.sql): the API
 * passes a filter to an SQL function and answers a refusal (SQLSTATE
 * FO400) 400 with the compiler's message.
 */
#include <string.h>

#include "webapi-internal.h"

bool wa_filter_refused(const PGresult *res)
{
	return strcmp(wa_sqlstate(res), "FO400") == 0;
}

bool wa_filter_error(struct wa_ctx *ctx, enum ota_err err, const PGresult *res)
{
	const char *msg;

	if (err != OTA_ERR_STORAGE || !wa_filter_refused(res))
		return false;
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	wa_reply_error(ctx, 400, "bad_request", msg != NULL ? msg : "bad filter", "filter");
	return true;
}
