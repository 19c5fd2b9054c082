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
