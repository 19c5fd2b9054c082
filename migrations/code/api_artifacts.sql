-- SPDX-License-Identifier: Apache-2.0
-- The REST API's artifacts (server/src/api/artifacts.c; the API passes its
-- parameters as text, binary values as hex). The manifest is verified in C
-- (the device's own code) before api_artifact_insert runs.
--
-- The reads the API serves most (lists, gets) are PL/pgSQL: their queries
-- are parsed and planned once per connection and cached, as the server's
-- prepared statements were; a LANGUAGE sql function is parsed again on
-- every call (measured: about 1.5 ms more CPU for a page of 100 devices).

-- The Artifact schema of web-api/openapi.yaml.
CREATE OR REPLACE FUNCTION api_artifact_json(x artifacts) RETURNS json
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('artifact_id', x.artifact_id, 'digest', encode(x.digest, 'hex'),
		'product', x.product, 'hw_revisions', x.hw_revisions, 'version', x.version,
		'version_code', x.version_code, 'security_counter', x.security_counter,
		'min_installed_version', x.min_installed_version, 'allow_downgrade',
		x.allow_downgrade, 'is_security_update', x.is_security_update, 'issued_at',
		x.issued_at, 'expires_at', x.expires_at, 'manifest_sequence', x.manifest_sequence,
		'image_sha256', encode(x.image_sha256, 'hex'), 'image_size', x.image_size,
		'image_name', x.image_name, 'signing_key_id', encode(x.signing_key_id, 'hex'),
		'uploaded_by', x.uploaded_by, 'created_at', x.created_at, 'assigned_devices',
		(SELECT count(*) FROM assignments s WHERE s.artifact_id = x.artifact_id))
$$;

-- One page of artifacts after the cursor (an artifact id), filters optional.
CREATE OR REPLACE FUNCTION api_artifact_list(p_product text, p_version text, p_security boolean,
	p_cursor text, p_limit integer) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (SELECT json_build_object('items', COALESCE(json_agg(api_artifact_json(x)
			ORDER BY x.artifact_id), '[]'::json), 'next_cursor',
			CASE WHEN count(*) = p_limit THEN max(x.artifact_id) END)::text
		FROM (SELECT * FROM artifacts WHERE (p_product IS NULL OR product = p_product)
			AND (p_version IS NULL OR version = p_version)
			AND (p_security IS NULL OR is_security_update = p_security)
			AND artifact_id > COALESCE(p_cursor, '') ORDER BY artifact_id LIMIT p_limit) x);
END $$;

CREATE OR REPLACE FUNCTION api_artifact_get(p_artifact text) RETURNS SETOF text
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN QUERY SELECT api_artifact_json(x)::text FROM artifacts x WHERE x.artifact_id = p_artifact;
END $$;

-- Before an upload is verified: the newest KeyList (NULL: none yet), and
-- whether the id or the manifest (its SHA-256 as hex) is already known.
CREATE OR REPLACE FUNCTION api_artifact_precheck(p_artifact text, p_digest_hex text)
RETURNS TABLE (keylist bytea, id_known boolean, manifest_known boolean)
LANGUAGE sql STABLE AS $$
	SELECT (SELECT bytes FROM keylists ORDER BY version DESC LIMIT 1),
		EXISTS (SELECT 1 FROM artifacts WHERE artifact_id = p_artifact),
		EXISTS (SELECT 1 FROM artifacts WHERE digest = decode(p_digest_hex, 'hex'))
$$;

-- Inserts a verified artifact, audits it and deletes the upload session it
-- came from (p_upload, NULL for a one-request upload) in one statement;
-- 23505 for a known id or manifest.
CREATE OR REPLACE FUNCTION api_artifact_insert(p_artifact text, p_digest_hex text,
	p_manifest_hex text, p_product text, p_hw_revisions jsonb, p_version text,
	p_version_code bigint, p_security_counter bigint, p_min_installed_version bigint,
	p_is_security_update boolean, p_issued_at bigint, p_expires_at bigint,
	p_image_sha256_hex text, p_image_size bigint, p_image_name text,
	p_signing_key_id_hex text, p_store_path text, p_allow_downgrade boolean,
	p_manifest_sequence bigint, p_actor text, p_upload text, p_fixes_min bigint,
	p_fixes_max bigint, p_advisory text) RETURNS SETOF text
LANGUAGE sql AS $$
	WITH x AS (INSERT INTO artifacts (artifact_id, digest, manifest, product, hw_revisions,
		version, version_code, security_counter, min_installed_version, is_security_update,
		issued_at, expires_at, image_sha256, image_size, image_name, signing_key_id,
		store_path, allow_downgrade, manifest_sequence, uploaded_by, fixes_version_code_min,
		fixes_version_code_max, advisory)
		VALUES (p_artifact, decode(p_digest_hex, 'hex'), decode(p_manifest_hex, 'hex'),
		p_product, ARRAY(SELECT jsonb_array_elements_text(p_hw_revisions)), p_version,
		p_version_code, p_security_counter, p_min_installed_version, p_is_security_update,
		p_issued_at, p_expires_at, decode(p_image_sha256_hex, 'hex'), p_image_size,
		p_image_name, decode(p_signing_key_id_hex, 'hex'), p_store_path, p_allow_downgrade,
		p_manifest_sequence, p_actor, p_fixes_min, p_fixes_max, p_advisory) RETURNING *),
	a AS (INSERT INTO audit (actor, action, object, after) SELECT p_actor, 'artifact.upload',
		'artifact:' || x.artifact_id, to_jsonb(api_artifact_json(x)) FROM x),
	u AS (DELETE FROM uploads WHERE upload_id = p_upload AND EXISTS (SELECT 1 FROM x))
	SELECT api_artifact_json(x)::text FROM x
$$;

-- Deletes an artifact no device is assigned and audits it: the artifact
-- (NULL when refused or unknown), whether it exists (0 or 1), its store
-- file and how many other artifacts still use that file.
CREATE OR REPLACE FUNCTION api_artifact_delete(p_artifact text, p_actor text)
RETURNS TABLE (artifact text, found bigint, store_path text, store_users bigint)
LANGUAGE sql AS $$
	WITH x AS (DELETE FROM artifacts WHERE artifact_id = p_artifact AND NOT EXISTS (SELECT 1
		FROM assignments WHERE artifact_id = p_artifact) RETURNING *),
	a AS (INSERT INTO audit (actor, action, object, before) SELECT p_actor,
		'artifact.delete', 'artifact:' || x.artifact_id, to_jsonb(api_artifact_json(x))
		FROM x)
	SELECT (SELECT api_artifact_json(x)::text FROM x),
		(SELECT count(*) FROM artifacts WHERE artifact_id = p_artifact),
		(SELECT x.store_path FROM x),
		(SELECT count(*) FROM artifacts o WHERE o.store_path = (SELECT x.store_path FROM x)
		AND o.artifact_id <> p_artifact)
$$;
