-- SPDX-License-Identifier: Apache-2.0
-- Device reports and security events (issue 12): the digest of the last
-- stored report (a redelivered report is a duplicate, not a replay), the
-- suspect flag an operator sees and clears, and the thresholds. Security
-- events themselves are audit rows (action 'security.<kind>', object
-- 'device:<id>'): no second trail. Never edit once released.

ALTER TABLE devices
	ADD COLUMN last_report_sha256 bytea,
	ADD COLUMN suspect boolean NOT NULL DEFAULT false,
	ADD COLUMN suspect_reason text NOT NULL DEFAULT '',
	ADD COLUMN suspect_at timestamptz,
	-- security events before this instant no longer count (set on clear)
	ADD COLUMN suspect_cleared_at timestamptz;
CREATE INDEX devices_suspect_idx ON devices (device_id) WHERE suspect;

-- Security events of one device in a window (the suspect rule).
CREATE INDEX audit_security_idx ON audit (object, at) WHERE action LIKE 'security.%';

INSERT INTO rollout_settings (name, value) VALUES
	('suspect_threshold', '5'),   -- security events in the window that flag a device
	('suspect_window_s', '3600')  -- the window
ON CONFLICT (name) DO NOTHING;
