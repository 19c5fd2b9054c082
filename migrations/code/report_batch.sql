-- SPDX-License-Identifier: Apache-2.0
-- Batched report ingest (issue 19): up to report_batch_max StatusReports in
-- one call, one transaction, one round trip. Each report keeps exactly the
-- semantics of report_ingest (report.sql: stored, duplicate, replay, stale,
-- decommissioned; the per-device budget is applied by the server before a
-- report reaches the database): the reports of one device are ingested in
-- the order given, so a batch gives the same rows as the same calls one by
-- one. The batch is one transaction: an error (a deadlock, a lost
-- connection, a report the database refuses) stores none of it, and the
-- caller ingests those reports again one by one with report_ingest (no
-- savepoint per report: a subtransaction each would cost what batching
-- saves). The caller acknowledges the MQTT messages after the call returned.
-- Re-applied by `ota-server migrate` whenever this file changes (docs/server.md).

CREATE OR REPLACE FUNCTION report_batch_max() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
	SELECT 256
$$;

-- p_devices, p_reports, p_digests, p_refused: one element per report, as
-- report_ingest's arguments. Returns one row per report, ord = its index
-- (1-based), with report_ingest's columns.
CREATE OR REPLACE FUNCTION report_ingest_batch(p_devices text[], p_reports jsonb[], p_digests bytea[],
                                               p_refused integer[] DEFAULT NULL)
RETURNS TABLE (ord integer, outcome text, new_events bigint, campaign_changes bigint, suspect boolean,
               refusal_events bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	v_n integer := coalesce(cardinality(p_devices), 0);
	r record;
BEGIN
	IF v_n > report_batch_max() THEN
		RAISE EXCEPTION USING ERRCODE = 'FO422',
			MESSAGE = format('batch: at most %s reports, got %s', report_batch_max(), v_n);
	END IF;
	IF coalesce(cardinality(p_reports), 0) <> v_n OR coalesce(cardinality(p_digests), 0) <> v_n
	   OR (p_refused IS NOT NULL AND cardinality(p_refused) <> v_n) THEN
		RAISE EXCEPTION USING ERRCODE = 'FO422', MESSAGE = 'batch: one report, digest and count per device';
	END IF;
	-- the devices' rows locked in one order: two batches never wait on each
	-- other in a circle
	PERFORM 1 FROM devices d WHERE d.device_id = ANY (p_devices) ORDER BY d.device_id FOR UPDATE;
	FOR i IN 1 .. v_n LOOP
		ord := i;
		SELECT * INTO r FROM report_ingest(p_devices[i], p_reports[i], p_digests[i], coalesce(p_refused[i], 0));
		outcome := r.outcome;
		new_events := r.new_events;
		campaign_changes := r.campaign_changes;
		suspect := r.suspect;
		refusal_events := r.refusal_events;
		RETURN NEXT;
	END LOOP;
END $$;
