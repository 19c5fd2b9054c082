-- SPDX-License-Identifier: Apache-2.0
-- What the operator console follows (server/src/api/observe.c; the API
-- passes its parameters as text). Each returns the JSON text the API sends.

-- One page of a campaign's events after the cursor (an id), p_limit at
-- most; NULL for an unknown campaign.
CREATE OR REPLACE FUNCTION api_campaign_events(p_campaign text, p_cursor bigint,
	p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM campaigns WHERE campaign_id = p_campaign)
		THEN NULL
	ELSE (SELECT json_build_object('items', COALESCE(json_agg(json_build_object(
			'id', e.id, 'at', e.at, 'kind', e.kind, 'stage', e.stage_no, 'detail', e.detail)
			ORDER BY e.id), '[]'::json),
		'next_cursor', CASE WHEN count(*) = p_limit THEN max(e.id)::text END)::text
		FROM (SELECT * FROM campaign_events WHERE campaign_id = p_campaign
			AND id > COALESCE(p_cursor, 0) ORDER BY id LIMIT p_limit) e) END
$$;

-- A campaign's failed and timed-out devices by stage, state and error;
-- NULL for an unknown campaign.
CREATE OR REPLACE FUNCTION api_campaign_failures(p_campaign text) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM campaigns WHERE campaign_id = p_campaign)
		THEN NULL
	ELSE (SELECT json_build_object('items', COALESCE(json_agg(json_build_object(
			'stage', f.stage_no, 'state', f.state, 'error', f.error, 'devices', f.n)
			ORDER BY f.stage_no, f.n DESC, f.error), '[]'::json))::text
		FROM (SELECT stage_no, state, error, count(*) AS n FROM campaign_devices
			WHERE campaign_id = p_campaign AND state IN ('failed', 'timed_out')
			GROUP BY stage_no, state, error) f) END
$$;

-- The fleet by model, version and state (p_rows rows at most, then
-- "truncated"); a device seen within p_online_seconds counts as online.
CREATE OR REPLACE FUNCTION api_fleet_summary(p_online_seconds integer, p_rows integer)
RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('online_seconds', p_online_seconds,
		'devices', count(*) FILTER (WHERE NOT decommissioned),
		'online', count(*) FILTER (WHERE NOT decommissioned AND last_seen >= now() -
			make_interval(secs => p_online_seconds)),
		'suspect', count(*) FILTER (WHERE NOT decommissioned AND suspect),
		'decommissioned', count(*) FILTER (WHERE decommissioned),
		'breakdown', (SELECT COALESCE(json_agg(json_build_object('model', b.model,
				'version', b.version, 'state', b.state, 'devices', b.n, 'online', b.online)
				ORDER BY b.model, b.version, b.state), '[]'::json)
			FROM (SELECT model, version, state, count(*) AS n,
				count(*) FILTER (WHERE last_seen >= now() -
					make_interval(secs => p_online_seconds)) AS online
				FROM devices WHERE NOT decommissioned GROUP BY model, version, state
				ORDER BY model, version, state LIMIT p_rows) b),
		'truncated', (SELECT count(*) > p_rows FROM (SELECT 1 FROM devices
			WHERE NOT decommissioned GROUP BY model, version, state LIMIT p_rows + 1) c)
		)::text
	FROM devices
$$;
