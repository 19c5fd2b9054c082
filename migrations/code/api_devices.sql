-- SPDX-License-Identifier: Apache-2.0
-- The REST API's devices (server/src/api/devices.c; the API passes its
-- parameters as text). Each returns the JSON text the API sends; no row
-- (or a NULL) for an unknown device.
--
-- The reads the API serves most (lists, gets) are PL/pgSQL: their queries
-- are parsed and planned once per connection and cached, as the server's
-- prepared statements were; a LANGUAGE sql function is parsed again on
-- every call (measured: about 1.5 ms more CPU for a page of 100 devices).

-- The Device schema of web-api/openapi.yaml. One expression without a
-- subquery, so that the planner inlines it into every query that lists
-- devices (a function it cannot inline costs a call per row): the key ids
-- are hex through bytea's text form ("\\x0a1b", bytea_output = hex, which
-- the server relies on everywhere).
CREATE OR REPLACE FUNCTION api_device_json(d devices) RETURNS json
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('device_id', d.device_id, 'model', d.model, 'hw_revision',
		d.hw_revision, 'version', d.version, 'version_code', d.version_code,
		'security_counter', d.security_counter, 'keylist_version', d.keylist_version,
		'rootlist_version', d.rootlist_version, 'keylist_key_ids',
		replace(d.keylist_key_ids::text, '"\\x', '"')::text[],
		'pending_version', d.pending_version, 'active_slot', d.active_slot, 'tags', d.tags,
		'state', d.state, 'last_error', d.last_error, 'last_error_detail',
		d.last_error_detail, 'last_seen', d.last_seen, 'created_at', d.created_at,
		'decommissioned', d.decommissioned, 'decommissioned_at', d.decommissioned_at,
		'suspect', d.suspect, 'suspect_reason', d.suspect_reason, 'suspect_at', d.suspect_at)
$$;

-- One page of devices after the cursor (a device id), each filter optional
-- (NULL): seen within / not seen within so many seconds. The Device JSON is
-- written out here, not called: the planner would inline api_device_json
-- by parsing its body again for every custom plan (measured: 3.3 ms CPU a
-- page of 100 instead of 1.5). filter-sql checks that both agree.
CREATE OR REPLACE FUNCTION api_device_list(p_model text, p_hw_revision text, p_version text,
	p_state text, p_tag text, p_keylist_version bigint, p_seen_within double precision,
	p_not_seen_within double precision, p_decommissioned boolean, p_version_code bigint,
	p_cursor text, p_limit integer, p_suspect boolean) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (SELECT json_build_object('items', COALESCE(json_agg(
				json_build_object('device_id', d.device_id, 'model', d.model, 'hw_revision',
				d.hw_revision, 'version', d.version, 'version_code', d.version_code,
				'security_counter', d.security_counter, 'keylist_version', d.keylist_version,
				'rootlist_version', d.rootlist_version, 'keylist_key_ids',
				replace(d.keylist_key_ids::text, '"\\x', '"')::text[],
				'pending_version', d.pending_version, 'active_slot', d.active_slot, 'tags', d.tags,
				'state', d.state, 'last_error', d.last_error, 'last_error_detail',
				d.last_error_detail, 'last_seen', d.last_seen, 'created_at', d.created_at,
				'decommissioned', d.decommissioned, 'decommissioned_at', d.decommissioned_at,
				'suspect', d.suspect, 'suspect_reason', d.suspect_reason, 'suspect_at', d.suspect_at)
			ORDER BY d.device_id), '[]'::json), 'next_cursor',
			CASE WHEN count(*) = p_limit THEN max(d.device_id) END)::text
		FROM (SELECT * FROM devices d WHERE (p_model IS NULL OR d.model = p_model)
			AND (p_hw_revision IS NULL OR d.hw_revision = p_hw_revision)
			AND (p_version IS NULL OR d.version = p_version)
			AND (p_state IS NULL OR d.state = p_state)
			AND (p_tag IS NULL OR d.tags @> ARRAY[p_tag])
			AND (p_keylist_version IS NULL OR d.keylist_version = p_keylist_version)
			AND (p_seen_within IS NULL OR d.last_seen >= now() - make_interval(secs =>
				p_seen_within))
			AND (p_not_seen_within IS NULL OR d.last_seen IS NULL OR d.last_seen < now() -
				make_interval(secs => p_not_seen_within))
			AND (p_decommissioned IS NULL OR d.decommissioned = p_decommissioned)
			AND (p_version_code IS NULL OR d.version_code = p_version_code)
			AND (p_suspect IS NULL OR d.suspect = p_suspect)
			AND d.device_id > COALESCE(p_cursor, '') ORDER BY d.device_id LIMIT p_limit) d);
