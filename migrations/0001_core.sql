-- SPDX-License-Identifier: Apache-2.0
-- fleetota core schema: devices, trust lists, artifacts, assignments,
-- device event history, audit. Applied once by `ota-server migrate` in a
-- transaction and recorded with its checksum: never edit it after release,
-- add a new NNNN_name.sql instead. 0002.. belong to the REST API (tokens,
-- groups) and the rollout engine (campaigns).

CREATE TABLE devices (
	device_id        text PRIMARY KEY
	                 CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
	model            text NOT NULL DEFAULT '',
	hw_revision      text NOT NULL DEFAULT '',
	version          text NOT NULL DEFAULT '',
	version_code     bigint NOT NULL DEFAULT 0,
	security_counter bigint NOT NULL DEFAULT 0,
	keylist_version  bigint NOT NULL DEFAULT 0,
	rootlist_version bigint NOT NULL DEFAULT 0,
	keylist_key_ids  bytea[] NOT NULL DEFAULT '{}',
	pending_version  text NOT NULL DEFAULT '',
	active_slot      integer NOT NULL DEFAULT 0,
	tags             text[] NOT NULL DEFAULT '{}',
	state            text NOT NULL DEFAULT 'unknown',
	last_error       text NOT NULL DEFAULT '',
	last_error_detail text NOT NULL DEFAULT '',
	last_report_seq  bigint NOT NULL DEFAULT 0,
	last_seen        timestamptz,
	created_at       timestamptz NOT NULL DEFAULT now(),
	decommissioned   boolean NOT NULL DEFAULT false,
	decommissioned_at timestamptz
);
CREATE INDEX devices_model_idx ON devices (model, hw_revision);
CREATE INDEX devices_version_idx ON devices (version_code);
CREATE INDEX devices_keylist_idx ON devices (keylist_version);
CREATE INDEX devices_tags_idx ON devices USING gin (tags);

-- Signed trust lists as uploaded (the envelope bytes devices fetch).
CREATE TABLE rootlists (
	version     bigint PRIMARY KEY CHECK (version > 0),
	bytes       bytea NOT NULL,
	sha256      bytea NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE keylists (
	version          bigint PRIMARY KEY CHECK (version > 0),
	rootlist_version bigint NOT NULL DEFAULT 0,
	bytes            bytea NOT NULL,
	sha256           bytea NOT NULL,
	key_ids          bytea[] NOT NULL DEFAULT '{}',
	created_at       timestamptz NOT NULL DEFAULT now()
);

-- An artifact is a verified manifest + its image in the content-addressed
-- store (file named by the image's lowercase hex SHA-256).
CREATE TABLE artifacts (
	artifact_id        text PRIMARY KEY
	                   CHECK (artifact_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
	digest             bytea NOT NULL UNIQUE,      -- SHA-256 of the manifest envelope
	manifest           bytea NOT NULL,             -- the Signed envelope
	product            text NOT NULL,
	hw_revisions       text[] NOT NULL DEFAULT '{}',
	version            text NOT NULL,
	version_code       bigint NOT NULL,
	security_counter   bigint NOT NULL DEFAULT 0,
	min_installed_version bigint NOT NULL DEFAULT 0,
	is_security_update boolean NOT NULL DEFAULT false,
	issued_at          bigint NOT NULL DEFAULT 0,
	expires_at         bigint NOT NULL DEFAULT 0,
	image_sha256       bytea NOT NULL CHECK (length(image_sha256) = 32),
	image_size         bigint NOT NULL CHECK (image_size >= 0),
	image_name         text NOT NULL DEFAULT '',
	signing_key_id     bytea NOT NULL CHECK (length(signing_key_id) = 32),
	store_path         text NOT NULL,              -- relative to store_dir
	created_at         timestamptz NOT NULL DEFAULT now()
);

-- What a device may fetch. campaign_id is filled by the rollout engine
-- (its table comes with its own migration); NULL = assigned by hand.
CREATE TABLE assignments (
	device_id    text NOT NULL REFERENCES devices (device_id),
	artifact_id  text NOT NULL REFERENCES artifacts (artifact_id),
	campaign_id  text,
	state        text NOT NULL DEFAULT 'pending',
	error        text NOT NULL DEFAULT '',
	notify_after timestamptz NOT NULL DEFAULT now(),
	notified_at  timestamptz,
	notify_count integer NOT NULL DEFAULT 0,
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (device_id, artifact_id)
);
CREATE INDEX assignments_artifact_idx ON assignments (artifact_id);
CREATE INDEX assignments_to_notify_idx ON assignments (notify_after)
	WHERE notified_at IS NULL;

-- Device history: one row per device event, idempotent on the device's seq.
CREATE TABLE device_events (
	id               bigserial PRIMARY KEY,
	device_id        text NOT NULL REFERENCES devices (device_id),
	seq              bigint NOT NULL,
	kind             text NOT NULL,
	error            text NOT NULL DEFAULT '',
	version          text NOT NULL DEFAULT '',
	version_code     bigint NOT NULL DEFAULT 0,
	security_counter bigint NOT NULL DEFAULT 0,
	detail           text NOT NULL DEFAULT '',
	campaign_id      text NOT NULL DEFAULT '',
	device_time      bigint NOT NULL DEFAULT 0,
	received_at      timestamptz NOT NULL DEFAULT now(),
	UNIQUE (device_id, seq)
);
CREATE INDEX device_events_received_idx ON device_events (received_at);

-- Append-only audit trail (who, what, when, before/after).
CREATE TABLE audit (
	id         bigserial PRIMARY KEY,
	at         timestamptz NOT NULL DEFAULT now(),
	actor      text NOT NULL,
	action     text NOT NULL,
	object     text NOT NULL DEFAULT '',
	before     jsonb,
	after      jsonb
);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit is append-only';
END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
