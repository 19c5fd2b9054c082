/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dynamic group filters: a small JSON language (openapi.yaml, GroupFilter).
 * Its compiler is the database's (migrations/code/filter.sql): the API
 * passes a filter to an SQL function and answers a refusal (SQLSTATE
 * FO400) 400 with the compiler's message.
 *
 * wa_filter_compile below is the former C compiler: no handler uses it
 * any more (GET /fleet/devices calls api_device_search); only its unit test
 * and fuzz target still do, and go with it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

enum field_type {
	FT_TEXT,
	FT_INT,
	FT_TAGS,
	FT_SEEN,
};

static const struct {
	const char *name;
	const char *column;
	enum field_type type;
} fields[] = {
	{"model", "d.model", FT_TEXT},
	{"hw_revision", "d.hw_revision", FT_TEXT},
	{"version", "d.version", FT_TEXT},
	{"state", "d.state", FT_TEXT},
	{"version_code", "d.version_code", FT_INT},
	{"security_counter", "d.security_counter", FT_INT},
	{"keylist_version", "d.keylist_version", FT_INT},
	{"rootlist_version", "d.rootlist_version", FT_INT},
	{"tags", "d.tags", FT_TAGS},
	{"last_seen", "d.last_seen", FT_SEEN},
};

struct compiler {
	struct wa_filter_sql *out;
	size_t sql_len;
	int next_param;
	unsigned conditions;
	char *err;
};

static enum ota_err fail(struct compiler *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static enum ota_err fail(struct compiler *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, WA_FILTER_ERR_BYTES, fmt, ap);
	va_end(ap);
	return OTA_ERR_FORMAT;
}

