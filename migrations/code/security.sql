-- SPDX-License-Identifier: Apache-2.0
-- Security events and the suspect flag (issue 12). A security event is an
-- audit row: actor 'device:<id>', action 'security.<kind>', object
-- 'device:<id>', after = {"detail": ...}. Kinds: cross_device (asked for an
-- artifact not assigned to it), replay (a report with seq 0 or not newer
-- than the stored one), flood (over its report budget), refusal (the device
-- refused something for a security reason: pin, signature, hash, chain,
-- rollback). A device with rollout_setting('suspect_threshold') events in
-- rollout_setting('suspect_window_s') seconds, counted after its last clear,
-- is flagged suspect (reason and time kept) until an operator clears it.

-- Records one event; returns whether the device is suspect afterwards (false
-- for an unknown device, whose event is still audited).
CREATE OR REPLACE FUNCTION security_event(p_device text, p_kind text, p_detail text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	v_object text := 'device:' || p_device;
	v_threshold integer := rollout_setting('suspect_threshold', '5')::integer;
	v_window interval := make_interval(secs => rollout_setting('suspect_window_s', '3600')::integer);
	v_count bigint;
	v_suspect boolean;
BEGIN
	IF p_kind NOT IN ('cross_device', 'replay', 'flood', 'refusal') THEN
		RAISE EXCEPTION USING ERRCODE = 'FO422', MESSAGE = 'kind: unknown security event ' || p_kind;
	END IF;
	INSERT INTO audit (actor, action, object, after)
	VALUES (v_object, 'security.' || p_kind, v_object,
	        jsonb_build_object('detail', left(coalesce(p_detail, ''), 1024)));
	SELECT count(*) INTO v_count FROM audit a, devices d
	WHERE d.device_id = p_device AND a.object = v_object AND a.action LIKE 'security.%'
	  AND a.at > greatest(now() - v_window, coalesce(d.suspect_cleared_at, '-infinity'));
	UPDATE devices
	SET suspect = true, suspect_at = now(),
	    suspect_reason = format('%s security events in %s s, last: %s (%s)', v_count,
	                            extract(epoch FROM v_window)::bigint, p_kind, left(coalesce(p_detail, ''), 200))
	WHERE device_id = p_device AND NOT suspect AND v_count >= v_threshold
	RETURNING true INTO v_suspect;
	IF v_suspect THEN
		INSERT INTO audit (actor, action, object, after)
		SELECT 'system', 'device.suspect', v_object,
		       jsonb_build_object('suspect', true, 'suspect_reason', suspect_reason, 'suspect_at', suspect_at)
		FROM devices WHERE device_id = p_device;
		RETURN true;
	END IF;
	RETURN coalesce((SELECT suspect FROM devices WHERE device_id = p_device), false);
END $$;

-- An operator clears the flag (audited with before and after). Returns the
-- device row, or NULL when there is no such device.
CREATE OR REPLACE FUNCTION security_suspect_clear(p_device text, p_actor text)
RETURNS devices
LANGUAGE plpgsql AS $$
DECLARE
	v_old devices;
	v_new devices;
BEGIN
	SELECT * INTO v_old FROM devices WHERE device_id = p_device FOR UPDATE;
	IF NOT found THEN
		RETURN NULL;
	END IF;
	UPDATE devices SET suspect = false, suspect_reason = '', suspect_at = NULL,
	                   suspect_cleared_at = now()
	WHERE device_id = p_device RETURNING * INTO v_new;
	INSERT INTO audit (actor, action, object, before, after)
	VALUES (p_actor, 'device.suspect_clear', 'device:' || p_device,
	        jsonb_build_object('suspect', v_old.suspect, 'suspect_reason', v_old.suspect_reason,
	                           'suspect_at', v_old.suspect_at),
	        jsonb_build_object('suspect', false));
	RETURN v_new;
END $$;
