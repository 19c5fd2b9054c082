/* SPDX-License-Identifier: Apache-2.0 */
/* Dynamic group filters compile to fixed SQL text with numbered parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "webapi-internal.h"

static enum ota_err compile(const char *text, int first, struct wa_filter_sql *out, char err[128])
{
	json_t *j = json_loads(text, 0, NULL);
	enum ota_err rc;

	assert_non_null(j);
	rc = wa_filter_compile(j, first, out, err);
	json_decref(j);
	return rc;
}

static void test_condition(void **state)
{
	struct wa_filter_sql out;
	char err[128];

	(void)state;
	assert_int_equal(
		compile("{\"field\":\"model\",\"op\":\"eq\",\"value\":\"gw-1\"}", 3, &out, err),
		OTA_OK);
	assert_string_equal(out.where, "(d.model = $3)");
	assert_int_equal(out.n_params, 1);
	assert_string_equal(out.params[0], "gw-1");
	wa_filter_sql_clear(&out);
}

static void test_nested(void **state)
{
	struct wa_filter_sql out;
	char err[128];

	(void)state;
	assert_int_equal(
		compile("{\"all\":[{\"field\":\"tags\",\"op\":\"has\",\"value\":\"eu\"},{\"any\":["
			"{\"field\":\"version_code\",\"op\":\"lt\",\"value\":5},{\"field\":"
			"\"model\",\"op\":\"in\",\"value\":[\"a\",\"b\"]},{\"field\":\"last_seen\","
			"\"op\":\"not_within\",\"value\":60}]}]}",
			1, &out, err),
		OTA_OK);
	assert_string_equal(out.where,
			    "((d.tags @> ARRAY[$1::text] AND (d.version_code < $2::bigint OR "
			    "d.model IN (SELECT jsonb_array_elements_text($3::jsonb)) OR "
			    "(d.last_seen IS NULL OR d.last_seen < now() - make_interval(secs => "
			    "$4::double precision)))))");
	assert_int_equal(out.n_params, 4);
	assert_string_equal(out.params[0], "eu");
	assert_string_equal(out.params[1], "5");
	assert_string_equal(out.params[2], "[\"a\",\"b\"]");
	assert_string_equal(out.params[3], "60");
	wa_filter_sql_clear(&out);
}

/* Values are parameters: an injection string never reaches the SQL text. */
static void test_injection_is_data(void **state)
{
	struct wa_filter_sql out;
	char err[128];

	(void)state;
	assert_int_equal(compile("{\"field\":\"version\",\"op\":\"ne\",\"value\":\"x'); DROP TABLE "
				 "devices; --\"}",
				 1, &out, err),
			 OTA_OK);
	assert_null(strstr(out.where, "DROP"));
	assert_null(strchr(out.where, '\''));
	assert_string_equal(out.params[0], "x'); DROP TABLE devices; --");
	wa_filter_sql_clear(&out);
}

static void test_refusals(void **state)
{
	static const char *const bad[] = {
		"{\"field\":\"model; DROP\",\"op\":\"eq\",\"value\":\"x\"}",
		"{\"field\":\"model\",\"op\":\"like\",\"value\":\"x\"}",
		"{\"field\":\"model\",\"op\":\"lt\",\"value\":\"x\"}",
		"{\"field\":\"version_code\",\"op\":\"eq\",\"value\":\"1\"}",
		"{\"field\":\"version_code\",\"op\":\"eq\",\"value\":-1}",
		"{\"field\":\"tags\",\"op\":\"eq\",\"value\":\"x\"}",
		"{\"field\":\"tags\",\"op\":\"has\",\"value\":\"a b\"}",
		"{\"field\":\"last_seen\",\"op\":\"within\",\"value\":\"1h\"}",
		"{\"field\":\"model\",\"op\":\"in\",\"value\":[]}",
		"{\"field\":\"model\",\"op\":\"in\",\"value\":[1]}",
		"{\"field\":\"model\",\"op\":\"eq\",\"value\":\"\"}",
		"{\"field\":\"model\",\"op\":\"eq\"}",
		"{\"field\":\"model\",\"op\":\"eq\",\"value\":\"x\",\"extra\":1}",
		"{\"all\":[]}",
		"{\"all\":{}}",
		"{\"all\":[{\"field\":\"model\",\"op\":\"eq\",\"value\":\"x\"}],\"any\":[]}",
		"{\"all\":[{\"all\":[{\"all\":[{\"all\":[{\"all\":[{\"field\":\"model\",\"op\":"
		"\"eq\",\"value\":\"x\"}]}]}]}]}]}",
		"[]",
		"\"model\"",
	};
	struct wa_filter_sql out;
	char err[128];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);

		assert_non_null(j);
		assert_int_equal(wa_filter_compile(j, 1, &out, err), OTA_ERR_FORMAT);
		assert_true(err[0] != '\0');
		assert_int_equal(out.n_params, 0);
		json_decref(j);
	}
}

static void test_too_many_conditions(void **state)
{
	json_t *all = json_array();
	json_t *root = json_pack("{s:o}", "all", all);
	struct wa_filter_sql out;
	char err[128];

	(void)state;
	for (unsigned i = 0; i < WA_FILTER_MAX_CONDITIONS; i++)
		json_array_append_new(all, json_pack("{s:s, s:s, s:i}", "field", "version_code",
						     "op", "ge", "value", (int)i));
	assert_int_equal(wa_filter_compile(root, 1, &out, err), OTA_OK);
	assert_int_equal(out.n_params, (int)WA_FILTER_MAX_CONDITIONS);
	wa_filter_sql_clear(&out);
	json_array_append_new(
		all, json_pack("{s:s, s:s, s:i}", "field", "version_code", "op", "ge", "value", 1));
	assert_int_equal(wa_filter_compile(root, 1, &out, err), OTA_ERR_FORMAT);
	json_decref(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_condition),	    cmocka_unit_test(test_nested),
		cmocka_unit_test(test_injection_is_data),   cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_too_many_conditions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
