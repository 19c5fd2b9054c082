-- SPDX-License-Identifier: Apache-2.0
-- The REST API's tokens and audit trail (server/src/api/tokens.c; the API
-- passes its parameters as text). Each returns the JSON text the API sends.

-- Creates a token (its SHA-256 as hex) and audits it; the token's row.
CREATE OR REPLACE FUNCTION api_token_create(p_name text, p_role text, p_sha256_hex text,
	p_actor text) RETURNS text
LANGUAGE sql AS $$
	WITH t AS (INSERT INTO api_tokens (name, role, token_sha256, created_by)
		VALUES (p_name, p_role, decode(p_sha256_hex, 'hex'), p_actor)
		RETURNING id, name, role, created_by, created_at, revoked_at),
	a AS (INSERT INTO audit (actor, action, object, after)
		SELECT p_actor, 'token.create', 'token:' || t.id, to_jsonb(t) FROM t)
	SELECT row_to_json(t)::text FROM t
$$;

-- One page of tokens after the cursor (an id), p_limit at most.
CREATE OR REPLACE FUNCTION api_token_list(p_cursor bigint, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('items', COALESCE(json_agg(t ORDER BY t.id), '[]'::json),
		'next_cursor', CASE WHEN count(*) = p_limit THEN max(t.id)::text END)::text
	FROM (SELECT id, name, role, created_by, created_at, revoked_at FROM api_tokens
		WHERE id > COALESCE(p_cursor, 0) ORDER BY id LIMIT p_limit) t
$$;

-- Revokes a token once and audits it: the revoked row (NULL when it was
-- already revoked or is unknown) and whether the token exists (0 or 1).
CREATE OR REPLACE FUNCTION api_token_revoke(p_id bigint, p_actor text)
RETURNS TABLE (token text, found bigint)
LANGUAGE sql AS $$
	WITH old AS (SELECT id, name, role, created_by, created_at, revoked_at FROM api_tokens
		WHERE id = p_id),
	t AS (UPDATE api_tokens SET revoked_at = now() WHERE id = p_id AND revoked_at IS NULL
		RETURNING id, name, role, created_by, created_at, revoked_at),
	a AS (INSERT INTO audit (actor, action, object, before, after)
		SELECT p_actor, 'token.revoke', 'token:' || t.id, (SELECT to_jsonb(old) FROM old),
			to_jsonb(t) FROM t)
	SELECT (SELECT row_to_json(t)::text FROM t), (SELECT count(*) FROM old)
$$;

-- One page of the audit trail, newest first, before the cursor (an id).
CREATE OR REPLACE FUNCTION api_audit_list(p_actor text, p_action text, p_object text,
	p_cursor bigint, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('items', COALESCE(json_agg(a ORDER BY a.id DESC), '[]'::json),
		'next_cursor', CASE WHEN count(*) = p_limit THEN min(a.id)::text END)::text
	FROM (SELECT id, at, actor, action, object, before, after FROM audit
		WHERE (p_actor IS NULL OR actor = p_actor) AND (p_action IS NULL OR action = p_action)
		AND (p_object IS NULL OR object = p_object) AND (p_cursor IS NULL OR id < p_cursor)
		ORDER BY id DESC LIMIT p_limit) a
$$;

-- The caller of a request: the token whose SHA-256 (hex) this is, unless
-- revoked; no row otherwise (401).
CREATE OR REPLACE FUNCTION api_token_auth(p_sha256_hex text)
RETURNS TABLE (id bigint, role text, name text)
LANGUAGE sql STABLE AS $$
	SELECT t.id, t.role, t.name FROM api_tokens t
	WHERE t.token_sha256 = decode(p_sha256_hex, 'hex') AND t.revoked_at IS NULL
$$;
