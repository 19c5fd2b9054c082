-- SPDX-License-Identifier: Apache-2.0
-- Lazy admission (issue 19; docs/campaigns.md "Planning at scale"): a
-- stage's share of the target is admitted as a whole when the stage starts
-- (the operator's counts include it at once), but its campaign_devices rows
-- are written only as notification needs them, a bounded lookahead per tick.
-- The campaign row keeps what is admitted and not written yet, and how far
-- into the queue that reaches, so that lower-priority campaigns leave those
-- devices alone.
-- Never edit once released.

ALTER TABLE campaigns
	-- devices of the current stage's share admitted but without a
	-- campaign_devices row yet: the head of the queue (rollout_admit)
	ADD COLUMN admit_rest bigint NOT NULL DEFAULT 0,
	-- the last queue row (rank, device id) those devices reach, as computed
	-- for stage admit_bound_stage; NULL rank: the whole queue
	ADD COLUMN admit_bound_stage integer,
	ADD COLUMN admit_bound_rank bigint,
	ADD COLUMN admit_bound_device text;

-- The queue keeps the order only: admission reads the attributes it needs
-- from devices for the few rows it writes per tick (lazily, above), and a
-- narrower row makes the queue's build at the start cheaper.
ALTER TABLE campaign_targets
	DROP COLUMN version_code,
	DROP COLUMN keylist_version,
	DROP COLUMN rootlist_version,
	DROP COLUMN keylist_key_ids;
