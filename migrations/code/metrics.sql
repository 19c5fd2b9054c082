-- SPDX-License-Identifier: Apache-2.0
-- The fleet-wide gauges of /metrics (server/src/core/metrics.c renders the
-- rows): devices by state, version and KeyList version, the decommissioned,
-- and per campaign not finished or finished within 24 hours (p_campaigns
-- at most, the newest) its target size, whether the engine paused it, and
-- its devices by state. Rows: kind, label, label2, value.
CREATE OR REPLACE FUNCTION metrics_fleet(p_campaigns integer)
RETURNS TABLE (kind text, label text, label2 text, value bigint)
LANGUAGE sql STABLE AS $$
	WITH c AS (SELECT campaign_id, state, state_reason, target_size FROM campaigns
		WHERE finished_at IS NULL OR finished_at > now() - interval '24 hours'
		ORDER BY created_at DESC LIMIT p_campaigns)
	SELECT 'state', state, '', count(*) FROM devices WHERE NOT decommissioned GROUP BY state
	UNION ALL SELECT 'version', version, '', count(*) FROM devices WHERE NOT decommissioned
		GROUP BY version
	UNION ALL SELECT 'keylist', keylist_version::text, '', count(*) FROM devices
		WHERE NOT decommissioned GROUP BY keylist_version
	UNION ALL SELECT 'decommissioned', '', '', count(*) FROM devices WHERE decommissioned
	UNION ALL SELECT 'campaign', campaign_id, state, target_size FROM c
	UNION ALL SELECT 'auto_paused', campaign_id, '',
		(state = 'paused' AND state_reason NOT LIKE 'paused by %')::int FROM c
	UNION ALL SELECT 'campaign_devices', m.campaign_id, m.state, count(*)
		FROM campaign_devices m JOIN c USING (campaign_id) GROUP BY m.campaign_id, m.state
$$;
