#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The GroupFilter compiler (migrations/code/filter.sql), the one compiler of
# the language, used by the REST API and the rollout engine: what it emits,
# that values are data, every refusal with its message (the API's 400
# texts), the limits, and a randomized run over fixture filters and
# generated filters (each compiles to a clause that runs, or is refused
# with FO400 and a message; never another error).
source "$(dirname "$0")/lib.sh" "$1"
CORPUS=$SRC/tests/fixtures/group_filters

# sqlstr TEXT: TEXT as an SQL string literal
sqlstr() { printf "'%s'" "${1//\'/\'\'}"; }
compiled() { q "SELECT clause || ' ' || args FROM filter_compile($(sqlstr "$1")::json, true)"; }
# refused FILTER MESSAGE
refused() {
	local out
	if out=$("${PSQL[@]}" -At -v VERBOSITY=verbose -c "SELECT * FROM filter_compile($(sqlstr "$1")::json, true)" 2>&1); then
		fail "$1: compiled, expected a refusal"
	fi
	grep -qF "ERROR:  FO400: $2"$'\n' <<<"$out"$'\n' || fail "$1: expected FO400 '$2', got: $out"
	echo "ok - refused: $2"
}

add_devices 6 dev
q "UPDATE devices SET model = 'gw-1', tags = '{eu}', version_code = 3, last_seen = now() WHERE device_id IN ('dev0000001', 'dev0000002');
   UPDATE devices SET model = 'b', last_seen = now() - interval '2 hours' WHERE device_id = 'dev0000003'"
rows_before=$(q "SELECT count(*) FROM devices")

expect_eq "a condition: one clause, its value a parameter" \
	"$(compiled '{"field":"model","op":"eq","value":"gw-1"}')" '(d.model = ($1 ->> 0)) ["gw-1"]'
expect_eq "nested all/any, each operator's clause" \
	"$(compiled '{"all":[{"field":"tags","op":"has","value":"eu"},{"any":[{"field":"version_code","op":"lt","value":5},{"field":"model","op":"in","value":["a","b"]},{"field":"last_seen","op":"not_within","value":60}]}]}')" \
	'((d.tags @> ARRAY[$1 ->> 0] AND (d.version_code < ($1 ->> 1)::bigint OR d.model IN (SELECT jsonb_array_elements_text($1 -> 2)) OR (d.last_seen IS NULL OR d.last_seen < now() - make_interval(secs => ($1 ->> 3)::double precision))))) ["eu", 5, ["a", "b"], 60]'
expect_eq "integer in, within" \
	"$(compiled '{"any":[{"field":"keylist_version","op":"in","value":[1,2]},{"field":"last_seen","op":"within","value":3600}]}')" \
	'((d.keylist_version IN (SELECT (jsonb_array_elements_text($1 -> 0))::bigint) OR d.last_seen >= now() - make_interval(secs => ($1 ->> 1)::double precision))) [[1, 2], 3600]'

# values are data: the hostile string is an argument, never SQL text
hostile="x'); DROP TABLE devices; --"
clause=$(q "SELECT clause FROM filter_compile($(sqlstr "{\"field\":\"version\",\"op\":\"ne\",\"value\":\"$hostile\"}")::json, true)")
[[ $clause != *DROP* && $clause != *"'"* ]] || fail "the value reached the clause: $clause"
expect_eq "an injection string is an argument" \
	"$(q "SELECT args ->> 0 FROM filter_compile($(sqlstr "{\"field\":\"version\",\"op\":\"ne\",\"value\":\"$hostile\"}")::json, true)")" "$hostile"
expect_eq "searching with it matches by value and changes nothing" \
	"$(q "SELECT api_device_search($(sqlstr "{\"field\":\"model\",\"op\":\"eq\",\"value\":\"$hostile\"}")::json, NULL, NULL, 10)")" \
	'{"items" : [], "next_cursor" : null}'
expect_eq "devices intact" "$(q "SELECT count(*) FROM devices")" "$rows_before"
# api_device_list writes the Device JSON out (for its plan's sake): it must
# stay the same as api_device_json's
expect_eq "api_device_list and api_device_json agree" \
	"$(q "UPDATE devices SET keylist_key_ids = ARRAY['\\x0a1b'::bytea, '\\x'::bytea], suspect = true WHERE device_id = 'dev0000004';
	      SELECT api_device_list(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 10, NULL) =
	      (SELECT json_build_object('items', json_agg(api_device_json(d) ORDER BY d.device_id), 'next_cursor', NULL)::text
	       FROM devices d)")" t
