-- SPDX-License-Identifier: Apache-2.0
-- The assignment notifier (server/src/device/notify.c): claims up to
-- p_batch assignments that were never notified and are due, marks them
-- notified (pending -> notified) and returns what a Notify needs. FOR UPDATE
-- SKIP LOCKED: several servers share the work and none notifies twice.
CREATE OR REPLACE FUNCTION notify_claim(p_batch integer)
RETURNS TABLE (device_id text, artifact_id text, campaign_id text, version text,
	version_code bigint, is_security_update boolean)
LANGUAGE sql AS $$
	UPDATE assignments a SET notified_at = now(), notify_count = a.notify_count + 1,
		state = CASE WHEN a.state = 'pending' THEN 'notified' ELSE a.state END,
		updated_at = now()
	FROM (SELECT s.device_id, s.artifact_id FROM assignments s
		JOIN devices d ON d.device_id = s.device_id
		WHERE s.notified_at IS NULL AND s.notify_after <= now() AND NOT d.decommissioned
		ORDER BY s.notify_after LIMIT p_batch FOR UPDATE OF s SKIP LOCKED) c,
		artifacts r
	WHERE a.device_id = c.device_id AND a.artifact_id = c.artifact_id
		AND r.artifact_id = a.artifact_id
	RETURNING a.device_id, a.artifact_id, COALESCE(a.campaign_id, ''), r.version,
		r.version_code, r.is_security_update
$$;
