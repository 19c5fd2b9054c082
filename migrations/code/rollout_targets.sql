-- SPDX-License-Identifier: Apache-2.0
-- fleetota rollout engine: the admission queue of running and paused
-- campaigns (campaign_targets, 0019), built once when a campaign starts and
-- kept current as devices change, so that admission takes the head of the
-- queue instead of evaluating the target every tick (docs/campaigns.md,
-- "Planning at scale").
-- Re-applied by `ota-server migrate` whenever this file changes (docs/server.md).

-- The queue order: a hash of the device id seeded by the campaign id.
CREATE OR REPLACE FUNCTION rollout_target_rank(p_campaign text, p_device text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT hashtextextended(p_device, hashtext(p_campaign))
$$;

-- Campaigns whose queue the triggers keep current.
CREATE OR REPLACE FUNCTION rollout_targets_kept() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
	SELECT campaign_id FROM campaigns WHERE state IN ('running', 'paused') AND targets_at IS NOT NULL
$$;

-- A target that a device's own changes cannot follow: a dynamic group that
-- tests the device's state (it changes with every report, the triggers do
-- not follow it) or its last contact (it changes with time alone). Such a
-- queue is rebuilt every admission_interval_s instead.
CREATE OR REPLACE FUNCTION rollout_target_volatile(p_campaign text) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT EXISTS (SELECT 1 FROM campaign_groups cg JOIN device_groups g ON g.group_id = cg.group_id
	               WHERE cg.campaign_id = p_campaign AND g.kind = 'dynamic'
	                 AND jsonb_path_exists(g.filter, 'lax $.** ? (@.field == "state" || @.field == "last_seen")'))
$$;

-- (Re)builds a campaign's queue from its target: the matching devices that
-- have no row in campaign_devices (a member, or a device it lost: superseded
-- or cancelled devices are not admitted again). Sets the counts behind
-- target_size. Called with the campaign row locked (start, or a tick).
CREATE OR REPLACE FUNCTION rollout_targets_build(p_campaign text, p_now timestamptz) RETURNS bigint
LANGUAGE plpgsql SET work_mem = '256MB' SET jit = off AS $$
DECLARE
	v_queued bigint;
	v_members bigint;
BEGIN
	DELETE FROM campaign_targets WHERE campaign_id = p_campaign;
	DELETE FROM campaign_target_deltas WHERE campaign_id = p_campaign;
	-- the target's query itself, not rollout_target(): a set-returning
	-- function would first copy the whole target into a tuplestore
	EXECUTE format(
		'INSERT INTO campaign_targets (campaign_id, rank, device_id) '
		'SELECT %1$L, rollout_target_rank(%1$L, t.device_id), t.device_id '
		'FROM (%2$s) t '
		'WHERE NOT EXISTS (SELECT 1 FROM campaign_devices m'
		'                  WHERE m.campaign_id = %1$L AND m.device_id = t.device_id) '
		'ORDER BY 2, 3', p_campaign, rollout_target_sql(p_campaign))
	USING NULL::text[];
	GET DIAGNOSTICS v_queued = ROW_COUNT;
	-- statistics that know the queue: admission takes its head through the
	-- primary key in order (reads the batch) only while the planner knows the
	-- queue is long; with the statistics of an empty or never analyzed table
	-- it estimated a few thousand rows and read and sorted the whole queue
	-- every tick (docs/campaigns.md "Plans"). Samples 30,000 rows, sees this
	-- transaction's own rows.
	ANALYZE campaign_targets;
	SELECT count(*) INTO v_members FROM campaign_devices
	WHERE campaign_id = p_campaign AND state NOT IN ('superseded', 'cancelled');
	UPDATE campaigns SET targets_at = p_now, target_queued = v_queued, target_members = v_members,
	       target_size = v_members + v_queued, admit_cursor_rank = NULL, admit_cursor_device = NULL,
	       admit_bound_stage = NULL
	WHERE campaign_id = p_campaign;
	RETURN v_queued;
END $$;

