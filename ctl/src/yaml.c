/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Campaign files in YAML: libyaml's document, turned into the same JSON
 * the API takes. Plain scalars get YAML's core types (null, booleans,
 * integers, floats), quoted ones stay strings. Nesting and the number of
 * values made are bounded (aliases may repeat a node: a small file must
 * not expand without end).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "ctl.h"

static json_t *scalar(const yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	char *end;

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_stringn(s, len);
	if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0)
		return json_null();
	if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0)
		return json_true();
	if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0)
		return json_false();
	errno = 0;
	{
		long long v = strtoll(s, &end, 10);

		if (*end == '\0' && errno == 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
			return json_integer((json_int_t)v);
	}
	errno = 0;
	{
		double d = strtod(s, &end);

		if (*end == '\0' && errno == 0 &&
		    (s[0] == '-' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9')))
			return json_real(d);
	}
	return json_stringn(s, len);
}

static json_t *convert(yaml_document_t *doc, const yaml_node_t *n, int depth, size_t *budget,
		       char *err, size_t err_cap)
{
	json_t *out = NULL;

	if (n == NULL || depth > CTL_YAML_MAX_DEPTH || *budget == 0) {
		snprintf(err, err_cap, "nested too deep, too many values, or an empty node");
		return NULL;
	}
	(*budget)--;
	switch (n->type) {
	case YAML_SCALAR_NODE:
		out = scalar(n);
		break;
	case YAML_SEQUENCE_NODE:
		out = json_array();
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     out != NULL && i < n->data.sequence.items.top; i++) {
			json_t *v = convert(doc, yaml_document_get_node(doc, *i), depth + 1, budget,
					    err, err_cap);

			if (v == NULL || json_array_append_new(out, v) != 0) {
				json_decref(out);
				out = NULL;
			}
		}
		break;
	case YAML_MAPPING_NODE:
		out = json_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     out != NULL && p < n->data.mapping.pairs.top; p++) {
			const yaml_node_t *k = yaml_document_get_node(doc, p->key);
			json_t *v;

			if (k == NULL || k->type != YAML_SCALAR_NODE) {
				snprintf(err, err_cap, "a mapping key is not a string");
				json_decref(out);
				return NULL;
			}
			if (json_object_get(out, (const char *)k->data.scalar.value) != NULL) {
				snprintf(err, err_cap, "key %.64s given twice",
					 k->data.scalar.value);
				json_decref(out);
				return NULL;
			}
			v = convert(doc, yaml_document_get_node(doc, p->value), depth + 1, budget,
				    err, err_cap);
			if (v == NULL ||
			    json_object_set_new(out, (const char *)k->data.scalar.value, v) != 0) {
				json_decref(out);
				out = NULL;
			}
		}
		break;
	default:
		snprintf(err, err_cap, "an empty document");
		break;
	}
	return out;
}

json_t *ctl_yaml_load(const char *path, char *err, size_t err_cap)
{
	size_t len = 0;
	char *text = ctl_read_file(path, CTL_MAX_JSON_FILE, &len);
	yaml_parser_t parser;
	yaml_document_t doc;
	json_t *out = NULL;
	size_t budget = CTL_YAML_MAX_VALUES;

	if (text == NULL) {
		snprintf(err, err_cap, "%s",
			 errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
		return NULL;
	}
	if (!yaml_parser_initialize(&parser)) {
		free(text);
		snprintf(err, err_cap, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, err_cap, "line %zu: %s", parser.problem_mark.line + 1,
			 parser.problem != NULL ? parser.problem : "malformed YAML");
	} else {
		out = convert(&doc, yaml_document_get_root_node(&doc), 0, &budget, err, err_cap);
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	free(text);
	return out;
}
