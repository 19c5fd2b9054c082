-- SPDX-License-Identifier: Apache-2.0
-- The change log of the delivery view (migrations/0018_delivery_changes.sql):
-- the triggers that fill it and the poll that reads it.

-- Takes the next change number (locks delivery_version until commit) and
-- keeps the log to its last 100,000 changes (a replica further behind
-- forgets everything, delivery_changes_since says so).
CREATE OR REPLACE FUNCTION delivery_change_next() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v bigint;
BEGIN
	UPDATE delivery_version SET seq = seq + 1 RETURNING seq INTO v;
	IF v % 1000 = 0 THEN
		DELETE FROM delivery_changes WHERE seq <= v - 100000;
		UPDATE delivery_version SET oldest = greatest(oldest, v - 100000 + 1);
	END IF;
	RETURN v;
END $$;

-- assignments: a deleted row (statement level: one number per statement)
CREATE OR REPLACE FUNCTION delivery_assignments_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	v bigint;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
		RETURN NULL;
	END IF;
	v := delivery_change_next();
	INSERT INTO delivery_changes (seq, device_id, artifact_id)
	SELECT DISTINCT v, o.device_id, o.artifact_id FROM old_rows o;
	RETURN NULL;
END $$;

-- devices (decommissioned, deleted, or running another image: what the
-- delivery chooses by), artifacts (changed or deleted), TRUNCATE of any
-- (every answer): one row
CREATE OR REPLACE FUNCTION delivery_row_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	v_device text;
	v_artifact text;
BEGIN
	-- (each field read in its own branch: OLD has only its table's columns)
	IF TG_LEVEL = 'ROW' AND TG_TABLE_NAME = 'devices' THEN
		v_device := OLD.device_id;
	ELSIF TG_LEVEL = 'ROW' THEN
		v_artifact := OLD.artifact_id;
	END IF;
	INSERT INTO delivery_changes (seq, device_id, artifact_id)
	VALUES (delivery_change_next(), v_device, v_artifact);
	RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS delivery_assignments_deleted ON assignments;
CREATE TRIGGER delivery_assignments_deleted AFTER DELETE ON assignments
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
	EXECUTE FUNCTION delivery_assignments_deleted();

DROP TRIGGER IF EXISTS delivery_device_changed ON devices;
-- (the columns themselves: code/ is applied after every schema file, and
-- running_sha256 is 0017's; reading it through to_jsonb(OLD) and
-- to_jsonb(NEW) built the whole row as JSON twice for every stored report)
CREATE TRIGGER delivery_device_changed AFTER UPDATE ON devices FOR EACH ROW
	WHEN (OLD.decommissioned IS DISTINCT FROM NEW.decommissioned
	      OR OLD.running_sha256 IS DISTINCT FROM NEW.running_sha256)
	EXECUTE FUNCTION delivery_row_changed();
DROP TRIGGER IF EXISTS delivery_device_deleted ON devices;
CREATE TRIGGER delivery_device_deleted AFTER DELETE ON devices FOR EACH ROW
	EXECUTE FUNCTION delivery_row_changed();

DROP TRIGGER IF EXISTS delivery_artifact_changed ON artifacts;
CREATE TRIGGER delivery_artifact_changed AFTER UPDATE ON artifacts FOR EACH ROW
	WHEN (OLD.manifest IS DISTINCT FROM NEW.manifest OR OLD.store_path IS DISTINCT FROM NEW.store_path)
	EXECUTE FUNCTION delivery_row_changed();
DROP TRIGGER IF EXISTS delivery_artifact_deleted ON artifacts;
CREATE TRIGGER delivery_artifact_deleted AFTER DELETE ON artifacts FOR EACH ROW
	EXECUTE FUNCTION delivery_row_changed();

DROP TRIGGER IF EXISTS delivery_assignments_truncated ON assignments;
CREATE TRIGGER delivery_assignments_truncated AFTER TRUNCATE ON assignments
	FOR EACH STATEMENT EXECUTE FUNCTION delivery_row_changed();
DROP TRIGGER IF EXISTS delivery_devices_truncated ON devices;
CREATE TRIGGER delivery_devices_truncated AFTER TRUNCATE ON devices
	FOR EACH STATEMENT EXECUTE FUNCTION delivery_row_changed();
DROP TRIGGER IF EXISTS delivery_artifacts_truncated ON artifacts;
CREATE TRIGGER delivery_artifacts_truncated AFTER TRUNCATE ON artifacts
	FOR EACH STATEMENT EXECUTE FUNCTION delivery_row_changed();

-- The poll: the current number, the oldest kept, and up to p_limit changes
-- after p_seq (seq NULL: none). A replica that gets p_limit rows, or whose
-- p_seq is older than oldest - 1, forgets everything instead.
CREATE OR REPLACE FUNCTION delivery_changes_since(p_seq bigint, p_limit integer)
RETURNS TABLE (version bigint, oldest bigint, seq bigint, device_id text, artifact_id text)
LANGUAGE sql STABLE AS $$
	SELECT v.seq, v.oldest, c.seq, c.device_id, c.artifact_id
	FROM delivery_version v
	LEFT JOIN LATERAL (SELECT x.seq, x.device_id, x.artifact_id FROM delivery_changes x
	                   WHERE x.seq > p_seq AND x.seq <= v.seq
	                   ORDER BY x.seq LIMIT p_limit) c ON true
$$;

-- artifact_deltas (migrations/0017_deltas.sql): a delta added or removed
-- changes which manifest a device on its base gets; rare, so every answer
-- is forgotten (one row for the statement)
DROP TRIGGER IF EXISTS delivery_deltas_changed ON artifact_deltas;
CREATE TRIGGER delivery_deltas_changed AFTER INSERT OR UPDATE OR DELETE ON artifact_deltas
	FOR EACH STATEMENT EXECUTE FUNCTION delivery_row_changed();
