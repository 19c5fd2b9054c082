-- SPDX-License-Identifier: Apache-2.0
-- The REST API's signed RootLists and KeyLists (server/src/api/trust.c; the
-- API passes its parameters as text, binary values as hex). Each list is
-- verified in C (the device's own code) before it is inserted here.

CREATE OR REPLACE FUNCTION api_keylist_json(k keylists) RETURNS json
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('version', k.version, 'rootlist_version', k.rootlist_version,
		'sha256', encode(k.sha256, 'hex'), 'key_ids', ARRAY(SELECT encode(i, 'hex') FROM
		unnest(k.key_ids) i), 'created_at', k.created_at)
$$;

CREATE OR REPLACE FUNCTION api_rootlist_json(r rootlists) RETURNS json
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('version', r.version, 'sha256', encode(r.sha256, 'hex'),
		'created_at', r.created_at)
$$;

-- One page of KeyLists, newest first, below the cursor (a version).
CREATE OR REPLACE FUNCTION api_keylist_list(p_cursor bigint, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('items', COALESCE(json_agg(api_keylist_json(k)
		ORDER BY k.version DESC), '[]'::json), 'next_cursor', CASE WHEN count(*) = p_limit
		THEN min(k.version)::text END)::text
	FROM (SELECT * FROM keylists WHERE (p_cursor IS NULL OR version < p_cursor)
		ORDER BY version DESC LIMIT p_limit) k
$$;

-- One page of RootLists, newest first, below the cursor (a version).
CREATE OR REPLACE FUNCTION api_rootlist_list(p_cursor bigint, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('items', COALESCE(json_agg(api_rootlist_json(r)
		ORDER BY r.version DESC), '[]'::json), 'next_cursor', CASE WHEN count(*) = p_limit
		THEN min(r.version)::text END)::text
	FROM (SELECT * FROM rootlists WHERE (p_cursor IS NULL OR version < p_cursor)
		ORDER BY version DESC LIMIT p_limit) r
$$;

-- The newest RootList (NULL: none yet) and the newest KeyList version (0: none).
CREATE OR REPLACE FUNCTION api_trust_state(OUT rootlist bytea, OUT keylist_version bigint)
LANGUAGE sql STABLE AS $$
	SELECT (SELECT bytes FROM rootlists ORDER BY version DESC LIMIT 1),
		(SELECT COALESCE(max(version), 0) FROM keylists)
$$;

-- Inserts a verified KeyList only while it is still the newest (a concurrent
-- upload loses) and while the rollout engine's key-rotation check
-- (rollout_keylist_check) allows the keys it drops: enough of the fleet must
-- already trust a key the new list keeps, unless an admin forces it (the
-- check audits a forced retirement). The KeyList (NULL when not inserted)
-- and the check's verdict.
CREATE OR REPLACE FUNCTION api_keylist_insert(p_version bigint, p_rootlist_version bigint,
	p_bytes_hex text, p_sha256_hex text, p_key_ids jsonb, p_actor text, p_force boolean)
RETURNS TABLE (keylist text, allowed text, dropped text, coverage text, required text)
LANGUAGE sql AS $$
	WITH chk AS (SELECT rollout_keylist_check(ARRAY(SELECT decode(x, 'hex') FROM
		jsonb_array_elements_text(p_key_ids) x), p_force, p_actor, p_version) AS c),
	k AS (INSERT INTO keylists (version, rootlist_version, bytes, sha256, key_ids)
		SELECT p_version, p_rootlist_version, decode(p_bytes_hex, 'hex'),
		decode(p_sha256_hex, 'hex'), ARRAY(SELECT decode(x, 'hex') FROM
		jsonb_array_elements_text(p_key_ids) x) WHERE NOT EXISTS (SELECT 1 FROM keylists
		WHERE version >= p_version) AND (SELECT (c ->> 'allowed')::boolean FROM chk)
		RETURNING *),
	a AS (INSERT INTO audit (actor, action, object, after) SELECT p_actor, 'keylist.upload',
		'keylist:' || k.version, to_jsonb(api_keylist_json(k)) || jsonb_build_object(
		'rotation', (SELECT c FROM chk)) FROM k)
	SELECT (SELECT api_keylist_json(k)::text FROM k), (SELECT c ->> 'allowed' FROM chk),
		(SELECT c ->> 'dropped' FROM chk), (SELECT c ->> 'coverage' FROM chk),
		(SELECT c ->> 'required' FROM chk)
$$;

-- Inserts a verified RootList only while it is still the newest; no row otherwise.
CREATE OR REPLACE FUNCTION api_rootlist_insert(p_version bigint, p_bytes_hex text,
	p_sha256_hex text, p_actor text) RETURNS SETOF text
LANGUAGE sql AS $$
	WITH r AS (INSERT INTO rootlists (version, bytes, sha256) SELECT p_version,
		decode(p_bytes_hex, 'hex'), decode(p_sha256_hex, 'hex') WHERE NOT EXISTS (SELECT 1
		FROM rootlists WHERE version >= p_version) RETURNING *),
	a AS (INSERT INTO audit (actor, action, object, after) SELECT p_actor, 'rootlist.upload',
		'rootlist:' || r.version, to_jsonb(api_rootlist_json(r)) FROM r)
	SELECT api_rootlist_json(r)::text FROM r
$$;
