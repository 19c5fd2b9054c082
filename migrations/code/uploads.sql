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
