-- SPDX-License-Identifier: Apache-2.0
-- Device report ingest (issue 12, issue 14): one call per StatusReport, one
-- transaction, one round trip. ota-server calls it from the MQTT receive
-- path and acknowledges the MQTT message only after it returned.

-- Error names a device reports when it refused something for a security
-- reason (a wrong server key, a tampered manifest or image, a broken chain).
CREATE OR REPLACE FUNCTION report_security_error(p_error text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
	SELECT coalesce(p_error, '') IN ('OTA_ERR_PIN', 'OTA_ERR_SIGNATURE', 'OTA_ERR_HASH',
	                                 'OTA_ERR_ROOT_CHAIN', 'OTA_ERR_KEYLIST_ROLLBACK',
	                                 'OTA_ERR_THRESHOLD')
$$;

-- The last_seen a stored report writes, given the stored one (NULL: none):
-- now() if the stored value is older than the grain (or ahead of now()),
-- else the stored value. So last_seen moves at most once a grain and the
-- reports in between update the row without touching its indexes (HOT;
-- last_seen is indexed, devices_last_seen_idx): the grain is the precision
-- of "seen within N s". Grain: the setting fleetota.last_seen_grain_s (whole
-- seconds, 0-3600, e.g. ALTER DATABASE fleetota SET
-- fleetota.last_seen_grain_s = 0 for every report), 30 when unset or not
-- such a number. Every statement that stores a report writes last_seen
-- through this function (report_ingest, report_ingest_batch).
CREATE OR REPLACE FUNCTION report_seen_at(p_stored timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN p_stored IS NULL OR p_stored > now()
	                 OR p_stored <= now() - make_interval(secs => CASE
	                        WHEN current_setting('fleetota.last_seen_grain_s', true) ~ '^[0-9]{1,4}$'
	                         AND current_setting('fleetota.last_seen_grain_s', true)::integer <= 3600
	                        THEN current_setting('fleetota.last_seen_grain_s', true)::integer ELSE 30 END)
	            THEN now() ELSE p_stored END
$$;

-- p_report: the decoded StatusReport as JSON (fields of proto/ota.proto,
-- state and event kinds as lower-case names, keylist_key_ids as hex),
-- p_digest: SHA-256 of the MQTT payload, p_refused: reports of this device
-- the server refused for its budget since the last call (a flood event).
--
-- Returns one row: outcome, new_events (events stored), campaign_changes
-- (rollout_report), suspect (the device's flag), refusal_events. outcome:
--   stored          the device row, its new events, its assignment and the
--                   rollout engine (rollout_report) were updated;
--   duplicate       the same report again (same seq and digest: an MQTT
--                   redelivery): nothing changes;
--   replay          seq 0, or another report under the stored seq: nothing
--                   changes but a security event;
--   stale           a seq older than the stored one: the row and assignment
--                   stay, events not seen yet are stored, and the rollout
--                   engine gets it for the campaign rows whose state is
--                   older than it (rollout_report's p_seq: a transient
--                   failure held by a server whose database was away is
--                   still counted after the device's next idle report was
--                   stored by another). Not a security event: MQTT reorders
--                   legitimately (a shared subscription member that died
--                   gets its queued reports after the others stored newer
--                   ones);
--   decommissioned  nothing changes.
CREATE OR REPLACE FUNCTION report_ingest(p_device text, p_report jsonb, p_digest bytea,
                                         p_refused integer DEFAULT 0)
RETURNS TABLE (outcome text, new_events bigint, campaign_changes bigint, suspect boolean,
               refusal_events bigint)
LANGUAGE plpgsql AS $$
DECLARE
	v_seq bigint := (p_report->>'seq')::bigint;
	v_dev devices;
	v_found boolean;
	v_events bigint := 0;
	v_changes bigint := 0;
	v_refusals jsonb;
	v_detail text;
BEGIN
	outcome := 'stored';
	-- FOR NO KEY UPDATE: an ingest never changes device_id, so the lock
	-- serialises ingests of the device (it conflicts with itself) without
	-- blocking the KEY SHARE lock of a foreign key check (the rollout
	-- tick's INSERT into assignments, device_events): report_ingest_batch
	SELECT * INTO v_dev FROM devices WHERE device_id = p_device FOR NO KEY UPDATE;
	v_found := found;
	IF v_found AND v_dev.decommissioned THEN
		outcome := 'decommissioned';
	ELSIF v_found AND v_seq = v_dev.last_report_seq AND v_dev.last_report_sha256 = p_digest THEN
		outcome := 'duplicate';
	ELSIF v_seq <= 0 OR (v_found AND v_seq = v_dev.last_report_seq) THEN
		outcome := 'replay';
		PERFORM security_event(p_device, 'replay',
		                       format('report seq %s, stored seq %s', v_seq,
		                              coalesce(v_dev.last_report_seq, 0)));
	ELSIF v_found AND v_seq < v_dev.last_report_seq THEN
		outcome := 'stale';
	END IF;
	IF outcome = 'stored' THEN
		INSERT INTO devices AS d (device_id, model, hw_revision, version, version_code,
		                          security_counter, keylist_version, rootlist_version, keylist_key_ids,
		                          pending_version, active_slot, state, last_error, last_error_detail,
		                          last_report_seq, last_report_sha256, running_sha256, last_seen)
		VALUES (p_device, p_report->>'model', p_report->>'hw_revision', p_report->>'version',
		        (p_report->>'version_code')::bigint, (p_report->>'security_counter')::bigint,
		        (p_report->>'keylist_version')::bigint, (p_report->>'rootlist_version')::bigint,
		        ARRAY(SELECT decode(x, 'hex') FROM jsonb_array_elements_text(p_report->'keylist_key_ids') x),
		        p_report->>'pending_version', (p_report->>'active_slot')::integer, p_report->>'state',
		        p_report->>'error', p_report->>'error_detail', v_seq, p_digest,
		        decode(nullif(p_report->>'running_sha256', ''), 'hex'), now())
		ON CONFLICT (device_id) DO UPDATE SET
			model = CASE WHEN EXCLUDED.model <> '' THEN EXCLUDED.model ELSE d.model END,
			hw_revision = CASE WHEN EXCLUDED.hw_revision <> '' THEN EXCLUDED.hw_revision
			                   ELSE d.hw_revision END,
			version = EXCLUDED.version, version_code = EXCLUDED.version_code,
			security_counter = EXCLUDED.security_counter,
			keylist_version = EXCLUDED.keylist_version,
			rootlist_version = EXCLUDED.rootlist_version,
			keylist_key_ids = EXCLUDED.keylist_key_ids,
			pending_version = EXCLUDED.pending_version, active_slot = EXCLUDED.active_slot,
			state = EXCLUDED.state, last_error = EXCLUDED.last_error,
			last_error_detail = EXCLUDED.last_error_detail,
			last_report_seq = EXCLUDED.last_report_seq,
			last_report_sha256 = EXCLUDED.last_report_sha256,
			running_sha256 = EXCLUDED.running_sha256, last_seen = report_seen_at(d.last_seen);
		-- by the device's key only (IS NOT DISTINCT FROM: no index takes it; a
		-- generic plan on artifact_id = walked every device of the artifact),
		-- written only when the state or error changes
		UPDATE assignments SET state = p_report->>'state', error = p_report->>'error', updated_at = now()
		WHERE device_id = p_device AND artifact_id IS NOT DISTINCT FROM p_report->>'artifact'
		  AND p_report->>'artifact' <> ''
		  AND (state, error) IS DISTINCT FROM (p_report->>'state', p_report->>'error');
	END IF;
	IF outcome IN ('stored', 'stale') THEN
		-- a refused delta the device falls back from is no failed install (deltas.sql)
		v_changes := rollout_report(p_device,
		                            delta_report_state(p_device, p_report->>'artifact',
		                                               p_report->>'state', p_report->>'error'),
		                            (p_report->>'version_code')::bigint,
		                            (p_report->>'keylist_version')::bigint,
		                            (p_report->>'rootlist_version')::bigint,
		                            p_report->>'error', p_report->>'campaign_id', NULL, v_seq);
	END IF;
	IF outcome = 'stored' THEN
		-- post-install health in the window after a confirm (StatusReport 30..32)
		IF coalesce((p_report->>'health_known')::boolean, false) THEN
			v_changes := v_changes + rollout_health(p_device, (p_report->>'version_code')::bigint,
			                                        (p_report->>'unexpected_reboots')::bigint,
			                                        (p_report->>'health_permille')::bigint);
		END IF;
	END IF;
	IF outcome IN ('stored', 'stale') THEN
		WITH ins AS (
			INSERT INTO device_events (device_id, seq, kind, error, version, version_code,
			                           security_counter, detail, campaign_id, device_time)
			SELECT p_device, e.seq, e.kind, e.error, e.version, e.version_code, e.security_counter,
			       e.detail, coalesce(nullif(e.campaign_id, ''), p_report->>'campaign_id'), e.time
			FROM jsonb_to_recordset(p_report->'events') AS e(seq bigint, kind text, error text,
			     version text, version_code bigint, security_counter bigint, detail text,
			     campaign_id text, time bigint)
			ON CONFLICT (device_id, seq) DO NOTHING
			RETURNING seq, kind, error
		)
		SELECT count(*), coalesce(jsonb_agg(format('event %s %s: %s', seq, kind, error))
		                          FILTER (WHERE report_security_error(error)), '[]')
		INTO v_events, v_refusals FROM ins;
		-- each new event once: a device re-sends its newest events in every report
		FOR v_detail IN SELECT jsonb_array_elements_text(v_refusals) LOOP
			PERFORM security_event(p_device, 'refusal', v_detail);
		END LOOP;
	END IF;
	IF coalesce(p_refused, 0) > 0 THEN
		PERFORM security_event(p_device, 'flood',
		                       format('%s reports over the budget refused', p_refused));
	END IF;
	new_events := v_events;
	refusal_events := coalesce(jsonb_array_length(v_refusals), 0);
	campaign_changes := v_changes;
	suspect := coalesce((SELECT d.suspect FROM devices d WHERE d.device_id = p_device), false);
	RETURN NEXT;
END $$;
