-- SPDX-License-Identifier: Apache-2.0
-- Test-only: a simulated fleet in SQL for the rollout engine's tests. Devices
-- answer published notifications the way the agent does: a key-list step
-- installs the KeyList; a firmware step installs and confirms the new
-- version, or reverts (self-test fails) when the artifact is marked bad, and
-- then reports the version it really runs. Offline devices never answer.
CREATE TABLE sim_bad_artifacts (artifact_id text PRIMARY KEY);
CREATE TABLE sim_offline (device_id text PRIMARY KEY);

CREATE FUNCTION sim_fleet(p_now timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_now timestamptz := coalesce(p_now, clock_timestamp());
	r record;
	v_n bigint := 0;
BEGIN
	FOR r IN
		SELECT m.campaign_id, m.device_id, m.step, m.needed_keylist, k.kind, k.artifact_id,
		       k.keylist_version AS c_kl, a.version, a.version_code,
		       (a.artifact_id IN (SELECT artifact_id FROM sim_bad_artifacts)) AS bad
		FROM campaign_devices m
		JOIN campaigns k ON k.campaign_id = m.campaign_id
		LEFT JOIN artifacts a ON a.artifact_id = k.artifact_id
		WHERE m.state = 'notified'
		  AND m.device_id NOT IN (SELECT device_id FROM sim_offline)
		  AND EXISTS (SELECT 1 FROM rollout_notifications n
		              WHERE n.campaign_id = m.campaign_id AND n.device_id = m.device_id
		                AND n.published_at IS NOT NULL)
		ORDER BY m.device_id
		FOR UPDATE OF m SKIP LOCKED
	LOOP
		IF r.step = 'keylist' THEN
			UPDATE devices d SET keylist_version = kl.version, keylist_key_ids = kl.key_ids, last_seen = v_now
			FROM keylists kl
			WHERE d.device_id = r.device_id
			  AND kl.version = CASE WHEN r.kind = 'keylist' THEN r.c_kl ELSE r.needed_keylist END;
			PERFORM rollout_report(d.device_id, 'idle', d.version_code, d.keylist_version, d.rootlist_version,
			                       '', r.campaign_id, v_now)
			FROM devices d WHERE d.device_id = r.device_id;
		ELSIF r.bad THEN
			PERFORM rollout_report(r.device_id, 'downloading', d.version_code, d.keylist_version, NULL, '',
			                       r.campaign_id, v_now)
			FROM devices d WHERE d.device_id = r.device_id;
			UPDATE devices SET state = 'reverted', last_error = 'OTA_ERR_SELFTEST', last_seen = v_now
			WHERE device_id = r.device_id;
			PERFORM rollout_report(d.device_id, 'reverted', d.version_code, d.keylist_version, NULL,
			                       'OTA_ERR_SELFTEST', r.campaign_id, v_now)
			FROM devices d WHERE d.device_id = r.device_id;
		ELSE
			PERFORM rollout_report(r.device_id, 'trial', d.version_code, d.keylist_version, NULL, '',
			                       r.campaign_id, v_now)
			FROM devices d WHERE d.device_id = r.device_id;
			UPDATE devices SET version = r.version, version_code = r.version_code, state = 'confirmed',
			                   last_seen = v_now
			WHERE device_id = r.device_id;
			PERFORM rollout_report(r.device_id, 'confirmed', r.version_code, d.keylist_version, NULL, '',
			                       r.campaign_id, v_now)
			FROM devices d WHERE d.device_id = r.device_id;
		END IF;
		v_n := v_n + 1;
	END LOOP;
	RETURN v_n;
END $$;

-- One simulated second for one server: tick, publish all, the fleet answers.
-- Records the in-flight count per tick into sim_flight.
CREATE TABLE sim_flight (campaign_id text, at timestamptz, stage_no integer, in_flight bigint);
CREATE FUNCTION sim_step(p_server text, p_now timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_ids bigint[];
	v_fences bigint[];
BEGIN
	SELECT array_agg(notification_id), array_agg(fence) INTO v_ids, v_fences FROM rollout_tick(p_server, p_now);
	INSERT INTO sim_flight
	SELECT k.campaign_id, p_now, k.current_stage,
	       (SELECT count(*) FROM campaign_devices m WHERE m.campaign_id = k.campaign_id
	        AND m.state IN ('notified', 'downloading', 'installed'))
	FROM campaigns k WHERE k.state = 'running';
	PERFORM rollout_published(coalesce(v_ids, '{}'), coalesce(v_fences, '{}'), p_server, p_now);
	PERFORM sim_fleet(p_now);
	RETURN coalesce(cardinality(v_ids), 0);
END $$;

-- Runs simulated seconds from p_start until the campaign leaves 'running'
-- (or p_max_s passes). Returns the simulated seconds used.
CREATE FUNCTION sim_run(p_campaign text, p_start timestamptz, p_max_s integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	i integer := 0;
BEGIN
	WHILE i < p_max_s LOOP
		PERFORM sim_step('sim', p_start + make_interval(secs => i));
		i := i + 1;
		EXIT WHEN (SELECT state FROM campaigns WHERE campaign_id = p_campaign) <> 'running';
	END LOOP;
	RETURN i;
END $$;

-- Rate-limit check from the recorded timestamps: for every pair of
-- notifications a <= b of a campaign, the number in [t_a, t_b] must not
-- exceed burst + rate * (t_b - t_a) / 60. Returns the violations.
CREATE FUNCTION sim_rate_violations(p_campaign text) RETURNS bigint
LANGUAGE sql AS $$
	WITH k AS (SELECT rate_per_minute AS rate, rate_burst AS burst FROM campaigns WHERE campaign_id = p_campaign),
	n AS (SELECT row_number() OVER (ORDER BY created_at, id) AS rn, extract(epoch FROM created_at) AS t
	      FROM rollout_notifications WHERE campaign_id = p_campaign)
	SELECT count(*) FROM n a JOIN n b ON b.rn >= a.rn, k
	WHERE (b.rn - a.rn + 1) > k.burst + k.rate * (b.t - a.t) / 60.0 + 1e-6
$$;
