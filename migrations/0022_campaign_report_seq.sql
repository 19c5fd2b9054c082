-- SPDX-License-Identifier: Apache-2.0
-- Reports reordered across servers (docs/scaling.md, "What a failover
-- costs"): each member of the shared subscription stores the reports it
-- received, so a device's reports can reach the database out of order; a
-- report older than the device's stored one is 'stale' (report.sql). A
-- stale report may still be the only one that says how an install ended:
-- a transient failure held by a server whose database connection was down
-- while the device's next, periodic idle report was stored by another. The
-- campaign row then waited for a report that had come and gone, until its
-- device timeout. Now each campaign row keeps the seq its state is as of:
-- the newest report that changed it, or the device's stored seq when it
-- was notified (reports sent before the notification are not about it).
-- rollout_report applies a report, stale or not, to the rows whose seq it
-- exceeds (migrations/code/rollout_engine.sql, report_batch.sql).
--
-- A nullable column without a default: no rewrite, no index (updates stay
-- HOT). NULL: the row has seen no report since this migration (any report
-- applies, as before). Never edit once released.

ALTER TABLE campaign_devices ADD COLUMN report_seq bigint;
