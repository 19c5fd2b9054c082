-- SPDX-License-Identifier: Apache-2.0
-- fleetota rollout engine: update policy (issue 17; docs/campaigns.md
-- "Security updates" and "Halting on health"): the security policy of a
-- campaign, version ranges, failures judged as a bad build or the network,
-- post-install health, the stall alert of security campaigns and the fleet's
-- exposure to fixed vulnerabilities.
-- Re-applied by `ota-server migrate` whenever this file changes (docs/server.md).

-- ---------------------------------------------------------------------------
-- Versions as people write them: "1.4.7", "v2.0", "1.4.7-rc1+build5" ->
-- {1, 4, 7} (missing parts 0, pre-release and build ignored); NULL when the
-- text does not start with a number.
CREATE OR REPLACE FUNCTION rollout_semver(p_version text) RETURNS bigint[]
LANGUAGE sql IMMUTABLE AS $$
	SELECT ARRAY[m[1]::bigint, coalesce(m[2], '0')::bigint, coalesce(m[3], '0')::bigint]
	FROM (SELECT regexp_match(p_version, '^v?([0-9]{1,9})(?:\.([0-9]{1,9}))?(?:\.([0-9]{1,9}))?') AS m) x
	WHERE m IS NOT NULL
$$;

-- A version range -> [lo, hi) over rollout_semver (NULL = open). Forms:
-- "1.4.x" / "1.4.*" / "1.x" (that branch), "1.4.2" (exactly), or up to four
-- comparators separated by spaces: ">=1.4.0 <1.5.0", ">1.4.2", "<=2.0.3".
-- Anything else raises FO422 naming p_field.
CREATE OR REPLACE FUNCTION rollout_version_bounds(p_range text, p_field text,
                                                  OUT lo bigint[], OUT hi bigint[])
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	v_part text;
	m text[];
	v bigint[];
	v_n integer := 0;
BEGIN
	IF p_range IS NULL OR length(p_range) > 128 OR btrim(p_range) = '' THEN
		PERFORM rollout_fail('FO422', p_field || ': a range such as "1.4.x" or ">=1.4.0 <1.5.0"');
	END IF;
	m := regexp_match(btrim(p_range), '^v?([0-9]{1,9})(?:\.([0-9]{1,9}))?\.[xX*]$');
	IF m IS NOT NULL THEN
		IF m[2] IS NULL THEN
			lo := ARRAY[m[1]::bigint, 0, 0];
			hi := ARRAY[m[1]::bigint + 1, 0, 0];
		ELSE
			lo := ARRAY[m[1]::bigint, m[2]::bigint, 0];
			hi := ARRAY[m[1]::bigint, m[2]::bigint + 1, 0];
		END IF;
		RETURN;
	END IF;
	FOR v_part IN SELECT x FROM regexp_split_to_table(btrim(p_range), '\s+') x LOOP
		v_n := v_n + 1;
		m := regexp_match(v_part, '^(>=|<=|>|<|=)?(v?[0-9]{1,9}(\.[0-9]{1,9}){0,2})$');
		IF m IS NULL OR v_n > 4 THEN
			PERFORM rollout_fail('FO422', p_field || ': a range such as "1.4.x" or ">=1.4.0 <1.5.0"');
		END IF;
		v := rollout_semver(m[2]);
		CASE coalesce(m[1], '=')
		WHEN '>=' THEN lo := greatest(lo, v);
		WHEN '>' THEN lo := greatest(lo, ARRAY[v[1], v[2], v[3] + 1]);
		WHEN '<' THEN hi := least(coalesce(hi, v), v);
		WHEN '<=' THEN hi := least(coalesce(hi, ARRAY[v[1], v[2], v[3] + 1]), ARRAY[v[1], v[2], v[3] + 1]);
		ELSE
			lo := greatest(lo, v);
			hi := least(coalesce(hi, ARRAY[v[1], v[2], v[3] + 1]), ARRAY[v[1], v[2], v[3] + 1]);
		END CASE;
	END LOOP;