static enum ota_err emit(struct compiler *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static enum ota_err emit(struct compiler *c, const char *fmt, ...)
{
	va_list ap;
	int n;
	size_t room = sizeof(c->out->where) - c->sql_len;

	va_start(ap, fmt);
	n = vsnprintf(c->out->where + c->sql_len, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		return fail(c, "filter too complex");
	c->sql_len += (size_t)n;
	return OTA_OK;
}

/* Adds a parameter (heap copy of value) and returns its number. */
static enum ota_err add_param(struct compiler *c, const char *value, int *ret_num)
{
	char *copy;

	if (c->out->n_params >= (int)WA_FILTER_MAX_CONDITIONS)
		return fail(c, "more than %u values", WA_FILTER_MAX_CONDITIONS);
	copy = strdup(value);
	if (copy == NULL)
		return OTA_ERR_NOMEM;
	c->out->params[c->out->n_params++] = copy;
	*ret_num = c->next_param++;
	return OTA_OK;
}

static bool int_value(const json_t *v, char buf[24])
{
	json_int_t i;

	if (!json_is_integer(v))
		return false;
	i = json_integer_value(v);
	if (i < 0)
		return false;
	snprintf(buf, 24, "%lld", (long long)i);
	return true;
}

static enum ota_err in_list(struct compiler *c, const char *column, enum field_type type,
			    const json_t *value)
{
	json_t *arr;
	size_t i, n = json_array_size(value);
	char *text;
	int num;
	enum ota_err err;

	if (!json_is_array(value) || n == 0 || n > WA_FILTER_MAX_IN_VALUES)
		return fail(c, "\"in\" needs an array of 1..%u values", WA_FILTER_MAX_IN_VALUES);
	arr = json_array();
	if (arr == NULL)
		return OTA_ERR_NOMEM;
	for (i = 0; i < n; i++) {
		const json_t *item = json_array_get(value, i);
		char buf[24];

		if (type == FT_INT
			    ? !int_value(item, buf)
			    : !(json_is_string(item) && wa_text_valid(json_string_value(item)))) {
			json_decref(arr);
			return fail(c, "\"in\" value %zu has the wrong type", i);
		}
		json_array_append_new(arr, type == FT_INT ? json_integer(json_integer_value(item))
							  : json_string(json_string_value(item)));
	}
	text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	if (text == NULL)
		return OTA_ERR_NOMEM;
	err = add_param(c, text, &num);
	free(text);
	if (err != OTA_OK)
		return err;
	if (type == FT_INT)
		return emit(c, "%s IN (SELECT (jsonb_array_elements_text($%d::jsonb))::bigint)",
			    column, num);
	return emit(c, "%s IN (SELECT jsonb_array_elements_text($%d::jsonb))", column, num);
}

static enum ota_err condition(struct compiler *c, const json_t *node)
{
	const json_t *jfield = json_object_get(node, "field");
	const json_t *jop = json_object_get(node, "op");
	const json_t *value = json_object_get(node, "value");
	const char *name, *op, *column = NULL;
	enum field_type type = FT_TEXT;
	static const struct {
		const char *name, *sql;
	} cmp_ops[] = {{"eq", "="},  {"ne", "<>"}, {"lt", "<"},
		       {"le", "<="}, {"gt", ">"},  {"ge", ">="}};
	char buf[24];
	int num;
	enum ota_err err;

	if (json_object_size(node) != 3 || !json_is_string(jfield) || !json_is_string(jop) ||
	    value == NULL)
		return fail(c, "a condition is {\"field\", \"op\", \"value\"}");
	if (++c->conditions > WA_FILTER_MAX_CONDITIONS)
		return fail(c, "more than %u conditions", WA_FILTER_MAX_CONDITIONS);
	name = json_string_value(jfield);
	op = json_string_value(jop);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (strcmp(name, fields[i].name) == 0) {
			column = fields[i].column;
			type = fields[i].type;
		}
	}
	if (column == NULL)
		return fail(c, "unknown field \"%.40s\"", name);

	switch (type) {
	case FT_TAGS:
		if (strcmp(op, "has") != 0)
			return fail(c, "tags only take \"has\"");
		if (!json_is_string(value) || !wa_tag_valid(json_string_value(value)))
			return fail(c, "\"has\" needs a tag");
		err = add_param(c, json_string_value(value), &num);
		return err != OTA_OK ? err : emit(c, "%s @> ARRAY[$%d::text]", column, num);
	case FT_SEEN:
		if (!int_value(value, buf) || json_integer_value(value) > 10LL * 365 * 86400)
			return fail(c, "last_seen needs a number of seconds");
		if (strcmp(op, "within") != 0 && strcmp(op, "not_within") != 0)
			return fail(c, "last_seen takes \"within\" or \"not_within\"");
		err = add_param(c, buf, &num);
		if (err != OTA_OK)
			return err;
		if (strcmp(op, "within") == 0)
			return emit(c, "%s >= now() - make_interval(secs => $%d::double precision)",
				    column, num);
		return emit(c,
			    "(%s IS NULL OR %s < now() - make_interval(secs => $%d::double "
			    "precision))",
			    column, column, num);
	case FT_TEXT:
	case FT_INT:
		break;
	}
	if (strcmp(op, "in") == 0)
		return in_list(c, column, type, value);
	for (size_t i = 0; i < sizeof(cmp_ops) / sizeof(cmp_ops[0]); i++) {
		if (strcmp(op, cmp_ops[i].name) != 0)
			continue;
		if (type == FT_TEXT) {
			if (i > 1)
				return fail(c, "text fields take eq, ne or in");
			if (!json_is_string(value) || !wa_text_valid(json_string_value(value)))
				return fail(c, "\"%.20s\" needs a string of 1..128 characters",
					    name);
			err = add_param(c, json_string_value(value), &num);
			return err != OTA_OK ? err
					     : emit(c, "%s %s $%d", column, cmp_ops[i].sql, num);
		}
		if (!int_value(value, buf))
			return fail(c, "\"%.20s\" needs a non-negative integer", name);
		err = add_param(c, buf, &num);
		return err != OTA_OK ? err
				     : emit(c, "%s %s $%d::bigint", column, cmp_ops[i].sql, num);
	}
	return fail(c, "unknown operator \"%.20s\"", op);
}

static enum ota_err node(struct compiler *c, const json_t *n, unsigned depth)
{
	const json_t *all, *any, *list;
	size_t count;
	enum ota_err err;

	if (!json_is_object(n))
		return fail(c, "a filter node must be an object");
	if (depth > WA_FILTER_MAX_DEPTH)
		return fail(c, "filter nested deeper than %u", WA_FILTER_MAX_DEPTH);
	all = json_object_get(n, "all");
	any = json_object_get(n, "any");
	if (all == NULL && any == NULL)
		return condition(c, n);
	if (json_object_size(n) != 1)
		return fail(c, "\"all\"/\"any\" stand alone in their object");
	list = all != NULL ? all : any;
	count = json_array_size(list);
	if (!json_is_array(list) || count == 0)
		return fail(c, "\"all\"/\"any\" need a non-empty array");
	err = emit(c, "(");
	for (size_t i = 0; i < count && err == OTA_OK; i++) {
		if (i > 0)
			err = emit(c, all != NULL ? " AND " : " OR ");
		if (err == OTA_OK)
			err = node(c, json_array_get(list, i), depth + 1);
	}
	return err != OTA_OK ? err : emit(c, ")");
}

enum ota_err wa_filter_compile(const json_t *filter, int first_param, struct wa_filter_sql *out,
			       char err[WA_FILTER_ERR_BYTES])
{
	struct compiler c = {.out = out, .next_param = first_param, .err = err};
	enum ota_err rc;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	rc = emit(&c, "(");
	if (rc == OTA_OK)
		rc = node(&c, filter, 0);
	if (rc == OTA_OK)
		rc = emit(&c, ")");
	if (rc != OTA_OK) {
		if (rc == OTA_ERR_NOMEM)
			snprintf(err, WA_FILTER_ERR_BYTES, "out of memory");
		wa_filter_sql_clear(out);
	}
	return rc;
}

void wa_filter_sql_clear(struct wa_filter_sql *out)
{
	for (int i = 0; i < out->n_params; i++)
		free(out->params[i]);
	out->n_params = 0;
	out->where[0] = '\0';
}