expect_eq "a filter evaluates over devices (not decommissioned)" \
	"$(q "UPDATE devices SET decommissioned = true WHERE device_id = 'dev0000002';
	      SELECT string_agg(x ->> 'device_id', ',') FROM json_array_elements(api_device_search(
	      '{\"all\":[{\"field\":\"model\",\"op\":\"in\",\"value\":[\"gw-1\",\"b\"]},{\"field\":\"last_seen\",\"op\":\"within\",\"value\":600}]}',
	      NULL, NULL, 10)::json -> 'items') x;
	      UPDATE devices SET decommissioned = false")" dev0000001

# every refusal, with the message the API answers (400, field "filter")
refused '{"field":"model; DROP","op":"eq","value":"x"}' 'unknown field "model; DROP"'
refused '{"field":"model","op":"like","value":"x"}' 'unknown operator "like"'
refused '{"field":"model","op":"lt","value":"x"}' 'text fields take eq, ne or in'
refused '{"field":"version_code","op":"eq","value":"1"}' '"version_code" needs a non-negative integer'
refused '{"field":"version_code","op":"eq","value":-1}' '"version_code" needs a non-negative integer'
refused '{"field":"version_code","op":"eq","value":1.0}' '"version_code" needs a non-negative integer'
refused '{"field":"version_code","op":"eq","value":1e17}' '"version_code" needs a non-negative integer'
refused '{"field":"tags","op":"eq","value":"x"}' 'tags only take "has"'
refused '{"field":"tags","op":"has","value":"a b"}' '"has" needs a tag'
refused '{"field":"last_seen","op":"within","value":"1h"}' 'last_seen needs a number of seconds'
refused '{"field":"last_seen","op":"within","value":315360001}' 'last_seen needs a number of seconds'
refused '{"field":"last_seen","op":"since","value":60}' 'last_seen takes "within" or "not_within"'
refused '{"field":"model","op":"in","value":[]}' '"in" needs an array of 1..64 values'
refused '{"field":"model","op":"in","value":"a"}' '"in" needs an array of 1..64 values'
refused '{"field":"model","op":"in","value":["a",1]}' '"in" value 1 has the wrong type'
refused '{"field":"version_code","op":"in","value":[1,"2"]}' '"in" value 1 has the wrong type'
refused '{"field":"model","op":"eq","value":""}' '"model" needs a string of 1..128 characters'
refused '{"field":"model","op":"eq","value":"a\u0001"}' '"model" needs a string of 1..128 characters'
refused "{\"field\":\"model\",\"op\":\"eq\",\"value\":\"$(printf 'x%.0s' {1..129})\"}" '"model" needs a string of 1..128 characters'
refused '{"field":"model","op":"eq"}' 'a condition is {"field", "op", "value"}'
refused '{"field":"model","op":"eq","value":"x","extra":1}' 'a condition is {"field", "op", "value"}'
refused '{"field":1,"op":"eq","value":"x"}' 'a condition is {"field", "op", "value"}'
refused '{"all":[]}' '"all"/"any" need a non-empty array'
refused '{"all":{}}' '"all"/"any" need a non-empty array'
refused '{"all":[{"field":"model","op":"eq","value":"x"}],"any":[]}' '"all"/"any" stand alone in their object'
refused '{"all":[{"all":[{"all":[{"all":[{"all":[{"field":"model","op":"eq","value":"x"}]}]}]}]}]}' 'filter nested deeper than 4'
refused '[]' 'a filter node must be an object'
refused '"model"' 'a filter node must be an object'
refused '{"any":[{"field":"model","op":"eq","value":"x"},7]}' 'a filter node must be an object'
refused "{\"field\":\"$(printf 'é%.0s' {1..30})\",\"op\":\"eq\",\"value\":1}" "unknown field \"$(printf 'é%.0s' {1..20})\""
expect_eq "nesting depth 4 below the root compiles" \
	"$(compiled '{"all":[{"all":[{"all":[{"all":[{"field":"model","op":"eq","value":"x"}]}]}]}]}')" \
	'(((((d.model = ($1 ->> 0)))))) ["x"]'

# at most 16 conditions
conds() { local i out=; for ((i = 0; i < $1; i++)); do out+="${out:+,}{\"field\":\"version_code\",\"op\":\"ge\",\"value\":$i}"; done; echo "{\"all\":[$out]}"; }
expect_eq "16 conditions compile (16 arguments)" \
	"$(q "SELECT jsonb_array_length(args) FROM filter_compile($(sqlstr "$(conds 16)")::json, true)")" 16