-- These devices changed (or joined a static group, or left it): each kept
-- queue drops their rows and takes again the ones that match now and are not
-- members. Set-based per campaign;
-- the target is evaluated for these devices only (rollout_target's p_only).
CREATE OR REPLACE FUNCTION rollout_targets_sync(p_devices text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	v_campaign text;
	v_ids text[];
	v_gone bigint;
	v_came bigint;
BEGIN
	FOR v_campaign IN SELECT k FROM rollout_targets_kept() k LOOP
		-- a member without a queue row has nothing to drop and is never
		-- taken: left out, by key, before the target is evaluated (its
		-- dynamic SQL, planned per call, cost most of a report batch's
		-- trigger while the campaign's own members reported their install).
		-- One probe of each index per device (OFFSET 0: kept a subplan by
		-- key; pulled up into an anti-join, the plan made while
		-- campaign_devices was small scanned the whole table at every call)
		v_ids := ARRAY(SELECT x FROM unnest(p_devices) x
		               WHERE NOT EXISTS (SELECT 1 FROM campaign_devices m
		                                 WHERE m.campaign_id = v_campaign AND m.device_id = x OFFSET 0)
		                  OR EXISTS (SELECT 1 FROM campaign_targets q
		                             WHERE q.campaign_id = v_campaign
		                               AND q.rank = rollout_target_rank(v_campaign, x) AND q.device_id = x
		                             OFFSET 0));
		CONTINUE WHEN cardinality(v_ids) = 0;
		DELETE FROM campaign_targets q
		WHERE q.campaign_id = v_campaign
		  AND (q.rank, q.device_id) IN (SELECT rollout_target_rank(v_campaign, x), x FROM unnest(v_ids) x);
		GET DIAGNOSTICS v_gone = ROW_COUNT;
		INSERT INTO campaign_targets (campaign_id, rank, device_id)
		SELECT v_campaign, rollout_target_rank(v_campaign, t.device_id), t.device_id
		FROM rollout_target(v_campaign, v_ids) t
		-- members among these devices, by key (an anti-join could scan
		-- every member of the campaign per report)
		WHERE t.device_id <> ALL (ARRAY(SELECT m.device_id FROM campaign_devices m
		                                WHERE m.campaign_id = v_campaign AND m.device_id = ANY (v_ids)))
		ON CONFLICT DO NOTHING;
		GET DIAGNOSTICS v_came = ROW_COUNT;
		IF v_came <> v_gone THEN
			INSERT INTO campaign_target_deltas (campaign_id, queued) VALUES (v_campaign, v_came - v_gone);
		END IF;
	END LOOP;
END $$;

-- Statement triggers on devices and static group members: one call per
-- statement whatever its row count (a bulk load of a million devices costs
-- one evaluation per kept campaign), and nothing at all unless a column a
-- target can test changed or a member came or went.
CREATE OR REPLACE FUNCTION rollout_targets_devices_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	v_ids text[];
BEGIN
	-- in FROM, the SQL function is inlined and the plan cached: called in
	-- the select list it was parsed and planned again on every report
	-- (a sixth of report_ingest's CPU, issue 19)
	IF NOT EXISTS (SELECT 1 FROM rollout_targets_kept()) THEN
		RETURN NULL;
	END IF;
	IF TG_TABLE_NAME = 'device_group_members' AND TG_OP = 'DELETE' THEN
		v_ids := ARRAY(SELECT DISTINCT o.device_id FROM rollout_old o);
	ELSIF TG_OP = 'INSERT' THEN
		v_ids := ARRAY(SELECT DISTINCT n.device_id FROM rollout_new n);
	ELSE
		v_ids := ARRAY(SELECT n.device_id FROM rollout_new n JOIN rollout_old o ON o.device_id = n.device_id
		               WHERE (n.model, n.hw_revision, n.version, n.version_code, n.security_counter,
		                      n.keylist_version, n.rootlist_version, n.keylist_key_ids, n.tags,
		                      n.decommissioned)
		                     IS DISTINCT FROM
		                     (o.model, o.hw_revision, o.version, o.version_code, o.security_counter,
		                      o.keylist_version, o.rootlist_version, o.keylist_key_ids, o.tags,
		                      o.decommissioned));
	END IF;
	IF cardinality(v_ids) > 0 THEN
		PERFORM rollout_targets_sync(v_ids);
	END IF;
	RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER devices_targets_insert AFTER INSERT ON devices
	REFERENCING NEW TABLE AS rollout_new
	FOR EACH STATEMENT EXECUTE FUNCTION rollout_targets_devices_trg();
CREATE OR REPLACE TRIGGER devices_targets_update AFTER UPDATE ON devices
	REFERENCING OLD TABLE AS rollout_old NEW TABLE AS rollout_new
	FOR EACH STATEMENT EXECUTE FUNCTION rollout_targets_devices_trg();

CREATE OR REPLACE TRIGGER device_group_members_targets_insert AFTER INSERT ON device_group_members
	REFERENCING NEW TABLE AS rollout_new
	FOR EACH STATEMENT EXECUTE FUNCTION rollout_targets_devices_trg();
CREATE OR REPLACE TRIGGER device_group_members_targets_delete AFTER DELETE ON device_group_members
	REFERENCING OLD TABLE AS rollout_old
	FOR EACH STATEMENT EXECUTE FUNCTION rollout_targets_devices_trg();

-- A dynamic group's filter changed: the campaigns that target the group
-- rebuild their queue at their next admission.
CREATE OR REPLACE FUNCTION rollout_targets_group_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE campaigns k SET targets_at = NULL
	WHERE k.state IN ('running', 'paused') AND k.targets_at IS NOT NULL
	  AND k.campaign_id IN (SELECT cg.campaign_id FROM campaign_groups cg WHERE cg.group_id = NEW.group_id);
	RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER device_groups_targets AFTER UPDATE ON device_groups
	FOR EACH ROW WHEN (OLD.filter IS DISTINCT FROM NEW.filter OR OLD.kind IS DISTINCT FROM NEW.kind)
	EXECUTE FUNCTION rollout_targets_group_trg();

-- A campaign that finished (completed, cancelled, failed) or went back to a
-- draft drops its queue.
CREATE OR REPLACE FUNCTION rollout_targets_campaign_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM campaign_targets WHERE campaign_id = NEW.campaign_id;
	DELETE FROM campaign_target_deltas WHERE campaign_id = NEW.campaign_id;
	UPDATE campaigns SET targets_at = NULL, target_queued = 0, admit_rest = 0 WHERE campaign_id = NEW.campaign_id;
	RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER campaigns_targets_drop AFTER UPDATE OF state ON campaigns
	FOR EACH ROW WHEN (NEW.state NOT IN ('running', 'paused') AND OLD.state IN ('running', 'paused'))
	EXECUTE FUNCTION rollout_targets_campaign_trg();
