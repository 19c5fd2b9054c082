-- SPDX-License-Identifier: Apache-2.0
-- Delta updates, the server side (issue 15; tables in 0017_deltas.sql):
-- the REST API's delta upload and list (server/src/api/deltas.c), what the
-- device listener serves (server/src/device/delivery.c), how a delta that a
-- device refused is told from a failed install (report.sql), and each
-- campaign's delta/full counts (rollout_status).

-- A delta as the API shows it (web-api/openapi.yaml, Delta).
CREATE OR REPLACE FUNCTION delta_json(p_delta artifact_deltas, p_image_size bigint)
RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
	SELECT jsonb_build_object('artifact_id', p_delta.artifact_id,
		'base_sha256', encode(p_delta.base_sha256, 'hex'), 'base_size', p_delta.base_size,
		'delta_sha256', encode(p_delta.delta_sha256, 'hex'), 'delta_size', p_delta.delta_size,
		'image_size', p_image_size,
		'saved_bytes', greatest(p_image_size - p_delta.delta_size, 0),
		'algorithm', p_delta.algorithm, 'chunk_bytes', p_delta.chunk_bytes,
		'digest', encode(p_delta.digest, 'hex'),
		'signing_key_id', encode(p_delta.signing_key_id, 'hex'),
		'uploaded_by', p_delta.uploaded_by, 'created_at', p_delta.created_at)
$$;

-- Before a delta bundle is verified: the newest KeyList, whether the
-- artifact exists and what its release is (the delta must rebuild exactly
-- its image), and whether this manifest is stored already (as an artifact
-- or a delta), and the bases it has a delta from (hex, ","-separated).
CREATE OR REPLACE FUNCTION delta_precheck(p_artifact text, p_digest_hex text)
RETURNS TABLE (keylist bytea, artifact_found boolean, digest_known boolean, image_sha256 text,
               image_size bigint, product text, version_code bigint, security_counter bigint,
               bases text)
LANGUAGE sql STABLE AS $$
	SELECT (SELECT bytes FROM keylists ORDER BY version DESC LIMIT 1),
	       a.artifact_id IS NOT NULL,
	       EXISTS (SELECT 1 FROM artifacts WHERE digest = decode(p_digest_hex, 'hex'))
	       OR EXISTS (SELECT 1 FROM artifact_deltas WHERE digest = decode(p_digest_hex, 'hex')),
	       encode(a.image_sha256, 'hex'), a.image_size, a.product, a.version_code,
	       a.security_counter,
	       COALESCE((SELECT string_agg(encode(x.base_sha256, 'hex'), ',')
	                 FROM artifact_deltas x WHERE x.artifact_id = a.artifact_id), '')
	FROM (SELECT p_artifact AS id) p LEFT JOIN artifacts a ON a.artifact_id = p.id
$$;

