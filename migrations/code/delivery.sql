-- SPDX-License-Identifier: Apache-2.0
-- The device listener's trust lists (server/src/device/delivery.c): the
-- newest KeyList (p_root false) or RootList (p_root true) for a device,
-- with whether the device is known and decommissioned (one row, also for
-- an unknown device).
DROP FUNCTION IF EXISTS delivery_keylist(text);
DROP FUNCTION IF EXISTS delivery_rootlist(text);

CREATE OR REPLACE FUNCTION delivery_trust_list(p_device text, p_root boolean)
RETURNS TABLE (known boolean, decommissioned boolean, bytes bytea)
LANGUAGE sql STABLE AS $$
	SELECT d.device_id IS NOT NULL, coalesce(d.decommissioned, false),
	       CASE WHEN p_root
	            THEN (SELECT r.bytes FROM rootlists r ORDER BY r.version DESC LIMIT 1)
	            ELSE (SELECT k.bytes FROM keylists k ORDER BY k.version DESC LIMIT 1) END
	FROM (SELECT p_device AS dev) p LEFT JOIN devices d ON d.device_id = p.dev
$$;

-- The assignment view filled ahead of the requests (server/src/device/
-- assign_cache.c, docs/scaling.md "The manifest cache"): the replica that
-- published a tick's firmware notifications asks once, for all of them,
-- what delivery_manifest and delivery_image would answer each device of
-- p_devices for p_artifact, so that the manifest and image requests that
-- follow need no query. One row with device_id NULL carries the
-- artifact's full manifest, store file and size (no row: no such
-- artifact); then one row per device that would get exactly that: known,
-- not decommissioned, the artifact assigned, and no delta from the image
-- it runs (those ask PostgreSQL, which records the delta). At most 10,000
-- devices are read (the tick notifies at most that many per call).
CREATE OR REPLACE FUNCTION delivery_prefill(p_devices text[], p_artifact text)
RETURNS TABLE (device_id text, manifest bytea, store_path text, image_size bigint)
LANGUAGE sql STABLE AS $$
	SELECT NULL::text, a.manifest, a.store_path, a.image_size
	FROM artifacts a WHERE a.artifact_id = p_artifact
	UNION ALL
	SELECT d.device_id, NULL::bytea, NULL::text, NULL::bigint
	FROM (SELECT DISTINCT u.id FROM unnest(p_devices[1:10000]) AS u(id)) p
	JOIN devices d ON d.device_id = p.id
	JOIN assignments s ON s.device_id = p.id AND s.artifact_id = p_artifact
	JOIN artifacts a ON a.artifact_id = p_artifact
	WHERE NOT d.decommissioned
	  AND NOT (d.running_sha256 IS NOT NULL
	           AND EXISTS (SELECT 1 FROM artifact_deltas x
	                       WHERE x.artifact_id = p_artifact AND x.base_sha256 = d.running_sha256
	                         AND x.delta_size < a.image_size))
$$;

-- Records that the full image's manifest was served from the assignment
-- view (what delivery_manifest writes for a full answer: delivery 'full',
-- no bytes saved), for pairs p_devices[i], p_artifacts[i]; written in
-- batches by each replica (every manifest_cache_poll_ms). Rows another
-- transaction holds (the report ingest) are skipped, not waited for:
-- returned, with every pair not yet written, for the next batch. An
-- assignment withdrawn meanwhile is not written (nothing to record).
CREATE OR REPLACE FUNCTION delivery_mark_full(p_devices text[], p_artifacts text[])
RETURNS TABLE (device_id text, artifact_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
	IF cardinality(coalesce(p_devices, '{}')) <> cardinality(coalesce(p_artifacts, '{}'))
	   OR cardinality(coalesce(p_devices, '{}')) > 10000 THEN
		RAISE EXCEPTION 'delivery_mark_full: one artifact per device, at most 10000'
			USING ERRCODE = '22023';
	END IF;
	-- (the rows probed by the primary key, device_id = ANY: a join to the
	-- pairs was planned as a pass over every assignment)
	RETURN QUERY
	WITH want AS (
		SELECT x.ctid AS row_id, x.device_id AS d, x.artifact_id AS a FROM assignments x
		WHERE x.device_id = ANY (p_devices)
		  AND (x.device_id, x.artifact_id) IN (SELECT u.d, u.a FROM unnest(p_devices, p_artifacts) AS u(d, a))
		  AND (x.delivery <> 'full' OR x.delivery_saved_bytes <> 0)
	), locked AS (
		SELECT x.ctid AS row_id FROM assignments x
		WHERE x.ctid = ANY (ARRAY(SELECT w.row_id FROM want w))
		ORDER BY x.device_id, x.artifact_id
		FOR UPDATE OF x SKIP LOCKED
	), upd AS (
		UPDATE assignments x SET delivery = 'full', delivery_saved_bytes = 0
		FROM locked WHERE x.ctid = locked.row_id
		  AND (x.delivery <> 'full' OR x.delivery_saved_bytes <> 0)
		RETURNING x.device_id, x.artifact_id
	)
	SELECT w.d, w.a FROM want w
	WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.device_id = w.d AND upd.artifact_id = w.a);
END $$;
