-- SPDX-License-Identifier: Apache-2.0
-- fleetota rollout engine: campaigns, stages, per-device state, rate-limited
-- notifications, leases for many servers, key-rotation coverage, retention.
--
-- The whole state machine lives here, in tables and PL/pgSQL functions, so
-- every ota-server process stays stateless and a thin driver
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

CREATE FUNCTION rollout_setting(p_name text, p_default text) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT coalesce((SELECT value FROM rollout_settings WHERE name = p_name), p_default)
$$;

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

CREATE FUNCTION rollout_campaign_groups_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' THEN
		IF NEW.target_filter -> 'groups' IS NOT DISTINCT FROM OLD.target_filter -> 'groups' THEN
			RETURN NEW;
		END IF;
		DELETE FROM campaign_groups WHERE campaign_id = NEW.campaign_id;
	END IF;
	IF jsonb_typeof(NEW.target_filter -> 'groups') = 'array' THEN
		INSERT INTO campaign_groups (campaign_id, group_id)
		SELECT DISTINCT NEW.campaign_id, g
		FROM jsonb_array_elements_text(NEW.target_filter -> 'groups') g;
	ELSIF jsonb_typeof(NEW.target_filter -> 'groups') = 'string' THEN
		INSERT INTO campaign_groups (campaign_id, group_id)
		VALUES (NEW.campaign_id, NEW.target_filter ->> 'groups');
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER campaigns_groups_sync AFTER INSERT OR UPDATE OF target_filter ON campaigns
	FOR EACH ROW EXECUTE FUNCTION rollout_campaign_groups_sync();

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

-- ---------------------------------------------------------------------------
-- Helpers

-- The advisory lock that serializes ticks and starts (a fixed 64-bit key).
CREATE FUNCTION rollout_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
	SELECT 7306010700000000001::bigint
$$;

