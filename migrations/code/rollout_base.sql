-- SPDX-License-Identifier: Apache-2.0
-- fleetota rollout engine: settings lookup, error/event/audit helpers, spec parsing, windows,
-- the target filter and group membership.
-- Re-applied by `ota-server migrate` whenever this file changes (docs/server.md).

CREATE OR REPLACE FUNCTION rollout_setting(p_name text, p_default text) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT coalesce((SELECT value FROM rollout_settings WHERE name = p_name), p_default)
$$;

CREATE OR REPLACE FUNCTION rollout_campaign_groups_sync() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE TRIGGER campaigns_groups_sync AFTER INSERT OR UPDATE OF target_filter ON campaigns
	FOR EACH ROW EXECUTE FUNCTION rollout_campaign_groups_sync();

-- ---------------------------------------------------------------------------
-- Helpers

-- The advisory lock that serializes ticks and starts (a fixed 64-bit key).
CREATE OR REPLACE FUNCTION rollout_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
	SELECT 7306010700000000001::bigint
$$;

CREATE OR REPLACE FUNCTION rollout_fail(p_code text, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = p_code, MESSAGE = p_message;
END $$;

CREATE OR REPLACE FUNCTION rollout_event(p_campaign text, p_kind text, p_stage integer, p_detail text,
                              p_at timestamptz) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO campaign_events (campaign_id, at, kind, stage_no, detail)
	VALUES (p_campaign, coalesce(p_at, now()), p_kind, p_stage, coalesce(p_detail, ''))
$$;

CREATE OR REPLACE FUNCTION rollout_audit(p_actor text, p_action text, p_object text, p_before jsonb,
                              p_after jsonb) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO audit (actor, action, object, before, after)
	VALUES (coalesce(p_actor, ''), p_action, coalesce(p_object, ''), p_before, p_after)
$$;

-- Back-off before the next try after a transient failure: base * 2^attempts,
-- at most an hour (attempts counts the failures retried so far).
CREATE OR REPLACE FUNCTION rollout_retry_backoff(p_base_s integer, p_attempts integer) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
	SELECT make_interval(secs => least(3600, p_base_s::double precision * power(2, least(greatest(p_attempts, 0), 20))))
$$;

-- A stage's time budget in seconds: its own, else long enough to notify
-- its devices at the campaign's rate, in waves of max_in_flight that each
-- may take the device timeout, and for the last of them to use up its tries
-- (timeout and back-off each time). Time outside the maintenance windows
-- does not count (rollout_notify moves budget_start on).
CREATE OR REPLACE FUNCTION rollout_stage_budget(c campaigns, s campaign_stages, p_devices bigint)
RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
	SELECT coalesce(s.budget_s::double precision,
	                greatest(p_devices, 1) * 60.0 / c.rate_per_minute
	                + (ceil(greatest(p_devices, 1)::numeric / s.max_in_flight) + c.transient_retries)
	                  * c.device_timeout_s
	                + extract(epoch FROM rollout_retry_backoff(c.retry_backoff_s, c.transient_retries)) * 2)
$$;

-- A JSON value that must be an array of strings (or absent / null).
CREATE OR REPLACE FUNCTION rollout_text_array(p_value jsonb, p_field text) RETURNS text[]
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

CREATE OR REPLACE FUNCTION rollout_bigint(p_value jsonb, p_field text) RETURNS bigint
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

CREATE OR REPLACE FUNCTION rollout_ratio(p_value jsonb, p_field text) RETURNS numeric
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
-- campaign has none, or is a security fix whose policy overrides them).
-- Windows are UTC: the server enforces them because many devices have no
-- trustworthy clock.
CREATE OR REPLACE FUNCTION rollout_in_window(p_campaign text, p_now timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT NOT EXISTS (SELECT 1 FROM campaign_windows WHERE campaign_id = p_campaign)
	    OR EXISTS (SELECT 1 FROM campaigns WHERE campaign_id = p_campaign AND security_override_windows)
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
--   groups (list of device_groups ids, static or dynamic; a device in any),
--   version_range (a semantic-version range of the running version, see
--   rollout_version_bounds: "1.4.x"), affected (true: only devices whose
--   version_code the security artifact's signed range fixes).
-- On top of the filter, a firmware campaign only selects devices whose model
-- the manifest names and whose hw revision it allows, that run at least the
-- manifest's min_installed_version and not a newer version than it ships;
-- a key-list (root-list) campaign selects devices not past its version.
-- Decommissioned devices are never selected.

-- Members of groups (the REST API's device_groups, 0002): static groups by
-- their member rows, dynamic groups by their filter (the GroupFilter JSON of
-- web-api/openapi.yaml), compiled by filter_compile (filter.sql, the one
-- compiler; its values are parameters). A stored filter it refuses makes the
-- campaign fail with FO422 "group filter: ...".
DROP FUNCTION IF EXISTS rollout_filter_sql(jsonb, integer);

-- p_only: only these devices (the incremental path, docs/campaigns.md
-- "Planning at scale"); NULL: all of them.
DROP FUNCTION IF EXISTS rollout_group_members(text[]);
CREATE OR REPLACE FUNCTION rollout_group_members(p_groups text[], p_only text[] DEFAULT NULL)
RETURNS TABLE (device_id text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
	g record;
	f record;
BEGIN
	RETURN QUERY SELECT m.device_id FROM device_group_members m
	             JOIN device_groups x ON x.group_id = m.group_id
	             WHERE m.group_id = ANY (p_groups) AND x.kind = 'static'
	               AND (p_only IS NULL OR m.device_id = ANY (p_only));
	FOR g IN SELECT x.group_id, x.filter FROM device_groups x
	         WHERE x.group_id = ANY (p_groups) AND x.kind = 'dynamic' ORDER BY x.group_id LOOP
		BEGIN
			SELECT * INTO f FROM filter_compile(g.filter::json, false);
		EXCEPTION WHEN SQLSTATE 'FO400' THEN
			PERFORM rollout_fail('FO422', 'group filter: ' || SQLERRM);
		END;
		RETURN QUERY EXECUTE 'SELECT d.device_id FROM devices d WHERE ' || f.clause
		                     || CASE WHEN p_only IS NOT NULL THEN ' AND d.device_id = ANY ($2)' ELSE '' END
		USING f.args, p_only;
	END LOOP;
END $$;

-- p_only: evaluate only these devices (a device changed: the triggers of
-- rollout_targets.sql); NULL: the whole fleet. The query is built with only
-- the conditions the filter uses, its values as quoted literals, so it is
-- planned for them (a few devices are looked up by key, never by a scan of
-- the fleet); p_only stays a parameter, $1 (a bulk load passes a million
-- ids). rollout_target_sql is the query's text: the queue build inserts
-- from it in one statement, without the tuplestore a set-returning function
-- fills (0.6 s of backend CPU for 900,000 devices); rollout_target runs it.
-- Besides the id, the attributes admission needs (the queue keeps them).
CREATE OR REPLACE FUNCTION rollout_target_sql(p_campaign text, p_only text[] DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE AS $$
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
	v_vlo bigint[];
	v_vhi bigint[];
	v_affected boolean := false;
	v_fix_hi bigint;
	v_sql text := 'SELECT d.device_id, d.version_code, d.keylist_version, d.rootlist_version, '
	              'd.keylist_key_ids FROM devices d WHERE NOT d.decommissioned';
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
	IF f ? 'version_range' THEN
		IF jsonb_typeof(f -> 'version_range') <> 'string' THEN
			PERFORM rollout_fail('FO422', 'target.version_range: must be a string');
		END IF;
		SELECT lo, hi INTO v_vlo, v_vhi FROM rollout_version_bounds(f ->> 'version_range', 'target.version_range');
	END IF;
	IF f ? 'affected' THEN
		IF jsonb_typeof(f -> 'affected') <> 'boolean' THEN
			PERFORM rollout_fail('FO422', 'target.affected: must be true or false');
		END IF;
		v_affected := (f ->> 'affected')::boolean;
		IF v_affected AND NOT coalesce(a.is_security_update, false) THEN
			PERFORM rollout_fail('FO422', 'target.affected: the artifact is not a signed security update');
		END IF;
		v_fix_hi := rollout_fixes_max(a);
	END IF;
	v_sql := v_sql
		|| CASE WHEN p_only IS NOT NULL THEN ' AND d.device_id = ANY ($1::text[])' ELSE '' END
		|| CASE WHEN v_models IS NOT NULL THEN format(' AND d.model = ANY (%L::text[])', v_models) ELSE '' END
		|| CASE WHEN v_hws IS NOT NULL THEN format(' AND d.hw_revision = ANY (%L::text[])', v_hws) ELSE '' END
		|| CASE WHEN v_versions IS NOT NULL THEN format(' AND d.version = ANY (%L::text[])', v_versions) ELSE '' END
		|| CASE WHEN v_tags_all IS NOT NULL THEN format(' AND d.tags @> %L::text[]', v_tags_all) ELSE '' END
		|| CASE WHEN v_tags_any IS NOT NULL THEN format(' AND d.tags && %L::text[]', v_tags_any) ELSE '' END
		|| CASE WHEN v_devices IS NOT NULL THEN format(' AND d.device_id = ANY (%L::text[])', v_devices) ELSE '' END
		|| CASE WHEN v_groups IS NOT NULL
		        THEN format(' AND d.device_id IN (SELECT g.device_id FROM rollout_group_members(%L::text[], $1::text[]) g)',
		                     v_groups) ELSE '' END
		|| CASE WHEN v_vmin IS NOT NULL THEN format(' AND d.version_code >= %L::bigint', v_vmin) ELSE '' END
		|| CASE WHEN v_vmax IS NOT NULL THEN format(' AND d.version_code <= %L::bigint', v_vmax) ELSE '' END
		|| CASE WHEN v_klmin IS NOT NULL THEN format(' AND d.keylist_version >= %L::bigint', v_klmin) ELSE '' END
		|| CASE WHEN v_klmax IS NOT NULL THEN format(' AND d.keylist_version <= %L::bigint', v_klmax) ELSE '' END
		|| CASE WHEN v_vlo IS NOT NULL THEN format(' AND rollout_semver(d.version) >= %L::bigint[]', v_vlo) ELSE '' END
		|| CASE WHEN v_vhi IS NOT NULL THEN format(' AND rollout_semver(d.version) < %L::bigint[]', v_vhi) ELSE '' END
		|| CASE WHEN v_affected THEN format(' AND d.version_code BETWEEN %L::bigint AND %L::bigint', a.fixes_version_code_min, v_fix_hi) ELSE '' END
		|| CASE c.kind
			WHEN 'firmware' THEN format(' AND d.model = %L::text', a.product)
				|| CASE WHEN cardinality(a.hw_revisions) > 0 THEN format(' AND d.hw_revision = ANY (%L::text[])', a.hw_revisions) ELSE '' END
				|| format(' AND d.version_code >= %L::bigint AND d.version_code <= %L::bigint',
				         a.min_installed_version, a.version_code)
			WHEN 'keylist' THEN format(' AND d.keylist_version <= %L::bigint', c.keylist_version)
			ELSE format(' AND d.rootlist_version <= %L::bigint', c.rootlist_version) END;
	RETURN v_sql;
END $$;

DROP FUNCTION IF EXISTS rollout_target(text);
CREATE OR REPLACE FUNCTION rollout_target(p_campaign text, p_only text[] DEFAULT NULL)
RETURNS TABLE (device_id text, version_code bigint, keylist_version bigint, rootlist_version bigint,
               keylist_key_ids bytea[])
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN QUERY EXECUTE rollout_target_sql(p_campaign, p_only) USING p_only;
END $$;
