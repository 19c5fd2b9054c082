-- SPDX-License-Identifier: Apache-2.0
-- Resumable artifact uploads (web-api/src/uploads.c). A session is one
-- .otab being written, chunk by chunk, to a file in the server's private
-- upload directory (<store_dir>/.uploads/<upload_id>); this row is its
-- state. Only the token that created a session may use it. Sessions expire
-- and are purged (row and file). The bytes live only on the disk of the
-- server's upload directory: processes behind one load balancer share
-- sessions only if they share that directory.
CREATE TABLE uploads (
	upload_id     text PRIMARY KEY CHECK (upload_id ~ '^u_[0-9a-f]{32}$'),
	token_id      bigint NOT NULL REFERENCES api_tokens (id),
	size          bigint NOT NULL CHECK (size > 0),
	upload_offset bigint NOT NULL DEFAULT 0
	              CHECK (upload_offset >= 0 AND upload_offset <= size),
	sha256        bytea CHECK (sha256 IS NULL OR length(sha256) = 32),
	created_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now(),
	expires_at    timestamptz NOT NULL
);
CREATE INDEX uploads_token_idx ON uploads (token_id);
CREATE INDEX uploads_expires_idx ON uploads (expires_at);

-- Opens a session within the bounds: at most p_max_n open sessions and
-- p_max_total declared bytes, all tokens together. Creators take turns (an
-- advisory lock), and each statement here sees what the previous creator
-- committed, so concurrent requests cannot overshoot the bounds. NULL when
-- the upload area is full; else the session (as the API shows it), with
-- its audit row.
CREATE FUNCTION upload_create(p_id text, p_token bigint, p_size bigint, p_sha256 bytea,
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