CREATE FUNCTION rollout_fail(p_code text, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = p_code, MESSAGE = p_message;
END $$;

CREATE FUNCTION rollout_event(p_campaign text, p_kind text, p_stage integer, p_detail text,
                              p_at timestamptz) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO campaign_events (campaign_id, at, kind, stage_no, detail)
	VALUES (p_campaign, coalesce(p_at, now()), p_kind, p_stage, coalesce(p_detail, ''))
$$;

CREATE FUNCTION rollout_audit(p_actor text, p_action text, p_object text, p_before jsonb,
                              p_after jsonb) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO audit (actor, action, object, before, after)
	VALUES (coalesce(p_actor, ''), p_action, coalesce(p_object, ''), p_before, p_after)
$$;

-- A JSON value that must be an array of strings (or absent / null).
CREATE FUNCTION rollout_text_array(p_value jsonb, p_field text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF p_value IS NULL OR jsonb_typeof(p_value) = 'null' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(p_value) = 'string' THEN
		RETURN ARRAY[p_value #>> '{}'];
	END IF;
	IF jsonb_typeof(p_value) <> 'array' OR jsonb_array_length(p_value) > 10000 OR EXISTS (
		SELECT 1 FROM jsonb_array_elements(p_value) e WHERE jsonb_typeof(e) <> 'string') THEN
		PERFORM rollout_fail('FO422', p_field || ': must be a string or an array of strings');
	END IF;
	RETURN ARRAY(SELECT jsonb_array_elements_text(p_value));
END $$;

CREATE FUNCTION rollout_bigint(p_value jsonb, p_field text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF p_value IS NULL OR jsonb_typeof(p_value) = 'null' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(p_value) <> 'number' OR (p_value #>> '{}') !~ '^-?[0-9]{1,18}$' THEN
		PERFORM rollout_fail('FO422', p_field || ': must be an integer');
	END IF;
	RETURN (p_value #>> '{}')::bigint;
END $$;

CREATE FUNCTION rollout_ratio(p_value jsonb, p_field text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	v numeric;
BEGIN
	IF p_value IS NULL OR jsonb_typeof(p_value) = 'null' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(p_value) <> 'number' THEN
		PERFORM rollout_fail('FO422', p_field || ': must be a number');
	END IF;
	v := (p_value #>> '{}')::numeric;
	IF v < 0 OR v > 1 THEN
		PERFORM rollout_fail('FO422', p_field || ': must be between 0 and 1');
	END IF;
	RETURN v;
END $$;

-- true when p_now lies in one of the campaign's maintenance windows (or the
-- campaign has none). Windows are UTC: the server enforces them because many
-- devices have no trustworthy clock.
CREATE FUNCTION rollout_in_window(p_campaign text, p_now timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT NOT EXISTS (SELECT 1 FROM campaign_windows WHERE campaign_id = p_campaign)
	    OR EXISTS (
		SELECT 1
		FROM campaign_windows w,
		     generate_series(0, 7) AS back(days_back),
		     LATERAL (SELECT (date_trunc('day', p_now AT TIME ZONE 'UTC')
		                      - make_interval(days => back.days_back)) AS day) d
		WHERE w.campaign_id = p_campaign
		  AND extract(dow FROM d.day)::integer = ANY (w.days)
		  AND (p_now AT TIME ZONE 'UTC') >= d.day + make_interval(mins => w.start_minute)
		  AND (p_now AT TIME ZONE 'UTC') < d.day + make_interval(mins => w.start_minute + w.duration_minutes))
$$;

-- ---------------------------------------------------------------------------
-- Target: the devices a campaign may install on, as one set-based query.
--
-- target_filter keys (all optional, ANDed; a list matches any of its values):
--   model, hw_revision, version (strings or lists), tags_all, tags_any (lists),
--   version_code_min, version_code_max, keylist_version_min,
--   keylist_version_max (integers), devices (list of device ids),
--   groups (list of device_groups ids, static or dynamic; a device in any).
-- On top of the filter, a firmware campaign only selects devices whose model
-- the manifest names and whose hw revision it allows, that run at least the
-- manifest's min_installed_version and not a newer version than it ships;
-- a key-list (root-list) campaign selects devices not past its version.
-- Decommissioned devices are never selected.

-- Members of groups (the REST API's device_groups, 0002): static groups by
-- their member rows, dynamic groups by their filter (the GroupFilter JSON of
-- web-api/openapi.yaml), compiled here to the same WHERE clause the API
-- compiles in C: a whitelist of fields and operators, every value quoted
-- with format(%L), so no stored text reaches the SQL as code.
CREATE FUNCTION rollout_filter_sql(p_node jsonb, p_depth integer DEFAULT 1) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	v_parts text[];
	v_field text;
	v_op text;
	v_value jsonb;
	v_col text;
	v_sym text;
BEGIN
	IF p_depth > 4 OR jsonb_typeof(p_node) IS DISTINCT FROM 'object' THEN
		PERFORM rollout_fail('FO422', 'group filter: an object, nesting depth at most 4');
	END IF;
	IF p_node ? 'all' OR p_node ? 'any' THEN
		IF jsonb_typeof(p_node -> coalesce(CASE WHEN p_node ? 'all' THEN 'all' END, 'any')) <> 'array' THEN
			PERFORM rollout_fail('FO422', 'group filter: all/any take an array');
		END IF;
		SELECT array_agg(rollout_filter_sql(e, p_depth + 1)) INTO v_parts
		FROM jsonb_array_elements(p_node -> CASE WHEN p_node ? 'all' THEN 'all' ELSE 'any' END) e;
		IF v_parts IS NULL THEN
			PERFORM rollout_fail('FO422', 'group filter: empty all/any');
		END IF;
		RETURN '(' || array_to_string(v_parts, CASE WHEN p_node ? 'all' THEN ' AND ' ELSE ' OR ' END) || ')';
	END IF;
	v_field := p_node ->> 'field';
	v_op := p_node ->> 'op';
	v_value := p_node -> 'value';
	v_sym := CASE v_op WHEN 'eq' THEN '=' WHEN 'ne' THEN '<>' WHEN 'lt' THEN '<' WHEN 'le' THEN '<='
	                   WHEN 'gt' THEN '>' WHEN 'ge' THEN '>=' END;
	IF v_field IN ('model', 'hw_revision', 'version', 'state') THEN
		v_col := 'd.' || v_field;
		IF v_op = 'in' THEN
			RETURN format('%s = ANY (%L::text[])', v_col, rollout_text_array(v_value, 'group filter value'));
		ELSIF v_op IN ('eq', 'ne') AND jsonb_typeof(v_value) = 'string' THEN
			RETURN format('%s %s %L', v_col, v_sym, v_value #>> '{}');
		END IF;
	ELSIF v_field IN ('version_code', 'security_counter', 'keylist_version', 'rootlist_version') THEN
		v_col := 'd.' || v_field;
		IF v_op = 'in' AND jsonb_typeof(v_value) = 'array' THEN
			RETURN format('%s = ANY (%L::bigint[])', v_col,
			              ARRAY(SELECT rollout_bigint(e, 'group filter value') FROM jsonb_array_elements(v_value) e));
		ELSIF v_sym IS NOT NULL THEN
			RETURN format('%s %s %s', v_col, v_sym, rollout_bigint(v_value, 'group filter value'));
		END IF;
	ELSIF v_field = 'tags' AND v_op = 'has' AND jsonb_typeof(v_value) = 'string' THEN
		RETURN format('d.tags @> ARRAY[%L::text]', v_value #>> '{}');
	ELSIF v_field = 'last_seen' AND v_op IN ('within', 'not_within') THEN
		IF v_op = 'within' THEN
			RETURN format('d.last_seen >= now() - make_interval(secs => %s)', rollout_bigint(v_value, 'group filter value'));
		END IF;
		RETURN format('(d.last_seen IS NULL OR d.last_seen < now() - make_interval(secs => %s))',
		              rollout_bigint(v_value, 'group filter value'));
	END IF;
	PERFORM rollout_fail('FO422', format('group filter: unsupported condition %s', p_node));
	RETURN NULL;
END $$;

CREATE FUNCTION rollout_group_members(p_groups text[]) RETURNS TABLE (device_id text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
	g record;
BEGIN
	RETURN QUERY SELECT m.device_id FROM device_group_members m
	             JOIN device_groups x ON x.group_id = m.group_id
	             WHERE m.group_id = ANY (p_groups) AND x.kind = 'static';
	FOR g IN SELECT x.group_id, x.filter FROM device_groups x
	         WHERE x.group_id = ANY (p_groups) AND x.kind = 'dynamic' ORDER BY x.group_id LOOP
		RETURN QUERY EXECUTE 'SELECT d.device_id FROM devices d WHERE ' || rollout_filter_sql(g.filter);
	END LOOP;
END $$;

CREATE FUNCTION rollout_target(p_campaign text) RETURNS TABLE (device_id text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
	c campaigns%ROWTYPE;
	a artifacts%ROWTYPE;
	f jsonb;
	v_models text[];
	v_hws text[];
	v_versions text[];
	v_tags_all text[];
	v_tags_any text[];
	v_devices text[];
	v_groups text[];
	v_vmin bigint;
	v_vmax bigint;
	v_klmin bigint;
	v_klmax bigint;
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	IF NOT FOUND THEN
		PERFORM rollout_fail('FO404', 'campaign ' || p_campaign || ' not found');
	END IF;
	f := c.target_filter;
	v_models := rollout_text_array(f -> 'model', 'target.model');
	v_hws := rollout_text_array(f -> 'hw_revision', 'target.hw_revision');
	v_versions := rollout_text_array(f -> 'version', 'target.version');
	v_tags_all := rollout_text_array(f -> 'tags_all', 'target.tags_all');
	v_tags_any := rollout_text_array(f -> 'tags_any', 'target.tags_any');
	v_devices := rollout_text_array(f -> 'devices', 'target.devices');
	v_groups := rollout_text_array(f -> 'groups', 'target.groups');
	v_vmin := rollout_bigint(f -> 'version_code_min', 'target.version_code_min');
	v_vmax := rollout_bigint(f -> 'version_code_max', 'target.version_code_max');
	v_klmin := rollout_bigint(f -> 'keylist_version_min', 'target.keylist_version_min');
	v_klmax := rollout_bigint(f -> 'keylist_version_max', 'target.keylist_version_max');
	IF c.kind = 'firmware' THEN
		SELECT * INTO a FROM artifacts WHERE artifact_id = c.artifact_id;
	END IF;
	RETURN QUERY
	SELECT d.device_id
	FROM devices d
	WHERE NOT d.decommissioned
	  AND (v_models IS NULL OR d.model = ANY (v_models))
	  AND (v_hws IS NULL OR d.hw_revision = ANY (v_hws))
	  AND (v_versions IS NULL OR d.version = ANY (v_versions))
	  AND (v_tags_all IS NULL OR d.tags @> v_tags_all)
	  AND (v_tags_any IS NULL OR d.tags && v_tags_any)
	  AND (v_devices IS NULL OR d.device_id = ANY (v_devices))
	  AND (v_groups IS NULL OR d.device_id IN (SELECT g.device_id FROM rollout_group_members(v_groups) g))
	  AND (v_vmin IS NULL OR d.version_code >= v_vmin)
	  AND (v_vmax IS NULL OR d.version_code <= v_vmax)
	  AND (v_klmin IS NULL OR d.keylist_version >= v_klmin)
	  AND (v_klmax IS NULL OR d.keylist_version <= v_klmax)
	  AND CASE c.kind
		WHEN 'firmware' THEN
			d.model = a.product
			AND (cardinality(a.hw_revisions) = 0 OR d.hw_revision = ANY (a.hw_revisions))
			AND d.version_code >= a.min_installed_version
			AND d.version_code <= a.version_code
		WHEN 'keylist' THEN d.keylist_version <= c.keylist_version
		ELSE d.rootlist_version <= c.rootlist_version
	  END;
END $$;

-- ---------------------------------------------------------------------------
-- Creating a campaign from a JSON specification (what the REST API receives):
-- {
--   "id": "fw-1.1.0-eu", "kind": "firmware" | "keylist" | "rootlist",
--   "artifact": "fw-1.1.0", "keylist_version": 2, "rootlist_version": 2,
--   "target": { ...filter, see rollout_target... }, "keep_open": false,
--   "stages": [ {"count": 10 | "percent": 10, "success_ratio": 1.0,
--                "failure_ratio": 0.2, "soak_seconds": 600,
--                "max_in_flight": 100}, ... ],
--   "rate_per_minute": 600, "rate_burst": 10, "device_timeout_seconds": 3600,
--   "start_at": "2026-11-23T02:00:00Z", "priority": 0,
--   "requires_approval": true,
--   "windows": [ {"days": [1,2,3,4,5], "start_minute": 120,
--                 "duration_minutes": 180} ]
-- }
CREATE FUNCTION rollout_create(p_spec jsonb, p_actor text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	v_id text;
	v_kind text;
	v_stage jsonb;
	v_window jsonb;
	v_no integer := 0;
	v_count bigint;
	v_percent numeric;
	v_prev_percent numeric := 0;
	v_prev_count bigint := 0;
	v_rate bigint;
	v_burst bigint;
	v_key text;
BEGIN
	IF p_spec IS NULL OR jsonb_typeof(p_spec) <> 'object' THEN
		PERFORM rollout_fail('FO422', 'body: must be a JSON object');
	END IF;
	IF coalesce(p_actor, '') = '' THEN
		PERFORM rollout_fail('FO422', 'actor: required');
	END IF;
	FOR v_key IN SELECT jsonb_object_keys(p_spec) LOOP
		IF v_key NOT IN ('id', 'kind', 'artifact', 'keylist_version', 'rootlist_version',
		                 'target', 'keep_open', 'stages', 'rate_per_minute', 'rate_burst',
		                 'device_timeout_seconds', 'start_at', 'priority',
		                 'requires_approval', 'windows') THEN
			PERFORM rollout_fail('FO422', v_key || ': unknown field');
		END IF;
	END LOOP;
	IF jsonb_typeof(p_spec -> 'target') IS NOT NULL THEN
		IF jsonb_typeof(p_spec -> 'target') <> 'object' THEN
			PERFORM rollout_fail('FO422', 'target: must be an object');
		END IF;
		FOR v_key IN SELECT jsonb_object_keys(p_spec -> 'target') LOOP
			IF v_key NOT IN ('model', 'hw_revision', 'version', 'tags_all', 'tags_any',
			                 'version_code_min', 'version_code_max', 'keylist_version_min',
			                 'keylist_version_max', 'devices', 'groups') THEN
				PERFORM rollout_fail('FO422', 'target.' || v_key || ': unknown field');
			END IF;
		END LOOP;
	END IF;
	v_id := p_spec ->> 'id';
	IF v_id IS NULL OR v_id !~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' THEN
		PERFORM rollout_fail('FO422', 'id: 1..128 of [A-Za-z0-9._-], starting alphanumeric');
	END IF;
	IF EXISTS (SELECT 1 FROM campaigns WHERE campaign_id = v_id) THEN
		PERFORM rollout_fail('FO409', 'id: campaign ' || v_id || ' exists');
	END IF;
	v_kind := coalesce(p_spec ->> 'kind', 'firmware');
	IF v_kind NOT IN ('firmware', 'keylist', 'rootlist') THEN
		PERFORM rollout_fail('FO422', 'kind: firmware, keylist or rootlist');
	END IF;
	IF v_kind = 'firmware' AND NOT EXISTS (
		SELECT 1 FROM artifacts WHERE artifact_id = p_spec ->> 'artifact') THEN
		PERFORM rollout_fail('FO404', 'artifact: not found');
	END IF;
	IF v_kind = 'keylist' AND NOT EXISTS (
		SELECT 1 FROM keylists WHERE version = rollout_bigint(p_spec -> 'keylist_version', 'keylist_version')) THEN
		PERFORM rollout_fail('FO404', 'keylist_version: not found');
	END IF;
	IF v_kind = 'rootlist' AND NOT EXISTS (
		SELECT 1 FROM rootlists WHERE version = rollout_bigint(p_spec -> 'rootlist_version', 'rootlist_version')) THEN
		PERFORM rollout_fail('FO404', 'rootlist_version: not found');
	END IF;
	v_rate := coalesce(rollout_bigint(p_spec -> 'rate_per_minute', 'rate_per_minute'), 60);
	IF v_rate < 1 OR v_rate > 1000000 THEN
		PERFORM rollout_fail('FO422', 'rate_per_minute: 1..1000000');
	END IF;
	-- default burst: five seconds' worth, at least one
	v_burst := coalesce(rollout_bigint(p_spec -> 'rate_burst', 'rate_burst'), greatest(1, ceil(v_rate / 12.0)));
	IF v_burst < 1 OR v_burst > 1000000 THEN
		PERFORM rollout_fail('FO422', 'rate_burst: 1..1000000');
	END IF;
	IF jsonb_typeof(p_spec -> 'stages') IS DISTINCT FROM 'array'
	   OR jsonb_array_length(p_spec -> 'stages') NOT BETWEEN 1 AND 32 THEN
		PERFORM rollout_fail('FO422', 'stages: an array of 1..32 stages');
	END IF;
	SELECT g INTO v_key
	FROM unnest(rollout_text_array(p_spec -> 'target' -> 'groups', 'target.groups')) g
	WHERE NOT EXISTS (SELECT 1 FROM device_groups x WHERE x.group_id = g) LIMIT 1;
	IF v_key IS NOT NULL THEN
		PERFORM rollout_fail('FO404', 'target.groups: group ' || v_key || ' not found');
	END IF;
	BEGIN
		INSERT INTO campaigns (campaign_id, kind, artifact_id, keylist_version, rootlist_version,
		                       target_filter, keep_open, priority, rate_per_minute, rate_burst,
		                       device_timeout_s, start_at, requires_approval, created_by)
		VALUES (v_id, v_kind,
		        CASE WHEN v_kind = 'firmware' THEN p_spec ->> 'artifact' END,
		        CASE WHEN v_kind = 'keylist' THEN (p_spec ->> 'keylist_version')::bigint END,
		        CASE WHEN v_kind = 'rootlist' THEN (p_spec ->> 'rootlist_version')::bigint END,
		        coalesce(p_spec -> 'target', '{}'),
		        coalesce((p_spec ->> 'keep_open')::boolean, false),
		        coalesce(rollout_bigint(p_spec -> 'priority', 'priority'), 0),
		        v_rate, v_burst,
		        coalesce(rollout_bigint(p_spec -> 'device_timeout_seconds', 'device_timeout_seconds'), 3600),
		        (p_spec ->> 'start_at')::timestamptz,
		        coalesce((p_spec ->> 'requires_approval')::boolean, false),
		        p_actor);
	EXCEPTION
		WHEN check_violation OR invalid_text_representation OR invalid_datetime_format
		     OR datetime_field_overflow OR numeric_value_out_of_range THEN
			PERFORM rollout_fail('FO422', 'campaign: ' || SQLERRM);
	END;
	-- validate the target now (raises FO422 naming the field)
	PERFORM 1 FROM rollout_target(v_id) LIMIT 1;
	FOR v_stage IN SELECT value FROM jsonb_array_elements(p_spec -> 'stages') LOOP
		IF jsonb_typeof(v_stage) <> 'object' THEN
			PERFORM rollout_fail('FO422', format('stages[%s]: must be an object', v_no));
		END IF;
		FOR v_key IN SELECT jsonb_object_keys(v_stage) LOOP
			IF v_key NOT IN ('count', 'percent', 'success_ratio', 'failure_ratio',
			                 'soak_seconds', 'max_in_flight') THEN
				PERFORM rollout_fail('FO422', format('stages[%s].%s: unknown field', v_no, v_key));
			END IF;
		END LOOP;
		v_count := rollout_bigint(v_stage -> 'count', format('stages[%s].count', v_no));
		IF jsonb_typeof(v_stage -> 'percent') IS NOT NULL
		   AND jsonb_typeof(v_stage -> 'percent') <> 'number' THEN
			PERFORM rollout_fail('FO422', format('stages[%s].percent: must be a number', v_no));
		END IF;
		v_percent := (v_stage ->> 'percent')::numeric;
		IF (v_count IS NULL) = (v_percent IS NULL) THEN
			PERFORM rollout_fail('FO422', format('stages[%s]: exactly one of count, percent', v_no));
		END IF;
		IF v_count IS NOT NULL AND (v_count < 1 OR v_count < v_prev_count) THEN
			PERFORM rollout_fail('FO422', format('stages[%s].count: positive, not below the previous stage', v_no));
		END IF;
		IF v_percent IS NOT NULL AND (v_percent <= 0 OR v_percent > 100 OR v_percent < v_prev_percent) THEN
			PERFORM rollout_fail('FO422', format('stages[%s].percent: 0 < p <= 100, not below the previous stage', v_no));
		END IF;
		v_prev_count := coalesce(v_count, v_prev_count);
		v_prev_percent := coalesce(v_percent, v_prev_percent);
		BEGIN
			INSERT INTO campaign_stages (campaign_id, stage_no, device_count, percent, success_ratio,
			                             failure_ratio, soak_s, max_in_flight)
			VALUES (v_id, v_no, v_count, v_percent,
			        coalesce(rollout_ratio(v_stage -> 'success_ratio', format('stages[%s].success_ratio', v_no)), 1),
			        coalesce(rollout_ratio(v_stage -> 'failure_ratio', format('stages[%s].failure_ratio', v_no)), 0),
			        coalesce(rollout_bigint(v_stage -> 'soak_seconds', format('stages[%s].soak_seconds', v_no)), 0),
			        coalesce(rollout_bigint(v_stage -> 'max_in_flight', format('stages[%s].max_in_flight', v_no)), 1000));
		EXCEPTION
			WHEN check_violation OR numeric_value_out_of_range THEN
				PERFORM rollout_fail('FO422', format('stages[%s]: %s', v_no, SQLERRM));
		END;
		v_no := v_no + 1;
	END LOOP;
	v_no := 0;
	IF jsonb_typeof(p_spec -> 'windows') IS NOT NULL THEN
		IF jsonb_typeof(p_spec -> 'windows') <> 'array' OR jsonb_array_length(p_spec -> 'windows') > 64 THEN
			PERFORM rollout_fail('FO422', 'windows: an array of at most 64 windows');
		END IF;
		FOR v_window IN SELECT value FROM jsonb_array_elements(p_spec -> 'windows') LOOP
			BEGIN
				INSERT INTO campaign_windows (campaign_id, window_no, days, start_minute, duration_minutes)
				VALUES (v_id, v_no,
				        ARRAY(SELECT (jsonb_array_elements_text(v_window -> 'days'))::integer),
				        rollout_bigint(v_window -> 'start_minute', format('windows[%s].start_minute', v_no)),
				        rollout_bigint(v_window -> 'duration_minutes', format('windows[%s].duration_minutes', v_no)));
			EXCEPTION
				WHEN check_violation OR not_null_violation OR invalid_text_representation
				     OR numeric_value_out_of_range OR invalid_parameter_value THEN
					PERFORM rollout_fail('FO422', format('windows[%s]: days 0..6, start_minute 0..1439, duration_minutes 1..10080', v_no));
			END;
			v_no := v_no + 1;
		END LOOP;
	END IF;
	PERFORM rollout_event(v_id, 'created', NULL, '', now());
	PERFORM rollout_audit(p_actor, 'campaign.create', v_id, NULL, p_spec);
	RETURN v_id;
END $$;

-- ---------------------------------------------------------------------------
-- Lifecycle: start (or submit for approval), approve, pause, resume, cancel.
-- Each is idempotent: asking for the state a campaign is already in changes
-- nothing and succeeds; asking for an impossible transition raises FO409.

CREATE FUNCTION rollout_lock(p_campaign text) RETURNS campaigns
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM rollout_fail('FO404', 'campaign ' || coalesce(p_campaign, '') || ' not found');
	END IF;
	RETURN c;
END $$;

-- Refuses (FO409) when another running or paused campaign of the same
-- priority targets one of this campaign's devices: the engine could not say
-- which one a device belongs to.
CREATE FUNCTION rollout_check_priority(p_campaign text) RETURNS void
LANGUAGE plpgsql SET work_mem = '64MB' AS $$
DECLARE
	c campaigns%ROWTYPE;
	o record;
	v_device text;
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	FOR o IN SELECT campaign_id FROM campaigns
	         WHERE state IN ('running', 'paused') AND priority = c.priority
	           AND campaign_id <> p_campaign ORDER BY campaign_id LOOP
		SELECT t.device_id INTO v_device
		FROM rollout_target(p_campaign) t
		WHERE t.device_id IN (SELECT u.device_id FROM rollout_target(o.campaign_id) u
		                      UNION ALL
		                      SELECT m.device_id FROM campaign_devices m
		                      WHERE m.campaign_id = o.campaign_id
		                        AND m.state IN ('pending', 'notified', 'downloading', 'installed'))
		LIMIT 1;
		IF v_device IS NOT NULL THEN
			PERFORM rollout_fail('FO409', format(
				'priority: campaign %s has the same priority %s and also targets device %s',
				o.campaign_id, c.priority, v_device));
		END IF;
	END LOOP;
END $$;

CREATE FUNCTION rollout_go_running(p_campaign text, p_actor text, p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	-- serialized with ticks and other starts: the overlap check stays true
	PERFORM pg_advisory_xact_lock(rollout_lock_key());
	PERFORM rollout_check_priority(p_campaign);
	UPDATE campaigns
	SET state = 'running', state_reason = '', started_at = coalesce(started_at, p_now),
	    bucket_tokens = rate_burst, bucket_at = NULL, admitted_at = NULL, updated_at = p_now
	WHERE campaign_id = p_campaign;
	UPDATE campaign_stages SET started_at = coalesce(started_at, p_now)
	WHERE campaign_id = p_campaign AND stage_no = 0;
	PERFORM rollout_event(p_campaign, 'started', 0, 'by ' || p_actor, p_now);
END $$;

CREATE FUNCTION rollout_start(p_campaign text, p_actor text, p_now timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
	c := rollout_lock(p_campaign);
	IF c.state IN ('running', 'awaiting_approval') THEN
		RETURN c.state;                      -- idempotent
	END IF;
	IF c.state <> 'draft' THEN
		PERFORM rollout_fail('FO409', format('campaign %s is %s, only a draft can start', p_campaign, c.state));
	END IF;
	IF c.requires_approval AND c.approved_by IS NULL THEN
		UPDATE campaigns SET state = 'awaiting_approval', updated_at = v_now WHERE campaign_id = p_campaign;
		PERFORM rollout_event(p_campaign, 'awaiting_approval', NULL, 'submitted by ' || p_actor, v_now);
		PERFORM rollout_audit(p_actor, 'campaign.start', p_campaign,
		                      jsonb_build_object('state', c.state), jsonb_build_object('state', 'awaiting_approval'));
		RETURN 'awaiting_approval';
	END IF;
	PERFORM rollout_go_running(p_campaign, p_actor, v_now);
	PERFORM rollout_audit(p_actor, 'campaign.start', p_campaign,
	                      jsonb_build_object('state', c.state), jsonb_build_object('state', 'running'));
	RETURN 'running';
END $$;

-- Four-eyes: the approver must not be the operator who created the campaign.
CREATE FUNCTION rollout_approve(p_campaign text, p_actor text, p_now timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
	c := rollout_lock(p_campaign);
	IF c.approved_by IS NOT NULL AND c.state <> 'draft' AND c.state <> 'awaiting_approval' THEN
		RETURN c.state;                      -- idempotent
	END IF;
	IF NOT c.requires_approval THEN
		PERFORM rollout_fail('FO409', format('campaign %s does not require approval', p_campaign));
	END IF;
	IF c.state NOT IN ('draft', 'awaiting_approval') THEN
		PERFORM rollout_fail('FO409', format('campaign %s is %s', p_campaign, c.state));
	END IF;
	IF coalesce(p_actor, '') = '' OR p_actor = c.created_by THEN
		PERFORM rollout_fail('FO403', 'four-eyes: the approver must differ from the creator ' || c.created_by);
	END IF;
	UPDATE campaigns SET approved_by = p_actor, approved_at = v_now, updated_at = v_now
	WHERE campaign_id = p_campaign;
	PERFORM rollout_event(p_campaign, 'approved', NULL, 'by ' || p_actor, v_now);
	IF c.state = 'awaiting_approval' THEN
		PERFORM rollout_go_running(p_campaign, p_actor, v_now);
	END IF;
	PERFORM rollout_audit(p_actor, 'campaign.approve', p_campaign,
	                      jsonb_build_object('state', c.state),
	                      jsonb_build_object('state', (SELECT state FROM campaigns WHERE campaign_id = p_campaign),
	                                         'approved_by', p_actor));
	RETURN (SELECT state FROM campaigns WHERE campaign_id = p_campaign);
END $$;

CREATE FUNCTION rollout_pause(p_campaign text, p_actor text, p_reason text DEFAULT NULL,
                              p_now timestamptz DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
	c := rollout_lock(p_campaign);
	IF c.state = 'paused' THEN
		RETURN 'paused';
	END IF;
	IF c.state <> 'running' THEN
		PERFORM rollout_fail('FO409', format('campaign %s is %s, only a running campaign pauses', p_campaign, c.state));
	END IF;
	UPDATE campaigns
	SET state = 'paused', state_reason = coalesce(p_reason, 'paused by ' || p_actor), updated_at = v_now
	WHERE campaign_id = p_campaign;
	PERFORM rollout_event(p_campaign, 'paused', c.current_stage, coalesce(p_reason, 'by ' || p_actor), v_now);
	PERFORM rollout_audit(p_actor, 'campaign.pause', p_campaign,
	                      jsonb_build_object('state', c.state), jsonb_build_object('state', 'paused'));
	RETURN 'paused';
END $$;

-- Resuming acknowledges the failures seen so far: the failure threshold then
-- applies to new failures only (otherwise the campaign would pause again at
-- once). The acknowledged counts are kept per stage.
CREATE FUNCTION rollout_resume(p_campaign text, p_actor text, p_now timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
	c := rollout_lock(p_campaign);
	IF c.state = 'running' THEN
		RETURN 'running';
	END IF;
	IF c.state <> 'paused' THEN
		PERFORM rollout_fail('FO409', format('campaign %s is %s, only a paused campaign resumes', p_campaign, c.state));
	END IF;
	PERFORM pg_advisory_xact_lock(rollout_lock_key());
	PERFORM rollout_check_priority(p_campaign);
	UPDATE campaign_stages s
	SET failures_acked = coalesce((SELECT count(*) FROM campaign_devices m
	                               WHERE m.campaign_id = p_campaign AND m.stage_no = s.stage_no
	                                 AND m.state IN ('failed', 'timed_out')), 0)
	WHERE s.campaign_id = p_campaign;
	UPDATE campaigns
	SET state = 'running', state_reason = '', bucket_at = NULL, bucket_tokens = rate_burst,
	    admitted_at = NULL, updated_at = v_now
	WHERE campaign_id = p_campaign;
	PERFORM rollout_event(p_campaign, 'resumed', c.current_stage, 'by ' || p_actor, v_now);
	PERFORM rollout_audit(p_actor, 'campaign.resume', p_campaign,
	                      jsonb_build_object('state', c.state, 'reason', c.state_reason),
	                      jsonb_build_object('state', 'running'));
	RETURN 'running';
END $$;

-- Devices not yet notified are released (state cancelled); devices in flight
-- finish what they started and their reports are still recorded.
CREATE FUNCTION rollout_cancel(p_campaign text, p_actor text, p_now timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
	c := rollout_lock(p_campaign);
	IF c.state = 'cancelled' THEN
		RETURN 'cancelled';
	END IF;
	IF c.state IN ('completed', 'failed') THEN
		PERFORM rollout_fail('FO409', format('campaign %s is %s', p_campaign, c.state));
	END IF;
	UPDATE campaign_devices SET state = 'cancelled', updated_at = v_now
	WHERE campaign_id = p_campaign AND state = 'pending';
	UPDATE campaigns
	SET state = 'cancelled', state_reason = 'cancelled by ' || p_actor, finished_at = v_now,
	    lease_owner = NULL, lease_until = NULL, updated_at = v_now
	WHERE campaign_id = p_campaign;
	PERFORM rollout_event(p_campaign, 'cancelled', c.current_stage, 'by ' || p_actor, v_now);
	PERFORM rollout_audit(p_actor, 'campaign.cancel', p_campaign,
	                      jsonb_build_object('state', c.state), jsonb_build_object('state', 'cancelled'));
	RETURN 'cancelled';
END $$;

-- ---------------------------------------------------------------------------
-- The tick's parts, per campaign (called with the campaign row locked).

-- (b) Admission into the current stage, set-based.
CREATE FUNCTION rollout_admit(p_campaign text, p_now timestamptz) RETURNS bigint
LANGUAGE plpgsql SET work_mem = '64MB' AS $$
DECLARE
	c campaigns%ROWTYPE;
	s campaign_stages%ROWTYPE;
	a artifacts%ROWTYPE;
	v_members bigint;
	v_target bigint;
	v_quota bigint;
	v_admitted bigint := 0;
	v_latest_kl bigint;
	v_latest_kl_has_key boolean := false;
	v_batch bigint := greatest(1, rollout_setting('admission_batch', '100000')::bigint);
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	SELECT * INTO s FROM campaign_stages WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
	IF c.kind = 'firmware' THEN
		SELECT * INTO a FROM artifacts WHERE artifact_id = c.artifact_id;
		SELECT k.version, a.signing_key_id = ANY (k.key_ids) INTO v_latest_kl, v_latest_kl_has_key
		FROM keylists k ORDER BY k.version DESC LIMIT 1;
	END IF;

	CREATE TEMP TABLE IF NOT EXISTS rollout_tmp_target (device_id text NOT NULL) ON COMMIT DROP;
	TRUNCATE rollout_tmp_target;
	INSERT INTO rollout_tmp_target SELECT t.device_id FROM rollout_target(p_campaign) t;
	ANALYZE rollout_tmp_target;

	SELECT count(*) INTO v_members FROM campaign_devices
	WHERE campaign_id = p_campaign AND state NOT IN ('superseded', 'cancelled');
	-- the target as it is now: matching devices plus members that left it
	SELECT v_members + count(*) INTO v_target
	FROM rollout_tmp_target t
	WHERE NOT EXISTS (SELECT 1 FROM campaign_devices m
	                  WHERE m.campaign_id = p_campaign AND m.device_id = t.device_id
	                    AND m.state NOT IN ('superseded', 'cancelled'));
	v_quota := CASE WHEN s.device_count IS NOT NULL THEN least(s.device_count, v_target)
	                ELSE ceil(v_target * s.percent / 100.0)::bigint END;

	IF v_quota > v_members THEN
		WITH chosen AS (
			SELECT d.device_id, d.version_code, d.keylist_version, d.rootlist_version,
			       coalesce(nullif(d.keylist_key_ids, '{}'), k.key_ids, '{}') AS key_ids
			FROM rollout_tmp_target t
			JOIN devices d ON d.device_id = t.device_id
			LEFT JOIN keylists k ON k.version = d.keylist_version
			WHERE NOT EXISTS (SELECT 1 FROM campaign_devices m
			                  WHERE m.campaign_id = p_campaign AND m.device_id = t.device_id)
			  -- a higher-priority campaign holds the device: not ours
			  AND NOT EXISTS (SELECT 1 FROM campaign_devices m JOIN campaigns o USING (campaign_id)
			                  WHERE m.device_id = t.device_id AND o.priority > c.priority
			                    AND o.state IN ('running', 'paused')
			                    AND m.state IN ('pending', 'notified', 'downloading', 'installed'))
			ORDER BY hashtextextended(t.device_id, hashtext(p_campaign)), t.device_id
			LIMIT least(v_quota - v_members, v_batch)
		), ins AS (
			INSERT INTO campaign_devices (campaign_id, device_id, stage_no, step, needed_keylist, state,
			                              error, already, admit_seq, admitted_at, done_at, updated_at)
			SELECT p_campaign, ch.device_id, c.current_stage,
			       CASE WHEN c.kind = 'firmware' AND ch.version_code <> a.version_code
			                 AND NOT (a.signing_key_id = ANY (ch.key_ids)) THEN 'keylist'
			            WHEN c.kind = 'rootlist' THEN 'rootlist'
			            WHEN c.kind = 'keylist' THEN 'keylist'
			            ELSE 'firmware' END,
			       CASE WHEN c.kind = 'firmware' AND ch.version_code <> a.version_code
			                 AND NOT (a.signing_key_id = ANY (ch.key_ids)) THEN coalesce(v_latest_kl, 0)
			            WHEN c.kind = 'keylist' THEN c.keylist_version
			            ELSE 0 END,
			       st.state, st.error, st.state = 'confirmed',
			       nextval('campaign_devices_admit_seq'), p_now,
			       CASE WHEN st.state IN ('confirmed', 'failed') THEN p_now END, p_now
			FROM chosen ch,
			     LATERAL (SELECT CASE
			         WHEN c.kind = 'firmware' AND ch.version_code = a.version_code THEN 'confirmed'
			         WHEN c.kind = 'keylist' AND ch.keylist_version >= c.keylist_version THEN 'confirmed'
			         WHEN c.kind = 'rootlist' AND ch.rootlist_version >= c.rootlist_version THEN 'confirmed'
			         -- the device cannot verify the manifest and no KeyList it
			         -- could move to trusts the signing key
			         WHEN c.kind = 'firmware' AND NOT (a.signing_key_id = ANY (ch.key_ids))
			              AND (v_latest_kl IS NULL OR NOT v_latest_kl_has_key
			                   OR v_latest_kl <= ch.keylist_version) THEN 'failed'
			         ELSE 'pending' END AS state,
			       CASE WHEN c.kind = 'firmware' AND ch.version_code <> a.version_code
			                 AND NOT (a.signing_key_id = ANY (ch.key_ids))
			                 AND (v_latest_kl IS NULL OR NOT v_latest_kl_has_key
			                      OR v_latest_kl <= ch.keylist_version)
			            THEN 'OTA_ERR_KEY_UNKNOWN' ELSE '' END AS error) st
			RETURNING device_id
		), sup AS (
			-- a lower-priority campaign loses the devices it has not notified yet
			UPDATE campaign_devices m SET state = 'superseded', updated_at = p_now
			FROM campaigns o
			WHERE o.campaign_id = m.campaign_id AND o.priority < c.priority
			  AND m.state = 'pending' AND m.device_id IN (SELECT device_id FROM ins)
			RETURNING 1
		)
		SELECT count(*) INTO v_admitted FROM ins;
	END IF;
	-- a full batch: more to admit, do not wait for the admission interval
	UPDATE campaigns SET admitted_at = CASE WHEN v_admitted >= v_batch THEN NULL ELSE p_now END,
	       target_size = v_target
	WHERE campaign_id = p_campaign;
	RETURN v_admitted;
END $$;

-- (d) Devices that did not report within the timeout count as failed.
CREATE FUNCTION rollout_timeouts(p_campaign text, p_now timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_timeout integer;
	v_count bigint;
BEGIN
	SELECT device_timeout_s INTO v_timeout FROM campaigns WHERE campaign_id = p_campaign;
	UPDATE campaign_devices
	SET state = 'timed_out', error = 'OTA_ERR_TIMEOUT', done_at = p_now, updated_at = p_now
	WHERE campaign_id = p_campaign AND state IN ('notified', 'downloading', 'installed')
	  AND greatest(notified_at, last_report_at) + make_interval(secs => v_timeout) <= p_now;
	GET DIAGNOSTICS v_count = ROW_COUNT;
	RETURN v_count;
END $$;

-- Counts per stage, derived from per-device rows (also for the REST API).
CREATE FUNCTION rollout_stage_counts(p_campaign text)
RETURNS TABLE (stage_no integer, admitted bigint, pending bigint, in_flight bigint,
               confirmed bigint, failed bigint, timed_out bigint, superseded bigint,
               cancelled bigint)
LANGUAGE sql STABLE AS $$
	SELECT s.stage_no,
	       count(m.device_id) FILTER (WHERE m.state NOT IN ('superseded', 'cancelled')),
	       count(m.device_id) FILTER (WHERE m.state = 'pending'),
	       count(m.device_id) FILTER (WHERE m.state IN ('notified', 'downloading', 'installed')),
	       count(m.device_id) FILTER (WHERE m.state = 'confirmed'),
	       count(m.device_id) FILTER (WHERE m.state = 'failed'),
	       count(m.device_id) FILTER (WHERE m.state = 'timed_out'),
	       count(m.device_id) FILTER (WHERE m.state = 'superseded'),
	       count(m.device_id) FILTER (WHERE m.state = 'cancelled')
	FROM campaign_stages s
	LEFT JOIN campaign_devices m ON m.campaign_id = s.campaign_id AND m.stage_no = s.stage_no
	WHERE s.campaign_id = p_campaign
	GROUP BY s.stage_no
	ORDER BY s.stage_no
$$;

-- (e) Stage evaluation. Returns true when the stage advanced (the caller
-- admits again for the new stage).
CREATE FUNCTION rollout_evaluate(p_campaign text, p_now timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	s campaign_stages%ROWTYPE;
	r record;
	cur record;
	v_members bigint := 0;
	v_last integer;
	v_quota bigint;
	v_errors text;
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	-- failure threshold, every stage so far (late failures of an earlier
	-- stage count too); one pass over the counts serves the whole evaluation
	FOR r IN SELECT k.*, st.failure_ratio, st.failures_acked
	         FROM rollout_stage_counts(p_campaign) k
	         JOIN campaign_stages st ON st.campaign_id = p_campaign AND st.stage_no = k.stage_no
	         ORDER BY k.stage_no LOOP
		v_members := v_members + r.admitted;
		IF r.stage_no = c.current_stage THEN
			cur := r;
		END IF;
		IF r.stage_no <= c.current_stage AND r.admitted > 0
		   AND (r.failed + r.timed_out - r.failures_acked)::numeric / r.admitted > r.failure_ratio THEN
			SELECT string_agg(format('%s: %s', e.error, e.n), ', ' ORDER BY e.n DESC, e.error)
			INTO v_errors
			FROM (SELECT m.error, count(*) AS n FROM campaign_devices m
			      WHERE m.campaign_id = p_campaign AND m.stage_no = r.stage_no
			        AND m.state IN ('failed', 'timed_out')
			      GROUP BY m.error) e;
			UPDATE campaigns
			SET state = 'paused', updated_at = p_now,
			    state_reason = format('stage %s: %s of %s devices failed (%s), over the failure threshold %s',
			                          r.stage_no, r.failed + r.timed_out, r.admitted, v_errors,
			                          r.failure_ratio)
			WHERE campaign_id = p_campaign;
			PERFORM rollout_event(p_campaign, 'paused', r.stage_no,
			                      (SELECT state_reason FROM campaigns WHERE campaign_id = p_campaign), p_now);
			RETURN false;
		END IF;
	END LOOP;

	SELECT * INTO s FROM campaign_stages WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
	r := cur;
	v_quota := CASE WHEN s.device_count IS NOT NULL THEN least(s.device_count, c.target_size)
	                ELSE ceil(c.target_size * s.percent / 100.0)::bigint END;
	-- success: the stage holds its share of the target and enough of them
	-- confirmed (an empty stage succeeds at once)
	IF s.succeeded_at IS NULL THEN
		IF v_members >= v_quota
		   AND (r.admitted = 0 OR r.confirmed::numeric / r.admitted >= s.success_ratio) THEN
			UPDATE campaign_stages SET succeeded_at = p_now
			WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
			PERFORM rollout_event(p_campaign, 'stage_succeeded', c.current_stage,
			                      format('%s of %s confirmed; soak %s s', r.confirmed, r.admitted, s.soak_s), p_now);
			s.succeeded_at := p_now;
		ELSE
			RETURN false;
		END IF;
	END IF;
	IF p_now < s.succeeded_at + make_interval(secs => s.soak_s) THEN
		RETURN false;
	END IF;
	SELECT max(stage_no) INTO v_last FROM campaign_stages WHERE campaign_id = p_campaign;
	IF c.current_stage >= v_last THEN
		IF c.keep_open THEN
			RETURN false;                -- a standing rollout keeps admitting
		END IF;
		UPDATE campaign_stages SET completed_at = coalesce(completed_at, p_now)
		WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
		UPDATE campaigns
		SET state = 'completed', state_reason = '', finished_at = p_now,
		    lease_owner = NULL, lease_until = NULL, updated_at = p_now
		WHERE campaign_id = p_campaign;
		PERFORM rollout_event(p_campaign, 'completed', c.current_stage, '', p_now);
		RETURN false;
	END IF;
	UPDATE campaign_stages SET completed_at = coalesce(completed_at, p_now)
	WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
	UPDATE campaign_stages SET started_at = coalesce(started_at, p_now)
	WHERE campaign_id = p_campaign AND stage_no = c.current_stage + 1;
	UPDATE campaigns SET current_stage = c.current_stage + 1, updated_at = p_now
	WHERE campaign_id = p_campaign;
	PERFORM rollout_event(p_campaign, 'stage_started', c.current_stage + 1, '', p_now);
	RETURN true;
END $$;

-- (c) Notifications: within the token bucket, the stage's max in flight and
-- the maintenance windows. Marks the devices notified and records each
-- notification; returns them for the server to publish.
CREATE FUNCTION rollout_notify(p_campaign text, p_server text, p_now timestamptz, p_lease_s integer,
                               p_max integer)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
	c campaigns%ROWTYPE;
	v_max_in_flight integer;
	v_in_flight bigint;
	v_tokens double precision;
	v_budget bigint;
	v_reissued bigint := 0;
	v_count bigint := 0;
	v_ids bigint[];
BEGIN
	SELECT * INTO c FROM campaigns WHERE campaign_id = p_campaign;
	v_tokens := least(c.rate_burst::double precision,
	                  c.bucket_tokens + greatest(0, extract(epoch FROM p_now - coalesce(c.bucket_at, p_now)))
	                                    * c.rate_per_minute / 60.0);
	IF NOT rollout_in_window(p_campaign, p_now) THEN
		UPDATE campaigns SET bucket_tokens = v_tokens, bucket_at = p_now WHERE campaign_id = p_campaign;
		RETURN;
	END IF;
	SELECT max_in_flight INTO v_max_in_flight FROM campaign_stages
	WHERE campaign_id = p_campaign AND stage_no = c.current_stage;
	SELECT count(*) INTO v_in_flight FROM campaign_devices
	WHERE campaign_id = p_campaign AND state IN ('notified', 'downloading', 'installed');
	v_budget := greatest(0, least(floor(v_tokens + 1e-9)::bigint, v_max_in_flight - v_in_flight, p_max));

	-- notifications handed to a server that never published them (it died
	-- within the lease): issue them again first; they are already in flight
	WITH lost AS (
		SELECT n.id FROM rollout_notifications n
		JOIN campaign_devices m ON m.campaign_id = n.campaign_id AND m.device_id = n.device_id
		WHERE n.campaign_id = p_campaign AND n.published_at IS NULL AND NOT n.reissued
		  AND n.created_at + make_interval(secs => p_lease_s) <= p_now
		  AND m.state = 'notified'
		ORDER BY n.id
		LIMIT greatest(0, least(floor(v_tokens + 1e-9)::bigint, p_max))
		FOR UPDATE OF n SKIP LOCKED
	), old AS (
		UPDATE rollout_notifications n SET reissued = true FROM lost
		WHERE n.id = lost.id
		RETURNING n.campaign_id, n.device_id, n.stage_no, n.step
	), upd AS (
		UPDATE campaign_devices m SET notified_at = p_now, notify_count = notify_count + 1, updated_at = p_now
		FROM old WHERE m.campaign_id = old.campaign_id AND m.device_id = old.device_id
		RETURNING m.device_id
	), ins AS (
		INSERT INTO rollout_notifications (campaign_id, device_id, stage_no, step, server_id, created_at)
		SELECT old.campaign_id, old.device_id, old.stage_no, old.step, p_server, p_now FROM old
		RETURNING id
	)
	SELECT count(*), array_agg(id) INTO v_reissued, v_ids FROM ins;
	IF v_reissued > 0 THEN
		RETURN QUERY SELECT unnest(v_ids);
	END IF;
	v_budget := greatest(0, least(v_budget, floor(v_tokens + 1e-9)::bigint - v_reissued, p_max - v_reissued));

	IF v_budget > 0 THEN
		WITH picked AS (
			SELECT m.device_id, m.stage_no, m.step FROM campaign_devices m
			WHERE m.campaign_id = p_campaign AND m.state = 'pending'
			  -- one update at a time per device: not while another running
			  -- campaign has it in flight (a finished campaign's stragglers do not block)
			  AND NOT EXISTS (SELECT 1 FROM campaign_devices o JOIN campaigns oc USING (campaign_id)
			                  WHERE o.device_id = m.device_id AND o.campaign_id <> p_campaign
			                    AND o.state IN ('notified', 'downloading', 'installed')
			                    AND oc.state IN ('running', 'paused'))
			ORDER BY m.stage_no, m.admit_seq
			LIMIT v_budget
			FOR UPDATE OF m SKIP LOCKED
		), upd AS (
			UPDATE campaign_devices m
			SET state = 'notified', notified_at = p_now, notify_count = notify_count + 1, updated_at = p_now
			FROM picked WHERE m.campaign_id = p_campaign AND m.device_id = picked.device_id
			RETURNING m.device_id, m.stage_no, m.step
		), asg AS (
			-- delivery serves a device only what assignments allow
			INSERT INTO assignments (device_id, artifact_id, campaign_id, state, notified_at, notify_count,
			                         notify_after, updated_at)
			SELECT upd.device_id, c.artifact_id, p_campaign, 'notified', p_now, 1, p_now, p_now
			FROM upd WHERE c.kind = 'firmware'
			ON CONFLICT (device_id, artifact_id) DO UPDATE
			SET campaign_id = EXCLUDED.campaign_id, state = 'notified', notified_at = EXCLUDED.notified_at,
			    notify_count = assignments.notify_count + 1, updated_at = EXCLUDED.updated_at
			RETURNING 1
		), ins AS (
			INSERT INTO rollout_notifications (campaign_id, device_id, stage_no, step, server_id, created_at)
			SELECT p_campaign, upd.device_id, upd.stage_no, upd.step, p_server, p_now FROM upd
			RETURNING id
		)
		SELECT count(*), array_agg(id) INTO v_count, v_ids FROM ins;
		IF v_count > 0 THEN
			RETURN QUERY SELECT unnest(v_ids);
		END IF;
	END IF;
	UPDATE campaigns SET bucket_tokens = greatest(0, v_tokens - v_reissued - v_count), bucket_at = p_now
	WHERE campaign_id = p_campaign;
END $$;

-- ---------------------------------------------------------------------------
-- The tick: one call per server and period, one transaction.
--   (a) claims due campaigns (running, start time reached) that no live
--       server holds, with FOR UPDATE SKIP LOCKED, and leases them to
--       p_server for p_lease_s seconds: a killed server's campaigns are taken
--       over when the lease expires, its unpublished notifications re-issued;
--   then per campaign: timeouts, admission, stage evaluation, notifications.
-- Returns what to publish now (Notify fields); the server publishes, then
-- calls rollout_published() with the ids.
CREATE FUNCTION rollout_tick(p_server text, p_now timestamptz DEFAULT NULL, p_lease_s integer DEFAULT 30,
                             p_max_campaigns integer DEFAULT 32, p_max_notify integer DEFAULT 10000)
RETURNS TABLE (notification_id bigint, campaign_id text, device_id text, kind text, artifact_id text,
               version text, version_code bigint, is_security_update boolean, keylist_version bigint,
               rootlist_version bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	c campaigns%ROWTYPE;
	v_now timestamptz;
	v_ids bigint[] := '{}';
	v_interval integer := rollout_setting('admission_interval_s', '30')::integer;
	v_advanced boolean;
	v_guard integer;
BEGIN
	IF coalesce(p_server, '') = '' THEN
		PERFORM rollout_fail('FO422', 'server id required');
	END IF;
	-- One tick at a time across all servers: rules that span campaigns (a
	-- device in one update at a time, priorities) then need no further
	-- locking. A server that finds another ticking skips this period; the
	-- work is set-based, so nothing is gained by ticking in parallel.
	IF NOT pg_try_advisory_xact_lock(rollout_lock_key()) THEN
		RETURN;
	END IF;
	FOR c IN SELECT * FROM campaigns k
	         WHERE k.state = 'running'
	           AND (k.start_at IS NULL OR k.start_at <= coalesce(p_now, clock_timestamp()))
	           AND (k.lease_owner IS NULL OR k.lease_owner = p_server
	                OR k.lease_until <= coalesce(p_now, clock_timestamp()))
	         ORDER BY k.priority DESC, k.created_at
	         LIMIT p_max_campaigns
	         FOR UPDATE SKIP LOCKED LOOP
		-- time never runs backwards for a campaign, whoever ticks it
		v_now := greatest(coalesce(p_now, clock_timestamp()), c.bucket_at, c.admitted_at);
		IF c.lease_owner IS DISTINCT FROM p_server THEN
			PERFORM rollout_event(c.campaign_id, 'lease', c.current_stage,
			                      format('%s took over from %s', p_server, coalesce(c.lease_owner, '-')), v_now);
		END IF;
		UPDATE campaigns k SET lease_owner = p_server, lease_until = v_now + make_interval(secs => p_lease_s)
		WHERE k.campaign_id = c.campaign_id;
		IF c.kind = 'firmware' AND EXISTS (
			SELECT 1 FROM artifacts x WHERE x.artifact_id = c.artifact_id
			AND x.expires_at <> 0 AND x.expires_at <= extract(epoch FROM v_now)) THEN
			UPDATE campaigns k SET state = 'failed', state_reason = 'artifact expired (OTA_ERR_EXPIRED)',
			       finished_at = v_now, lease_owner = NULL, lease_until = NULL, updated_at = v_now
			WHERE k.campaign_id = c.campaign_id;
			UPDATE campaign_devices m SET state = 'cancelled', updated_at = v_now
			WHERE m.campaign_id = c.campaign_id AND m.state = 'pending';
			PERFORM rollout_event(c.campaign_id, 'failed', c.current_stage, 'artifact expired', v_now);
			CONTINUE;
		END IF;
		PERFORM rollout_timeouts(c.campaign_id, v_now);
		v_guard := 0;
		LOOP
			SELECT * INTO c FROM campaigns k WHERE k.campaign_id = c.campaign_id;
			IF c.admitted_at IS NULL OR c.admitted_at + make_interval(secs => v_interval) <= v_now
			   OR v_guard > 0 THEN
				PERFORM rollout_admit(c.campaign_id, v_now);
			END IF;
			v_advanced := rollout_evaluate(c.campaign_id, v_now);
			v_guard := v_guard + 1;
			EXIT WHEN NOT v_advanced OR v_guard > 33;
		END LOOP;
		IF (SELECT k.state FROM campaigns k WHERE k.campaign_id = c.campaign_id) = 'running' THEN
			v_ids := v_ids || ARRAY(SELECT rollout_notify(c.campaign_id, p_server, v_now, p_lease_s,
			                                              greatest(0, p_max_notify - cardinality(v_ids))));
		END IF;
	END LOOP;
	RETURN QUERY
	SELECT n.id, n.campaign_id, n.device_id, n.step, k.artifact_id, a.version, a.version_code,
	       coalesce(a.is_security_update, false),
	       CASE WHEN n.step = 'keylist' THEN coalesce(nullif(m.needed_keylist, 0), k.keylist_version) END,
	       k.rootlist_version
	FROM rollout_notifications n
	JOIN campaigns k ON k.campaign_id = n.campaign_id
	JOIN campaign_devices m ON m.campaign_id = n.campaign_id AND m.device_id = n.device_id
	LEFT JOIN artifacts a ON a.artifact_id = k.artifact_id
	WHERE n.id = ANY (v_ids)
	ORDER BY n.id;
END $$;

-- The server handed these notifications to the broker. Idempotent.
CREATE FUNCTION rollout_published(p_ids bigint[], p_now timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_count bigint;
BEGIN
	UPDATE rollout_notifications SET published_at = coalesce(p_now, clock_timestamp())
	WHERE id = ANY (p_ids) AND published_at IS NULL;
	GET DIAGNOSTICS v_count = ROW_COUNT;
	RETURN v_count;
END $$;

-- ---------------------------------------------------------------------------
-- A StatusReport arrived (after the server stored it in devices and
-- device_events). p_state is the report's DeviceState in lower case without
-- prefix: idle, downloading, verifying, pending, trial, confirmed, reverted,
-- rejected, failed. Returns the number of campaign rows changed; a repeated
-- report changes nothing.
--
-- Truth comes from the version the device reports running: a device is
-- confirmed only when it runs the campaign's version (or newer) and says so
-- outside of a trial; a device that reverted is failed with the version it
-- really runs recorded, and a new campaign can target it again; a device that
-- timed out and reports later is reconciled to what it reports.
CREATE FUNCTION rollout_report(p_device text, p_state text, p_version_code bigint,
                               p_keylist_version bigint DEFAULT NULL, p_rootlist_version bigint DEFAULT NULL,
                               p_error text DEFAULT '', p_campaign text DEFAULT '',
                               p_now timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_now timestamptz := coalesce(p_now, clock_timestamp());
	v_count bigint;
	v_state text := lower(coalesce(p_state, ''));
	v_error text := coalesce(p_error, '');
BEGIN
	IF v_state NOT IN ('idle', 'downloading', 'verifying', 'pending', 'trial', 'confirmed', 'reverted',
	                   'rejected', 'failed', 'unspecified', 'unknown') THEN
		PERFORM rollout_fail('FO422', 'state: unknown device state ' || v_state);
	END IF;
	IF v_state = 'reverted' AND v_error = '' THEN
		v_error := 'OTA_ERR_SELFTEST';
	ELSIF v_state IN ('rejected', 'failed') AND v_error = '' THEN
		v_error := 'OTA_ERR_TRANSPORT';
	END IF;
	WITH cur AS (
		SELECT m.campaign_id, m.device_id, m.state AS old_state, m.step, m.needed_keylist,
		       k.kind, k.keylist_version AS c_kl, k.rootlist_version AS c_rl, a.version_code AS c_vc,
		       m.state IN ('notified', 'downloading', 'installed', 'timed_out')
		       AND (coalesce(p_campaign, '') = '' OR p_campaign = m.campaign_id) AS addressed
		FROM campaign_devices m
		JOIN campaigns k ON k.campaign_id = m.campaign_id
		LEFT JOIN artifacts a ON a.artifact_id = k.artifact_id
		WHERE m.device_id = p_device
		  AND m.state NOT IN ('confirmed', 'superseded', 'cancelled')
		  AND k.state NOT IN ('draft', 'awaiting_approval')
		FOR UPDATE OF m
	), nxt AS (
		SELECT cur.*,
		CASE
			-- the version it runs is what counts
			WHEN cur.kind = 'firmware' AND cur.step = 'firmware' AND p_version_code >= cur.c_vc
			     AND v_state IN ('idle', 'confirmed') THEN 'confirmed'
			WHEN cur.kind = 'keylist' AND p_keylist_version >= cur.c_kl THEN 'confirmed'
			WHEN cur.kind = 'rootlist' AND p_rootlist_version >= cur.c_rl THEN 'confirmed'
			-- key-list step done: the firmware step follows (notified again)
			WHEN cur.kind = 'firmware' AND cur.step = 'keylist' AND p_keylist_version >= cur.needed_keylist
			     AND cur.old_state <> 'failed' THEN 'pending'
			WHEN NOT cur.addressed THEN cur.old_state
			WHEN v_state IN ('reverted', 'rejected', 'failed') THEN 'failed'
			WHEN cur.old_state = 'timed_out' THEN 'timed_out'
			WHEN cur.kind = 'firmware' AND v_state IN ('pending', 'trial') THEN 'installed'
			WHEN v_state IN ('downloading', 'verifying') AND cur.old_state IN ('notified', 'downloading')
			     THEN 'downloading'
			ELSE cur.old_state
		END AS new_state
		FROM cur
	), upd AS (
		UPDATE campaign_devices m
		SET state = nxt.new_state,
		    step = CASE WHEN nxt.step = 'keylist' AND nxt.kind = 'firmware' AND nxt.new_state = 'pending'
		                THEN 'firmware' ELSE m.step END,
		    error = CASE WHEN nxt.new_state = 'failed' AND nxt.old_state <> 'failed' THEN v_error
		                 WHEN nxt.new_state IN ('confirmed', 'pending') THEN '' ELSE m.error END,
		    reconciled = m.reconciled OR (nxt.old_state = 'timed_out' AND nxt.new_state <> 'timed_out'),
		    done_at = CASE WHEN nxt.new_state IN ('confirmed', 'failed') THEN coalesce(m.done_at, v_now)
		                   WHEN nxt.new_state = 'pending' THEN NULL ELSE m.done_at END,
		    notified_at = CASE WHEN nxt.new_state = 'pending' THEN NULL ELSE m.notified_at END,
		    last_report_at = v_now,
		    reported_version_code = coalesce(p_version_code, m.reported_version_code),
		    reported_keylist = coalesce(p_keylist_version, m.reported_keylist),
		    updated_at = v_now
		FROM nxt
		WHERE m.campaign_id = nxt.campaign_id AND m.device_id = nxt.device_id
		  AND (nxt.new_state <> nxt.old_state
		       OR m.reported_version_code IS DISTINCT FROM coalesce(p_version_code, m.reported_version_code)
		       OR (nxt.addressed AND nxt.new_state NOT IN ('failed', 'timed_out')))
		RETURNING m.campaign_id, m.device_id, m.state, nxt.old_state
	), asg AS (
		UPDATE assignments x SET state = upd.state, updated_at = v_now
		FROM upd
		WHERE x.device_id = upd.device_id AND x.campaign_id = upd.campaign_id AND x.state <> upd.state
		RETURNING 1
	)
	SELECT count(*) FILTER (WHERE upd.state <> upd.old_state) INTO v_count FROM upd;
	RETURN v_count;
END $$;

-- ---------------------------------------------------------------------------
-- Per-device view of a campaign (for the REST API).
CREATE FUNCTION rollout_status(p_campaign text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object(
		'id', k.campaign_id, 'kind', k.kind, 'artifact', k.artifact_id,
		'keylist_version', k.keylist_version, 'rootlist_version', k.rootlist_version,
		'state', k.state, 'reason', k.state_reason, 'current_stage', k.current_stage,
		'priority', k.priority, 'target', k.target_filter, 'target_size', k.target_size,
		'keep_open', k.keep_open,
		'rate_per_minute', k.rate_per_minute, 'rate_burst', k.rate_burst,
		'device_timeout_seconds', k.device_timeout_s, 'start_at', k.start_at,
		'requires_approval', k.requires_approval, 'created_by', k.created_by,
		'approved_by', k.approved_by, 'created_at', k.created_at, 'started_at', k.started_at,
		'finished_at', k.finished_at,
		'windows', coalesce((SELECT jsonb_agg(jsonb_build_object('days', w.days, 'start_minute', w.start_minute,
		                                                        'duration_minutes', w.duration_minutes)
		                                      ORDER BY w.window_no)
		                     FROM campaign_windows w WHERE w.campaign_id = k.campaign_id), '[]'),
		'stages', coalesce((SELECT jsonb_agg(jsonb_build_object(
			'stage', s.stage_no, 'count', s.device_count, 'percent', s.percent,
			'success_ratio', s.success_ratio, 'failure_ratio', s.failure_ratio,
			'soak_seconds', s.soak_s, 'max_in_flight', s.max_in_flight,
			'started_at', s.started_at, 'succeeded_at', s.succeeded_at, 'completed_at', s.completed_at,
			'devices', jsonb_build_object('admitted', n.admitted, 'pending', n.pending,
			                              'in_flight', n.in_flight, 'confirmed', n.confirmed,
			                              'failed', n.failed, 'timed_out', n.timed_out,
			                              'superseded', n.superseded, 'cancelled', n.cancelled))
			ORDER BY s.stage_no)
			FROM campaign_stages s JOIN rollout_stage_counts(k.campaign_id) n ON n.stage_no = s.stage_no
			WHERE s.campaign_id = k.campaign_id), '[]'))
	FROM campaigns k WHERE k.campaign_id = p_campaign
$$;

-- For the REST API: one call that changes and returns the new view (a
-- PL/pgSQL body sees its own changes; a single SELECT would not).
CREATE FUNCTION rollout_api_create(p_spec jsonb, p_actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_id text;
BEGIN
	v_id := rollout_create(p_spec, p_actor);
	RETURN rollout_status(v_id);
END $$;

CREATE FUNCTION rollout_api_action(p_campaign text, p_action text, p_actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	CASE p_action
	WHEN 'start' THEN PERFORM rollout_start(p_campaign, p_actor);
	WHEN 'approve' THEN PERFORM rollout_approve(p_campaign, p_actor);
	WHEN 'pause' THEN PERFORM rollout_pause(p_campaign, p_actor);
	WHEN 'resume' THEN PERFORM rollout_resume(p_campaign, p_actor);
	WHEN 'cancel' THEN PERFORM rollout_cancel(p_campaign, p_actor);
	ELSE PERFORM rollout_fail('FO422', 'action: start, approve, pause, resume or cancel');
	END CASE;
	RETURN rollout_status(p_campaign);
END $$;

-- ---------------------------------------------------------------------------
-- Key rotation tracking.

-- Fleet share per KeyList version (decommissioned devices excluded).
CREATE FUNCTION rollout_keylist_coverage()
RETURNS TABLE (keylist_version bigint, devices bigint, share numeric, last_seen timestamptz)
LANGUAGE sql STABLE AS $$
	SELECT d.keylist_version, count(*),
	       round(count(*)::numeric / nullif(sum(count(*)) OVER (), 0), 6),
	       max(d.last_seen)
	FROM devices d WHERE NOT d.decommissioned
	GROUP BY d.keylist_version ORDER BY d.keylist_version
$$;

-- Devices still below a KeyList version, least recently seen first (the ones
-- most likely to need a visit).
CREATE FUNCTION rollout_keylist_stragglers(p_min_version bigint, p_limit integer DEFAULT 100,
                                           p_offset integer DEFAULT 0)
RETURNS TABLE (device_id text, keylist_version bigint, model text, version text, last_seen timestamptz)
LANGUAGE sql STABLE AS $$
	SELECT d.device_id, d.keylist_version, d.model, d.version, d.last_seen
	FROM devices d
	WHERE NOT d.decommissioned AND d.keylist_version < p_min_version
	ORDER BY d.last_seen ASC NULLS FIRST, d.device_id
	LIMIT least(greatest(p_limit, 0), 10000) OFFSET greatest(p_offset, 0)
$$;

-- Before a KeyList is accepted: may it drop keys? A device is covered when
-- the key set it trusts now (reported ids, else those of the KeyList version
-- it reports) holds a key the new list keeps: it can verify what is signed
-- after the drop. Refused while the covered share is below
-- keyrotation_min_share, unless forced (then audited).
-- Returns {allowed, dropped, coverage, required, forced}.
CREATE FUNCTION rollout_keylist_check(p_key_ids bytea[], p_force boolean DEFAULT false,
                                      p_actor text DEFAULT '', p_version bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_current bytea[];
	v_dropped integer;
	v_required numeric := rollout_setting('keyrotation_min_share', '0.98')::numeric;
	v_total bigint;
	v_covered bigint;
	v_coverage numeric;
	v_result jsonb;
BEGIN
	SELECT key_ids INTO v_current FROM keylists ORDER BY version DESC LIMIT 1;
	SELECT count(*) INTO v_dropped FROM unnest(coalesce(v_current, '{}')) k
	WHERE NOT (k = ANY (coalesce(p_key_ids, '{}')));
	SELECT count(*),
	       count(*) FILTER (WHERE coalesce(nullif(d.keylist_key_ids, '{}'), k.key_ids, '{}') && coalesce(p_key_ids, '{}'))
	INTO v_total, v_covered
	FROM devices d LEFT JOIN keylists k ON k.version = d.keylist_version
	WHERE NOT d.decommissioned;
	v_coverage := CASE WHEN v_total = 0 THEN 1 ELSE round(v_covered::numeric / v_total, 6) END;
	v_result := jsonb_build_object('allowed', v_dropped = 0 OR v_coverage >= v_required OR coalesce(p_force, false),
	                               'dropped', v_dropped, 'coverage', v_coverage, 'required', v_required,
	                               'devices', v_total, 'covered', v_covered,
	                               'forced', v_dropped > 0 AND v_coverage < v_required AND coalesce(p_force, false));
	IF (v_result ->> 'forced')::boolean THEN
		PERFORM rollout_audit(p_actor, 'keylist.force_retire', coalesce(p_version::text, ''),
		                      NULL, v_result);
	END IF;
	RETURN v_result;
END $$;

-- ---------------------------------------------------------------------------
-- Retention. Bounded work per call (p_max_rows per table), so a purge never
-- holds long locks; call again while it returns a full batch.
--   - device events older than p_before, and beyond the newest
--     events_per_device of each device;
--   - notifications, progress events and per-device rows of campaigns that
--     finished before p_before (the campaign row and its stages stay).
CREATE FUNCTION rollout_purge(p_before timestamptz DEFAULT NULL, p_max_rows integer DEFAULT 10000,
                              p_actor text DEFAULT 'system')
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_before timestamptz := coalesce(p_before,
	                                 now() - make_interval(days => rollout_setting('retention_days', '90')::integer));
	v_keep integer := rollout_setting('events_per_device', '1000')::integer;
	v_max integer := least(greatest(coalesce(p_max_rows, 10000), 1), 1000000);
	v_events bigint;
	v_capped bigint;
	v_notifications bigint;
	v_campaign_events bigint;
	v_members bigint;
	v_result jsonb;
BEGIN
	DELETE FROM device_events WHERE id IN (
		SELECT id FROM device_events WHERE received_at < v_before ORDER BY received_at LIMIT v_max);
	GET DIAGNOSTICS v_events = ROW_COUNT;
	DELETE FROM device_events WHERE id IN (
		SELECT id FROM (
			SELECT id, row_number() OVER (PARTITION BY device_id ORDER BY seq DESC) AS rn
			FROM device_events) x
		WHERE x.rn > v_keep LIMIT v_max);
	GET DIAGNOSTICS v_capped = ROW_COUNT;
	DELETE FROM rollout_notifications WHERE id IN (
		SELECT n.id FROM rollout_notifications n JOIN campaigns k USING (campaign_id)
		WHERE k.state IN ('completed', 'cancelled', 'failed') AND k.finished_at < v_before
		LIMIT v_max);
	GET DIAGNOSTICS v_notifications = ROW_COUNT;
	DELETE FROM campaign_events WHERE id IN (
		SELECT e.id FROM campaign_events e JOIN campaigns k USING (campaign_id)
		WHERE k.state IN ('completed', 'cancelled', 'failed') AND k.finished_at < v_before
		LIMIT v_max);
	GET DIAGNOSTICS v_campaign_events = ROW_COUNT;
	DELETE FROM campaign_devices WHERE (campaign_id, device_id) IN (
		SELECT m.campaign_id, m.device_id FROM campaign_devices m JOIN campaigns k USING (campaign_id)
		WHERE k.state IN ('completed', 'cancelled', 'failed') AND k.finished_at < v_before
		LIMIT v_max);
	GET DIAGNOSTICS v_members = ROW_COUNT;
	v_result := jsonb_build_object('before', v_before, 'device_events', v_events,
	                               'device_events_over_cap', v_capped, 'notifications', v_notifications,
	                               'campaign_events', v_campaign_events, 'campaign_devices', v_members);
	IF v_events + v_capped + v_notifications + v_campaign_events + v_members > 0 THEN
		PERFORM rollout_audit(p_actor, 'retention.purge', '', NULL, v_result);
	END IF;
	RETURN v_result;
END $$;
