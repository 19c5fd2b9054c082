-- SPDX-License-Identifier: Apache-2.0
-- The device listener's trust lists (server/src/device/delivery.c): the
-- newest KeyList or RootList for a device, with whether the device is known
-- and decommissioned (one row, also for an unknown device).
CREATE OR REPLACE FUNCTION delivery_keylist(p_device text)
RETURNS TABLE (known boolean, decommissioned boolean, bytes bytea)
LANGUAGE sql STABLE AS $$
	SELECT d.device_id IS NOT NULL, coalesce(d.decommissioned, false),
	       (SELECT k.bytes FROM keylists k ORDER BY k.version DESC LIMIT 1)
	FROM (SELECT p_device AS dev) p LEFT JOIN devices d ON d.device_id = p.dev
$$;

CREATE OR REPLACE FUNCTION delivery_rootlist(p_device text)
RETURNS TABLE (known boolean, decommissioned boolean, bytes bytea)
LANGUAGE sql STABLE AS $$
	SELECT d.device_id IS NOT NULL, coalesce(d.decommissioned, false),
	       (SELECT r.bytes FROM rootlists r ORDER BY r.version DESC LIMIT 1)
	FROM (SELECT p_device AS dev) p LEFT JOIN devices d ON d.device_id = p.dev
$$;
