-- SPDX-License-Identifier: Apache-2.0
-- fleetota rollout engine: admission, timeouts, stage evaluation, rate-limited notifications
-- with leases, the tick, device reports and the status view.
-- Re-applied by `ota-server migrate` whenever this file changes (docs/server.md).

-- ---------------------------------------------------------------------------
-- The tick's parts, per campaign (called with the campaign row locked).

-- Higher-priority campaigns (running or paused) whose current stage has
-- admitted devices without a campaign_devices row yet (admit_rest): those
-- devices are theirs, a lower-priority campaign neither admits nor notifies
-- them (rollout_reserved).
CREATE OR REPLACE FUNCTION rollout_reserving(p_campaign text) RETURNS text[]
LANGUAGE sql STABLE AS $$
	SELECT coalesce(array_agg(o.campaign_id ORDER BY o.campaign_id), '{}')
	FROM campaigns c
	JOIN campaigns o ON o.state IN ('running', 'paused') AND o.campaign_id <> c.campaign_id
	                AND (o.security_preempt, o.priority) > (c.security_preempt, c.priority)
	                AND o.admit_rest > 0
	WHERE c.campaign_id = p_campaign
$$;

-- The device is admitted by one of these campaigns (rollout_reserving) and
-- has no row there yet: it is in the campaign's queue, no further than the
-- queue row its admitted share reaches (admit_bound_*). A lookup of the
-- queue's key per campaign.
CREATE OR REPLACE FUNCTION rollout_reserved(p_reserving text[], p_device text) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT EXISTS (
		SELECT 1 FROM campaigns o
		JOIN campaign_targets t ON t.campaign_id = o.campaign_id
		                       AND t.rank = rollout_target_rank(o.campaign_id, p_device)
		                       AND t.device_id = p_device
		WHERE o.campaign_id = ANY (p_reserving)
		  AND (o.admit_bound_rank IS NULL
		       OR (t.rank, t.device_id) <= (o.admit_bound_rank, o.admit_bound_device)))
$$;

