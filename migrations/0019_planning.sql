-- SPDX-License-Identifier: Apache-2.0
-- Incremental planning (issue 19; docs/campaigns.md "Planning at scale"):
-- a running or paused campaign keeps its admission queue, the devices that
-- match its target and are not its members yet, in campaign_targets. The
-- queue is filled once when the campaign starts and kept current as devices
-- change (statement triggers on devices and group members, in
-- migrations/code/rollout_targets.sql); a tick admits the head of the queue,
-- so its cost grows with the batch, not with the target.
-- Never edit once released.

-- The admission queue. rank is rollout_target_rank(campaign, device): a
-- hash, so the order is a pseudo-random sample of the fleet (a canary stage
-- is not the first devices by id), and computable from the device id, so one
-- index serves both the queue order and a device's lookup. No foreign keys,
-- like campaign_devices: rows come only from the engine's functions.
-- The device's attributes that admission needs come along (kept current by
-- the same triggers), so a tick reads the queue only, never the devices
-- table: a batch drawn at random from the fleet would touch every page of it.
CREATE TABLE campaign_targets (
	campaign_id      text NOT NULL,
	rank             bigint NOT NULL,
	device_id        text NOT NULL,
	version_code     bigint NOT NULL,
	keylist_version  bigint NOT NULL,
	rootlist_version bigint NOT NULL,
	keylist_key_ids  bytea[] NOT NULL,
	PRIMARY KEY (campaign_id, rank, device_id)
);

ALTER TABLE campaigns
	-- the queue was last built in full at this instant; NULL: not built
	-- (a campaign of an older version, or a group it targets changed), the
	-- next admission builds it
	ADD COLUMN targets_at timestamptz,
	-- counts behind target_size = target_members + target_queued: members
	-- (campaign_devices rows not superseded or cancelled) and queued rows,
	-- as of the last admission plus the deltas below
	ADD COLUMN target_members bigint NOT NULL DEFAULT 0,
	ADD COLUMN target_queued bigint NOT NULL DEFAULT 0,
	-- while a higher-priority campaign runs, admission examines at most
	-- admission_batch queue rows per tick, from just after this position
	-- (rank, device id) on; NULL: from the head (rollout_admit)
	ADD COLUMN admit_cursor_rank bigint,
	ADD COLUMN admit_cursor_device text;

-- Changes of those counts made outside a tick's lock on the campaign (a
-- device that comes to match, a lower-priority campaign losing devices):
-- appended, never updated (no row lock shared by concurrent reports), summed
-- into the campaign row and deleted by the next admission.
CREATE TABLE campaign_target_deltas (
	campaign_id text NOT NULL,
	members     bigint NOT NULL DEFAULT 0,
	queued      bigint NOT NULL DEFAULT 0
);
CREATE INDEX campaign_target_deltas_campaign_idx ON campaign_target_deltas (campaign_id);