END $$;

-- The inclusive version_code range a security artifact fixes: the signed
-- range, else (not stated) every version_code below its own. Empty (NULL)
-- for a functional artifact.
CREATE OR REPLACE FUNCTION rollout_fixes_max(a artifacts) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN NOT a.is_security_update THEN NULL
	            WHEN a.fixes_version_code_max > 0 THEN least(a.fixes_version_code_max, a.version_code - 1)
	            ELSE a.version_code - 1 END
$$;

-- ---------------------------------------------------------------------------
-- Specification parts (called by rollout_create after the rows exist).

-- "security": {"override_windows": bool, "preempt": bool,
--              "stall_alert_seconds": int} - only for a signed security fix.
-- A campaign of a security artifact alerts on stalls (default one hour)
-- even without the object.
CREATE OR REPLACE FUNCTION rollout_security_policy(p_campaign text, p_policy jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	v_security boolean;
	v_key text;
	v_alert bigint;
BEGIN
	SELECT coalesce(a.is_security_update, false) INTO v_security
	FROM campaigns k LEFT JOIN artifacts a ON a.artifact_id = k.artifact_id
	WHERE k.campaign_id = p_campaign;
	IF p_policy IS NOT NULL AND jsonb_typeof(p_policy) <> 'null' THEN
		IF jsonb_typeof(p_policy) <> 'object' THEN
			PERFORM rollout_fail('FO422', 'security: must be an object');
		END IF;
		FOR v_key IN SELECT jsonb_object_keys(p_policy) LOOP
			IF v_key NOT IN ('override_windows', 'preempt', 'stall_alert_seconds') THEN
				PERFORM rollout_fail('FO422', 'security.' || v_key || ': unknown field');
			END IF;
			IF v_key <> 'stall_alert_seconds' AND jsonb_typeof(p_policy -> v_key) <> 'boolean' THEN
				PERFORM rollout_fail('FO422', 'security.' || v_key || ': must be true or false');
			END IF;
		END LOOP;
		IF NOT v_security THEN
			PERFORM rollout_fail('FO422', 'security: the artifact is not a signed security update');
		END IF;
		v_alert := rollout_bigint(p_policy -> 'stall_alert_seconds', 'security.stall_alert_seconds');
		IF v_alert IS NOT NULL AND (v_alert < 60 OR v_alert > 31536000) THEN
			PERFORM rollout_fail('FO422', 'security.stall_alert_seconds: 60..31536000');
		END IF;
	END IF;
	IF v_security THEN
		UPDATE campaigns
		SET security_override_windows = coalesce((p_policy ->> 'override_windows')::boolean, false),
		    security_preempt = coalesce((p_policy ->> 'preempt')::boolean, false),
		    security_stall_alert_s = coalesce(v_alert, 3600)
		WHERE campaign_id = p_campaign;
	END IF;
END $$;

-- Per stage: "build_failure_ratio", "network_failure_ratio", and
-- "health": {"window_seconds", "max_unexpected_reboots", "min_health",
-- "max_unhealthy_ratio"}. A stage watching health soaks at least its window.
CREATE OR REPLACE FUNCTION rollout_stage_policy(p_campaign text, p_stage integer, p_spec jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	h jsonb := p_spec -> 'health';
	v_field text := format('stages[%s].health', p_stage);
	v_key text;
	v_window bigint;
	v_reboots bigint;
	v_min numeric;
BEGIN
	IF h IS NOT NULL AND jsonb_typeof(h) <> 'null' THEN
		IF jsonb_typeof(h) <> 'object' THEN
			PERFORM rollout_fail('FO422', v_field || ': must be an object');
		END IF;
		FOR v_key IN SELECT jsonb_object_keys(h) LOOP
			IF v_key NOT IN ('window_seconds', 'max_unexpected_reboots', 'min_health', 'max_unhealthy_ratio') THEN
				PERFORM rollout_fail('FO422', v_field || '.' || v_key || ': unknown field');
			END IF;
		END LOOP;
		v_window := rollout_bigint(h -> 'window_seconds', v_field || '.window_seconds');
		IF v_window IS NULL OR v_window < 1 OR v_window > 2592000 THEN
			PERFORM rollout_fail('FO422', v_field || '.window_seconds: required, 1..2592000');
		END IF;
		v_reboots := coalesce(rollout_bigint(h -> 'max_unexpected_reboots', v_field || '.max_unexpected_reboots'), 0);
		IF v_reboots < 0 OR v_reboots > 1000 THEN
			PERFORM rollout_fail('FO422', v_field || '.max_unexpected_reboots: 0..1000');
		END IF;
		v_min := coalesce(rollout_ratio(h -> 'min_health', v_field || '.min_health'), 0);
	END IF;
	BEGIN
		UPDATE campaign_stages
		SET build_failure_ratio = rollout_ratio(p_spec -> 'build_failure_ratio', format('stages[%s].build_failure_ratio', p_stage)),
		    network_failure_ratio = rollout_ratio(p_spec -> 'network_failure_ratio', format('stages[%s].network_failure_ratio', p_stage)),
		    health_window_s = v_window,
		    health_max_reboots = coalesce(v_reboots, 0),
		    health_min_permille = round(coalesce(v_min, 0) * 1000),
		    health_unhealthy_ratio = coalesce(rollout_ratio(h -> 'max_unhealthy_ratio', v_field || '.max_unhealthy_ratio'), 0),
		    soak_s = greatest(soak_s, coalesce(v_window, 0))
		WHERE campaign_id = p_campaign AND stage_no = p_stage;
	EXCEPTION
		WHEN check_violation OR numeric_value_out_of_range THEN
			PERFORM rollout_fail('FO422', format('stages[%s]: %s', p_stage, SQLERRM));
	END;
END $$;

-- ---------------------------------------------------------------------------
-- Failures: a bad build, or the network? The network: the device could not
-- get the update (OTA_ERR_TRANSPORT, OTA_ERR_TIMEOUT, OTA_ERR_PIN, or it
-- never reported: timed_out). A bad build: everything else - reverts and
-- self-test failures (OTA_ERR_SELFTEST), boot failures, an image or manifest
-- the device refused.
CREATE OR REPLACE FUNCTION rollout_failure_class(p_state text, p_error text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN p_state = 'timed_out' OR p_error IN ('OTA_ERR_TRANSPORT', 'OTA_ERR_TIMEOUT', 'OTA_ERR_PIN')
	            THEN 'network' ELSE 'build' END
$$;

-- Device counts per stage for the update policy: failures by class,
-- devices unhealthy after their confirm.
CREATE OR REPLACE FUNCTION rollout_policy_counts(p_campaign text)
RETURNS TABLE (stage_no integer, build_failed bigint, network_failed bigint, unhealthy bigint,
               unhealthy_reboots bigint, unhealthy_low bigint)
LANGUAGE sql STABLE AS $$
	SELECT s.stage_no,
	       count(m.device_id) FILTER (WHERE m.state IN ('failed', 'timed_out')
	                                    AND rollout_failure_class(m.state, m.error) = 'build'),
	       count(m.device_id) FILTER (WHERE m.state IN ('failed', 'timed_out')
	                                    AND rollout_failure_class(m.state, m.error) = 'network'),
	       count(m.device_id) FILTER (WHERE s.health_window_s IS NOT NULL AND m.state = 'confirmed'
	                                    AND (m.health_reboots > s.health_max_reboots
	                                         OR m.health_permille < s.health_min_permille)),
	       count(m.device_id) FILTER (WHERE s.health_window_s IS NOT NULL AND m.state = 'confirmed'
	                                    AND m.health_reboots > s.health_max_reboots),
	       count(m.device_id) FILTER (WHERE s.health_window_s IS NOT NULL AND m.state = 'confirmed'
	                                    AND m.health_permille < s.health_min_permille)
	FROM campaign_stages s
	LEFT JOIN campaign_devices m ON m.campaign_id = s.campaign_id AND m.stage_no = s.stage_no
	WHERE s.campaign_id = p_campaign
	GROUP BY s.stage_no
$$;

-- The errors of one class in a stage, "OTA_ERR_X: n, ...".
CREATE OR REPLACE FUNCTION rollout_class_errors(p_campaign text, p_stage integer, p_class text) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT string_agg(format('%s: %s', e.error, e.n), ', ' ORDER BY e.n DESC, e.error)
	FROM (SELECT m.error, count(*) AS n FROM campaign_devices m
	      WHERE m.campaign_id = p_campaign AND m.stage_no = p_stage
	        AND m.state IN ('failed', 'timed_out')
	        AND rollout_failure_class(m.state, m.error) = p_class
	      GROUP BY m.error) e
$$;

-- Why a stage must halt on a policy signal, or NULL: its build or network
-- failure threshold (only a stage that sets one of them; the other then
-- defaults to failure_ratio), or its devices' health after the confirm.
-- The reason names the signal.
CREATE OR REPLACE FUNCTION rollout_policy_reason(p_campaign text, p_stage integer, p_admitted bigint)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
	s campaign_stages%ROWTYPE;
	n record;
	v record;
BEGIN
	SELECT * INTO s FROM campaign_stages WHERE campaign_id = p_campaign AND stage_no = p_stage;
	IF p_admitted <= 0 OR (s.build_failure_ratio IS NULL AND s.network_failure_ratio IS NULL
	                       AND s.health_window_s IS NULL) THEN
		RETURN NULL;
	END IF;
	SELECT * INTO n FROM rollout_policy_counts(p_campaign) x WHERE x.stage_no = p_stage;
	IF s.build_failure_ratio IS NOT NULL OR s.network_failure_ratio IS NOT NULL THEN
		-- the build first: a bad build matters more than a flaky network
		FOR v IN SELECT * FROM (VALUES
			('build', n.build_failed, s.build_failures_acked, coalesce(s.build_failure_ratio, s.failure_ratio)),
			('network', n.network_failed, s.network_failures_acked, coalesce(s.network_failure_ratio, s.failure_ratio))
		) AS x(class, failed, acked, ratio) LOOP
			IF (v.failed - v.acked)::numeric / p_admitted > v.ratio THEN
				RETURN format('stage %s: %s: %s of %s devices failed (%s), over the %s failure threshold %s',
				              p_stage, v.class, v.failed, p_admitted,
				              rollout_class_errors(p_campaign, p_stage, v.class), v.class, v.ratio);
			END IF;
		END LOOP;
	END IF;
	IF s.health_window_s IS NOT NULL
	   AND (n.unhealthy - s.unhealthy_acked)::numeric / p_admitted > s.health_unhealthy_ratio THEN
		RETURN format('stage %s: health: %s of %s devices unhealthy after confirm (unexpected reboots: %s, health below %s: %s), over the health threshold %s',
		              p_stage, n.unhealthy, p_admitted, n.unhealthy_reboots,
		              round(s.health_min_permille / 1000.0, 3), n.unhealthy_low, s.health_unhealthy_ratio);
	END IF;
	RETURN NULL;
END $$;

-- Resume acknowledges the policy signals seen so far, as it does failures.
CREATE OR REPLACE FUNCTION rollout_policy_ack(p_campaign text) RETURNS void
LANGUAGE sql AS $$
	UPDATE campaign_stages s
	SET build_failures_acked = n.build_failed, network_failures_acked = n.network_failed,
	    unhealthy_acked = n.unhealthy
	FROM rollout_policy_counts(p_campaign) n
	WHERE s.campaign_id = p_campaign AND s.stage_no = n.stage_no
$$;

-- ---------------------------------------------------------------------------
-- Post-install health (StatusReport fields 30..32, sent by the agent while
-- the health window after its confirm is open). Counted for a confirmed
-- device of a stage that watches health, for the campaign's version, inside
-- the stage's window from the confirm: reboots the agent did not ask for
-- (the highest count reported) and the latest health value (0..1000).
-- Returns the campaign rows changed; a repeated report changes nothing.
CREATE OR REPLACE FUNCTION rollout_health(p_device text, p_version_code bigint, p_reboots bigint,
                                          p_permille bigint, p_now timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_now timestamptz := coalesce(p_now, clock_timestamp());
	v_count bigint;
BEGIN
	IF p_reboots IS NULL OR p_reboots < 0 OR p_permille IS NULL OR p_permille NOT BETWEEN 0 AND 1000 THEN
		PERFORM rollout_fail('FO422', 'health: reboots >= 0, health 0..1000');
	END IF;
	UPDATE campaign_devices m
	SET health_reboots = greatest(m.health_reboots, least(p_reboots, 1000000)::integer),
	    health_permille = p_permille, health_at = v_now, updated_at = v_now
	FROM campaigns k, campaign_stages s, artifacts a
	WHERE m.device_id = p_device AND m.state = 'confirmed' AND NOT m.already
	  AND k.campaign_id = m.campaign_id AND k.state IN ('running', 'paused')
	  AND s.campaign_id = m.campaign_id AND s.stage_no = m.stage_no AND s.health_window_s IS NOT NULL
	  AND a.artifact_id = k.artifact_id AND a.version_code = p_version_code
	  AND v_now <= m.done_at + make_interval(secs => s.health_window_s)
	  AND (m.health_reboots < p_reboots OR m.health_permille IS DISTINCT FROM p_permille::integer);
	GET DIAGNOSTICS v_count = ROW_COUNT;
	RETURN v_count;
END $$;

-- The health window a firmware notification announces (Notify field 10).
CREATE OR REPLACE FUNCTION rollout_health_window(p_campaign text, p_stage integer) RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT coalesce((SELECT health_window_s FROM campaign_stages
	                 WHERE campaign_id = p_campaign AND stage_no = p_stage), 0)::bigint
$$;

-- ---------------------------------------------------------------------------
-- Security campaigns tell operators when they stall (event
-- security_stalled, the detail says why): at once when the engine pauses
-- one, and when a running one has confirmed no device for its
-- stall_alert_seconds while devices still wait (then again after as long).
-- Called by the tick for each campaign it ticked, which was running.
CREATE OR REPLACE FUNCTION rollout_security_watch(p_campaign text, p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_last timestamptz;
	v_open bigint;
	v_progress jsonb;
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	IF c.security_stall_alert_s IS NULL THEN
		RETURN;
	END IF;
	IF c.state = 'paused' THEN
		-- it was running when the tick began: the engine paused it
		PERFORM rollout_event(p_campaign, 'security_stalled', c.current_stage,
		                      'security update paused by the engine: ' || c.state_reason, p_now);
		UPDATE campaigns SET security_stall_alert_at = p_now WHERE campaign_id = p_campaign;
		RETURN;
	END IF;
	IF c.state <> 'running' THEN
		RETURN;
	END IF;
	-- the kept counts (rollout_counts.sql), not a pass over the members
	SELECT max(k.last_done_at) FILTER (WHERE k.state = 'confirmed'),
	       coalesce(sum(k.n) FILTER (WHERE k.state IN ('pending', 'notified', 'downloading', 'installed')), 0)
	INTO v_last, v_open
	FROM rollout_state_counts(p_campaign) k;
	-- waiting for a maintenance window counts here (unlike a stage budget):
	-- a security fix held back by windows is what operators must hear about
	v_last := greatest(v_last, c.started_at, c.security_stall_alert_at,
	                   (SELECT max(e.at) FROM campaign_events e
	                    WHERE e.campaign_id = p_campaign AND e.kind = 'resumed'));
	IF v_open = 0 OR v_last + make_interval(secs => c.security_stall_alert_s) > p_now THEN
		RETURN;
	END IF;
	v_progress := rollout_progress(p_campaign, p_now);
	PERFORM rollout_event(p_campaign, 'security_stalled', c.current_stage,
	                      format('security update: no device confirmed for %s s, %s devices wait (%s: %s)',
	                             round(extract(epoch FROM p_now - v_last)), v_open,
	                             v_progress ->> 'reason', v_progress ->> 'detail'), p_now);
	UPDATE campaigns SET security_stall_alert_at = p_now WHERE campaign_id = p_campaign;
END $$;

-- ---------------------------------------------------------------------------
-- The fleet's exposure: devices still running a version that a signed
-- security fix replaces (its model, a hw revision it allows, a version_code
-- in the range it fixes), per fix and per model, with the age of the fix
-- (since its manifest's issued_at, else its upload). Decommissioned devices
-- are not counted; a device exposed to several fixes counts once per model.
CREATE OR REPLACE FUNCTION security_exposure(p_now timestamptz DEFAULT NULL, p_model text DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
	WITH fixes AS (
		SELECT a.artifact_id, a.product, a.version, a.version_code, a.advisory, a.hw_revisions,
		       a.fixes_version_code_min AS lo, rollout_fix_max AS hi,
		       coalesce(to_timestamp(nullif(a.issued_at, 0)), a.created_at) AS released_at
		FROM artifacts a, LATERAL (SELECT rollout_fixes_max(a) AS rollout_fix_max) x
		WHERE a.is_security_update AND (p_model IS NULL OR a.product = p_model)
	), exposed AS (
		SELECT f.artifact_id, d.device_id, d.model, d.version, d.version_code
		FROM fixes f
		JOIN devices d ON d.model = f.product AND NOT d.decommissioned
		              AND (cardinality(f.hw_revisions) = 0 OR d.hw_revision = ANY (f.hw_revisions))
		              AND d.version_code BETWEEN f.lo AND f.hi
	), now_ AS (
		SELECT coalesce(p_now, clock_timestamp()) AS t
	)
	SELECT jsonb_build_object(
		'generated_at', (SELECT t FROM now_),
		'models', coalesce((
			SELECT jsonb_agg(jsonb_build_object(
				'model', mm.model, 'exposed_devices', mm.n,
				'devices', (SELECT count(*) FROM devices d WHERE d.model = mm.model AND NOT d.decommissioned),
				'oldest_fix_age_seconds', mm.age) ORDER BY mm.model)
			FROM (SELECT e.model, count(DISTINCT e.device_id) AS n,
			             floor(extract(epoch FROM (SELECT t FROM now_) - min(f.released_at)))::bigint AS age
			      FROM exposed e JOIN fixes f USING (artifact_id) GROUP BY e.model) mm), '[]'),
		'fixes', coalesce((
			SELECT jsonb_agg(jsonb_build_object(
				'artifact', f.artifact_id, 'model', f.product, 'version', f.version,
				'version_code', f.version_code, 'advisory', f.advisory,
				'fixes_version_code_min', f.lo, 'fixes_version_code_max', f.hi,
				'released_at', f.released_at,
				'age_seconds', floor(extract(epoch FROM (SELECT t FROM now_) - f.released_at))::bigint,
				'exposed_devices', (SELECT count(*) FROM exposed e WHERE e.artifact_id = f.artifact_id),
				'versions', coalesce((SELECT jsonb_agg(jsonb_build_object('version', v.version,
				                                                          'version_code', v.version_code,
				                                                          'devices', v.n)
				                                       ORDER BY v.version_code, v.version)
				                      FROM (SELECT e.version, e.version_code, count(*) AS n FROM exposed e
				                            WHERE e.artifact_id = f.artifact_id
				                            GROUP BY e.version, e.version_code) v), '[]'))
				ORDER BY f.product, f.version_code, f.artifact_id)
			FROM fixes f), '[]'))
$$;