END $$;

-- A device with its newest events, its assignments and its groups.
CREATE OR REPLACE FUNCTION api_device_get(p_device text) RETURNS SETOF text
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN QUERY SELECT (api_device_json(d)::jsonb || jsonb_build_object('events', COALESCE((SELECT
			jsonb_agg(e ORDER BY e.id DESC) FROM (SELECT id, seq, kind, error, version,
			version_code, security_counter, detail, campaign_id, device_time, received_at
			FROM device_events WHERE device_id = p_device ORDER BY id DESC LIMIT 50) e),
			'[]'::jsonb), 'assignments', COALESCE((SELECT jsonb_agg(x ORDER BY x.created_at)
			FROM (SELECT artifact_id, campaign_id, state, error, created_at, updated_at
			FROM assignments WHERE device_id = p_device) x), '[]'::jsonb), 'groups',
			ARRAY(SELECT group_id FROM device_group_members WHERE device_id = p_device
			ORDER BY group_id)))::text
		FROM devices d WHERE d.device_id = p_device;
END $$;

-- Replaces a device's tags (a JSON array; sorted, duplicates dropped) and audits it.
CREATE OR REPLACE FUNCTION api_device_set_tags(p_device text, p_tags jsonb, p_actor text)
RETURNS SETOF text
LANGUAGE sql AS $$
	WITH old AS (SELECT tags FROM devices WHERE device_id = p_device),
	d AS (UPDATE devices SET tags = ARRAY(SELECT DISTINCT t FROM
		jsonb_array_elements_text(p_tags) t ORDER BY 1) WHERE device_id = p_device
		RETURNING *),
	a AS (INSERT INTO audit (actor, action, object, before, after) SELECT p_actor,
		'device.set_tags', 'device:' || d.device_id, jsonb_build_object('tags', (SELECT
		to_jsonb(tags) FROM old)), jsonb_build_object('tags', to_jsonb(d.tags)) FROM d)
	SELECT api_device_json(d)::text FROM d
$$;

-- Decommissions a device once and audits it: the device (NULL when it was
-- already decommissioned or is unknown) and whether it exists (0 or 1).
CREATE OR REPLACE FUNCTION api_device_decommission(p_device text, p_actor text)
RETURNS TABLE (device text, found bigint)
LANGUAGE sql AS $$
	WITH d AS (UPDATE devices SET decommissioned = true, decommissioned_at = now()
		WHERE device_id = p_device AND NOT decommissioned RETURNING *),
	a AS (INSERT INTO audit (actor, action, object, before, after) SELECT p_actor,
		'device.decommission', 'device:' || d.device_id, '{"decommissioned": false}',
		jsonb_build_object('decommissioned', true, 'decommissioned_at',
		d.decommissioned_at) FROM d)
	SELECT (SELECT api_device_json(d)::text FROM d),
		(SELECT count(*) FROM devices WHERE device_id = p_device)
$$;

-- Clears a device's suspect flag (security_suspect_clear audits it).
CREATE OR REPLACE FUNCTION api_device_clear_suspect(p_device text, p_actor text)
RETURNS SETOF text
LANGUAGE sql AS $$
	SELECT api_device_json(d)::text FROM security_suspect_clear(p_device, p_actor) d
	WHERE d.device_id IS NOT NULL
$$;

-- One page of the devices (not decommissioned) that match a GroupFilter
-- (filter.sql; NULL: all) and whose id contains p_q (NULL: any), after the
-- cursor: GET /fleet/devices and the members of a dynamic group.
CREATE OR REPLACE FUNCTION api_device_search(p_filter json, p_q text, p_cursor text,
	p_limit integer) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
	v_clause text := 'true';
	v_args jsonb := '[]';
	v_page text;
BEGIN
	IF p_filter IS NOT NULL THEN
		SELECT f.clause, f.args INTO v_clause, v_args FROM filter_compile(p_filter, true) f;
	END IF;
	EXECUTE 'SELECT json_build_object(''items'', COALESCE(json_agg(api_device_json(d) '
		'ORDER BY d.device_id), ''[]''::json), ''next_cursor'', CASE WHEN count(*) = $4 '
		'THEN max(d.device_id) END)::text FROM (SELECT d.* FROM devices d WHERE NOT '
		'd.decommissioned AND d.device_id > COALESCE($2, '''') AND ($3::text IS NULL OR '
		'strpos(d.device_id, $3) > 0) AND ' || v_clause || ' ORDER BY d.device_id '
		'LIMIT $4) d'
		INTO v_page USING v_args, p_cursor, p_q, p_limit;
	RETURN v_page;
END $$;