-- Stores a verified delta (its payload already in the store) with its
-- audit row, and ends the upload session it came from (p_upload, or NULL).
-- A second delta from the same base, or the same manifest again: 23505;
-- the artifact deleted meanwhile: 23503. The delta as the API shows it.
CREATE OR REPLACE FUNCTION delta_insert(p_artifact text, p_base_hex text, p_base_size bigint,
	p_digest_hex text, p_manifest_hex text, p_delta_hex text, p_delta_size bigint,
	p_algorithm text, p_chunk_bytes bigint, p_signer_hex text, p_store_path text,
	p_actor text, p_upload text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	v_row artifact_deltas;
	v_json jsonb;
BEGIN
	INSERT INTO artifact_deltas (artifact_id, base_sha256, base_size, digest, manifest,
		delta_sha256, delta_size, algorithm, chunk_bytes, signing_key_id, store_path,
		uploaded_by)
	VALUES (p_artifact, decode(p_base_hex, 'hex'), p_base_size, decode(p_digest_hex, 'hex'),
		decode(p_manifest_hex, 'hex'), decode(p_delta_hex, 'hex'), p_delta_size, p_algorithm,
		p_chunk_bytes, decode(p_signer_hex, 'hex'), p_store_path, p_actor)
	RETURNING * INTO v_row;
	v_json := delta_json(v_row, (SELECT image_size FROM artifacts WHERE artifact_id = p_artifact));
	INSERT INTO audit (actor, action, object, after)
	VALUES (p_actor, 'artifact.delta_upload', 'artifact:' || p_artifact, v_json);
	IF p_upload IS NOT NULL THEN
		DELETE FROM uploads WHERE upload_id = p_upload;
	END IF;
	RETURN v_json::text;
END $$;

-- One page of an artifact's deltas by base hash after the cursor (hex);
-- NULL when the artifact does not exist.
CREATE OR REPLACE FUNCTION delta_list(p_artifact text, p_cursor text, p_limit integer)
RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN a.artifact_id IS NULL THEN NULL ELSE (
		SELECT json_build_object('items', COALESCE(json_agg(delta_json(x, a.image_size)
				ORDER BY x.base_sha256), '[]'::json),
			'next_cursor', CASE WHEN count(*) = p_limit
				THEN max(encode(x.base_sha256, 'hex')) END)::text
		FROM (SELECT * FROM artifact_deltas d WHERE d.artifact_id = a.artifact_id
			AND d.base_sha256 > decode(COALESCE(p_cursor, ''), 'hex')
			ORDER BY d.base_sha256 LIMIT p_limit) x) END
	FROM (SELECT p_artifact AS id) p LEFT JOIN artifacts a ON a.artifact_id = p.id
$$;

-- GET /v1/manifests/ID for a device (binary results, one row): whether the
-- device is known and decommissioned, the artifact known and assigned to
-- it, then the manifest to send, whether it is a delta, and the bytes that
-- delta saves. The delta is the one whose base is the image the device
-- last reported running (devices.running_sha256); p_full (?full=1, the
-- agent's fallback after a refused delta) asks for the full manifest. The
-- assignment records the choice (written only when it changes).
CREATE OR REPLACE FUNCTION delivery_manifest(p_device text, p_artifact text, p_full boolean)
RETURNS TABLE (known boolean, decommissioned boolean, artifact_known boolean, assigned boolean,
               manifest bytea, is_delta boolean, saved_bytes bigint)
LANGUAGE plpgsql AS $$
DECLARE
	v_running bytea;
	v_delta artifact_deltas;
	v_image_size bigint;
	v_prev text;
	v_kind text;
BEGIN
	SELECT d.device_id IS NOT NULL, COALESCE(d.decommissioned, false), d.running_sha256,
	       a.artifact_id IS NOT NULL, s.device_id IS NOT NULL, a.manifest, a.image_size,
	       s.delivery
	INTO known, decommissioned, v_running, artifact_known, assigned, manifest, v_image_size,
	     v_prev
	FROM (SELECT p_device AS dev, p_artifact AS art) p
	LEFT JOIN devices d ON d.device_id = p.dev
	LEFT JOIN artifacts a ON a.artifact_id = p.art
	LEFT JOIN assignments s ON s.device_id = p.dev AND s.artifact_id = p.art;
	is_delta := false;
	saved_bytes := 0;
	IF NOT (known AND NOT decommissioned AND artifact_known AND assigned) THEN
		manifest := NULL;
		RETURN NEXT;
		RETURN;
	END IF;
	IF NOT p_full AND v_running IS NOT NULL THEN
		-- a delta no smaller than the image saves nothing: the image then
		SELECT * INTO v_delta FROM artifact_deltas x
		WHERE x.artifact_id = p_artifact AND x.base_sha256 = v_running
		  AND x.delta_size < v_image_size;
		IF found THEN
			is_delta := true;
			manifest := v_delta.manifest;
			saved_bytes := greatest(v_image_size - v_delta.delta_size, 0);
		END IF;
	END IF;
	v_kind := CASE WHEN is_delta THEN 'delta'
	               WHEN p_full AND v_prev IN ('delta', 'fallback') THEN 'fallback'
	               ELSE 'full' END;
	-- a delta served again (a retry) may be forgiven one refusal again
	UPDATE assignments x
	SET delivery = v_kind, delivery_saved_bytes = saved_bytes,
	    delivery_base = CASE WHEN is_delta THEN v_delta.base_sha256 ELSE x.delivery_base END,
	    delta_rejection_forgiven = CASE WHEN is_delta THEN false
	                                    ELSE x.delta_rejection_forgiven END
	WHERE x.device_id = p_device AND x.artifact_id = p_artifact
	  AND (x.delivery <> v_kind OR x.delivery_saved_bytes <> saved_bytes
	       OR (is_delta AND (x.delta_rejection_forgiven
	                         OR x.delivery_base IS DISTINCT FROM v_delta.base_sha256)));
	RETURN NEXT;
END $$;

-- GET /v1/images/ID[?base=HEX] for a device (binary results, one row): as
-- delivery_manifest, then the store file and size of what to stream (the
-- delta's payload for a base, else the image), whether that is a delta,
-- the bytes it saves, and whether a delta from that base exists.
CREATE OR REPLACE FUNCTION delivery_image(p_device text, p_artifact text, p_base bytea)
RETURNS TABLE (known boolean, decommissioned boolean, artifact_known boolean, assigned boolean,
               manifest bytea, store_path text, size bigint, is_delta boolean,
               saved_bytes bigint, found_payload boolean)
LANGUAGE sql STABLE AS $$
	SELECT d.device_id IS NOT NULL, COALESCE(d.decommissioned, false),
	       a.artifact_id IS NOT NULL, s.device_id IS NOT NULL, NULL::bytea,
	       COALESCE(x.store_path, CASE WHEN p_base IS NULL THEN a.store_path END),
	       COALESCE(x.delta_size, CASE WHEN p_base IS NULL THEN a.image_size END),
	       x.artifact_id IS NOT NULL,
	       COALESCE(greatest(a.image_size - x.delta_size, 0), 0),
	       p_base IS NULL OR x.artifact_id IS NOT NULL
	FROM (SELECT p_device AS dev, p_artifact AS art) p
	LEFT JOIN devices d ON d.device_id = p.dev
	LEFT JOIN artifacts a ON a.artifact_id = p.art
	LEFT JOIN assignments s ON s.device_id = p.dev AND s.artifact_id = p.art
	LEFT JOIN artifact_deltas x ON p_base IS NOT NULL AND x.artifact_id = p.art
	                           AND x.base_sha256 = p_base
$$;

-- The state a report is taken for by the rollout engine. A device refuses
-- a delta it cannot use (its payload hashes wrong, its base is not the
-- running image, its encoding is not one it applies), reports that, and
-- fetches the full image at once (?full=1): the first such refusal after a
-- delta was served is "still downloading", not a failed install. The
-- manifest request of the fallback may reach the server before the report,
-- hence 'fallback' too; a second refusal is counted.
CREATE OR REPLACE FUNCTION delta_report_state(p_device text, p_artifact text, p_state text,
                                              p_error text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	IF lower(coalesce(p_state, '')) <> 'rejected' OR coalesce(p_artifact, '') = ''
	   OR coalesce(p_error, '') NOT IN ('OTA_ERR_HASH', 'OTA_ERR_SIZE', 'OTA_ERR_DELTA_BASE',
	                                    'OTA_ERR_DELTA_UNSUPPORTED') THEN
		RETURN p_state;
	END IF;
	UPDATE assignments SET delta_rejection_forgiven = true
	WHERE device_id = p_device AND artifact_id = p_artifact
	  AND delivery IN ('delta', 'fallback') AND NOT delta_rejection_forgiven;
	RETURN CASE WHEN found THEN 'downloading' ELSE p_state END;
END $$;

-- A campaign's deliveries (rollout_status "delivery"): devices that got the
-- full image, a delta, or the full image after a refused delta, and the
-- bytes the deltas saved (image size minus delta size, per device).
CREATE OR REPLACE FUNCTION delivery_campaign_stats(p_campaign text, p_artifact text)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object('full', count(*) FILTER (WHERE s.delivery = 'full'),
		'delta', count(*) FILTER (WHERE s.delivery = 'delta'),
		'fallback', count(*) FILTER (WHERE s.delivery = 'fallback'),
		'bytes_saved', COALESCE(sum(s.delivery_saved_bytes), 0))
	FROM assignments s
	WHERE s.artifact_id = p_artifact AND s.campaign_id = p_campaign
$$;
