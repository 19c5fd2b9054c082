-- SPDX-License-Identifier: Apache-2.0
-- fleetota rollout engine: key-rotation coverage, stragglers and the retire guard.
-- Re-applied by `ota-server migrate` whenever this file changes (docs/server.md).

-- ---------------------------------------------------------------------------
-- Key rotation tracking.

-- Fleet share per KeyList version (decommissioned devices excluded).
CREATE OR REPLACE FUNCTION rollout_keylist_coverage()
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
CREATE OR REPLACE FUNCTION rollout_keylist_stragglers(p_min_version bigint, p_limit integer DEFAULT 100,
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
CREATE OR REPLACE FUNCTION rollout_keylist_check(p_key_ids bytea[], p_force boolean DEFAULT false,
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
