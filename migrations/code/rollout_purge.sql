-- SPDX-License-Identifier: Apache-2.0
-- fleetota rollout engine: retention: purging ended history.
-- Re-applied by `ota-server migrate` whenever this file changes (docs/server.md).

-- ---------------------------------------------------------------------------
-- Retention. Bounded work per call (p_max_rows per table), so a purge never
-- holds long locks; call again while it returns a full batch.
--   - device events older than p_before, and beyond the newest
--     events_per_device of each device;
--   - notifications, progress events and per-device rows of campaigns that
--     finished before p_before (the campaign row and its stages stay).
CREATE OR REPLACE FUNCTION rollout_purge(p_before timestamptz DEFAULT NULL, p_max_rows integer DEFAULT 10000,
                              p_actor text DEFAULT 'system')
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_before timestamptz := coalesce(p_before,
	                                 now() - make_interval(days => rollout_setting('retention_days', '90')::integer));
	v_keep integer := rollout_setting('events_per_device', '1000')::integer;
	v_max integer := least(greatest(coalesce(p_max_rows, 10000), 1), 1000000);
	v_events bigint;
	v_capped bigint;
	v_notifications bigint;
	v_campaign_events bigint;
	v_members bigint;
	v_result jsonb;
BEGIN
	DELETE FROM device_events WHERE id IN (
		SELECT id FROM device_events WHERE received_at < v_before ORDER BY received_at LIMIT v_max);
	GET DIAGNOSTICS v_events = ROW_COUNT;
	DELETE FROM device_events WHERE id IN (
		SELECT id FROM (
			SELECT id, row_number() OVER (PARTITION BY device_id ORDER BY seq DESC) AS rn
			FROM device_events) x
		WHERE x.rn > v_keep LIMIT v_max);
	GET DIAGNOSTICS v_capped = ROW_COUNT;
	DELETE FROM rollout_notifications WHERE id IN (
		SELECT n.id FROM rollout_notifications n JOIN campaigns k USING (campaign_id)
		WHERE k.state IN ('completed', 'cancelled', 'failed') AND k.finished_at < v_before
		LIMIT v_max);
	GET DIAGNOSTICS v_notifications = ROW_COUNT;
	DELETE FROM campaign_events WHERE id IN (
		SELECT e.id FROM campaign_events e JOIN campaigns k USING (campaign_id)
		WHERE k.state IN ('completed', 'cancelled', 'failed') AND k.finished_at < v_before
		LIMIT v_max);
	GET DIAGNOSTICS v_campaign_events = ROW_COUNT;
	DELETE FROM campaign_devices WHERE (campaign_id, device_id) IN (
		SELECT m.campaign_id, m.device_id FROM campaign_devices m JOIN campaigns k USING (campaign_id)
		WHERE k.state IN ('completed', 'cancelled', 'failed') AND k.finished_at < v_before
		LIMIT v_max);
	GET DIAGNOSTICS v_members = ROW_COUNT;
	v_result := jsonb_build_object('before', v_before, 'device_events', v_events,
	                               'device_events_over_cap', v_capped, 'notifications', v_notifications,
	                               'campaign_events', v_campaign_events, 'campaign_devices', v_members);
	IF v_events + v_capped + v_notifications + v_campaign_events + v_members > 0 THEN
		PERFORM rollout_audit(p_actor, 'retention.purge', '', NULL, v_result);
	END IF;
	RETURN v_result;
END $$;
