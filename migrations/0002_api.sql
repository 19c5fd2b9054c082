-- SPDX-License-Identifier: Apache-2.0
-- The operator REST API (web-api/): bearer tokens and device groups, and a
-- stronger audit trail. Applied after 0001_core.sql; never edit once released.

-- Bearer tokens. Only the SHA-256 of a token is stored: a database dump does
-- not let anyone call the API. A token is revoked, never deleted, so the
-- audit trail keeps naming real tokens.
CREATE TABLE api_tokens (
	id           bigserial PRIMARY KEY,
	name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,63}$'),
	role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
	token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
	created_by   text NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	revoked_at   timestamptz
);

-- Device groups. A static group lists its members; a dynamic group holds a
-- filter over device attributes (validated JSON, compiled by the API to a
-- parameterised WHERE clause with a fixed set of fields and operators) and
-- is evaluated in SQL whenever it is read, so it follows the fleet.
CREATE TABLE device_groups (
	group_id    text PRIMARY KEY
	            CHECK (group_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
	kind        text NOT NULL CHECK (kind IN ('static', 'dynamic')),
	description text NOT NULL DEFAULT '' CHECK (length(description) <= 256),
	filter      jsonb,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	CHECK ((kind = 'dynamic') = (filter IS NOT NULL))
);

CREATE TABLE device_group_members (
	group_id  text NOT NULL REFERENCES device_groups (group_id) ON DELETE CASCADE,
	device_id text NOT NULL REFERENCES devices (device_id),
	added_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (group_id, device_id)
);
CREATE INDEX device_group_members_device_idx ON device_group_members (device_id);

-- 0001 refuses UPDATE and DELETE on audit row by row; TRUNCATE bypasses
-- row triggers, so refuse it too.
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE INDEX audit_actor_idx ON audit (actor, id);
CREATE INDEX audit_object_idx ON audit (object, id);

-- Device listing by last contact (the "last seen" filter and stragglers).
CREATE INDEX devices_last_seen_idx ON devices (last_seen);

-- Manifest fields the API shows that 0001 does not keep as columns, and
-- who uploaded an artifact (defaults keep direct inserts working).
ALTER TABLE artifacts
	ADD COLUMN allow_downgrade boolean NOT NULL DEFAULT false,
	ADD COLUMN manifest_sequence bigint NOT NULL DEFAULT 0,
	ADD COLUMN uploaded_by text NOT NULL DEFAULT '';