refused "$(conds 17)" 'more than 16 conditions'

# stored filters that did not come through the API (the engine's reads):
# the same compiler without the API's text and tag rules
expect_eq "not strict: any tag string is a value" \
	"$(q "SELECT args ->> 0 FROM filter_compile('{\"field\":\"tags\",\"op\":\"has\",\"value\":\"a b\"}', false)")" "a b"

# randomized: the fuzz corpus and generated filters (right and wrong shapes)
q "CREATE FUNCTION filter_test_gen(p_depth integer) RETURNS json LANGUAGE plpgsql VOLATILE AS \$\$
DECLARE
	fields text[] := ARRAY['model', 'version', 'state', 'hw_revision', 'version_code', 'security_counter',
		'keylist_version', 'rootlist_version', 'tags', 'last_seen', 'colour'];
	ops text[] := ARRAY['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'in', 'has', 'within', 'not_within', 'like'];
	vals text[] := ARRAY['\"gw-1\"', '\"x'''');--\"', '5', '0', '-1', '2.5', 'null', 'true', '[]', '[1,2]',
		'[\"a\",\"b\"]', '{}', '\"\"', '315360000', '\"eu\"', '[\"a\",3]'];
	r double precision := random();
	items text := '';
BEGIN
	IF p_depth < 6 AND r < 0.3 THEN
		FOR i IN 1 .. 1 + floor(random() * 4)::int LOOP
			items := items || CASE WHEN items = '' THEN '' ELSE ',' END || filter_test_gen(p_depth + 1)::text;
		END LOOP;
		RETURN format('{\"%s\":[%s]}', CASE WHEN random() < 0.5 THEN 'all' ELSE 'any' END, items)::json;
	ELSIF r < 0.33 THEN
		RETURN (ARRAY['[]', '7', '\"all\"', '{\"all\":[]}', '{\"field\":\"model\",\"op\":\"eq\"}'])[1 + floor(random() * 5)::int]::json;
	END IF;
	RETURN format('{\"field\":\"%s\",\"op\":\"%s\",\"value\":%s}', fields[1 + floor(random() * 11)::int],
		ops[1 + floor(random() * 11)::int], vals[1 + floor(random() * 16)::int])::json;
END \$\$;
CREATE TABLE filter_test_cases (filter json);"
for f in "$CORPUS"/*; do q "INSERT INTO filter_test_cases VALUES ($(sqlstr "$(cat "$f")"))" 2>/dev/null || true; done
result=$(q "INSERT INTO filter_test_cases SELECT filter_test_gen(0) FROM generate_series(1, 1500);
DO \$\$
DECLARE
	c record;
	f record;
	n_ok integer := 0;
	n_refused integer := 0;
	v_max integer;
	v_page text;
BEGIN
	FOR c IN SELECT filter FROM filter_test_cases LOOP
		BEGIN
			SELECT * INTO f FROM filter_compile(c.filter, true);
		EXCEPTION WHEN SQLSTATE 'FO400' THEN
			n_refused := n_refused + 1;
			IF coalesce(SQLERRM, '') = '' THEN
				RAISE EXCEPTION 'a refusal without a message: %', c.filter;
			END IF;
			CONTINUE;
		END;
		-- every argument the clause names exists, and nothing more
		SELECT max(m[1]::int) INTO v_max FROM regexp_matches(f.clause, '\\\$1 ->>? ([0-9]+)', 'g') m;
		IF v_max IS DISTINCT FROM jsonb_array_length(f.args) - 1 OR f.clause ~ '\\\$[02-9]' THEN
			RAISE EXCEPTION 'clause and arguments disagree: % %', f.clause, f.args;
		END IF;
		EXECUTE 'SELECT count(*)::text FROM devices d WHERE ' || f.clause INTO v_page USING f.args;
		n_ok := n_ok + 1;
	END LOOP;
	RAISE NOTICE 'compiled % refused %', n_ok, n_refused;
	IF n_ok < 50 OR n_refused < 50 THEN
		RAISE EXCEPTION 'the generator missed a side: % compiled, % refused', n_ok, n_refused;
	END IF;
END \$\$;" 2>&1) || fail "randomized filters: $result"
echo "ok - randomized filters: each compiled and ran, or was refused with a message"
expect_eq "devices intact after all of it" "$(q "SELECT count(*) FROM devices")" "$rows_before"
