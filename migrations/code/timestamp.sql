-- SPDX-License-Identifier: Apache-2.0
-- Signed freshness (server/src/timestamp.c, docs/decisions.md): the
-- current release of every product line, which the server's timestamp role
-- signs into a short-lived Timestamp. The current release is the newest
-- uploaded artifact (highest version_code) of the product; a device model
-- with no artifact yet still gets a Timestamp (with no release), so its
-- devices do not report a freeze. Bounded by p_limit product lines.
CREATE OR REPLACE FUNCTION timestamp_releases(p_limit integer)
RETURNS TABLE (r_product text, r_version text, r_version_code bigint,
               r_security_counter bigint, r_artifact_id text, r_manifest bytea,
               r_keylist_version bigint)
LANGUAGE sql STABLE AS $$
	SELECT p.product, a.version, a.version_code, a.security_counter, a.artifact_id,
	       a.manifest, (SELECT max(k.version) FROM keylists k)
	FROM (SELECT x.product FROM artifacts x
	      UNION SELECT d.model FROM devices d WHERE d.model <> '') p
	LEFT JOIN LATERAL (
		SELECT y.version, y.version_code, y.security_counter, y.artifact_id, y.manifest
		FROM artifacts y WHERE y.product = p.product
		ORDER BY y.version_code DESC, y.created_at DESC LIMIT 1) a ON true
	ORDER BY p.product
	LIMIT p_limit
$$;

-- The newest KeyList, whose timestamp-role key must be the server's key
-- (what servers before timestamp_trust() ask; kept for a rolling upgrade).
CREATE OR REPLACE FUNCTION timestamp_keylist()
RETURNS bytea
LANGUAGE sql STABLE AS $$
	SELECT k.bytes FROM keylists k ORDER BY k.version DESC LIMIT 1
$$;

-- What the server's key is checked against each round: the newest KeyList
-- ('keylist'), which must not list it as operational, then the newest
-- p_rootlists RootLists ('rootlist'), none of whose root keys it may be.
CREATE OR REPLACE FUNCTION timestamp_trust(p_rootlists integer)
RETURNS TABLE (r_kind text, r_bytes bytea)
LANGUAGE sql STABLE AS $$
	(SELECT 'keylist', k.bytes FROM keylists k ORDER BY k.version DESC LIMIT 1)
	UNION ALL
	(SELECT 'rootlist', r.bytes FROM rootlists r ORDER BY r.version DESC LIMIT p_rootlists)
$$;
