-- SPDX-License-Identifier: Apache-2.0
-- fleetota rollout engine: campaigns, stages, per-device state, rate-limited
-- notifications, leases for many servers, key-rotation coverage, retention.
--
-- The whole state machine lives in the database: these tables, and the
-- PL/pgSQL functions of migrations/code/rollout_*.sql (re-applied when they
-- change), so every ota-server process stays stateless and a thin driver
-- (server/src/rollout.c) only calls rollout_tick() on a timer, publishes the
-- Notify messages it returns, and feeds StatusReports to rollout_report().
-- Planning is set-based SQL: no per-device loop anywhere.
--
-- Errors raised by the functions carry SQLSTATEs of the private class "FO"
-- so the REST API can map them without parsing messages:
--   FO404 unknown campaign/artifact/keylist, FO409 wrong state or conflict,
--   FO403 four-eyes violation, FO422 invalid specification (message names
--   the field), FO412 key-rotation coverage too low.
-- See docs/campaigns.md for the operator's view.

CREATE TABLE rollout_settings (
	name  text PRIMARY KEY,
	value text NOT NULL
);
INSERT INTO rollout_settings (name, value) VALUES
	('keyrotation_min_share', '0.98'),  -- share of the fleet before a key may go
	('retention_days', '90'),           -- default age bound of purged history
	('events_per_device', '1000'),      -- newest device_events kept per device
	('admission_interval_s', '30'),     -- re-evaluate a target at most this often
	('admission_batch', '100000');      -- most devices admitted per campaign and tick

