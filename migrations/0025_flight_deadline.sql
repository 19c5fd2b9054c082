-- SPDX-License-Identifier: Apache-2.0
-- The tick's per-campaign cost flat in the number of devices in flight
-- (issue 19, docs/campaigns.md "Members in flight"): the members
-- in flight are indexed by when they were notified, so that the timeout
-- check (rollout_timeouts) reads only those notified longer ago than the
-- campaign's device timeout, not every member in flight at every tick.
-- (The same rows and predicate as the index it replaces, which served
-- campaign_id alone: it still does.) And the admission's count of pending
-- rows ready (below). Never edit once released.
DROP INDEX campaign_devices_flight_idx;
CREATE INDEX campaign_devices_flight_idx ON campaign_devices (campaign_id, notified_at)
	WHERE state IN ('notified', 'downloading', 'installed');

-- The pending members waiting for a retry's back-off (transient failures,
-- timeouts retried): admission counts the rows ready from the kept counts
-- less these, instead of reading every pending row at every tick.
CREATE INDEX campaign_devices_retry_idx ON campaign_devices (campaign_id, retry_at)
	WHERE state = 'pending' AND retry_at IS NOT NULL;