-- (b) Admission into the current stage. The stage's share of the target is
-- admitted as a whole (its counts include it at once: admit_rest), but
-- campaign_devices rows are written lazily, as notification needs them: a
-- tick writes the head of the campaign's queue (campaign_targets, kept
-- current by rollout_targets.sql) only up to a lookahead of twice the
-- stage's max_in_flight plus the rate burst of pending rows that are due
-- (at most admission_batch), in one statement whose cost grows with the
-- rows written, not with the target (docs/campaigns.md "Planning at scale"). The queue is built here only when it is missing (a
-- targeted group changed) or when the target follows time or device state
-- (rollout_target_volatile: then every admission_interval_s).
-- Every statement is planned for this campaign, batch and priority case
-- (plan_cache_mode): a generic plan, which ota-server's long-lived sessions
-- would otherwise reuse, cannot tell a queue of 900,000 rows from one of
-- ten, nor drop the higher-priority check when no such campaign runs; a
-- plan for the wrong size reads and sorts the whole queue to take its head
-- (docs/campaigns.md "Plans"). Planning costs well under a millisecond.
CREATE OR REPLACE FUNCTION rollout_admit(p_campaign text, p_now timestamptz) RETURNS bigint
LANGUAGE plpgsql SET work_mem = '64MB' SET jit = off SET plan_cache_mode = force_custom_plan AS $$
DECLARE
	c campaigns%ROWTYPE;
	s campaign_stages%ROWTYPE;
	a artifacts%ROWTYPE;
	v_target bigint;
	v_quota bigint;
	v_want bigint;
	v_admitted bigint := 0;
	v_taken bigint := 0;
	v_latest_kl bigint;
	v_latest_kl_has_key boolean := false;
	v_higher boolean;
	v_lower text[];
	v_ins text[];
	v_seqscan text;
	v_seq bigint;
	v_more boolean := false;
	v_scan bigint;
	v_scanned bigint;
	v_found bigint := 0;
	v_taken_i bigint;
	v_admitted_i bigint;
	v_pending_i bigint;
	v_examined bigint := 0;
	v_want_next bigint;
	v_last_rank bigint;
	v_last_device text;
	v_head_rank bigint;
	v_head_device text;
	v_rest bigint;
	v_rest_after bigint;
	v_look bigint;
	v_ready bigint := 0;
	v_reserving text[] := '{}';
	v_deltas bigint := 0;
	v_rebuilt boolean := false;
	v_bound_rank bigint;
	v_bound_device text;
	v_batch bigint := greatest(1, rollout_setting('admission_batch', '100000')::bigint);
	v_interval integer := rollout_setting('admission_interval_s', '30')::integer;
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	IF c.targets_at IS NULL
	   OR (c.targets_at + make_interval(secs => v_interval) <= p_now AND rollout_target_volatile(p_campaign)) THEN
		PERFORM rollout_targets_build(p_campaign, p_now);
		v_rebuilt := true;
	ELSE
		-- what changed outside the tick: devices that came or went, devices
		-- a higher-priority campaign took
		WITH d AS (
			DELETE FROM campaign_target_deltas x WHERE x.campaign_id = p_campaign
			RETURNING x.members, x.queued
		)
		UPDATE campaigns k
		SET target_members = k.target_members + (SELECT coalesce(sum(d.members), 0) FROM d),
		    target_queued = k.target_queued + (SELECT coalesce(sum(d.queued), 0) FROM d)
		WHERE k.campaign_id = p_campaign
		RETURNING (SELECT count(*) FROM d) INTO v_deltas;
	END IF;
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	SELECT * INTO s FROM campaign_stages WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
	-- the target as it is now: members (also those that left it) and the queue
	v_target := c.target_members + c.target_queued;
	v_quota := CASE WHEN s.device_count IS NOT NULL THEN least(s.device_count, v_target)
	                ELSE ceil(v_target * s.percent / 100.0)::bigint END;
	-- the stage's share not written yet; written only up to the lookahead
	v_rest := greatest(0, v_quota - c.target_members);
	v_look := least(v_batch, 2::bigint * s.max_in_flight + c.rate_burst);
	IF v_rest > 0 THEN
		-- due pending rows, not those a higher-priority campaign reserved
		-- (written before it admitted them): they wait for its own rows,
		-- and this campaign goes on with its other devices meanwhile
		v_reserving := rollout_reserving(p_campaign);
		IF cardinality(v_reserving) = 0 THEN
			-- none reserved: the pending rows from the kept counts (folded by
			-- this tick) less those waiting for a retry's back-off (an index
			-- of their own, 0025): counting the lookahead read up to 2 *
			-- max_in_flight + rate_burst rows at every tick (2,060 at 10,000
			-- devices in the fleet bench, twice the tick's cost at 1,000)
			SELECT coalesce(sum(x.n), 0) INTO v_ready FROM rollout_state_counts(p_campaign) x
			WHERE x.state = 'pending';
			v_ready := v_ready - (SELECT count(*) FROM campaign_devices m
			                      WHERE m.campaign_id = p_campaign AND m.state = 'pending'
			                        AND m.retry_at IS NOT NULL AND m.retry_at > p_now);
		ELSE
			SELECT count(*) INTO v_ready FROM campaign_devices m
			WHERE m.campaign_id = p_campaign AND m.state = 'pending' AND (m.retry_at IS NULL OR m.retry_at <= p_now)
			  AND NOT EXISTS (SELECT 1 FROM campaigns o
			                  JOIN campaign_targets t ON t.campaign_id = o.campaign_id
			                                         AND t.rank = rollout_target_rank(o.campaign_id, m.device_id)
			                                         AND t.device_id = m.device_id
			                  WHERE o.campaign_id = ANY (v_reserving)
			                    AND (o.admit_bound_rank IS NULL
			                         OR (t.rank, t.device_id) <= (o.admit_bound_rank, o.admit_bound_device)));
		END IF;
	END IF;
	v_want := least(v_rest, v_batch, greatest(0, v_look - v_ready));

	IF v_want > 0 THEN
		IF c.kind = 'firmware' THEN
			SELECT * INTO a FROM artifacts WHERE artifact_id = c.artifact_id;
			SELECT k.version, a.signing_key_id = ANY (k.key_ids) INTO v_latest_kl, v_latest_kl_has_key
			FROM keylists k ORDER BY k.version DESC LIMIT 1;
		END IF;
		-- a higher-priority campaign may hold some of the queue's devices
		v_higher := EXISTS (SELECT 1 FROM campaigns o
		                    WHERE o.state IN ('running', 'paused') AND o.campaign_id <> p_campaign
		                      AND (o.security_preempt, o.priority) > (c.security_preempt, c.priority));
		-- (and those of them that admitted devices they have not written
		-- yet: v_reserving, above)
		-- and lower-priority ones may have admitted some of them, not notified yet
		v_lower := ARRAY(SELECT o.campaign_id FROM campaigns o
		                 WHERE o.state IN ('running', 'paused') AND o.campaign_id <> p_campaign
		                   AND (o.security_preempt, o.priority) < (c.security_preempt, c.priority)
		                   AND EXISTS (SELECT 1 FROM campaign_devices m
		                               WHERE m.campaign_id = o.campaign_id AND m.state = 'pending'));
		LOOP
			-- admit_seq follows the queue order; a block of the sequence per batch
			v_seq := nextval('campaign_devices_admit_seq');
			PERFORM setval('campaign_devices_admit_seq', v_seq + v_want);
			-- the rows examined: the head of the queue; while a higher-priority
			-- campaign runs, at most admission_batch rows from the cursor on (the
			-- head may be held by that campaign for long: read once per pass over
			-- the queue, not once per tick), and no more than ten times the rows
			-- wanted and a thousand (lazy admission wants a few rows at every
			-- tick: a window of 100,000 lookups each tick cost more than the
			-- rows it found)
			v_scan := CASE WHEN v_higher THEN greatest(v_want, least(v_batch, 10 * v_want + 1000)) ELSE v_want END;
			WITH w AS MATERIALIZED (
				SELECT t.ctid AS row_id, t.rank, t.device_id FROM campaign_targets t
				WHERE t.campaign_id = p_campaign
				  AND (NOT v_higher OR c.admit_cursor_rank IS NULL
				       OR (t.rank, t.device_id) > (c.admit_cursor_rank, c.admit_cursor_device))
				ORDER BY t.rank, t.device_id
				LIMIT v_scan
			), head AS MATERIALIZED (
				SELECT w.row_id, w.rank, w.device_id FROM w
				-- a higher-priority campaign holds the device: not ours (yet). A
				-- lookup by device per examined row (LIMIT keeps it a lookup: a
				-- join could hash all of that campaign's members every tick)
				LEFT JOIN LATERAL (
					SELECT 1 AS held FROM campaign_devices m JOIN campaigns o USING (campaign_id)
					WHERE v_higher AND m.device_id = w.device_id
					  AND (o.security_preempt, o.priority) > (c.security_preempt, c.priority)
					  AND o.state IN ('running', 'paused')
					  AND m.state IN ('pending', 'notified', 'downloading', 'installed')
					LIMIT 1) h ON true
				-- or has admitted it and not written its row yet (rollout_reserved,
				-- written out: a function call per examined row cost 0.1 ms)
				LEFT JOIN LATERAL (
					SELECT 1 AS held FROM campaigns o
					JOIN campaign_targets t ON t.campaign_id = o.campaign_id
					                       AND t.rank = rollout_target_rank(o.campaign_id, w.device_id)
					                       AND t.device_id = w.device_id
					WHERE cardinality(v_reserving) > 0 AND o.campaign_id = ANY (v_reserving)
					  AND (o.admit_bound_rank IS NULL
					       OR (t.rank, t.device_id) <= (o.admit_bound_rank, o.admit_bound_device))
					LIMIT 1) r ON true
				WHERE h.held IS NULL AND r.held IS NULL
				ORDER BY w.rank, w.device_id
				LIMIT v_want
			), taken AS (
				DELETE FROM campaign_targets q
				-- by row address: the rows were found once, in queue order
				WHERE q.ctid = ANY (ARRAY(SELECT head.row_id FROM head))
				RETURNING q.rank, q.device_id
			), chosen AS (
				-- the attributes as they are now: a lookup per written row (the
				-- rows of a tick are few, see the lookahead above)
				SELECT tk.device_id, d.version_code, d.keylist_version, d.rootlist_version,
				       coalesce(nullif(d.keylist_key_ids, '{}'), k.key_ids, '{}') AS key_ids,
				       v_seq + row_number() OVER (ORDER BY tk.rank, tk.device_id) AS seq
				FROM taken tk
				JOIN devices d ON d.device_id = tk.device_id
				LEFT JOIN keylists k ON k.version = d.keylist_version
			), ins AS (
				INSERT INTO campaign_devices (campaign_id, device_id, stage_no, step, needed_keylist, state,
				                              error, already, admit_seq, admitted_at, done_at, updated_at)
				SELECT p_campaign, ch.device_id, c.current_stage,
				       CASE WHEN c.kind = 'firmware' AND ch.version_code <> a.version_code
				                 AND NOT (a.signing_key_id = ANY (ch.key_ids)) THEN 'keylist'
				            WHEN c.kind = 'rootlist' THEN 'rootlist'
				            WHEN c.kind = 'keylist' THEN 'keylist'
				            ELSE 'firmware' END,
				       CASE WHEN c.kind = 'firmware' AND ch.version_code <> a.version_code
				                 AND NOT (a.signing_key_id = ANY (ch.key_ids)) THEN coalesce(v_latest_kl, 0)
				            WHEN c.kind = 'keylist' THEN c.keylist_version
				            ELSE 0 END,
				       st.state, st.error, st.state = 'confirmed',
				       ch.seq, p_now,
				       CASE WHEN st.state IN ('confirmed', 'failed') THEN p_now END, p_now
				FROM chosen ch,
				     LATERAL (SELECT CASE
				         WHEN c.kind = 'firmware' AND ch.version_code = a.version_code THEN 'confirmed'
				         WHEN c.kind = 'keylist' AND ch.keylist_version >= c.keylist_version THEN 'confirmed'
				         WHEN c.kind = 'rootlist' AND ch.rootlist_version >= c.rootlist_version THEN 'confirmed'
				         -- the device cannot verify the manifest and no KeyList it
				         -- could move to trusts the signing key
				         WHEN c.kind = 'firmware' AND NOT (a.signing_key_id = ANY (ch.key_ids))
				              AND (v_latest_kl IS NULL OR NOT v_latest_kl_has_key
				                   OR v_latest_kl <= ch.keylist_version) THEN 'failed'
				         ELSE 'pending' END AS state,
				       CASE WHEN c.kind = 'firmware' AND ch.version_code <> a.version_code
				                 AND NOT (a.signing_key_id = ANY (ch.key_ids))
				                 AND (v_latest_kl IS NULL OR NOT v_latest_kl_has_key
				                      OR v_latest_kl <= ch.keylist_version)
				            THEN 'OTA_ERR_KEY_UNKNOWN' ELSE '' END AS error) st
				     -- a device that came to match while a tick admitted it (a race
				     -- of the triggers with this statement) is a member already. A
				     -- lookup per admitted device (LIMIT keeps it one: an anti-join
				     -- could merge or hash every member of the campaign), not ON
				     -- CONFLICT: only admission inserts members, one tick at a time
				     -- (rollout_tick's advisory lock), so nothing inserts the same
				     -- row concurrently, and a speculative insertion costs about a
				     -- third more per row (docs/campaigns.md "Plans")
				     LEFT JOIN LATERAL (
				         SELECT true AS member FROM campaign_devices x
				         WHERE x.campaign_id = p_campaign AND x.device_id = ch.device_id
				         LIMIT 1) e ON true
				WHERE e.member IS NULL
				-- key order: the indexes are written page by page
				ORDER BY ch.device_id
				RETURNING device_id, state
			)
			SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM ins), (SELECT count(*) FROM w),
			       lw.rank, lw.device_id, lh.rank, lh.device_id, (SELECT count(*) FROM head),
			       CASE WHEN cardinality(v_lower) > 0 THEN ARRAY(SELECT ins.device_id FROM ins) END,
			       (SELECT count(*) FROM ins WHERE ins.state = 'pending')
			INTO v_taken_i, v_admitted_i, v_scanned, v_last_rank, v_last_device, v_head_rank, v_head_device, v_found,
			     v_ins, v_pending_i
			FROM (SELECT NULL) x
			LEFT JOIN (SELECT w.rank, w.device_id FROM w ORDER BY w.rank DESC, w.device_id DESC LIMIT 1) lw ON true
			LEFT JOIN (SELECT head.rank, head.device_id FROM head ORDER BY head.rank DESC, head.device_id DESC LIMIT 1) lh
			       ON true;
			-- a lower-priority campaign loses the admitted devices it has not
			-- notified yet. Its own statement, planned for the actual batch
			-- (plan_cache_mode): a hash of the other campaigns' pending rows
			-- (campaign_devices_pending_idx) when they are fewer than the batch,
			-- else a lookup per admitted device. Never a scan of campaign_devices:
			-- its statistics lag a batch or more behind (they once put 246,497
			-- pending rows where there were 8,000, and the plan read every member
			-- of every campaign)
			IF cardinality(v_ins) > 0 THEN
				v_seqscan := current_setting('enable_seqscan');
				PERFORM set_config('enable_seqscan', 'off', true);
				WITH sup AS (
					UPDATE campaign_devices m SET state = 'superseded', updated_at = p_now
					FROM unnest(v_ins) i (device_id)
					WHERE m.campaign_id = ANY (v_lower) AND m.state = 'pending' AND m.device_id = i.device_id
					RETURNING m.campaign_id
				)
				INSERT INTO campaign_target_deltas (campaign_id, members)
				SELECT sup.campaign_id, -count(*) FROM sup GROUP BY sup.campaign_id;
				PERFORM set_config('enable_seqscan', v_seqscan, true);
			END IF;
			v_taken := v_taken + v_taken_i;
			v_admitted := v_admitted + v_admitted_i;
			v_examined := v_examined + v_scanned;
			-- rows that are not pending (a device already on the version is
			-- confirmed, one that cannot verify the artifact failed, at once)
			-- leave the lookahead short: write more now, from after the last
			-- row taken, within admission_batch rows written and examined
			EXIT WHEN v_found < v_want OR v_examined >= v_batch;
			v_want_next := least(v_rest - v_admitted, v_batch - v_taken, v_want - v_pending_i);
			EXIT WHEN v_want_next <= 0;
			v_want := v_want_next;
			c.admit_cursor_rank := v_head_rank;
			c.admit_cursor_device := v_head_device;
		END LOOP;
		-- the next tick goes on after the last row taken (rows after it in
		-- the window were not examined for this batch), else after the
		-- window; from the head again once the end of the queue was reached
		IF NOT v_higher OR (v_found < v_want AND v_scanned < v_scan) THEN
			v_last_rank := NULL;
			v_last_device := NULL;
		ELSIF v_found >= v_want THEN
			v_last_rank := v_head_rank;
			v_last_device := v_head_device;
		END IF;
		-- the pass over the queue goes on at the next tick
		v_more := v_last_rank IS NOT NULL;
		UPDATE campaigns SET admit_cursor_rank = v_last_rank, admit_cursor_device = v_last_device
		WHERE campaign_id = p_campaign;
	END IF;
	-- what the share still reaches into the queue: the v_rest_after-th row
	-- from its head, found again only when the stage, the queue's build or
	-- its contents changed (no scan when the share is the whole queue)
	v_rest_after := greatest(0, v_quota - (c.target_members + v_admitted));
	v_bound_rank := c.admit_bound_rank;
	v_bound_device := c.admit_bound_device;
	IF v_rest_after > 0 AND (v_rebuilt OR v_deltas > 0 OR c.admit_bound_stage IS DISTINCT FROM c.current_stage) THEN
		v_bound_rank := NULL;
		v_bound_device := NULL;
		IF v_rest_after < c.target_queued - v_taken THEN
			SELECT t.rank, t.device_id INTO v_bound_rank, v_bound_device FROM campaign_targets t
			WHERE t.campaign_id = p_campaign
			ORDER BY t.rank, t.device_id
			OFFSET v_rest_after - 1 LIMIT 1;
		END IF;
	END IF;
	-- a full batch, a pass over the queue not finished, or a share not
	-- written yet (the lookahead, or all that was wanted was found): more to
	-- admit, do not wait for the admission interval
	UPDATE campaigns SET admitted_at = CASE WHEN v_admitted >= v_batch OR v_more
	                                             OR (v_rest_after > 0 AND v_found >= v_want)
	                                        THEN NULL ELSE p_now END,
	       target_members = target_members + v_admitted, target_queued = target_queued - v_taken,
	       target_size = target_members + v_admitted + target_queued - v_taken,
	       admit_rest = v_rest_after, admit_bound_stage = c.current_stage,
	       admit_bound_rank = v_bound_rank, admit_bound_device = v_bound_device
	WHERE campaign_id = p_campaign;
	RETURN v_admitted;
END $$;

-- (d) Devices that did not report within the timeout: retried (a transient
-- failure) while the campaign's transient_retries allow, else failed.
CREATE OR REPLACE FUNCTION rollout_timeouts(p_campaign text, p_now timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_count bigint;
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	-- notified_at first: the rows notified longer ago than the timeout are
	-- a range of campaign_devices_flight_idx (0025), so a tick reads those,
	-- not every member in flight (greatest(...) is never below notified_at)
	WITH late AS (
		SELECT m.device_id, m.attempts FROM campaign_devices m
		WHERE m.campaign_id = p_campaign AND m.state IN ('notified', 'downloading', 'installed')
		  AND m.notified_at <= p_now - make_interval(secs => c.device_timeout_s)
		  AND greatest(m.notified_at, m.last_report_at) + make_interval(secs => c.device_timeout_s) <= p_now
		FOR UPDATE
	)
	UPDATE campaign_devices m
	SET state = CASE WHEN late.attempts < c.transient_retries THEN 'pending' ELSE 'timed_out' END,
	    error = 'OTA_ERR_TIMEOUT',
	    attempts = late.attempts + CASE WHEN late.attempts < c.transient_retries THEN 1 ELSE 0 END,
	    retry_at = CASE WHEN late.attempts < c.transient_retries
	                    THEN p_now + rollout_retry_backoff(c.retry_backoff_s, late.attempts) END,
	    notified_at = CASE WHEN late.attempts < c.transient_retries THEN NULL ELSE m.notified_at END,
	    done_at = CASE WHEN late.attempts < c.transient_retries THEN NULL ELSE p_now END,
	    updated_at = p_now
	FROM late
	WHERE m.campaign_id = p_campaign AND m.device_id = late.device_id;
	GET DIAGNOSTICS v_count = ROW_COUNT;
	RETURN v_count;
END $$;

-- Counts per stage (also for the REST API), from the counts kept as rows
-- change (rollout_state_counts, migrations/code/rollout_counts.sql): no
-- pass over the campaign's members (docs/campaigns.md "Stage counts").
CREATE OR REPLACE FUNCTION rollout_stage_counts(p_campaign text)
RETURNS TABLE (stage_no integer, admitted bigint, pending bigint, in_flight bigint,
               confirmed bigint, failed bigint, timed_out bigint, superseded bigint,
               cancelled bigint)
LANGUAGE sql STABLE AS $$
	SELECT s.stage_no,
	       coalesce(sum(k.n) FILTER (WHERE k.state NOT IN ('superseded', 'cancelled')), 0)::bigint,
	       coalesce(sum(k.n) FILTER (WHERE k.state = 'pending'), 0)::bigint,
	       coalesce(sum(k.n) FILTER (WHERE k.state IN ('notified', 'downloading', 'installed')), 0)::bigint,
	       coalesce(sum(k.n) FILTER (WHERE k.state = 'confirmed'), 0)::bigint,
	       coalesce(sum(k.n) FILTER (WHERE k.state = 'failed'), 0)::bigint,
	       coalesce(sum(k.n) FILTER (WHERE k.state = 'timed_out'), 0)::bigint,
	       coalesce(sum(k.n) FILTER (WHERE k.state = 'superseded'), 0)::bigint,
	       coalesce(sum(k.n) FILTER (WHERE k.state = 'cancelled'), 0)::bigint
	FROM campaign_stages s
	LEFT JOIN rollout_state_counts(p_campaign) k ON k.stage_no = s.stage_no
	WHERE s.campaign_id = p_campaign
	GROUP BY s.stage_no
	ORDER BY s.stage_no
$$;

-- The same counts by a pass over the members (the tests check that the
-- kept counts equal it).
CREATE OR REPLACE FUNCTION rollout_stage_counts_scan(p_campaign text)
RETURNS TABLE (stage_no integer, admitted bigint, pending bigint, in_flight bigint,
               confirmed bigint, failed bigint, timed_out bigint, superseded bigint,
               cancelled bigint)
LANGUAGE sql STABLE AS $$
	SELECT s.stage_no,
	       count(m.device_id) FILTER (WHERE m.state NOT IN ('superseded', 'cancelled')),
	       count(m.device_id) FILTER (WHERE m.state = 'pending'),
	       count(m.device_id) FILTER (WHERE m.state IN ('notified', 'downloading', 'installed')),
	       count(m.device_id) FILTER (WHERE m.state = 'confirmed'),
	       count(m.device_id) FILTER (WHERE m.state = 'failed'),
	       count(m.device_id) FILTER (WHERE m.state = 'timed_out'),
	       count(m.device_id) FILTER (WHERE m.state = 'superseded'),
	       count(m.device_id) FILTER (WHERE m.state = 'cancelled')
	FROM campaign_stages s
	LEFT JOIN campaign_devices m ON m.campaign_id = s.campaign_id AND m.stage_no = s.stage_no
	WHERE s.campaign_id = p_campaign
	GROUP BY s.stage_no
	ORDER BY s.stage_no
$$;

-- The devices of a campaign's queue that a higher-priority campaign holds
-- (its member, not finished; or admitted by it without a row yet,
-- rollout_reserved): admission skips them, so the campaign waits for them.
-- Bounded: the candidates, the higher-priority campaigns' pending and
-- in-flight members and then the head of their queues as far as their
-- admitted share reaches, are read through their indexes, at most p_scan
-- of them, and each is probed in this campaign's queue by its key. A
-- million-device campaign behind another one costs p_scan probes, not a
-- million (docs/campaigns.md "Progress"). held: the distinct held devices
-- found; complete: every candidate was read, so held is exact (else it is
-- a lower bound); devices: the first 10 held by id; holders: the campaigns
-- holding them (each device's highest-priority one), the first 5 by id and
-- "and K more".
DROP FUNCTION IF EXISTS rollout_held(text);
CREATE OR REPLACE FUNCTION rollout_held(p_campaign text, p_scan integer,
                                        OUT held bigint, OUT complete boolean,
                                        OUT devices text, OUT holders text)
-- (index scans that stop at the limit, whatever the statistics say: a
-- bitmap scan reads the whole range before its first row, a sequential scan
-- other campaigns' rows, and a small table's stale statistics choose them;
-- no JIT, which the cost of a disabled plan would switch on: 6 s of it)
LANGUAGE sql STABLE SET enable_bitmapscan = off SET enable_seqscan = off SET jit = off AS $$
	WITH higher AS MATERIALIZED (
		SELECT o.campaign_id, o.priority, o.admit_bound_rank, o.admit_bound_device,
		       o.campaign_id = ANY (rollout_reserving(p_campaign)) AS reserving
		FROM campaigns c
		JOIN campaigns o ON o.state IN ('running', 'paused') AND o.campaign_id <> c.campaign_id
		                AND (o.security_preempt, o.priority) > (c.security_preempt, c.priority)
		WHERE c.campaign_id = p_campaign),
	cand AS MATERIALIZED (
		SELECT x.device_id, x.campaign_id, x.priority
		FROM (SELECT m.device_id, o.campaign_id, o.priority, 1 AS part
		      FROM higher o
		      CROSS JOIN LATERAL (SELECT m.device_id FROM campaign_devices m
		                          WHERE m.campaign_id = o.campaign_id AND m.state = 'pending'
		                          UNION ALL
		                          SELECT m.device_id FROM campaign_devices m
		                          WHERE m.campaign_id = o.campaign_id
		                            AND m.state IN ('notified', 'downloading', 'installed')) m
		      UNION ALL
		      -- the queue's key from its head to the bound (an index range)
		      SELECT r.device_id, o.campaign_id, o.priority, 2
		      FROM higher o
		      CROSS JOIN LATERAL (SELECT r.device_id FROM campaign_targets r
		                          WHERE r.campaign_id = o.campaign_id
		                            AND r.rank <= coalesce(o.admit_bound_rank, 9223372036854775807)
		                            AND (o.admit_bound_rank IS NULL
		                                 OR (r.rank, r.device_id) <= (o.admit_bound_rank, o.admit_bound_device))
		                          LIMIT p_scan + 1) r
		      WHERE o.reserving) x
		LIMIT p_scan + 1),
	h AS MATERIALIZED (
		SELECT DISTINCT ON (k.device_id) k.device_id, k.campaign_id AS holder
		FROM (SELECT * FROM cand LIMIT p_scan) k
		WHERE EXISTS (SELECT 1 FROM campaign_targets t
		              WHERE t.campaign_id = p_campaign AND t.rank = rollout_target_rank(p_campaign, k.device_id)
		                AND t.device_id = k.device_id)
		ORDER BY k.device_id, k.priority DESC, k.campaign_id)
	SELECT (SELECT count(*) FROM h),
	       (SELECT count(*) FROM cand) <= p_scan,
	       (SELECT string_agg(d.device_id, ', ' ORDER BY d.device_id)
	        FROM (SELECT h.device_id FROM h ORDER BY h.device_id LIMIT 10) d),
	       (SELECT string_agg(g.holder, ', ' ORDER BY g.holder)
	               || CASE WHEN max(g.n) > 5 THEN format(' and %s more', max(g.n) - 5) ELSE '' END
	        FROM (SELECT u.holder, count(*) OVER () AS n, row_number() OVER (ORDER BY u.holder) AS i
	              FROM (SELECT DISTINCT h.holder FROM h) u) g
	        WHERE g.i <= 5)
$$;

-- How many candidates rollout_held reads for a campaign's progress and
-- stall reason: the setting fleetota.held_scan (a session's, for tests),
-- else 2,000 (about 13 ms of CPU).
CREATE OR REPLACE FUNCTION rollout_held_scan() RETURNS integer
LANGUAGE sql STABLE AS $$
	SELECT coalesce(nullif(current_setting('fleetota.held_scan', true), '')::integer, 2000)
$$;

-- "N devices", or "at least N devices" when the scan was cut (rollout_held).
CREATE OR REPLACE FUNCTION rollout_held_text(p_held bigint, p_complete boolean) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN p_complete THEN '' ELSE 'at least ' END || p_held || ' devices'
$$;

-- Why the current stage is stalled, or NULL. Stalled: every device of the
-- stage has finished and too few confirmed (it can never complete), or the
-- stage ran past its time budget. Names the devices not confirmed (the
-- first 10) and the errors.
CREATE OR REPLACE FUNCTION rollout_stall_reason(p_campaign text, c campaigns, s campaign_stages,
                                     p_admitted bigint, p_confirmed bigint, p_pending bigint,
                                     p_in_flight bigint, p_acked bigint, p_all_admitted boolean,
                                     p_now timestamptz)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
	v_budget double precision := rollout_stage_budget(c, s, p_admitted);
	v_why text;
	v_errors text;
	v_devices text;
	v_open bigint;
	v_held bigint := 0;
	v_held_complete boolean := true;
	v_held_devices text;
	v_holders text;
BEGIN
	IF p_all_admitted AND p_pending = 0 AND p_in_flight = 0 AND p_admitted > 0 THEN
		v_why := 'cannot complete';
	ELSIF s.budget_start IS NOT NULL AND s.budget_start + make_interval(secs => v_budget) <= p_now THEN
		v_why := format('not done within its budget of %s s', round(v_budget::numeric));
	ELSE
		RETURN NULL;
	END IF;
	SELECT string_agg(format('%s: %s', e.error, e.n), ', ' ORDER BY e.n DESC, e.error)
	INTO v_errors
	FROM (SELECT m.error, count(*) AS n FROM campaign_devices m
	      WHERE m.campaign_id = p_campaign AND m.stage_no = s.stage_no AND m.error <> ''
	        AND m.state NOT IN ('confirmed', 'superseded', 'cancelled')
	      GROUP BY m.error) e;
	SELECT string_agg(format('%s (%s%s)', x.device_id, x.state,
	                         CASE WHEN x.error <> '' THEN ' ' || x.error ELSE '' END), ', '
	                  ORDER BY x.device_id)
	INTO v_devices
	FROM (SELECT m.device_id, m.state, m.error FROM campaign_devices m
	      WHERE m.campaign_id = p_campaign AND m.stage_no = s.stage_no
	        AND m.state NOT IN ('confirmed', 'superseded', 'cancelled')
	      ORDER BY m.device_id LIMIT 10) x;
	SELECT count(*) INTO v_open FROM campaign_devices m
	WHERE m.campaign_id = p_campaign AND m.stage_no = s.stage_no
	  AND m.state NOT IN ('confirmed', 'superseded', 'cancelled');
	-- devices the stage still wants that a higher-priority campaign holds
	IF NOT p_all_admitted THEN
		SELECT h.held, h.complete, h.devices, h.holders
		INTO v_held, v_held_complete, v_held_devices, v_holders
		FROM rollout_held(p_campaign, rollout_held_scan()) h;
	END IF;
	RETURN format('stalled: stage %s %s: %s of %s devices confirmed, success_ratio %s; errors: %s; not confirmed: %s%s',
	              s.stage_no, v_why, p_confirmed, p_admitted - p_acked, s.success_ratio,
	              coalesce(v_errors, 'none'), coalesce(v_devices, '-'),
	              CASE WHEN v_open > 10 THEN format(' and %s more', v_open - 10) ELSE '' END)
	       || CASE WHEN v_held > 0
	               THEN format('; not admitted: %s%s (held by a higher-priority campaign: %s)', v_held_devices,
	                           CASE WHEN v_held > 10
	                                THEN format(' and %s%s more', CASE WHEN v_held_complete THEN '' ELSE 'at least ' END,
	                                            v_held - 10)
	                                ELSE '' END, v_holders)
	               ELSE '' END;
END $$;

-- The engine pauses a campaign and says why (a paused event with the reason).
CREATE OR REPLACE FUNCTION rollout_halt(p_campaign text, p_stage integer, p_reason text, p_now timestamptz)
RETURNS void
LANGUAGE sql AS $$
	UPDATE campaigns SET state = 'paused', updated_at = p_now, state_reason = p_reason
	WHERE campaign_id = p_campaign;
	SELECT rollout_event(p_campaign, 'paused', p_stage, p_reason, p_now);
$$;

-- (e) Stage evaluation. Returns true when the stage advanced (the caller
-- admits again for the new stage).
CREATE OR REPLACE FUNCTION rollout_evaluate(p_campaign text, p_now timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	s campaign_stages%ROWTYPE;
	r record;
	cur record;
	v_members bigint := 0;
	v_last integer;
	v_quota bigint;
	v_errors text;
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	-- failure threshold, every stage so far (late failures of an earlier
	-- stage count too); one pass over the counts serves the whole evaluation
	FOR r IN SELECT k.*, st.failure_ratio, st.failures_acked,
	                st.build_failure_ratio IS NULL AND st.network_failure_ratio IS NULL AS one_threshold
	         FROM rollout_stage_counts(p_campaign) k
	         JOIN campaign_stages st ON st.campaign_id = p_campaign AND st.stage_no = k.stage_no
	         ORDER BY k.stage_no LOOP
		-- members with a row; the current stage's share also counts the
		-- devices admitted without a row yet (admit_rest, rollout_admit)
		v_members := v_members + r.admitted;
		IF r.stage_no = c.current_stage THEN
			r.admitted := r.admitted + c.admit_rest;
			r.pending := r.pending + c.admit_rest;
			cur := r;
		END IF;
		-- the update policy's signals first: a bad build, the network, health
		-- after the confirm (docs/campaigns.md, "Halting on health")
		IF r.stage_no <= c.current_stage THEN
			v_errors := rollout_policy_reason(p_campaign, r.stage_no, r.admitted);
			IF v_errors IS NOT NULL THEN
				PERFORM rollout_halt(p_campaign, r.stage_no, v_errors, p_now);
				RETURN false;
			END IF;
		END IF;
		IF r.stage_no <= c.current_stage AND r.admitted > 0 AND r.one_threshold
		   AND (r.failed + r.timed_out - r.failures_acked)::numeric / r.admitted > r.failure_ratio THEN
			SELECT string_agg(format('%s: %s', e.error, e.n), ', ' ORDER BY e.n DESC, e.error)
			INTO v_errors
			FROM (SELECT m.error, count(*) AS n FROM campaign_devices m
			      WHERE m.campaign_id = p_campaign AND m.stage_no = r.stage_no
			        AND m.state IN ('failed', 'timed_out')
			      GROUP BY m.error) e;
			UPDATE campaigns
			SET state = 'paused', updated_at = p_now,
			    state_reason = format('stage %s: %s of %s devices failed (%s), over the failure threshold %s',
			                          r.stage_no, r.failed + r.timed_out, r.admitted, v_errors,
			                          r.failure_ratio)
			WHERE campaign_id = p_campaign;
			PERFORM rollout_event(p_campaign, 'paused', r.stage_no,
			                      (SELECT state_reason FROM campaigns WHERE campaign_id = p_campaign), p_now);
			RETURN false;
		END IF;
	END LOOP;

	SELECT * INTO s FROM campaign_stages WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
	r := cur;
	v_quota := CASE WHEN s.device_count IS NOT NULL THEN least(s.device_count, c.target_size)
	                ELSE ceil(c.target_size * s.percent / 100.0)::bigint END;
	-- success: the stage holds its share of the target and enough of them
	-- confirmed (an empty stage succeeds at once); failures an operator
	-- resumed over no longer count
	IF s.succeeded_at IS NULL THEN
		IF v_members >= v_quota
		   AND (r.admitted - r.failures_acked <= 0
		        OR r.confirmed::numeric / (r.admitted - r.failures_acked) >= s.success_ratio) THEN
			UPDATE campaign_stages SET succeeded_at = p_now
			WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
			PERFORM rollout_event(p_campaign, 'stage_succeeded', c.current_stage,
			                      format('%s of %s confirmed; soak %s s', r.confirmed, r.admitted, s.soak_s), p_now);
			s.succeeded_at := p_now;
		ELSE
			-- no silent stall: a stage that cannot complete any more, or is
			-- over its time budget, pauses and says why
			v_errors := rollout_stall_reason(p_campaign, c, s, r.admitted, r.confirmed, r.pending,
			                                 r.in_flight, r.failures_acked, v_members >= v_quota, p_now);
			IF v_errors IS NOT NULL THEN
				PERFORM rollout_halt(p_campaign, c.current_stage, v_errors, p_now);
			END IF;
			RETURN false;
		END IF;
	END IF;
	IF p_now < s.succeeded_at + make_interval(secs => s.soak_s) THEN
		RETURN false;
	END IF;
	SELECT max(stage_no) INTO v_last FROM campaign_stages WHERE campaign_id = p_campaign;
	IF c.current_stage >= v_last THEN
		IF c.keep_open THEN
			RETURN false;                -- a standing rollout keeps admitting
		END IF;
		UPDATE campaign_stages SET completed_at = coalesce(completed_at, p_now)
		WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
		UPDATE campaigns
		SET state = 'completed', state_reason = '', finished_at = p_now,
		    lease_owner = NULL, lease_until = NULL, updated_at = p_now
		WHERE campaign_id = p_campaign;
		PERFORM rollout_event(p_campaign, 'completed', c.current_stage, '', p_now);
		RETURN false;
	END IF;
	UPDATE campaign_stages SET completed_at = coalesce(completed_at, p_now)
	WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
	UPDATE campaign_stages SET started_at = coalesce(started_at, p_now), budget_start = p_now
	WHERE campaign_id = p_campaign AND stage_no = c.current_stage + 1;
	UPDATE campaigns SET current_stage = c.current_stage + 1, updated_at = p_now
	WHERE campaign_id = p_campaign;
	PERFORM rollout_event(p_campaign, 'stage_started', c.current_stage + 1, '', p_now);
	RETURN true;
END $$;

-- (c) Notifications: within the token bucket, the stage's max in flight and
-- the maintenance windows. Marks the devices notified and records each
-- notification; returns them for the server to publish.
CREATE OR REPLACE FUNCTION rollout_notify(p_campaign text, p_server text, p_now timestamptz, p_lease_s integer,
                               p_max integer)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_max_in_flight integer;
	v_in_flight bigint;
	v_tokens double precision;
	v_budget bigint;
	v_reissued bigint := 0;
	v_count bigint := 0;
	v_ids bigint[];
	v_reserving text[];
	v_others text[];
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	v_tokens := least(c.rate_burst::double precision,
	                  c.bucket_tokens + greatest(0, extract(epoch FROM p_now - coalesce(c.bucket_at, p_now)))
	                                    * c.rate_per_minute / 60.0);
	IF NOT rollout_in_window(p_campaign, p_now) THEN
		UPDATE campaigns SET bucket_tokens = v_tokens, bucket_at = p_now WHERE campaign_id = p_campaign;
		RETURN;
	END IF;
	SELECT max_in_flight INTO v_max_in_flight FROM campaign_stages
	WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
	-- from the kept counts (rollout_counts.sql; the tick folded them, and
	-- this transaction sees its own and every committed delta): counting
	-- the members in flight read every one of them at every tick
	SELECT coalesce(sum(x.n), 0) INTO v_in_flight FROM rollout_state_counts(p_campaign) x
	WHERE x.state IN ('notified', 'downloading', 'installed');
	v_budget := greatest(0, least(floor(v_tokens + 1e-9)::bigint, v_max_in_flight - v_in_flight, p_max));

	-- notifications handed to a server that never published them (it died
	-- within the lease): issue them again first; they are already in flight
	WITH lost AS (
		SELECT n.id FROM rollout_notifications n
		JOIN campaign_devices m ON m.campaign_id = n.campaign_id AND m.device_id = n.device_id
		WHERE n.campaign_id = p_campaign AND n.published_at IS NULL AND NOT n.reissued
		  AND n.created_at + make_interval(secs => p_lease_s) <= p_now
		  AND m.state = 'notified'
		ORDER BY n.id
		LIMIT greatest(0, least(floor(v_tokens + 1e-9)::bigint, p_max))
		FOR UPDATE OF n SKIP LOCKED
	), old AS (
		UPDATE rollout_notifications n SET reissued = true FROM lost
		WHERE n.id = lost.id
		RETURNING n.campaign_id, n.device_id, n.stage_no, n.step
	), upd AS (
		UPDATE campaign_devices m SET notified_at = p_now, notify_count = notify_count + 1, updated_at = p_now
		FROM old WHERE m.campaign_id = old.campaign_id AND m.device_id = old.device_id
		RETURNING m.device_id
	), ins AS (
		INSERT INTO rollout_notifications (campaign_id, device_id, stage_no, step, server_id, created_at, fence)
		SELECT old.campaign_id, old.device_id, old.stage_no, old.step, p_server, p_now, c.lease_token FROM old
		RETURNING id
	)
	SELECT count(*), array_agg(id) INTO v_reissued, v_ids FROM ins;
	IF v_reissued > 0 THEN
		RETURN QUERY SELECT unnest(v_ids);
	END IF;
	v_budget := greatest(0, least(v_budget, floor(v_tokens + 1e-9)::bigint - v_reissued, p_max - v_reissued));

	IF v_budget > 0 THEN
		-- a higher-priority campaign's admitted devices without a row there
		-- yet are not ours to notify (it supersedes our row when it writes its own)
		v_reserving := rollout_reserving(p_campaign);
		v_others := ARRAY(SELECT o.campaign_id FROM campaigns o
		                  WHERE o.state IN ('running', 'paused') AND o.campaign_id <> p_campaign);
		WITH picked AS (
			SELECT m.ctid AS row_id, m.device_id, m.stage_no, m.step FROM campaign_devices m
			WHERE m.campaign_id = p_campaign AND m.state = 'pending'
			  -- a transient failure is retried after its back-off
			  AND (m.retry_at IS NULL OR m.retry_at <= p_now)
			  -- one update at a time per device: not while another running
			  -- campaign has it in flight (a finished campaign's stragglers do not block)
			  -- (the other campaigns first: joined to the running ones in
			  -- the statement, the plan read every row in flight of each of
			  -- them, this one's too, per row picked; none: nothing is read,
			  -- the OR keeps the lookup a subplan that is not even started)
			  AND (cardinality(v_others) = 0
			       OR NOT EXISTS (SELECT 1 FROM campaign_devices o
			                      WHERE o.campaign_id = ANY (v_others) AND o.device_id = m.device_id
			                        AND o.state IN ('notified', 'downloading', 'installed')))
			  -- (rollout_reserved, written out)
			  AND NOT EXISTS (SELECT 1 FROM campaigns o
			                  JOIN campaign_targets t ON t.campaign_id = o.campaign_id
			                                         AND t.rank = rollout_target_rank(o.campaign_id, m.device_id)
			                                         AND t.device_id = m.device_id
			                  WHERE cardinality(v_reserving) > 0 AND o.campaign_id = ANY (v_reserving)
			                    AND (o.admit_bound_rank IS NULL
			                         OR (t.rank, t.device_id) <= (o.admit_bound_rank, o.admit_bound_device)))
			ORDER BY m.stage_no, m.admit_seq
			LIMIT v_budget
			FOR UPDATE OF m SKIP LOCKED
		), upd AS (
			UPDATE campaign_devices m
			SET state = 'notified', notified_at = p_now, notify_count = notify_count + 1, updated_at = p_now,
			    -- the reports the device sent before this are not about it (rollout_report)
			    report_seq = (SELECT d.last_report_seq FROM devices d WHERE d.device_id = m.device_id)
			-- by row address (the rows are locked): no plan depends on how
			-- fresh the statistics of a table that grows by a batch per tick are
			FROM picked WHERE m.ctid = picked.row_id AND m.campaign_id = p_campaign
			RETURNING m.device_id, m.stage_no, m.step
		), asg AS (
			-- delivery serves a device only what assignments allow
			INSERT INTO assignments (device_id, artifact_id, campaign_id, state, notified_at, notify_count,
			                         notify_after, updated_at)
			SELECT upd.device_id, c.artifact_id, p_campaign, 'notified', p_now, 1, p_now, p_now
			FROM upd WHERE c.kind = 'firmware'
			ON CONFLICT (device_id, artifact_id) DO UPDATE
			SET campaign_id = EXCLUDED.campaign_id, state = 'notified', notified_at = EXCLUDED.notified_at,
			    notify_count = assignments.notify_count + 1, updated_at = EXCLUDED.updated_at
			RETURNING 1
		), ins AS (
			INSERT INTO rollout_notifications (campaign_id, device_id, stage_no, step, server_id, created_at, fence)
			SELECT p_campaign, upd.device_id, upd.stage_no, upd.step, p_server, p_now, c.lease_token FROM upd
			RETURNING id
		)
		SELECT count(*), array_agg(id) INTO v_count, v_ids FROM ins;
		IF v_count > 0 THEN
			RETURN QUERY SELECT unnest(v_ids);
		END IF;
	END IF;
	UPDATE campaigns SET bucket_tokens = greatest(0, v_tokens - v_reissued - v_count), bucket_at = p_now
	WHERE campaign_id = p_campaign;
END $$;

-- ---------------------------------------------------------------------------
-- The tick: one call per server and period, one transaction.
--   (a) claims due campaigns (running, start time reached) that no live
--       server holds, with FOR UPDATE SKIP LOCKED, and leases them to
--       p_server for p_lease_s seconds: a killed server's campaigns are taken
--       over when the lease expires, its unpublished notifications re-issued;
--   then per campaign: timeouts, admission, stage evaluation, notifications.
-- Returns what to publish now (Notify fields, the lease's fencing token and
-- the stage's post-install health window);
-- the server publishes, then calls rollout_published() with the ids the
-- broker acknowledged and their tokens.
-- the fencing token column changed the return type (0013)
DROP FUNCTION IF EXISTS rollout_tick(text, timestamptz, integer, integer, integer);
CREATE OR REPLACE FUNCTION rollout_tick(p_server text, p_now timestamptz DEFAULT NULL, p_lease_s integer DEFAULT 30,
                             p_max_campaigns integer DEFAULT 32, p_max_notify integer DEFAULT 10000)
RETURNS TABLE (notification_id bigint, campaign_id text, device_id text, kind text, artifact_id text,
               version text, version_code bigint, is_security_update boolean, keylist_version bigint,
               rootlist_version bigint, fence bigint, health_window_s bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz;
	v_ids bigint[] := '{}';
	v_interval integer := rollout_setting('admission_interval_s', '30')::integer;
	v_advanced boolean;
	v_guard integer;
BEGIN
	IF coalesce(p_server, '') = '' THEN
		PERFORM rollout_fail('FO422', 'server id required');
	END IF;
	-- One tick at a time across all servers: rules that span campaigns (a
	-- device in one update at a time, priorities) then need no further
	-- locking. A server that finds another ticking skips this period; the
	-- work is set-based, so nothing is gained by ticking in parallel.
	IF NOT pg_try_advisory_xact_lock(rollout_lock_key()) THEN
		RETURN;
	END IF;
	-- the member counts the stage evaluations read (rollout_counts.sql)
	PERFORM rollout_counts_fold();
	FOR c IN SELECT * FROM campaigns k
	         WHERE k.state = 'running'
	           AND (k.start_at IS NULL OR k.start_at <= coalesce(p_now, clock_timestamp()))
	           AND (k.lease_owner IS NULL OR k.lease_owner = p_server
	                OR k.lease_until <= coalesce(p_now, clock_timestamp()))
	         ORDER BY k.security_preempt DESC, k.priority DESC, k.created_at
	         LIMIT p_max_campaigns
	         FOR UPDATE SKIP LOCKED LOOP
		-- time never runs backwards for a campaign, whoever ticks it
		v_now := greatest(coalesce(p_now, clock_timestamp()), c.bucket_at, c.admitted_at);
		IF c.lease_owner IS DISTINCT FROM p_server THEN
			PERFORM rollout_event(c.campaign_id, 'lease', c.current_stage,
			                      format('%s took over from %s', p_server, coalesce(c.lease_owner, '-')), v_now);
		END IF;
		-- fencing: a new holder, or a lease that ran out, is a new generation;
		-- what was issued under an older one can no longer be marked published
		UPDATE campaigns k SET lease_owner = p_server, lease_until = v_now + make_interval(secs => p_lease_s),
		       lease_token = CASE WHEN c.lease_owner IS DISTINCT FROM p_server OR c.lease_until IS NULL
		                               OR c.lease_until <= v_now
		                          THEN c.lease_token + 1 ELSE c.lease_token END
		WHERE k.campaign_id = c.campaign_id;
		IF c.kind = 'firmware' AND EXISTS (
			SELECT 1 FROM artifacts x WHERE x.artifact_id = c.artifact_id
			AND x.expires_at <> 0 AND x.expires_at <= extract(epoch FROM v_now)) THEN
			UPDATE campaigns k SET state = 'failed', state_reason = 'artifact expired (OTA_ERR_EXPIRED)',
			       finished_at = v_now, lease_owner = NULL, lease_until = NULL, updated_at = v_now
			WHERE k.campaign_id = c.campaign_id;
			UPDATE campaign_devices m SET state = 'cancelled', updated_at = v_now
			WHERE m.campaign_id = c.campaign_id AND m.state = 'pending';
			PERFORM rollout_event(c.campaign_id, 'failed', c.current_stage, 'artifact expired', v_now);
			CONTINUE;
		END IF;
		-- waiting for a maintenance window is not a stall: the stage's budget
		-- clock stops while the campaign is outside its windows (bucket_at is
		-- its previous tick)
		IF c.bucket_at IS NOT NULL AND c.bucket_at < v_now AND NOT rollout_in_window(c.campaign_id, c.bucket_at) THEN
			UPDATE campaign_stages st SET budget_start = st.budget_start + (v_now - c.bucket_at)
			WHERE st.campaign_id = c.campaign_id AND st.stage_no = c.current_stage;
		END IF;
		PERFORM rollout_timeouts(c.campaign_id, v_now);
		v_guard := 0;
		LOOP
			SELECT * INTO c FROM campaigns k WHERE k.campaign_id = c.campaign_id;
			IF c.admitted_at IS NULL OR c.admitted_at + make_interval(secs => v_interval) <= v_now
			   OR v_guard > 0 THEN
				PERFORM rollout_admit(c.campaign_id, v_now);
			END IF;
			v_advanced := rollout_evaluate(c.campaign_id, v_now);
			v_guard := v_guard + 1;
			EXIT WHEN NOT v_advanced OR v_guard > 33;
		END LOOP;
		IF (SELECT k.state FROM campaigns k WHERE k.campaign_id = c.campaign_id) = 'running' THEN
			v_ids := v_ids || ARRAY(SELECT rollout_notify(c.campaign_id, p_server, v_now, p_lease_s,
			                                              greatest(0, p_max_notify - cardinality(v_ids))));
		END IF;
		PERFORM rollout_security_watch(c.campaign_id, v_now);
	END LOOP;
	IF cardinality(v_ids) = 0 THEN
		RETURN;
	END IF;
	-- planned for these ids at every tick (EXECUTE): the primary key probed
	-- per id, the member's row read by its key for a key-list step only.
	-- A plan cached in the server's long-lived session keeps the table
	-- sizes of when it was made: joined to campaign_devices, the plan of a
	-- campaign's first seconds read every member and probed the
	-- notifications for each, per tick; with the ids as a parameter it read
	-- every notification of the campaign (quadratic; docs/campaigns.md
	-- "Plans"). OFFSET 0: the ids alone choose the rows (not intersected
	-- with every notification of the campaign through its index).
	RETURN QUERY EXECUTE
	'SELECT n.id, n.campaign_id, n.device_id, n.step, k.artifact_id, a.version, a.version_code,
	        coalesce(a.is_security_update, false),
	        CASE WHEN n.step = ''keylist''
	             THEN coalesce(nullif((SELECT m.needed_keylist FROM campaign_devices m
	                                   WHERE m.campaign_id = n.campaign_id AND m.device_id = n.device_id), 0),
	                           k.keylist_version) END,
	        k.rootlist_version, n.fence,
	        CASE WHEN n.step = ''firmware'' THEN rollout_health_window(n.campaign_id, n.stage_no) ELSE 0 END
	 FROM (SELECT * FROM rollout_notifications x WHERE x.id = ANY ($1) OFFSET 0) n
	 JOIN campaigns k ON k.campaign_id = n.campaign_id
	 LEFT JOIN artifacts a ON a.artifact_id = k.artifact_id
	 ORDER BY n.id' USING v_ids;
END $$;

-- The broker acknowledged these notifications (QoS 1 PUBACK), published by
-- p_server under the fencing tokens p_fences (pairwise with p_ids). Only a
-- token that is still its campaign's current one, held by p_server, marks
-- a notification published: a stale instance writes nothing. Idempotent.
-- Returns the number of notifications marked.
-- the unfenced form (ids only) is gone: a stale instance must not mark anything
DROP FUNCTION IF EXISTS rollout_published(bigint[], timestamptz);
CREATE OR REPLACE FUNCTION rollout_published(p_ids bigint[], p_fences bigint[], p_server text,
                                  p_now timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_count bigint;
BEGIN
	IF cardinality(coalesce(p_ids, '{}')) <> cardinality(coalesce(p_fences, '{}')) THEN
		PERFORM rollout_fail('FO422', 'fences: one per id');
	END IF;
	UPDATE rollout_notifications n SET published_at = coalesce(p_now, clock_timestamp())
	FROM unnest(p_ids, p_fences) AS a(id, fence), campaigns k
	WHERE n.id = a.id AND n.published_at IS NULL AND n.fence = a.fence AND n.server_id = p_server
	  AND k.campaign_id = n.campaign_id AND k.lease_owner = p_server AND k.lease_token = a.fence;
	GET DIAGNOSTICS v_count = ROW_COUNT;
	RETURN v_count;
END $$;

-- ---------------------------------------------------------------------------
-- A StatusReport arrived (after the server stored it in devices and
-- device_events). p_state is the report's DeviceState in lower case without
-- prefix: idle, downloading, verifying, pending, trial, confirmed, reverted,
-- rejected, failed. Returns the number of campaign rows changed; a repeated
-- report changes nothing.
--
-- Truth comes from the version the device reports running: a device is
-- confirmed only when it runs the campaign's version (or newer) and says so
-- outside of a trial; a device that reverted is failed with the version it
-- really runs recorded, and a new campaign can target it again; a device that
-- timed out and reports later is reconciled to what it reports.
--
-- p_seq: the report's seq (NULL: not known, the report applies). Servers
-- store a device's reports out of order (each member of the shared
-- subscription its own), so a report is applied to the campaign rows whose
-- report_seq it exceeds, and a row's report_seq moves to it only when the
-- report changes the row's state: a newer report that changes nothing (a
-- periodic idle one) does not hide an older one that does (the transient
-- failure a server held while its database connection was down), and a
-- report older than a change made no longer applies (0022).
-- p_seq added (0022): the old form goes, or calls without it would be ambiguous
DROP FUNCTION IF EXISTS rollout_report(text, text, bigint, bigint, bigint, text, text, timestamptz);
CREATE OR REPLACE FUNCTION rollout_report(p_device text, p_state text, p_version_code bigint,
                               p_keylist_version bigint DEFAULT NULL, p_rootlist_version bigint DEFAULT NULL,
                               p_error text DEFAULT '', p_campaign text DEFAULT '',
                               p_now timestamptz DEFAULT NULL, p_seq bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_now timestamptz := coalesce(p_now, clock_timestamp());
	v_count bigint;
	v_state text := lower(coalesce(p_state, ''));
	v_error text := coalesce(p_error, '');
BEGIN
	IF v_state NOT IN ('idle', 'downloading', 'verifying', 'pending', 'trial', 'confirmed', 'reverted',
	                   'rejected', 'failed', 'unspecified', 'unknown') THEN
		PERFORM rollout_fail('FO422', 'state: unknown device state ' || v_state);
	END IF;
	IF v_state = 'reverted' AND v_error = '' THEN
		v_error := 'OTA_ERR_SELFTEST';
	ELSIF v_state IN ('rejected', 'failed') AND v_error = '' THEN
		v_error := 'OTA_ERR_TRANSPORT';
	END IF;
	WITH cur AS (
		SELECT m.campaign_id, m.device_id, m.state AS old_state, m.step, m.needed_keylist,
		       k.kind, k.keylist_version AS c_kl, k.rootlist_version AS c_rl, a.version_code AS c_vc,
		       m.state IN ('notified', 'downloading', 'installed', 'timed_out')
		       AND (coalesce(p_campaign, '') = '' OR p_campaign = m.campaign_id) AS addressed,
		       -- a transient failure of a device in flight is retried while tries are left
		       v_state IN ('failed', 'rejected') AND v_error IN ('OTA_ERR_TRANSPORT', 'OTA_ERR_TIMEOUT')
		       AND m.state IN ('notified', 'downloading', 'installed')
		       AND (coalesce(p_campaign, '') = '' OR p_campaign = m.campaign_id)
		       AND m.attempts < k.transient_retries AS retry,
		       m.attempts, k.retry_backoff_s
		FROM campaign_devices m
		JOIN campaigns k ON k.campaign_id = m.campaign_id
		LEFT JOIN artifacts a ON a.artifact_id = k.artifact_id
		WHERE m.device_id = p_device
		  AND m.state NOT IN ('confirmed', 'superseded', 'cancelled')
		  AND k.state NOT IN ('draft', 'awaiting_approval')
		  -- not older than what the row's state is as of
		  AND (p_seq IS NULL OR m.report_seq IS NULL OR p_seq > m.report_seq)
		FOR UPDATE OF m
	), nxt AS (
		SELECT cur.*,
		CASE
			-- the version it runs is what counts
			WHEN cur.kind = 'firmware' AND cur.step = 'firmware' AND p_version_code >= cur.c_vc
			     AND v_state IN ('idle', 'confirmed') THEN 'confirmed'
			WHEN cur.kind = 'keylist' AND p_keylist_version >= cur.c_kl THEN 'confirmed'
			WHEN cur.kind = 'rootlist' AND p_rootlist_version >= cur.c_rl THEN 'confirmed'
			-- key-list step done: the firmware step follows (notified again)
			WHEN cur.kind = 'firmware' AND cur.step = 'keylist' AND p_keylist_version >= cur.needed_keylist
			     AND cur.old_state <> 'failed' THEN 'pending'
			WHEN NOT cur.addressed THEN cur.old_state
			WHEN cur.retry THEN 'pending'
			WHEN v_state IN ('reverted', 'rejected', 'failed') THEN 'failed'
			WHEN cur.old_state = 'timed_out' THEN 'timed_out'
			WHEN cur.kind = 'firmware' AND v_state IN ('pending', 'trial') THEN 'installed'
			WHEN v_state IN ('downloading', 'verifying') AND cur.old_state IN ('notified', 'downloading')
			     THEN 'downloading'
			ELSE cur.old_state
		END AS new_state
		FROM cur
	), upd AS (
		UPDATE campaign_devices m
		SET state = nxt.new_state,
		    step = CASE WHEN nxt.step = 'keylist' AND nxt.kind = 'firmware' AND nxt.new_state = 'pending'
		                     AND NOT nxt.retry
		                THEN 'firmware' ELSE m.step END,
		    attempts = m.attempts + CASE WHEN nxt.retry THEN 1 ELSE 0 END,
		    retry_at = CASE WHEN nxt.retry THEN v_now + rollout_retry_backoff(nxt.retry_backoff_s, nxt.attempts)
		                    WHEN nxt.new_state = 'pending' THEN NULL ELSE m.retry_at END,
		    error = CASE WHEN nxt.retry THEN v_error
		                 WHEN nxt.new_state = 'failed' AND nxt.old_state <> 'failed' THEN v_error
		                 WHEN nxt.new_state IN ('confirmed', 'pending') THEN '' ELSE m.error END,
		    reconciled = m.reconciled OR (nxt.old_state = 'timed_out' AND nxt.new_state <> 'timed_out'),
		    done_at = CASE WHEN nxt.new_state IN ('confirmed', 'failed') THEN coalesce(m.done_at, v_now)
		                   WHEN nxt.new_state = 'pending' THEN NULL ELSE m.done_at END,
		    notified_at = CASE WHEN nxt.new_state = 'pending' THEN NULL ELSE m.notified_at END,
		    last_report_at = v_now,
		    reported_version_code = coalesce(p_version_code, m.reported_version_code),
		    reported_keylist = coalesce(p_keylist_version, m.reported_keylist),
		    report_seq = CASE WHEN p_seq IS NOT NULL AND nxt.new_state <> nxt.old_state THEN p_seq
		                      ELSE m.report_seq END,
		    updated_at = v_now
		FROM nxt
		WHERE m.campaign_id = nxt.campaign_id AND m.device_id = nxt.device_id
		  AND (nxt.new_state <> nxt.old_state
		       OR m.reported_version_code IS DISTINCT FROM coalesce(p_version_code, m.reported_version_code)
		       OR (nxt.addressed AND nxt.new_state NOT IN ('failed', 'timed_out')))
		RETURNING m.campaign_id, m.device_id, m.state, nxt.old_state
	), asg AS (
		UPDATE assignments x SET state = upd.state, updated_at = v_now
		FROM upd
		WHERE x.device_id = upd.device_id AND x.campaign_id = upd.campaign_id AND x.state <> upd.state
		RETURNING 1
	)
	SELECT count(*) FILTER (WHERE upd.state <> upd.old_state) INTO v_count FROM upd;
	RETURN v_count;
END $$;

-- ---------------------------------------------------------------------------
-- Why a campaign moves or not, now: {"state": moving | waiting | stalled |
-- done, "reason": ..., "detail": a sentence}. Reasons: notifying, devices
-- (in flight, waiting for their reports), evaluating (the next tick admits
-- or advances); not_started, approval, start_time, window, soak,
-- rate_limit, in_flight_limit, device_busy (in flight in another
-- campaign), retry_backoff, no_server (no server ticked it for a minute),
-- paused; stalled (a stall pause, the detail names devices and errors);
-- finished.
CREATE OR REPLACE FUNCTION rollout_progress(p_campaign text, p_now timestamptz DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
	c campaigns%ROWTYPE;
	s campaign_stages%ROWTYPE;
	v_now timestamptz := coalesce(p_now, clock_timestamp());
	v_pending bigint;
	v_due bigint;
	v_in_flight bigint;
	v_busy bigint;
	v_next_retry timestamptz;
	v_tokens double precision;
	v_quota bigint;
	v_held bigint;
	v_held_complete boolean;
	v_holders text;
	v_reserving text[];
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	IF c.state = 'draft' THEN
		RETURN jsonb_build_object('state', 'waiting', 'reason', 'not_started', 'detail', 'a draft: start it');
	ELSIF c.state = 'awaiting_approval' THEN
		RETURN jsonb_build_object('state', 'waiting', 'reason', 'approval',
		                          'detail', 'waits for an operator other than ' || c.created_by || ' to approve');
	ELSIF c.state = 'paused' THEN
		RETURN jsonb_build_object('state', CASE WHEN c.state_reason LIKE 'stalled:%' THEN 'stalled' ELSE 'waiting' END,
		                          'reason', CASE WHEN c.state_reason LIKE 'stalled:%' THEN 'stalled' ELSE 'paused' END,
		                          'detail', c.state_reason);
	ELSIF c.state <> 'running' THEN
		RETURN jsonb_build_object('state', 'done', 'reason', 'finished',
		                          'detail', c.state || CASE WHEN c.state_reason <> '' THEN ': ' || c.state_reason ELSE '' END);
	END IF;
	IF c.start_at > v_now THEN
		RETURN jsonb_build_object('state', 'waiting', 'reason', 'start_time', 'detail', format('starts at %s', c.start_at));
	END IF;
	IF c.lease_until IS NOT NULL AND c.lease_until + interval '60 seconds' < v_now THEN
		RETURN jsonb_build_object('state', 'waiting', 'reason', 'no_server',
		                          'detail', format('no server has ticked it since %s (last: %s)', c.lease_until, c.lease_owner));
	END IF;
	SELECT * INTO s FROM campaign_stages WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
	IF s.succeeded_at IS NOT NULL AND v_now < s.succeeded_at + make_interval(secs => s.soak_s) THEN
		RETURN jsonb_build_object('state', 'waiting', 'reason', 'soak',
		                          'detail', format('stage %s succeeded, soaks until %s', s.stage_no,
		                                           s.succeeded_at + make_interval(secs => s.soak_s)));
	END IF;
	SELECT count(*) FILTER (WHERE m.state = 'pending'),
	       count(*) FILTER (WHERE m.state = 'pending' AND (m.retry_at IS NULL OR m.retry_at <= v_now)),
	       count(*) FILTER (WHERE m.state IN ('notified', 'downloading', 'installed')),
	       min(m.retry_at) FILTER (WHERE m.state = 'pending' AND m.retry_at > v_now)
	INTO v_pending, v_due, v_in_flight, v_next_retry
	FROM campaign_devices m WHERE m.campaign_id = p_campaign;
	IF v_due > 0 THEN
		IF NOT rollout_in_window(p_campaign, v_now) THEN
			RETURN jsonb_build_object('state', 'waiting', 'reason', 'window',
			                          'detail', format('%s devices wait for a maintenance window', v_due));
		END IF;
		IF v_in_flight >= s.max_in_flight THEN
			RETURN jsonb_build_object('state', 'waiting', 'reason', 'in_flight_limit',
			                          'detail', format('%s devices in flight, stage %s allows %s; %s wait',
			                                           v_in_flight, s.stage_no, s.max_in_flight, v_due));
		END IF;
		v_tokens := least(c.rate_burst::double precision,
		                  c.bucket_tokens + greatest(0, extract(epoch FROM v_now - coalesce(c.bucket_at, v_now)))
		                                    * c.rate_per_minute / 60.0);
		IF v_tokens < 1 THEN
			RETURN jsonb_build_object('state', 'waiting', 'reason', 'rate_limit',
			                          'detail', format('rate cap %s per minute: %s devices wait', c.rate_per_minute, v_due));
		END IF;
		SELECT count(*) INTO v_busy FROM campaign_devices m
		WHERE m.campaign_id = p_campaign AND m.state = 'pending' AND (m.retry_at IS NULL OR m.retry_at <= v_now)
		  AND EXISTS (SELECT 1 FROM campaign_devices o JOIN campaigns oc USING (campaign_id)
		              WHERE o.device_id = m.device_id AND o.campaign_id <> p_campaign
		                AND o.state IN ('notified', 'downloading', 'installed')
		                AND oc.state IN ('running', 'paused'));
		IF v_busy = v_due THEN
			RETURN jsonb_build_object('state', 'waiting', 'reason', 'device_busy',
			                          'detail', format('%s devices are updating in another campaign', v_busy));
		END IF;
		-- rows written before a higher-priority campaign admitted their
		-- devices: notify skips them (lazy admission, rollout_reserved)
		v_reserving := rollout_reserving(p_campaign);
		IF cardinality(v_reserving) > 0 THEN
			SELECT count(*), string_agg(DISTINCT r.holder, ', ') INTO v_held, v_holders
			FROM campaign_devices m
			CROSS JOIN LATERAL (
				SELECT o.campaign_id AS holder FROM campaigns o
				JOIN campaign_targets t ON t.campaign_id = o.campaign_id
				                       AND t.rank = rollout_target_rank(o.campaign_id, m.device_id)
				                       AND t.device_id = m.device_id
				WHERE o.campaign_id = ANY (v_reserving)
				  AND (o.admit_bound_rank IS NULL
				       OR (t.rank, t.device_id) <= (o.admit_bound_rank, o.admit_bound_device))
				ORDER BY o.priority DESC, o.campaign_id
				LIMIT 1) r
			WHERE m.campaign_id = p_campaign AND m.state = 'pending' AND (m.retry_at IS NULL OR m.retry_at <= v_now);
			IF v_held = v_due THEN
				RETURN jsonb_build_object('state', 'waiting', 'reason', 'higher_priority',
				                          'detail', format('%s devices are held by a higher-priority campaign: %s',
				                                           v_held, v_holders));
			END IF;
		END IF;
		RETURN jsonb_build_object('state', 'moving', 'reason', 'notifying',
		                          'detail', format('%s devices to notify, at most %s per minute', v_due, c.rate_per_minute));
	END IF;
	IF v_in_flight > 0 THEN
		RETURN jsonb_build_object('state', 'moving', 'reason', 'devices',
		                          'detail', format('%s devices updating, waiting for their reports', v_in_flight));
	END IF;
	IF v_pending > 0 THEN
		RETURN jsonb_build_object('state', 'waiting', 'reason', 'retry_backoff',
		                          'detail', format('%s devices retry after a transient failure, the next at %s',
		                                           v_pending, v_next_retry));
	END IF;
	-- the stage wants more devices than it has, and a higher-priority
	-- campaign holds those of its queue: admission skips them
	v_quota := CASE WHEN s.device_count IS NOT NULL THEN least(s.device_count, c.target_members + c.target_queued)
	                ELSE ceil((c.target_members + c.target_queued) * s.percent / 100.0)::bigint END;
	IF c.target_queued > 0 AND c.target_members < v_quota THEN
		SELECT h.held, h.complete, h.holders INTO v_held, v_held_complete, v_holders
		FROM rollout_held(p_campaign, rollout_held_scan()) h;
		IF v_held > 0 THEN
			RETURN jsonb_build_object('state', 'waiting', 'reason', 'higher_priority',
			                          'detail', format('%s are held by a higher-priority campaign: %s',
			                                           rollout_held_text(v_held, v_held_complete), v_holders));
		END IF;
	END IF;
	RETURN jsonb_build_object('state', 'moving', 'reason', 'evaluating',
	                          'detail', format('stage %s: the next tick admits devices or moves on', s.stage_no));
END $$;

-- ---------------------------------------------------------------------------
-- Per-device view of a campaign (for the REST API).
CREATE OR REPLACE FUNCTION rollout_status(p_campaign text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object(
		'id', k.campaign_id, 'kind', k.kind, 'artifact', k.artifact_id,
		'keylist_version', k.keylist_version, 'rootlist_version', k.rootlist_version,
		'state', k.state, 'reason', k.state_reason, 'current_stage', k.current_stage,
		'priority', k.priority, 'target', k.target_filter, 'target_size', k.target_size,
		'keep_open', k.keep_open,
		'rate_per_minute', k.rate_per_minute, 'rate_burst', k.rate_burst,
		'device_timeout_seconds', k.device_timeout_s, 'start_at', k.start_at,
		'transient_retries', k.transient_retries, 'retry_backoff_seconds', k.retry_backoff_s,
		'security', CASE WHEN k.security_stall_alert_s IS NOT NULL THEN jsonb_build_object(
			'override_windows', k.security_override_windows, 'preempt', k.security_preempt,
			'stall_alert_seconds', k.security_stall_alert_s) END,
		'progress', rollout_progress(k.campaign_id),
		-- full images and deltas delivered, bytes saved (deltas.sql)
		'delivery', CASE WHEN k.kind = 'firmware'
		                 THEN delivery_campaign_stats(k.campaign_id, k.artifact_id) END,
		'requires_approval', k.requires_approval, 'created_by', k.created_by,
		'approved_by', k.approved_by, 'created_at', k.created_at, 'started_at', k.started_at,
		'finished_at', k.finished_at,
		'windows', coalesce((SELECT jsonb_agg(jsonb_build_object('days', w.days, 'start_minute', w.start_minute,
		                                                        'duration_minutes', w.duration_minutes)
		                                      ORDER BY w.window_no)
		                     FROM campaign_windows w WHERE w.campaign_id = k.campaign_id), '[]'),
		'stages', coalesce((SELECT jsonb_agg(jsonb_build_object(
			'stage', s.stage_no, 'count', s.device_count, 'percent', s.percent,
			'success_ratio', s.success_ratio, 'failure_ratio', s.failure_ratio,
			'soak_seconds', s.soak_s, 'max_in_flight', s.max_in_flight,
			'budget_seconds', round(rollout_stage_budget(k, s, n.admitted + z.rest)::numeric),
			'build_failure_ratio', s.build_failure_ratio, 'network_failure_ratio', s.network_failure_ratio,
			'health', CASE WHEN s.health_window_s IS NOT NULL THEN jsonb_build_object(
				'window_seconds', s.health_window_s, 'max_unexpected_reboots', s.health_max_reboots,
				'min_health', round(s.health_min_permille / 1000.0, 3),
				'max_unhealthy_ratio', s.health_unhealthy_ratio) END,
			'signals', jsonb_build_object('build_failed', p.build_failed, 'network_failed', p.network_failed,
			                              'unhealthy', p.unhealthy),
			'started_at', s.started_at, 'succeeded_at', s.succeeded_at, 'completed_at', s.completed_at,
			-- admitted: with the current stage's devices admitted without
			-- a row yet (admit_rest), which are pending
			'devices', jsonb_build_object('admitted', n.admitted + z.rest, 'pending', n.pending + z.rest,
			                              'in_flight', n.in_flight, 'confirmed', n.confirmed,
			                              'failed', n.failed, 'timed_out', n.timed_out,
			                              'superseded', n.superseded, 'cancelled', n.cancelled))
			ORDER BY s.stage_no)
			FROM campaign_stages s JOIN rollout_stage_counts(k.campaign_id) n ON n.stage_no = s.stage_no
			JOIN rollout_policy_counts(k.campaign_id) p ON p.stage_no = s.stage_no
			CROSS JOIN LATERAL (SELECT CASE WHEN s.stage_no = k.current_stage AND k.state IN ('running', 'paused')
			                                THEN k.admit_rest ELSE 0 END AS rest) z
			WHERE s.campaign_id = k.campaign_id), '[]'))
	FROM campaigns k WHERE k.campaign_id = p_campaign
$$;
