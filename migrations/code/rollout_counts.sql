-- SPDX-License-Identifier: Apache-2.0
-- fleetota rollout engine: the counts of a campaign's members by stage and
-- state (campaign_state_counts, 0023), kept as the rows change so that the
-- tick never counts every member (docs/campaigns.md "Stage counts").
-- Re-applied by `ota-server migrate` whenever this file changes (docs/server.md).

-- Statement triggers on campaign_devices (0023): each statement appends its
-- net change per (campaign, stage, state); one insert per statement
-- whatever its row count, none when no row changed stage or state.
CREATE OR REPLACE FUNCTION rollout_counts_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO campaign_state_deltas (campaign_id, stage_no, state, n, last_done_at)
		SELECT r.campaign_id, r.stage_no, r.state, count(*), max(r.done_at) FILTER (WHERE r.state = 'confirmed')
		FROM rollout_counts_new r
		GROUP BY r.campaign_id, r.stage_no, r.state;
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO campaign_state_deltas (campaign_id, stage_no, state, n)
		SELECT r.campaign_id, r.stage_no, r.state, -count(*)
		FROM rollout_counts_old r
		GROUP BY r.campaign_id, r.stage_no, r.state;
	ELSE
		-- the net change: rows whose stage and state stayed cancel out
		INSERT INTO campaign_state_deltas (campaign_id, stage_no, state, n, last_done_at)
		SELECT x.campaign_id, x.stage_no, x.state, sum(x.d),
		       max(x.done_at) FILTER (WHERE x.d > 0 AND x.state = 'confirmed')
		FROM (SELECT r.campaign_id, r.stage_no, r.state, 1 AS d, r.done_at FROM rollout_counts_new r
		      UNION ALL
		      SELECT r.campaign_id, r.stage_no, r.state, -1, NULL FROM rollout_counts_old r) x
		GROUP BY x.campaign_id, x.stage_no, x.state
		HAVING sum(x.d) <> 0;
	END IF;
	RETURN NULL;
END $$;

-- The tick folds every campaign's deltas into the counts (one tick at a time
-- across servers: rollout_tick's advisory lock; the deltas of transactions
-- not committed yet stay for the next fold). Grows with the rows changed
-- since the last tick, not with the campaigns' members.
CREATE OR REPLACE FUNCTION rollout_counts_fold() RETURNS void
LANGUAGE sql AS $$
	WITH d AS (
		DELETE FROM campaign_state_deltas x RETURNING x.campaign_id, x.stage_no, x.state, x.n, x.last_done_at
	)
	INSERT INTO campaign_state_counts AS c (campaign_id, stage_no, state, n, last_done_at)
	SELECT d.campaign_id, d.stage_no, d.state, sum(d.n), max(d.last_done_at)
	FROM d
	GROUP BY d.campaign_id, d.stage_no, d.state
	ON CONFLICT (campaign_id, stage_no, state) DO UPDATE
	SET n = c.n + EXCLUDED.n, last_done_at = greatest(c.last_done_at, EXCLUDED.last_done_at)
$$;

-- A campaign's members by stage and state now: the counts plus the deltas
-- not folded yet (those this transaction sees).
CREATE OR REPLACE FUNCTION rollout_state_counts(p_campaign text)
RETURNS TABLE (stage_no integer, state text, n bigint, last_done_at timestamptz)
LANGUAGE sql STABLE AS $$
	SELECT x.stage_no, x.state, sum(x.n)::bigint, max(x.last_done_at)
	FROM (SELECT c.stage_no, c.state, c.n, c.last_done_at FROM campaign_state_counts c
	      WHERE c.campaign_id = p_campaign
	      UNION ALL
	      SELECT d.stage_no, d.state, d.n, d.last_done_at FROM campaign_state_deltas d
	      WHERE d.campaign_id = p_campaign) x
	GROUP BY x.stage_no, x.state
$$;
