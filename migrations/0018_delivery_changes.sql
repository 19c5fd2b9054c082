-- SPDX-License-Identifier: Apache-2.0
-- What ota-server's in-memory assignment view must forget (issue 19,
-- docs/scaling.md "The manifest cache"): every change that can stop or
-- alter a delivery already answered (an assignment deleted, a device
-- decommissioned or re-imaged, an artifact changed or deleted) appends a
-- row here, numbered in commit order, and each replica polls the rows after
-- the last one it applied. The triggers live in code/delivery_changes.sql.
-- Never edit once released.

-- The last change number. Taking the next one locks this row until the
-- change commits, so numbers become visible in order: a reader that sees
-- change N also sees every change before it.
CREATE TABLE delivery_version (
	id     boolean PRIMARY KEY DEFAULT true CHECK (id),
	seq    bigint NOT NULL,
	oldest bigint NOT NULL -- the first number still kept in delivery_changes
);
INSERT INTO delivery_version (seq, oldest) VALUES (0, 1);

-- device_id NULL: every device; artifact_id NULL: every artifact.
CREATE TABLE delivery_changes (
	seq         bigint NOT NULL,
	device_id   text,
	artifact_id text
);
CREATE INDEX delivery_changes_seq_idx ON delivery_changes (seq);
