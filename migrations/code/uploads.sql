-- SPDX-License-Identifier: Apache-2.0
-- fleetota upload sessions.
-- Re-applied by `ota-server migrate` whenever this file changes (docs/server.md).

-- Opens a session within the bounds: at most p_max_n open sessions and
-- p_max_total declared bytes, all tokens together. Creators take turns (an
-- advisory lock), and each statement here sees what the previous creator
-- committed, so concurrent requests cannot overshoot the bounds. NULL when
-- the upload area is full; else the session (as the API shows it), with
-- its audit row.
CREATE OR REPLACE FUNCTION upload_create(p_id text, p_token bigint, p_size bigint, p_sha256 bytea,
                              p_ttl_s integer, p_max_n integer, p_max_total bigint,
                              p_actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_n bigint;
	v_total numeric;
	v_row uploads;
	v_json jsonb;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('fleetota.upload_create'));
	SELECT count(*), COALESCE(sum(size), 0) INTO v_n, v_total
		FROM uploads WHERE expires_at > now();
	IF v_n >= p_max_n OR v_total + p_size > p_max_total THEN
		RETURN NULL;
	END IF;
	INSERT INTO uploads (upload_id, token_id, size, sha256, expires_at)
		VALUES (p_id, p_token, p_size, p_sha256, now() + make_interval(secs => p_ttl_s))
		RETURNING * INTO v_row;
	v_json := jsonb_build_object('id', v_row.upload_id, 'size', v_row.size,
		'offset', v_row.upload_offset, 'sha256', encode(v_row.sha256, 'hex'),
		'created_at', v_row.created_at, 'updated_at', v_row.updated_at,
		'expires_at', v_row.expires_at);
	INSERT INTO audit (actor, action, object, after)
		VALUES (p_actor, 'upload.create', 'upload:' || p_id, v_json);
	RETURN v_json;
END $$;

-- A session as the API shows it.
CREATE OR REPLACE FUNCTION upload_json(x uploads) RETURNS json
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('id', x.upload_id, 'size', x.size, 'offset', x.upload_offset,
		'sha256', encode(x.sha256, 'hex'), 'created_at', x.created_at, 'updated_at',
		x.updated_at, 'expires_at', x.expires_at)
$$;

-- upload_create (p_sha256_hex: hex or NULL) as text, and the sessions open
-- before it (the 409 names them when the area is full).
CREATE OR REPLACE FUNCTION upload_create_counted(p_id text, p_token bigint, p_size bigint,
	p_sha256_hex text, p_ttl_s integer, p_max_n integer, p_max_total bigint, p_actor text)
RETURNS TABLE (upload text, open_sessions bigint)
LANGUAGE sql AS $$
	SELECT upload_create(p_id, p_token, p_size, decode(p_sha256_hex, 'hex'), p_ttl_s, p_max_n,
			p_max_total, p_actor)::text,
		(SELECT count(*) FROM uploads WHERE expires_at > now())
$$;

-- Token p_token's open session p_id: its JSON, offset, size and SHA-256
-- (hex); no row when there is none.
CREATE OR REPLACE FUNCTION upload_get(p_id text, p_token bigint)
RETURNS TABLE (upload text, upload_offset bigint, size bigint, sha256_hex text)
LANGUAGE sql STABLE AS $$
	SELECT upload_json(x)::text, x.upload_offset, x.size, encode(x.sha256, 'hex')
	FROM uploads x WHERE x.upload_id = p_id AND x.token_id = p_token AND x.expires_at > now()
$$;

-- Moves the offset by a chunk of p_len bytes if it still is p_offset (the
-- row lock makes a second request for the same offset see the new offset
-- and fail): the session's JSON (NULL when it did not move), and the offset
-- and size it had (NULL when there is no such session).
CREATE OR REPLACE FUNCTION upload_advance(p_id text, p_token bigint, p_offset bigint,
	p_len bigint) RETURNS TABLE (upload text, upload_offset bigint, size bigint)
LANGUAGE sql AS $$
	WITH x AS (UPDATE uploads u SET upload_offset = p_offset + p_len, updated_at = now()
		WHERE u.upload_id = p_id AND u.token_id = p_token AND u.expires_at > now()
		AND u.upload_offset = p_offset AND p_offset + p_len <= u.size RETURNING u.*)
	SELECT (SELECT upload_json(x)::text FROM x),
		(SELECT u.upload_offset FROM uploads u WHERE u.upload_id = p_id
			AND u.token_id = p_token AND u.expires_at > now()),
		(SELECT u.size FROM uploads u WHERE u.upload_id = p_id AND u.token_id = p_token)
$$;

-- Undoes upload_advance when the chunk could not be written.
CREATE OR REPLACE FUNCTION upload_retreat(p_id text, p_token bigint, p_offset bigint,
	p_len bigint) RETURNS void
LANGUAGE sql AS $$
	UPDATE uploads SET upload_offset = p_offset WHERE upload_id = p_id AND token_id = p_token
		AND upload_offset = p_offset + p_len
$$;

-- Deletes token p_token's session p_id, audited: its JSON; no row when there
-- is none.
CREATE OR REPLACE FUNCTION upload_delete(p_id text, p_token bigint, p_actor text)
RETURNS SETOF text
LANGUAGE sql AS $$
	WITH x AS (DELETE FROM uploads WHERE upload_id = p_id AND token_id = p_token RETURNING *),
	a AS (INSERT INTO audit (actor, action, object, before)
		SELECT p_actor, 'upload.delete', 'upload:' || x.upload_id, to_jsonb(upload_json(x))
		FROM x)
	SELECT upload_json(x)::text FROM x
$$;

-- Deletes the expired sessions, audited: their ids (the caller removes
-- their files).
CREATE OR REPLACE FUNCTION upload_purge() RETURNS SETOF text
LANGUAGE sql AS $$
	WITH x AS (DELETE FROM uploads WHERE expires_at <= now() RETURNING *),
	a AS (INSERT INTO audit (actor, action, object, before)
		SELECT 'server', 'upload.expire', 'upload:' || x.upload_id, to_jsonb(upload_json(x))
		FROM x)
	SELECT x.upload_id FROM x
$$;