CREATE TABLE campaigns (
	campaign_id       text PRIMARY KEY
	                  CHECK (campaign_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
	kind              text NOT NULL DEFAULT 'firmware'
	                  CHECK (kind IN ('firmware', 'keylist', 'rootlist')),
	artifact_id       text REFERENCES artifacts (artifact_id),
	keylist_version   bigint REFERENCES keylists (version),
	rootlist_version  bigint REFERENCES rootlists (version),
	-- target: a filter over device attributes (see rollout_target()).
	target_filter     jsonb NOT NULL DEFAULT '{}',
	-- keep_open: after the last stage the campaign stays running and keeps
	-- admitting devices that come to match (a standing rollout).
	keep_open         boolean NOT NULL DEFAULT false,
	state             text NOT NULL DEFAULT 'draft'
	                  CHECK (state IN ('draft', 'awaiting_approval', 'running', 'paused',
	                                   'completed', 'cancelled', 'failed')),
	state_reason      text NOT NULL DEFAULT '',
	current_stage     integer NOT NULL DEFAULT 0,
	priority          integer NOT NULL DEFAULT 0,
	rate_per_minute   integer NOT NULL DEFAULT 60 CHECK (rate_per_minute BETWEEN 1 AND 1000000),
	rate_burst        integer NOT NULL DEFAULT 1 CHECK (rate_burst BETWEEN 1 AND 1000000),
	bucket_tokens     double precision NOT NULL DEFAULT 0,
	bucket_at         timestamptz,
	device_timeout_s  integer NOT NULL DEFAULT 3600 CHECK (device_timeout_s BETWEEN 1 AND 31536000),
	start_at          timestamptz,
	requires_approval boolean NOT NULL DEFAULT false,
	created_by        text NOT NULL,
	approved_by       text,
	approved_at       timestamptz,
	lease_owner       text,
	lease_until       timestamptz,
	admitted_at       timestamptz,     -- last admission pass
	target_size       bigint NOT NULL DEFAULT 0,
	created_at        timestamptz NOT NULL DEFAULT now(),
	started_at        timestamptz,
	finished_at       timestamptz,
	updated_at        timestamptz NOT NULL DEFAULT now(),
	CHECK ((kind = 'firmware') = (artifact_id IS NOT NULL)),
	CHECK ((kind = 'keylist') = (keylist_version IS NOT NULL)),
	CHECK ((kind = 'rootlist') = (rootlist_version IS NOT NULL))
);
CREATE INDEX campaigns_due_idx ON campaigns (priority DESC, created_at) WHERE state = 'running';

-- Ordered stages. device_count / percent is the CUMULATIVE share of the
-- target admitted once the stage runs (10 devices, then 10 %, then 100 %).
CREATE TABLE campaign_stages (
	campaign_id    text NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
	stage_no       integer NOT NULL CHECK (stage_no >= 0),
	device_count   bigint CHECK (device_count > 0),
	percent        numeric(6, 3) CHECK (percent > 0 AND percent <= 100),
	success_ratio  numeric(5, 4) NOT NULL DEFAULT 1 CHECK (success_ratio > 0 AND success_ratio <= 1),
	failure_ratio  numeric(5, 4) NOT NULL DEFAULT 0 CHECK (failure_ratio >= 0 AND failure_ratio < 1),
	soak_s         integer NOT NULL DEFAULT 0 CHECK (soak_s >= 0),
	max_in_flight  integer NOT NULL DEFAULT 1000 CHECK (max_in_flight > 0),
	failures_acked bigint NOT NULL DEFAULT 0,   -- failures an operator resumed over
	started_at     timestamptz,
	succeeded_at   timestamptz,                 -- success threshold reached, soak runs
	completed_at   timestamptz,
	PRIMARY KEY (campaign_id, stage_no),
	CHECK ((device_count IS NULL) <> (percent IS NULL))
);

-- The groups a campaign's target names, kept from target_filter by a
-- trigger: a group in use cannot be deleted (the REST API answers 409).
CREATE TABLE campaign_groups (
	campaign_id text NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
	group_id    text NOT NULL REFERENCES device_groups (group_id) ON DELETE RESTRICT,
	PRIMARY KEY (campaign_id, group_id)
);
CREATE INDEX campaign_groups_group_idx ON campaign_groups (group_id);

-- Recurring maintenance windows, UTC: on the given weekdays (0 = Sunday, as
-- extract(dow)) from start_minute for duration_minutes (may pass midnight).
CREATE TABLE campaign_windows (
	campaign_id      text NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
	window_no        integer NOT NULL,
	days             integer[] NOT NULL CHECK (days <@ ARRAY[0, 1, 2, 3, 4, 5, 6] AND cardinality(days) > 0),
	start_minute     integer NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
	duration_minutes integer NOT NULL CHECK (duration_minutes BETWEEN 1 AND 10080),
	PRIMARY KEY (campaign_id, window_no)
);

-- Per-device state in a campaign. Counts are always derived from these rows
-- (one row per device and campaign), so a repeated call can never count a
-- device twice.
--   pending -> notified -> downloading -> installed -> confirmed
--   failed (+ error), timed_out, superseded (a higher-priority campaign took
--   the device before it was notified), cancelled (campaign cancelled first)
--
-- No foreign keys here on purpose: admission inserts up to admission_batch
-- rows per tick and the two RI triggers per row cost as much as the insert
-- itself. Integrity holds by construction: rows come only from rollout_admit
-- (devices selected from devices, campaign row locked), devices are never
-- deleted (decommissioned), campaigns are never deleted (rollout_purge drops
-- their per-device rows explicitly).
CREATE TABLE campaign_devices (
	campaign_id        text NOT NULL,
	device_id          text NOT NULL,
	stage_no           integer NOT NULL,
	step               text NOT NULL DEFAULT 'firmware'
	                   CHECK (step IN ('firmware', 'keylist', 'rootlist')),
	needed_keylist     bigint NOT NULL DEFAULT 0,   -- key-list step: version to reach
	state              text NOT NULL DEFAULT 'pending'
	                   CHECK (state IN ('pending', 'notified', 'downloading', 'installed',
	                                    'confirmed', 'failed', 'timed_out', 'superseded',
	                                    'cancelled')),
	error              text NOT NULL DEFAULT '',
	already            boolean NOT NULL DEFAULT false, -- was on the version when admitted
	reconciled         boolean NOT NULL DEFAULT false, -- reported after its timeout
	admit_seq          bigint NOT NULL,
	admitted_at        timestamptz NOT NULL,
	notified_at        timestamptz,
	notify_count       integer NOT NULL DEFAULT 0,
	last_report_at     timestamptz,
	reported_version_code bigint,
	reported_keylist   bigint,
	done_at            timestamptz,
	updated_at         timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (campaign_id, device_id)
);
CREATE INDEX campaign_devices_device_idx ON campaign_devices (device_id);
CREATE INDEX campaign_devices_pending_idx ON campaign_devices (campaign_id, stage_no, admit_seq)
	WHERE state = 'pending';
CREATE INDEX campaign_devices_flight_idx ON campaign_devices (campaign_id)
	WHERE state IN ('notified', 'downloading', 'installed');
CREATE SEQUENCE campaign_devices_admit_seq;

-- Every notification handed to a server, with its time: the rate limit is
-- checkable from these timestamps. published_at is set when the server has
-- handed the Notify to the broker; a notification nobody published within the
-- lease (its server died) is issued again by whichever server ticks next.
CREATE TABLE rollout_notifications (
	id           bigserial PRIMARY KEY,
	campaign_id  text NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
	device_id    text NOT NULL,
	stage_no     integer NOT NULL,
	step         text NOT NULL,
	server_id    text NOT NULL,
	created_at   timestamptz NOT NULL,
	published_at timestamptz,
	reissued     boolean NOT NULL DEFAULT false
);
CREATE INDEX rollout_notifications_campaign_idx ON rollout_notifications (campaign_id, created_at);
CREATE INDEX rollout_notifications_unpublished_idx ON rollout_notifications (campaign_id, created_at)
	WHERE published_at IS NULL AND NOT reissued;

-- Progress events of a campaign (stage started / succeeded, paused, ...).
CREATE TABLE campaign_events (
	id          bigserial PRIMARY KEY,
	campaign_id text NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
	at          timestamptz NOT NULL DEFAULT now(),
	kind        text NOT NULL,
	stage_no    integer,
	detail      text NOT NULL DEFAULT ''
);
CREATE INDEX campaign_events_campaign_idx ON campaign_events (campaign_id, id);
CREATE INDEX campaign_events_at_idx ON campaign_events (at);
