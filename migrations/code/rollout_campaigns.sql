-- SPDX-License-Identifier: Apache-2.0
-- fleetota rollout engine: creating campaigns and the operator actions (start, approve, pause,
-- resume, cancel) with priorities and four-eyes approval.
-- Re-applied by `ota-server migrate` whenever this file changes (docs/server.md).

-- ---------------------------------------------------------------------------
-- Creating a campaign from a JSON specification (what the REST API receives):
-- {
--   "id": "fw-1.1.0-eu", "kind": "firmware" | "keylist" | "rootlist",
--   "artifact": "fw-1.1.0", "keylist_version": 2, "rootlist_version": 2,
--   "target": { ...filter, see rollout_target... }, "keep_open": false,
--   "stages": [ {"count": 10 | "percent": 10, "success_ratio": 1.0,
--                "failure_ratio": 0.2, "soak_seconds": 600,
--                "max_in_flight": 100}, ... ],
--   "rate_per_minute": 600, "rate_burst": 10, "device_timeout_seconds": 3600,
--   "start_at": "2026-11-23T02:00:00Z", "priority": 0,
--   "requires_approval": true,
--   "windows": [ {"days": [1,2,3,4,5], "start_minute": 120,
--                 "duration_minutes": 180} ]
-- }
CREATE OR REPLACE FUNCTION rollout_create(p_spec jsonb, p_actor text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	v_id text;
	v_kind text;
	v_stage jsonb;
	v_window jsonb;
	v_no integer := 0;
	v_count bigint;
	v_percent numeric;
	v_prev_percent numeric := 0;
	v_prev_count bigint := 0;
	v_rate bigint;
	v_burst bigint;
	v_key text;
BEGIN
	IF p_spec IS NULL OR jsonb_typeof(p_spec) <> 'object' THEN
		PERFORM rollout_fail('FO422', 'body: must be a JSON object');
	END IF;
	IF coalesce(p_actor, '') = '' THEN
		PERFORM rollout_fail('FO422', 'actor: required');
	END IF;
	FOR v_key IN SELECT jsonb_object_keys(p_spec) LOOP
		IF v_key NOT IN ('id', 'kind', 'artifact', 'keylist_version', 'rootlist_version',
		                 'target', 'keep_open', 'stages', 'rate_per_minute', 'rate_burst',
		                 'device_timeout_seconds', 'start_at', 'priority',
		                 'requires_approval', 'windows', 'transient_retries',
		                 'retry_backoff_seconds', 'security') THEN
			PERFORM rollout_fail('FO422', v_key || ': unknown field');
		END IF;
	END LOOP;
	IF jsonb_typeof(p_spec -> 'target') IS NOT NULL THEN
		IF jsonb_typeof(p_spec -> 'target') <> 'object' THEN
			PERFORM rollout_fail('FO422', 'target: must be an object');
		END IF;
		FOR v_key IN SELECT jsonb_object_keys(p_spec -> 'target') LOOP
			IF v_key NOT IN ('model', 'hw_revision', 'version', 'tags_all', 'tags_any',
			                 'version_code_min', 'version_code_max', 'keylist_version_min',
			                 'keylist_version_max', 'devices', 'groups', 'version_range',
			                 'affected') THEN
				PERFORM rollout_fail('FO422', 'target.' || v_key || ': unknown field');
			END IF;
		END LOOP;
	END IF;
	v_id := p_spec ->> 'id';
	IF v_id IS NULL OR v_id !~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' THEN
		PERFORM rollout_fail('FO422', 'id: 1..128 of [A-Za-z0-9._-], starting alphanumeric');
	END IF;
	IF EXISTS (SELECT 1 FROM campaigns WHERE campaign_id = v_id) THEN
		PERFORM rollout_fail('FO409', 'id: campaign ' || v_id || ' exists');
	END IF;
	v_kind := coalesce(p_spec ->> 'kind', 'firmware');
	IF v_kind NOT IN ('firmware', 'keylist', 'rootlist') THEN
		PERFORM rollout_fail('FO422', 'kind: firmware, keylist or rootlist');
	END IF;
	IF v_kind = 'firmware' AND NOT EXISTS (
		SELECT 1 FROM artifacts WHERE artifact_id = p_spec ->> 'artifact') THEN
		PERFORM rollout_fail('FO404', 'artifact: not found');
	END IF;
	IF v_kind = 'keylist' AND NOT EXISTS (
		SELECT 1 FROM keylists WHERE version = rollout_bigint(p_spec -> 'keylist_version', 'keylist_version')) THEN
		PERFORM rollout_fail('FO404', 'keylist_version: not found');
	END IF;
	IF v_kind = 'rootlist' AND NOT EXISTS (
		SELECT 1 FROM rootlists WHERE version = rollout_bigint(p_spec -> 'rootlist_version', 'rootlist_version')) THEN
		PERFORM rollout_fail('FO404', 'rootlist_version: not found');
	END IF;
	v_rate := coalesce(rollout_bigint(p_spec -> 'rate_per_minute', 'rate_per_minute'), 60);
	IF v_rate < 1 OR v_rate > 1000000 THEN
		PERFORM rollout_fail('FO422', 'rate_per_minute: 1..1000000');
	END IF;
	-- default burst: five seconds' worth, at least one
	v_burst := coalesce(rollout_bigint(p_spec -> 'rate_burst', 'rate_burst'), greatest(1, ceil(v_rate / 12.0)));
	IF v_burst < 1 OR v_burst > 1000000 THEN
		PERFORM rollout_fail('FO422', 'rate_burst: 1..1000000');
	END IF;
	IF jsonb_typeof(p_spec -> 'stages') IS DISTINCT FROM 'array'
	   OR jsonb_array_length(p_spec -> 'stages') NOT BETWEEN 1 AND 32 THEN
		PERFORM rollout_fail('FO422', 'stages: an array of 1..32 stages');
	END IF;
	SELECT g INTO v_key
	FROM unnest(rollout_text_array(p_spec -> 'target' -> 'groups', 'target.groups')) g
	WHERE NOT EXISTS (SELECT 1 FROM device_groups x WHERE x.group_id = g) LIMIT 1;
	IF v_key IS NOT NULL THEN
		PERFORM rollout_fail('FO404', 'target.groups: group ' || v_key || ' not found');
	END IF;
	BEGIN
		INSERT INTO campaigns (campaign_id, kind, artifact_id, keylist_version, rootlist_version,
		                       target_filter, keep_open, priority, rate_per_minute, rate_burst,
		                       device_timeout_s, start_at, requires_approval, created_by,
		                       transient_retries, retry_backoff_s)
		VALUES (v_id, v_kind,
		        CASE WHEN v_kind = 'firmware' THEN p_spec ->> 'artifact' END,
		        CASE WHEN v_kind = 'keylist' THEN (p_spec ->> 'keylist_version')::bigint END,
		        CASE WHEN v_kind = 'rootlist' THEN (p_spec ->> 'rootlist_version')::bigint END,
		        coalesce(p_spec -> 'target', '{}'),
		        coalesce((p_spec ->> 'keep_open')::boolean, false),
		        coalesce(rollout_bigint(p_spec -> 'priority', 'priority'), 0),
		        v_rate, v_burst,
		        coalesce(rollout_bigint(p_spec -> 'device_timeout_seconds', 'device_timeout_seconds'), 3600),
		        (p_spec ->> 'start_at')::timestamptz,
		        coalesce((p_spec ->> 'requires_approval')::boolean, false),
		        p_actor,
		        coalesce(rollout_bigint(p_spec -> 'transient_retries', 'transient_retries'), 2),
		        coalesce(rollout_bigint(p_spec -> 'retry_backoff_seconds', 'retry_backoff_seconds'), 30));
	EXCEPTION
		WHEN check_violation OR invalid_text_representation OR invalid_datetime_format
		     OR datetime_field_overflow OR numeric_value_out_of_range THEN
			PERFORM rollout_fail('FO422', 'campaign: ' || SQLERRM);
	END;
	PERFORM rollout_security_policy(v_id, p_spec -> 'security');
	-- validate the target now (raises FO422 naming the field); its first row
	-- only (rollout_target() would evaluate all of it into a tuplestore)
	EXECUTE 'SELECT 1 FROM (' || rollout_target_sql(v_id) || ') t LIMIT 1' USING NULL::text[];
	FOR v_stage IN SELECT value FROM jsonb_array_elements(p_spec -> 'stages') LOOP
		IF jsonb_typeof(v_stage) <> 'object' THEN
			PERFORM rollout_fail('FO422', format('stages[%s]: must be an object', v_no));
		END IF;
		FOR v_key IN SELECT jsonb_object_keys(v_stage) LOOP
			IF v_key NOT IN ('count', 'percent', 'success_ratio', 'failure_ratio',
			                 'soak_seconds', 'max_in_flight', 'budget_seconds',
			                 'build_failure_ratio', 'network_failure_ratio', 'health') THEN
				PERFORM rollout_fail('FO422', format('stages[%s].%s: unknown field', v_no, v_key));
			END IF;
		END LOOP;
		v_count := rollout_bigint(v_stage -> 'count', format('stages[%s].count', v_no));
		IF jsonb_typeof(v_stage -> 'percent') IS NOT NULL
		   AND jsonb_typeof(v_stage -> 'percent') <> 'number' THEN
			PERFORM rollout_fail('FO422', format('stages[%s].percent: must be a number', v_no));
		END IF;
		v_percent := (v_stage ->> 'percent')::numeric;
		IF (v_count IS NULL) = (v_percent IS NULL) THEN
			PERFORM rollout_fail('FO422', format('stages[%s]: exactly one of count, percent', v_no));
		END IF;
		IF v_count IS NOT NULL AND (v_count < 1 OR v_count < v_prev_count) THEN
			PERFORM rollout_fail('FO422', format('stages[%s].count: positive, not below the previous stage', v_no));
		END IF;
		IF v_percent IS NOT NULL AND (v_percent <= 0 OR v_percent > 100 OR v_percent < v_prev_percent) THEN
			PERFORM rollout_fail('FO422', format('stages[%s].percent: 0 < p <= 100, not below the previous stage', v_no));
		END IF;
		v_prev_count := coalesce(v_count, v_prev_count);
		v_prev_percent := coalesce(v_percent, v_prev_percent);
		BEGIN
			INSERT INTO campaign_stages (campaign_id, stage_no, device_count, percent, success_ratio,
			                             failure_ratio, soak_s, max_in_flight, budget_s)
			VALUES (v_id, v_no, v_count, v_percent,
			        coalesce(rollout_ratio(v_stage -> 'success_ratio', format('stages[%s].success_ratio', v_no)), 1),
			        coalesce(rollout_ratio(v_stage -> 'failure_ratio', format('stages[%s].failure_ratio', v_no)), 0),
			        coalesce(rollout_bigint(v_stage -> 'soak_seconds', format('stages[%s].soak_seconds', v_no)), 0),
			        coalesce(rollout_bigint(v_stage -> 'max_in_flight', format('stages[%s].max_in_flight', v_no)), 1000),
			        rollout_bigint(v_stage -> 'budget_seconds', format('stages[%s].budget_seconds', v_no)));
		EXCEPTION
			WHEN check_violation OR numeric_value_out_of_range THEN
				PERFORM rollout_fail('FO422', format('stages[%s]: %s', v_no, SQLERRM));
		END;
		PERFORM rollout_stage_policy(v_id, v_no, v_stage);
		v_no := v_no + 1;
	END LOOP;
	v_no := 0;
	IF jsonb_typeof(p_spec -> 'windows') IS NOT NULL THEN
		IF jsonb_typeof(p_spec -> 'windows') <> 'array' OR jsonb_array_length(p_spec -> 'windows') > 64 THEN
			PERFORM rollout_fail('FO422', 'windows: an array of at most 64 windows');
		END IF;
		FOR v_window IN SELECT value FROM jsonb_array_elements(p_spec -> 'windows') LOOP
			BEGIN
				INSERT INTO campaign_windows (campaign_id, window_no, days, start_minute, duration_minutes)
				VALUES (v_id, v_no,
				        ARRAY(SELECT (jsonb_array_elements_text(v_window -> 'days'))::integer),
				        rollout_bigint(v_window -> 'start_minute', format('windows[%s].start_minute', v_no)),
				        rollout_bigint(v_window -> 'duration_minutes', format('windows[%s].duration_minutes', v_no)));
			EXCEPTION
				WHEN check_violation OR not_null_violation OR invalid_text_representation
				     OR numeric_value_out_of_range OR invalid_parameter_value THEN
					PERFORM rollout_fail('FO422', format('windows[%s]: days 0..6, start_minute 0..1439, duration_minutes 1..10080', v_no));
			END;
			v_no := v_no + 1;
		END LOOP;
	END IF;
	PERFORM rollout_event(v_id, 'created', NULL, '', now());
	PERFORM rollout_audit(p_actor, 'campaign.create', v_id, NULL, p_spec);
	RETURN v_id;
END $$;

-- ---------------------------------------------------------------------------
-- Lifecycle: start (or submit for approval), approve, pause, resume, cancel.
-- Each is idempotent: asking for the state a campaign is already in changes
-- nothing and succeeds; asking for an impossible transition raises FO409.

CREATE OR REPLACE FUNCTION rollout_lock(p_campaign text) RETURNS campaigns
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM rollout_fail('FO404', 'campaign ' || coalesce(p_campaign, '') || ' not found');
	END IF;
	RETURN c;
END $$;

-- The devices a campaign may still update: its queue (its target when it
-- has none, rollout_targets.sql) and its members not finished yet.
CREATE OR REPLACE FUNCTION rollout_candidates(p_campaign text) RETURNS TABLE (device_id text)
LANGUAGE sql STABLE AS $$
	SELECT q.device_id FROM campaign_targets q WHERE q.campaign_id = p_campaign
	UNION ALL
	SELECT t.device_id FROM rollout_target(p_campaign) t
	WHERE NOT EXISTS (SELECT 1 FROM campaigns k WHERE k.campaign_id = p_campaign AND k.targets_at IS NOT NULL)
	UNION ALL
	SELECT m.device_id FROM campaign_devices m
	WHERE m.campaign_id = p_campaign AND m.state IN ('pending', 'notified', 'downloading', 'installed')
$$;

-- Refuses (FO409) when another running or paused campaign of the same
-- priority targets one of this campaign's devices: the engine could not say
-- which one a device belongs to. A security campaign whose policy preempts
-- ranks above every functional one, whatever their priorities.
CREATE OR REPLACE FUNCTION rollout_check_priority(p_campaign text) RETURNS void
LANGUAGE plpgsql SET work_mem = '64MB' AS $$
DECLARE
	c campaigns%ROWTYPE;
	o record;
	v_device text;
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	FOR o IN SELECT campaign_id FROM campaigns
	         WHERE state IN ('running', 'paused') AND priority = c.priority
	           AND security_preempt = c.security_preempt
	           AND campaign_id <> p_campaign ORDER BY campaign_id LOOP
		SELECT t.device_id INTO v_device
		FROM rollout_candidates(p_campaign) t
		WHERE t.device_id IN (SELECT u.device_id FROM rollout_candidates(o.campaign_id) u)
		LIMIT 1;
		IF v_device IS NOT NULL THEN
			PERFORM rollout_fail('FO409', format(
				'priority: campaign %s has the same priority %s and also targets device %s',
				o.campaign_id, c.priority, v_device));
		END IF;
	END LOOP;
END $$;

CREATE OR REPLACE FUNCTION rollout_go_running(p_campaign text, p_actor text, p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	-- serialized with ticks and other starts: the overlap check stays true
	PERFORM pg_advisory_xact_lock(rollout_lock_key());
	-- the admission queue, once (rollout_targets.sql)
	PERFORM rollout_targets_build(p_campaign, p_now);
	PERFORM rollout_check_priority(p_campaign);
	UPDATE campaigns
	SET state = 'running', state_reason = '', started_at = coalesce(started_at, p_now),
	    bucket_tokens = rate_burst, bucket_at = NULL, admitted_at = NULL, updated_at = p_now
	WHERE campaign_id = p_campaign;
	UPDATE campaign_stages SET started_at = coalesce(started_at, p_now),
	       budget_start = coalesce(budget_start, p_now)
	WHERE campaign_id = p_campaign AND stage_no = 0;
	PERFORM rollout_event(p_campaign, 'started', 0, 'by ' || p_actor, p_now);
END $$;

CREATE OR REPLACE FUNCTION rollout_start(p_campaign text, p_actor text, p_now timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
	c := rollout_lock(p_campaign);
	IF c.state IN ('running', 'awaiting_approval') THEN
		RETURN c.state;                      -- idempotent
	END IF;
	IF c.state <> 'draft' THEN
		PERFORM rollout_fail('FO409', format('campaign %s is %s, only a draft can start', p_campaign, c.state));
	END IF;
	IF c.requires_approval AND c.approved_by IS NULL THEN
		UPDATE campaigns SET state = 'awaiting_approval', updated_at = v_now WHERE campaign_id = p_campaign;
		PERFORM rollout_event(p_campaign, 'awaiting_approval', NULL, 'submitted by ' || p_actor, v_now);
		PERFORM rollout_audit(p_actor, 'campaign.start', p_campaign,
		                      jsonb_build_object('state', c.state), jsonb_build_object('state', 'awaiting_approval'));
		RETURN 'awaiting_approval';
	END IF;
	PERFORM rollout_go_running(p_campaign, p_actor, v_now);
	PERFORM rollout_audit(p_actor, 'campaign.start', p_campaign,
	                      jsonb_build_object('state', c.state), jsonb_build_object('state', 'running'));
	RETURN 'running';
END $$;

-- Four-eyes: the approver must not be the operator who created the campaign.
CREATE OR REPLACE FUNCTION rollout_approve(p_campaign text, p_actor text, p_now timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
	c := rollout_lock(p_campaign);
	IF c.approved_by IS NOT NULL AND c.state <> 'draft' AND c.state <> 'awaiting_approval' THEN
		RETURN c.state;                      -- idempotent
	END IF;
	IF NOT c.requires_approval THEN
		PERFORM rollout_fail('FO409', format('campaign %s does not require approval', p_campaign));
	END IF;
	IF c.state NOT IN ('draft', 'awaiting_approval') THEN
		PERFORM rollout_fail('FO409', format('campaign %s is %s', p_campaign, c.state));
	END IF;
	IF coalesce(p_actor, '') = '' OR p_actor = c.created_by THEN
		PERFORM rollout_fail('FO403', 'four-eyes: the approver must differ from the creator ' || c.created_by);
	END IF;
	UPDATE campaigns SET approved_by = p_actor, approved_at = v_now, updated_at = v_now
	WHERE campaign_id = p_campaign;
	PERFORM rollout_event(p_campaign, 'approved', NULL, 'by ' || p_actor, v_now);
	IF c.state = 'awaiting_approval' THEN
		PERFORM rollout_go_running(p_campaign, p_actor, v_now);
	END IF;
	PERFORM rollout_audit(p_actor, 'campaign.approve', p_campaign,
	                      jsonb_build_object('state', c.state),
	                      jsonb_build_object('state', (SELECT state FROM campaigns WHERE campaign_id = p_campaign),
	                                         'approved_by', p_actor));
	RETURN (SELECT state FROM campaigns WHERE campaign_id = p_campaign);
END $$;

CREATE OR REPLACE FUNCTION rollout_pause(p_campaign text, p_actor text, p_reason text DEFAULT NULL,
                              p_now timestamptz DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
	c := rollout_lock(p_campaign);
	IF c.state = 'paused' THEN
		RETURN 'paused';
	END IF;
	IF c.state <> 'running' THEN
		PERFORM rollout_fail('FO409', format('campaign %s is %s, only a running campaign pauses', p_campaign, c.state));
	END IF;
	UPDATE campaigns
	SET state = 'paused', state_reason = coalesce(p_reason, 'paused by ' || p_actor), updated_at = v_now
	WHERE campaign_id = p_campaign;
	PERFORM rollout_event(p_campaign, 'paused', c.current_stage, coalesce(p_reason, 'by ' || p_actor), v_now);
	PERFORM rollout_audit(p_actor, 'campaign.pause', p_campaign,
	                      jsonb_build_object('state', c.state), jsonb_build_object('state', 'paused'));
	RETURN 'paused';
END $$;

-- Resuming acknowledges the failures seen so far: the failure threshold then
-- applies to new failures only (otherwise the campaign would pause again at
-- once). The acknowledged counts are kept per stage.
CREATE OR REPLACE FUNCTION rollout_resume(p_campaign text, p_actor text, p_now timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
	c := rollout_lock(p_campaign);
	IF c.state = 'running' THEN
		RETURN 'running';
	END IF;
	IF c.state <> 'paused' THEN
		PERFORM rollout_fail('FO409', format('campaign %s is %s, only a paused campaign resumes', p_campaign, c.state));
	END IF;
	PERFORM pg_advisory_xact_lock(rollout_lock_key());
	PERFORM rollout_check_priority(p_campaign);
	UPDATE campaign_stages s
	SET failures_acked = coalesce((SELECT count(*) FROM campaign_devices m
	                               WHERE m.campaign_id = p_campaign AND m.stage_no = s.stage_no
	                                 AND m.state IN ('failed', 'timed_out')), 0)
	WHERE s.campaign_id = p_campaign;
	PERFORM rollout_policy_ack(p_campaign);
	UPDATE campaign_stages SET budget_start = v_now
	WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
	UPDATE campaigns
	SET state = 'running', state_reason = '', bucket_at = NULL, bucket_tokens = rate_burst,
	    admitted_at = NULL, updated_at = v_now
	WHERE campaign_id = p_campaign;
	PERFORM rollout_event(p_campaign, 'resumed', c.current_stage, 'by ' || p_actor, v_now);
	PERFORM rollout_audit(p_actor, 'campaign.resume', p_campaign,
	                      jsonb_build_object('state', c.state, 'reason', c.state_reason),
	                      jsonb_build_object('state', 'running'));
	RETURN 'running';
END $$;

-- Devices not yet notified are released (state cancelled); devices in flight
-- finish what they started and their reports are still recorded.
CREATE OR REPLACE FUNCTION rollout_cancel(p_campaign text, p_actor text, p_now timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
	c := rollout_lock(p_campaign);
	IF c.state = 'cancelled' THEN
		RETURN 'cancelled';
	END IF;
	IF c.state IN ('completed', 'failed') THEN
		PERFORM rollout_fail('FO409', format('campaign %s is %s', p_campaign, c.state));
	END IF;
	UPDATE campaign_devices SET state = 'cancelled', updated_at = v_now
	WHERE campaign_id = p_campaign AND state = 'pending';
	UPDATE campaigns
	SET state = 'cancelled', state_reason = 'cancelled by ' || p_actor, finished_at = v_now,
	    lease_owner = NULL, lease_until = NULL, updated_at = v_now
	WHERE campaign_id = p_campaign;
	PERFORM rollout_event(p_campaign, 'cancelled', c.current_stage, 'by ' || p_actor, v_now);
	PERFORM rollout_audit(p_actor, 'campaign.cancel', p_campaign,
	                      jsonb_build_object('state', c.state), jsonb_build_object('state', 'cancelled'));
	RETURN 'cancelled';
END $$;

-- For the REST API: one call that changes and returns the new view (a
-- PL/pgSQL body sees its own changes; a single SELECT would not).
CREATE OR REPLACE FUNCTION rollout_api_create(p_spec jsonb, p_actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_id text;
BEGIN
	v_id := rollout_create(p_spec, p_actor);
	RETURN rollout_status(v_id);
END $$;

CREATE OR REPLACE FUNCTION rollout_api_action(p_campaign text, p_action text, p_actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	CASE p_action
	WHEN 'start' THEN PERFORM rollout_start(p_campaign, p_actor);
	WHEN 'approve' THEN PERFORM rollout_approve(p_campaign, p_actor);
	WHEN 'pause' THEN PERFORM rollout_pause(p_campaign, p_actor);
	WHEN 'resume' THEN PERFORM rollout_resume(p_campaign, p_actor);
	WHEN 'cancel' THEN PERFORM rollout_cancel(p_campaign, p_actor);
	ELSE PERFORM rollout_fail('FO422', 'action: start, approve, pause, resume or cancel');
	END CASE;
	RETURN rollout_status(p_campaign);
END $$;
