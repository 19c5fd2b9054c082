-- SPDX-License-Identifier: Apache-2.0
-- The counts of a campaign's members by stage and state, kept as the rows
-- change (issue 19; docs/campaigns.md "Stage counts"): the tick's stage
-- evaluation and security watch read them instead of counting every member
-- of the campaign at every tick, which grew with the campaign (a tick at
-- 10,000 members cost twice one at 1,000, and the ticks per install do not
-- shrink with the fleet: quadratic over a campaign).
--
-- Every statement that writes campaign_devices appends its net change per
-- (campaign, stage, state) to campaign_state_deltas (statement triggers with
-- transition tables, in migrations/code/rollout_counts.sql): inserts only,
-- so the report ingest never waits on a counter row another transaction
-- holds. The tick folds the deltas into campaign_state_counts (the only
-- writer of that table, under its advisory lock); readers add the deltas
-- not folded yet (rollout_state_counts). last_done_at: the latest done_at
-- of a row that became confirmed (the security watch's last confirmation).
-- Never edit once released.

CREATE TABLE campaign_state_counts (
	campaign_id  text NOT NULL,
	stage_no     integer NOT NULL,
	state        text NOT NULL,
	n            bigint NOT NULL,
	last_done_at timestamptz,
	PRIMARY KEY (campaign_id, stage_no, state)
);

CREATE TABLE campaign_state_deltas (
	campaign_id  text NOT NULL,
	stage_no     integer NOT NULL,
	state        text NOT NULL,
	n            bigint NOT NULL,
	last_done_at timestamptz
);
CREATE INDEX campaign_state_deltas_campaign_idx ON campaign_state_deltas (campaign_id);

-- the trigger (its body is re-created by code/rollout_counts.sql) and the
-- counts of the rows there are, in one transaction with no writer between
LOCK TABLE campaign_devices IN SHARE ROW EXCLUSIVE MODE;

CREATE FUNCTION rollout_counts_trg() RETURNS trigger
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

CREATE TRIGGER campaign_devices_counts_insert AFTER INSERT ON campaign_devices
	REFERENCING NEW TABLE AS rollout_counts_new
	FOR EACH STATEMENT EXECUTE FUNCTION rollout_counts_trg();
CREATE TRIGGER campaign_devices_counts_update AFTER UPDATE ON campaign_devices
	REFERENCING OLD TABLE AS rollout_counts_old NEW TABLE AS rollout_counts_new
	FOR EACH STATEMENT EXECUTE FUNCTION rollout_counts_trg();
CREATE TRIGGER campaign_devices_counts_delete AFTER DELETE ON campaign_devices
	REFERENCING OLD TABLE AS rollout_counts_old
	FOR EACH STATEMENT EXECUTE FUNCTION rollout_counts_trg();

INSERT INTO campaign_state_counts (campaign_id, stage_no, state, n, last_done_at)
SELECT m.campaign_id, m.stage_no, m.state, count(*), max(m.done_at) FILTER (WHERE m.state = 'confirmed')
FROM campaign_devices m
GROUP BY m.campaign_id, m.stage_no, m.state;
