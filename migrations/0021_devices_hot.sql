-- SPDX-License-Identifier: Apache-2.0
-- HOT updates of devices (issue 19; docs/bench.md "Report ingest: HOT
-- updates of devices"). Every stored report updates its device's row; an
-- update that changes no indexed column and finds room on the row's page is
-- HOT: it writes no index entry (devices has seven indexes). Reports now
-- write last_seen only when the stored value is older than a grain
-- (report_seen_at, migrations/code/report.sql), and the table keeps 10 % of
-- each page free for the new versions of its rows.
--
-- fillfactor applies to pages filled from now on (inserts, new pages, a
-- VACUUM FULL or CLUSTER rewrite); existing pages are not rewritten by this
-- statement, and their rows get room as updates and pruning free it. It
-- takes a SHARE UPDATE EXCLUSIVE lock only (no rewrite, reads and writes go on).
-- Never edit once released.

ALTER TABLE devices SET (fillfactor = 90);
