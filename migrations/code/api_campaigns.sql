-- SPDX-License-Identifier: Apache-2.0
-- The REST API's campaign reads (server/src/api/campaigns.c); the engine's
-- own functions (rollout_api_create, rollout_status, rollout_api_action,
-- rollout_purge) are in rollout_*.sql. Each returns the JSON text the API
-- sends.

-- One page of campaigns (optionally in one state) after the cursor (an id).
CREATE OR REPLACE FUNCTION api_campaign_list(p_state text, p_cursor text, p_limit integer)
RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('items', COALESCE(json_agg(json_build_object(
		'id', k.campaign_id, 'kind', k.kind, 'artifact', k.artifact_id,
		'keylist_version', k.keylist_version, 'rootlist_version', k.rootlist_version,
		'state', k.state, 'reason', k.state_reason, 'current_stage', k.current_stage,
		'priority', k.priority, 'created_by', k.created_by, 'created_at', k.created_at)
		ORDER BY k.campaign_id), '[]'::json), 'next_cursor',
		CASE WHEN count(*) = p_limit THEN max(k.campaign_id) END)::text
	FROM (SELECT * FROM campaigns WHERE (p_state IS NULL OR state = p_state)
		AND campaign_id > COALESCE(p_cursor, '') ORDER BY campaign_id LIMIT p_limit) k
$$;

-- One page of a campaign's devices (optionally in one state) after the
-- cursor (a device id); NULL for an unknown campaign.
CREATE OR REPLACE FUNCTION api_campaign_devices(p_campaign text, p_state text, p_cursor text,
	p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM campaigns WHERE campaign_id = p_campaign)
		THEN NULL
	ELSE (SELECT json_build_object('items', COALESCE(json_agg(json_build_object(
		'device_id', m.device_id, 'stage', m.stage_no, 'step', m.step, 'state', m.state,
		'error', m.error, 'already', m.already, 'reconciled', m.reconciled,
		'notify_count', m.notify_count, 'notified_at', m.notified_at,
		'last_report_at', m.last_report_at, 'reported_version_code',
		m.reported_version_code, 'updated_at', m.updated_at, 'attempts', m.attempts,
		'retry_at', m.retry_at) ORDER BY m.device_id),
		'[]'::json), 'next_cursor', CASE WHEN count(*) = p_limit THEN max(m.device_id) END)::text
		FROM (SELECT * FROM campaign_devices WHERE campaign_id = p_campaign
			AND (p_state IS NULL OR state = p_state) AND device_id > COALESCE(p_cursor, '')
			ORDER BY device_id LIMIT p_limit) m) END
$$;

-- Key rotation coverage: per KeyList version, and the devices still behind
-- p_version (default: the newest KeyList), p_limit at most. PL/pgSQL: its
-- body names functions of rollout_*.sql, which are created after this file.
CREATE OR REPLACE FUNCTION api_keyrotation(p_version bigint, p_limit integer) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	RETURN (SELECT json_build_object('min_share', rollout_setting('keyrotation_min_share',
		'0.98')::numeric, 'latest_keylist', (SELECT max(version) FROM keylists),
		'coverage', COALESCE((SELECT json_agg(json_build_object('keylist_version',
		c.keylist_version, 'devices', c.devices, 'share', c.share, 'last_seen', c.last_seen)
		ORDER BY c.keylist_version) FROM rollout_keylist_coverage() c), '[]'::json),
		'stragglers', COALESCE((SELECT json_agg(json_build_object('device_id', s.device_id,
		'keylist_version', s.keylist_version, 'model', s.model, 'version', s.version,
		'last_seen', s.last_seen)) FROM rollout_keylist_stragglers(COALESCE(p_version,
		(SELECT max(version) FROM keylists), 0), p_limit) s), '[]'::json))::text);
END
$$;
