-- SPDX-License-Identifier: Apache-2.0
-- The GroupFilter language (web-api/openapi.yaml): the one compiler, used by
-- the REST API (dynamic groups, GET /fleet/devices) and by the rollout
-- engine (campaign targets naming dynamic groups, rollout_base.sql).
--
-- A filter compiles to a WHERE clause over devices (alias d) that names its
-- values only as $1 ->> N: $1 is the jsonb array `args` that comes with the
-- clause, so no value from a filter ever reaches SQL text. Only the fields
-- and operators below exist. A refusal raises SQLSTATE FO400 with a message
-- naming what is wrong (the API answers it 400 bad_request, field "filter").
-- With p_strict (what the API accepts from a client) text values are also
-- 1..128 printable bytes and tags are tags; stored filters that came in
-- another way are compiled without those checks.

-- Limits (openapi.yaml's GroupFilter says the same).
CREATE OR REPLACE FUNCTION filter_limit(p_name text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE p_name WHEN 'conditions' THEN 16 WHEN 'in_values' THEN 64 WHEN 'depth' THEN 4
		WHEN 'seen_seconds' THEN 10 * 365 * 86400 END
$$;

CREATE OR REPLACE FUNCTION filter_fail(p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = 'FO400', MESSAGE = p_message;
END $$;

-- The longest prefix of p_text of at most p_bytes bytes (names quoted in
-- messages are clipped).
CREATE OR REPLACE FUNCTION filter_clip(p_text text, p_bytes integer) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	v_chars integer := least(length(p_text), p_bytes);
BEGIN
	WHILE octet_length(left(p_text, v_chars)) > p_bytes LOOP
		v_chars := v_chars - 1;
	END LOOP;
	RETURN left(p_text, v_chars);
END $$;

-- A JSON integer >= 0 (not a real: the json text keeps the spelling), or NULL.
CREATE OR REPLACE FUNCTION filter_uint(p_value json) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN json_typeof(p_value) = 'number' AND p_value::text ~ '^[0-9]{1,19}$'
		AND p_value::text::numeric <= 9223372036854775807 THEN p_value::text::bigint END
$$;

-- A string value: 1..128 printable bytes when p_strict, or NULL.
CREATE OR REPLACE FUNCTION filter_text(p_value json, p_strict boolean) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN json_typeof(p_value) = 'string' AND (NOT p_strict OR (
		octet_length(p_value #>> '{}') BETWEEN 1 AND 128
		AND (p_value #>> '{}') !~ '[\x01-\x1f\x7f]')) THEN p_value #>> '{}' END
$$;

-- One condition {"field", "op", "value"}: its clause; its values appended to args.
CREATE OR REPLACE FUNCTION filter_condition(p_node json, p_strict boolean, INOUT args jsonb,
	INOUT conditions integer, OUT clause text)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	v_field json := p_node -> 'field';
	v_op json := p_node -> 'op';
	v_value json := p_node -> 'value';
	v_name text;
	v_opname text;
	v_col text;
	v_type text;
	v_sym text;
	v_arg text := jsonb_array_length(args)::text;
	v_item json;
	v_i integer := 0;
	v_list jsonb := '[]';
	v_text text;
	v_int bigint;
BEGIN
	IF (SELECT count(*) FROM json_object_keys(p_node)) <> 3 OR json_typeof(v_field) IS DISTINCT
		FROM 'string' OR json_typeof(v_op) IS DISTINCT FROM 'string' OR v_value IS NULL THEN
		PERFORM filter_fail('a condition is {"field", "op", "value"}');
	END IF;
	conditions := conditions + 1;
	IF conditions > filter_limit('conditions') THEN
		PERFORM filter_fail(format('more than %s conditions', filter_limit('conditions')));
	END IF;
	v_name := v_field #>> '{}';
	v_opname := v_op #>> '{}';
	v_type := CASE WHEN v_name IN ('model', 'hw_revision', 'version', 'state') THEN 'text'
		WHEN v_name IN ('version_code', 'security_counter', 'keylist_version',
			'rootlist_version') THEN 'int'
		WHEN v_name = 'tags' THEN 'tags' WHEN v_name = 'last_seen' THEN 'seen' END;
	IF v_type IS NULL THEN
		PERFORM filter_fail(format('unknown field "%s"', filter_clip(v_name, 40)));
	END IF;
	v_col := 'd.' || v_name;

	IF v_type = 'tags' THEN
		IF v_opname <> 'has' THEN
			PERFORM filter_fail('tags only take "has"');
		END IF;
		IF json_typeof(v_value) <> 'string' OR (p_strict AND (v_value #>> '{}') !~
			'^[A-Za-z0-9][A-Za-z0-9._:=/-]{0,63}$') THEN
			PERFORM filter_fail('"has" needs a tag');
		END IF;
		args := args || jsonb_build_array(v_value #>> '{}');
		clause := format('%s @> ARRAY[$1 ->> %s]', v_col, v_arg);
		RETURN;
	END IF;
	IF v_type = 'seen' THEN
		v_int := filter_uint(v_value);
		IF v_int IS NULL OR v_int > filter_limit('seen_seconds') THEN
			PERFORM filter_fail('last_seen needs a number of seconds');
		END IF;
		IF v_opname NOT IN ('within', 'not_within') THEN
			PERFORM filter_fail('last_seen takes "within" or "not_within"');
		END IF;
		args := args || jsonb_build_array(v_int);
		IF v_opname = 'within' THEN
			clause := format('%s >= now() - make_interval(secs => ($1 ->> %s)::double precision)',
				v_col, v_arg);
		ELSE
			clause := format('(%s IS NULL OR %s < now() - make_interval(secs => ($1 ->> %s)::double '
				'precision))', v_col, v_col, v_arg);
		END IF;
		RETURN;
	END IF;

	IF v_opname = 'in' THEN
		IF json_typeof(v_value) IS DISTINCT FROM 'array' OR json_array_length(v_value) = 0
			OR json_array_length(v_value) > filter_limit('in_values') THEN
			PERFORM filter_fail(format('"in" needs an array of 1..%s values',
				filter_limit('in_values')));
		END IF;
		FOR v_item IN SELECT e FROM json_array_elements(v_value) WITH ORDINALITY AS x (e, n)
			ORDER BY n LOOP
			IF v_type = 'int' THEN
				v_int := filter_uint(v_item);
				v_list := v_list || to_jsonb(v_int);
			ELSE
				v_text := filter_text(v_item, p_strict);
				v_list := v_list || to_jsonb(v_text);
			END IF;
			IF (v_type = 'int' AND v_int IS NULL) OR (v_type = 'text' AND v_text IS NULL) THEN
				PERFORM filter_fail(format('"in" value %s has the wrong type', v_i));
			END IF;
			v_i := v_i + 1;
		END LOOP;
		args := args || jsonb_build_array(v_list);
		IF v_type = 'int' THEN
			clause := format('%s IN (SELECT (jsonb_array_elements_text($1 -> %s))::bigint)',
				v_col, v_arg);
		ELSE
			clause := format('%s IN (SELECT jsonb_array_elements_text($1 -> %s))', v_col, v_arg);
		END IF;
		RETURN;
	END IF;
	v_sym := CASE v_opname WHEN 'eq' THEN '=' WHEN 'ne' THEN '<>' WHEN 'lt' THEN '<'
		WHEN 'le' THEN '<=' WHEN 'gt' THEN '>' WHEN 'ge' THEN '>=' END;
	IF v_sym IS NULL THEN
		PERFORM filter_fail(format('unknown operator "%s"', filter_clip(v_opname, 20)));
	END IF;
	IF v_type = 'text' THEN
		IF v_opname NOT IN ('eq', 'ne') THEN
			PERFORM filter_fail('text fields take eq, ne or in');
		END IF;
		v_text := filter_text(v_value, p_strict);
		IF v_text IS NULL THEN
			PERFORM filter_fail(format('"%s" needs a string of 1..128 characters', v_name));
		END IF;
		args := args || jsonb_build_array(v_text);
		clause := format('%s %s ($1 ->> %s)', v_col, v_sym, v_arg);
		RETURN;
	END IF;
	v_int := filter_uint(v_value);
	IF v_int IS NULL THEN
		PERFORM filter_fail(format('"%s" needs a non-negative integer', v_name));
	END IF;
	args := args || jsonb_build_array(v_int);
	clause := format('%s %s ($1 ->> %s)::bigint', v_col, v_sym, v_arg);
END $$;

-- A node at p_depth (the root is 0): a condition, {"all": [nodes]} or {"any": [nodes]}.
CREATE OR REPLACE FUNCTION filter_node(p_node json, p_depth integer, p_strict boolean,
	INOUT args jsonb, INOUT conditions integer, OUT clause text)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	v_keys text[];
	v_list json;
	v_child record;
	v_item json;
BEGIN
	IF json_typeof(p_node) IS DISTINCT FROM 'object' THEN
		PERFORM filter_fail('a filter node must be an object');
	END IF;
	IF p_depth > filter_limit('depth') THEN
		PERFORM filter_fail(format('filter nested deeper than %s', filter_limit('depth')));
	END IF;
	v_keys := ARRAY(SELECT json_object_keys(p_node));
	IF NOT ('all' = ANY (v_keys) OR 'any' = ANY (v_keys)) THEN
		SELECT * INTO v_child FROM filter_condition(p_node, p_strict, args, conditions);
		args := v_child.args;
		conditions := v_child.conditions;
		clause := v_child.clause;
		RETURN;
	END IF;
	IF cardinality(v_keys) <> 1 THEN
		PERFORM filter_fail('"all"/"any" stand alone in their object');
	END IF;
	v_list := p_node -> v_keys[1];
	IF json_typeof(v_list) <> 'array' OR json_array_length(v_list) = 0 THEN
		PERFORM filter_fail('"all"/"any" need a non-empty array');
	END IF;
	clause := '(';
	FOR v_item IN SELECT e FROM json_array_elements(v_list) WITH ORDINALITY AS x (e, n) ORDER BY n
	LOOP
		IF clause <> '(' THEN
			clause := clause || CASE v_keys[1] WHEN 'all' THEN ' AND ' ELSE ' OR ' END;
		END IF;
		SELECT * INTO v_child FROM filter_node(v_item, p_depth + 1, p_strict, args, conditions);
		args := v_child.args;
		conditions := v_child.conditions;
		clause := clause || v_child.clause;
	END LOOP;
	clause := clause || ')';
END $$;

-- Compiles a filter: the clause (over devices d; its values are $1 ->> N)
-- and the jsonb array to pass as $1. Raises FO400 naming what is wrong.
CREATE OR REPLACE FUNCTION filter_compile(p_filter json, p_strict boolean, OUT clause text,
	OUT args jsonb)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	v record;
BEGIN
	SELECT * INTO v FROM filter_node(p_filter, 0, p_strict, '[]'::jsonb, 0);
	clause := '(' || v.clause || ')';
	args := v.args;
END $$;
