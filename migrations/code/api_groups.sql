-- SPDX-License-Identifier: Apache-2.0
-- The REST API's device groups (server/src/api/groups.c; the API passes its
-- parameters as text): static groups (member rows) and dynamic groups (a
-- GroupFilter, filter.sql). Each returns the JSON text the API sends; no row
-- (or a NULL) for an unknown group.

-- The DeviceGroup schema; member_count counts a static group's members.
CREATE OR REPLACE FUNCTION api_group_json(g device_groups, p_member_count bigint) RETURNS json
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('group_id', g.group_id, 'kind', g.kind, 'description',
		g.description, 'filter', g.filter, 'created_at', g.created_at, 'updated_at',
		g.updated_at, 'member_count', p_member_count)
$$;

CREATE OR REPLACE FUNCTION api_group_members_count(g device_groups) RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN g.kind = 'static' THEN (SELECT count(*) FROM device_group_members m
		WHERE m.group_id = g.group_id) END
$$;

-- One page of groups (optionally of one kind) after the cursor (a group id).
CREATE OR REPLACE FUNCTION api_group_list(p_kind text, p_cursor text, p_limit integer)
RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('items', COALESCE(json_agg(api_group_json(g,
		api_group_members_count(g)) ORDER BY g.group_id), '[]'::json), 'next_cursor',
		CASE WHEN count(*) = p_limit THEN max(g.group_id) END)::text
	FROM (SELECT * FROM device_groups WHERE (p_kind IS NULL OR kind = p_kind)
		AND group_id > COALESCE(p_cursor, '') ORDER BY group_id LIMIT p_limit) g
$$;

CREATE OR REPLACE FUNCTION api_group_get(p_group text) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
	SELECT api_group_json(g, api_group_members_count(g))::text FROM device_groups g
	WHERE g.group_id = p_group
$$;

-- Creates a group and audits it. A dynamic group's filter (p_filter, JSON
-- text as the client sent it) must compile (FO400 otherwise); a static
-- group's members (p_devices, a JSON array of ids) must exist (23503).
CREATE OR REPLACE FUNCTION api_group_create(p_group text, p_kind text, p_description text,
	p_filter text, p_devices jsonb, p_actor text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	v_group text;
BEGIN
	IF p_filter IS NOT NULL THEN
		PERFORM filter_compile(p_filter::json, true);
	END IF;
	WITH g AS (INSERT INTO device_groups (group_id, kind, description, filter)
		VALUES (p_group, p_kind, p_description, p_filter::jsonb) RETURNING *),
	m AS (INSERT INTO device_group_members (group_id, device_id) SELECT g.group_id, s.x
		FROM g, (SELECT DISTINCT jsonb_array_elements_text(p_devices) x) s RETURNING 1),
	a AS (INSERT INTO audit (actor, action, object, after) SELECT p_actor, 'group.create',
		'group:' || g.group_id, to_jsonb(g) || jsonb_build_object('devices', p_devices)
		FROM g)
	SELECT api_group_json(g, CASE WHEN g.kind = 'static' THEN (SELECT count(*) FROM m)
		END)::text INTO v_group FROM g;
	RETURN v_group;
END $$;

-- Deletes a group and audits it (with its members); 23503 while a campaign uses it.
CREATE OR REPLACE FUNCTION api_group_delete(p_group text, p_actor text) RETURNS SETOF text
LANGUAGE sql AS $$
	WITH g AS (DELETE FROM device_groups WHERE group_id = p_group RETURNING *),
	a AS (INSERT INTO audit (actor, action, object, before) SELECT p_actor, 'group.delete',
		'group:' || g.group_id, to_jsonb(g) || jsonb_build_object('devices', COALESCE((SELECT
		jsonb_agg(device_id ORDER BY device_id) FROM device_group_members WHERE group_id =
		g.group_id), '[]'::jsonb)) FROM g)
	SELECT api_group_json(g, NULL)::text FROM g
$$;

-- Replaces a static group's members (a JSON array of ids) and audits it:
-- the group (NULL unless it is static) and its kind (NULL: unknown group).
CREATE OR REPLACE FUNCTION api_group_set_members(p_group text, p_devices jsonb, p_actor text)
RETURNS TABLE (grp text, kind text)
LANGUAGE sql AS $$
	WITH g AS (UPDATE device_groups SET updated_at = now() WHERE group_id = p_group
		AND kind = 'static' RETURNING *),
	old AS (SELECT COALESCE(jsonb_agg(device_id ORDER BY device_id), '[]'::jsonb) j
		FROM device_group_members WHERE group_id = p_group),
	del AS (DELETE FROM device_group_members WHERE group_id IN (SELECT group_id FROM g)
		AND device_id NOT IN (SELECT jsonb_array_elements_text(p_devices)) RETURNING 1),
	ins AS (INSERT INTO device_group_members (group_id, device_id) SELECT g.group_id, s.x
		FROM g, (SELECT DISTINCT jsonb_array_elements_text(p_devices) x) s
		ON CONFLICT DO NOTHING RETURNING 1),
	a AS (INSERT INTO audit (actor, action, object, before, after) SELECT p_actor,
		'group.set_members', 'group:' || g.group_id, jsonb_build_object('devices', (SELECT j
		FROM old)), jsonb_build_object('devices', p_devices) FROM g)
	SELECT (SELECT api_group_json(g, (SELECT count(DISTINCT x) FROM
		jsonb_array_elements_text(p_devices) x))::text FROM g),
		(SELECT x.kind FROM device_groups x WHERE x.group_id = p_group)
$$;

-- One page of a group's devices after the cursor (a device id): a static
-- group's members, or the devices (not decommissioned) its filter matches.
-- No row for an unknown group.
CREATE OR REPLACE FUNCTION api_group_devices(p_group text, p_cursor text, p_limit integer)
RETURNS SETOF text
LANGUAGE plpgsql STABLE AS $$
DECLARE
	g device_groups;
BEGIN
	SELECT * INTO g FROM device_groups x WHERE x.group_id = p_group;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	IF g.kind = 'dynamic' THEN
		RETURN NEXT api_device_search(g.filter::json, NULL, p_cursor, p_limit);
		RETURN;
	END IF;
	RETURN QUERY SELECT json_build_object('items', COALESCE(json_agg(api_device_json(d)
		ORDER BY d.device_id), '[]'::json), 'next_cursor', CASE WHEN count(*) = p_limit
		THEN max(d.device_id) END)::text
	FROM (SELECT d.* FROM devices d WHERE d.device_id IN (SELECT m.device_id FROM
		device_group_members m WHERE m.group_id = p_group) AND d.device_id >
		COALESCE(p_cursor, '') ORDER BY d.device_id LIMIT p_limit) d;
END $$;
