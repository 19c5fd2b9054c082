-- SPDX-License-Identifier: Apache-2.0
-- Update policy (issue 17, parts 1 and 2; docs/campaigns.md "Security
-- updates" and "Halting on health"):
--   - artifacts keep the signed security-fix range and advisory of their
--     manifest (Manifest fields 30..32), for targeting and the exposure view;
--   - a campaign of a signed security fix may, by policy, override the
--     maintenance windows and win conflicts with functional campaigns, and
--     tells operators when it stalls;
--   - a stage may judge a bad build and the network apart, and watch the
--     post-install health of confirmed devices for a window.
-- Every default keeps the behaviour of campaigns without these fields.
-- Never edit once released.

ALTER TABLE artifacts
	ADD COLUMN fixes_version_code_min bigint NOT NULL DEFAULT 0 CHECK (fixes_version_code_min >= 0),
	-- 0 = not stated: the fix replaces every earlier version_code
	ADD COLUMN fixes_version_code_max bigint NOT NULL DEFAULT 0 CHECK (fixes_version_code_max >= 0),
	ADD COLUMN advisory text NOT NULL DEFAULT '';
CREATE INDEX artifacts_security_idx ON artifacts (product) WHERE is_security_update;

ALTER TABLE campaigns
	ADD COLUMN security_override_windows boolean NOT NULL DEFAULT false,
	ADD COLUMN security_preempt boolean NOT NULL DEFAULT false,
	-- a security campaign without progress for this long is reported
	-- (event security_stalled); NULL for functional campaigns
	ADD COLUMN security_stall_alert_s integer CHECK (security_stall_alert_s BETWEEN 60 AND 31536000),
	ADD COLUMN security_stall_alert_at timestamptz;

ALTER TABLE campaign_stages
	-- NULL (both): the single failure_ratio over all failures, as before
	ADD COLUMN build_failure_ratio numeric(5, 4)
		CHECK (build_failure_ratio >= 0 AND build_failure_ratio < 1),
	ADD COLUMN network_failure_ratio numeric(5, 4)
		CHECK (network_failure_ratio >= 0 AND network_failure_ratio < 1),
	ADD COLUMN build_failures_acked bigint NOT NULL DEFAULT 0,
	ADD COLUMN network_failures_acked bigint NOT NULL DEFAULT 0,
	-- post-install health: NULL = not watched
	ADD COLUMN health_window_s integer CHECK (health_window_s BETWEEN 1 AND 2592000),
	ADD COLUMN health_max_reboots integer NOT NULL DEFAULT 0 CHECK (health_max_reboots >= 0),
	ADD COLUMN health_min_permille integer NOT NULL DEFAULT 0
		CHECK (health_min_permille BETWEEN 0 AND 1000),
	ADD COLUMN health_unhealthy_ratio numeric(5, 4) NOT NULL DEFAULT 0
		CHECK (health_unhealthy_ratio >= 0 AND health_unhealthy_ratio < 1),
	ADD COLUMN unhealthy_acked bigint NOT NULL DEFAULT 0;

ALTER TABLE campaign_devices
	-- health reported inside the stage's window after the confirm (done_at)
	ADD COLUMN health_reboots integer NOT NULL DEFAULT 0,
	ADD COLUMN health_permille integer,
	ADD COLUMN health_at timestamptz;
