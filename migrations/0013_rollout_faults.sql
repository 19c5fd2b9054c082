-- SPDX-License-Identifier: Apache-2.0
-- The campaign engine under faults (docs/campaigns.md, "Many servers,
-- crashes" and "Retries and stalls"):
--   - fencing: every lease has a token that rises with each take-over; a
--     notification remembers the token it was issued under, and only that
--     token, still current, may mark it published (acknowledged by the broker);
--   - transient failures (OTA_ERR_TRANSPORT, OTA_ERR_TIMEOUT) are retried per
--     device with back-off, up to a per-campaign limit;
--   - a stage has a time budget: one that can neither complete nor fail
--     within it pauses with a reason naming the devices and their errors.

ALTER TABLE campaigns
	ADD COLUMN lease_token       bigint NOT NULL DEFAULT 0,
	ADD COLUMN transient_retries integer NOT NULL DEFAULT 2 CHECK (transient_retries BETWEEN 0 AND 100),
	ADD COLUMN retry_backoff_s   integer NOT NULL DEFAULT 30 CHECK (retry_backoff_s BETWEEN 1 AND 86400);

ALTER TABLE campaign_stages
	ADD COLUMN budget_s     integer CHECK (budget_s > 0),   -- NULL: derived, see rollout_stage_budget
	ADD COLUMN budget_start timestamptz;                     -- stage start, or the last resume

ALTER TABLE campaign_devices
	ADD COLUMN attempts integer NOT NULL DEFAULT 0,          -- transient failures retried
	ADD COLUMN retry_at timestamptz;                         -- pending again, not before

ALTER TABLE rollout_notifications
	ADD COLUMN fence bigint NOT NULL DEFAULT 0;

UPDATE campaign_stages SET budget_start = started_at WHERE started_at IS NOT NULL;
