-- SPDX-License-Identifier: Apache-2.0
-- Batched report ingest (issue 19): up to report_batch_max StatusReports in
-- one call, one transaction, one round trip. Each report keeps exactly the
-- semantics of report_ingest (report.sql: stored, duplicate, replay, stale,
-- decommissioned; the per-device budget is applied by the server before a
-- report reaches the database): a batch gives the same rows and outcomes as
-- the same calls one by one. The batch is one transaction: an error (a
-- deadlock, a lost connection, a report the database refuses) stores none of
-- it, and the caller ingests those reports again one by one with
-- report_ingest (no savepoint per report: a subtransaction each would cost
-- what batching saves). The caller acknowledges the MQTT messages after the
-- call returned.
--
-- Set-based, in rounds: round k takes the k-th report of every device in the
-- batch (usually there is one round: a device reports seconds apart). In a
-- round the devices are distinct, and devices do not depend on each other,
-- so each round is: one classification against the stored rows, one
-- registry upsert, one assignments update, one statement of the rollout
-- engine (report_rollout_set: rollout_report over the set) and one events
-- insert for all of its reports; rollout_health per report that carries
-- health, security events once per event (both rare). The rounds keep each
-- device's reports in their order (they depend on each other: the stored
-- seq, the campaign state). A batch or round of one report is report_ingest
-- itself.
--
-- Plans: generic, made once per connection (SET plan_cache_mode =
-- force_generic_plan on the three functions). With the batch's arrays as
-- constants a custom plan always looked cheaper than the generic one, so
-- PL/pgSQL planned every statement again at every call: most of a small
-- batch's CPU (docs/bench.md, "Report ingest: where PostgreSQL's CPU per
-- install went"). So every statement reads the batch's own rows by key,
-- one index probe per device (LATERAL ... OFFSET 0, a scalar subquery,
-- tuple ids), whatever the estimates: joined to the arrays as plain tables,
-- the plans scanned all of devices and campaign_devices instead (four whole
-- scans per round), CPU per report that grew with the fleet. (jit = off:
-- no statement here is worth compiling.) enable_seqscan = off: ota-server's
-- ingest connection makes these plans once, often while the tables are
-- still empty, and keeps them until an ANALYZE; on an empty table a
-- sequential scan looked cheaper than reading the rows by tuple id or key
-- (report_rollout_set's update of the campaign rows it locked was a hash
-- join over all of campaign_devices, once a round: a read that grew with
-- the fleet). No statement here, nor one they fire, needs a whole table.
-- Re-applied by `ota-server migrate` whenever this file changes (docs/server.md).

CREATE OR REPLACE FUNCTION report_batch_max() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
	SELECT 256
$$;

-- report_ingest_batch's work for reports of distinct devices (one round):
-- arguments and result as report_ingest_batch's; the caller validated the
-- arrays and locked the devices' rows. p_events false: the reports' events
-- are left to the caller (new_events and refusal_events 0), which stores
-- them for all rounds at once. p_outcomes (not NULL): the caller classified
-- the reports and stored the registry rows for all rounds at once, and no
-- report of the batch makes a security event: the round updates the
-- assignments and runs the rollout engine only (suspect NULL: the caller's).
DROP FUNCTION IF EXISTS report_ingest_distinct(text[], jsonb[], bytea[], integer[]);
DROP FUNCTION IF EXISTS report_ingest_distinct(text[], jsonb[], bytea[], integer[], boolean);
CREATE OR REPLACE FUNCTION report_ingest_distinct(p_devices text[], p_reports jsonb[], p_digests bytea[],
                                                  p_refused integer[] DEFAULT NULL, p_events boolean DEFAULT true,
                                                  p_outcomes text[] DEFAULT NULL)
RETURNS TABLE (ord integer, outcome text, new_events bigint, campaign_changes bigint, suspect boolean,
               refusal_events bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET jit = off SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
	v_n integer := coalesce(cardinality(p_devices), 0);
	-- per report (index = ord)
	v_outcome text[];
	v_events bigint[];
	v_changes bigint[];
	v_refusals bigint[];
	v_twice boolean;
	v_health boolean; -- a report carries post-install health
	v_written jsonb[]; -- per report: the campaign rows the engine wrote, {campaign: state}
	r record;
BEGIN
	IF v_n = 0 THEN
		RETURN;
	ELSIF v_n = 1 AND p_events AND p_outcomes IS NULL THEN
		-- one report: report_ingest itself (fewer statements, the same rows;
		-- not when the caller stores the events or the registry rows)
		RETURN QUERY SELECT 1, i.* FROM report_ingest(p_devices[1], p_reports[1], p_digests[1],
		                                               coalesce(p_refused[1], 0)) i;
		RETURN;
	END IF;
	v_events := array_fill(0::bigint, ARRAY[v_n]);
	v_changes := array_fill(0::bigint, ARRAY[v_n]);
	v_written := array_fill(NULL::jsonb, ARRAY[v_n]);
	v_refusals := array_fill(0::bigint, ARRAY[v_n]);
	IF p_outcomes IS NOT NULL THEN
		v_outcome := p_outcomes;
		SELECT bool_or(coalesce((u.report->>'health_known')::boolean, false) AND u.outcome = 'stored')
		INTO v_health FROM unnest(p_reports, v_outcome) AS u(report, outcome);
	ELSE
	-- report_ingest's classification against the stored row
	SELECT array_agg(c.outcome ORDER BY c.ord), bool_or(c.several), bool_or(c.health AND c.outcome = 'stored')
	INTO v_outcome, v_twice, v_health
	FROM (SELECT b.ord, b.several, b.health,
	             CASE WHEN d.decommissioned THEN 'decommissioned'
	                  WHEN b.seq = d.last_report_seq AND d.last_report_sha256 = b.digest THEN 'duplicate'
	                  WHEN b.seq <= 0 OR b.seq = d.last_report_seq THEN 'replay'
	                  WHEN b.seq < d.last_report_seq THEN 'stale'
	                  ELSE 'stored'
	             END AS outcome
	      FROM (SELECT u.ord, u.device_id, u.digest, (u.report->>'seq')::bigint AS seq,
	                   coalesce((u.report->>'health_known')::boolean, false) AS health,
	                   count(*) OVER (PARTITION BY u.device_id) > 1 AS several
	            FROM unnest(p_devices, p_reports, p_digests) WITH ORDINALITY AS u(device_id, report, digest, ord)) b
	      LEFT JOIN LATERAL (SELECT x.decommissioned, x.last_report_seq, x.last_report_sha256
	                         FROM devices x WHERE x.device_id = b.device_id OFFSET 0) d ON true) c;
	IF v_twice THEN
		RAISE EXCEPTION USING ERRCODE = 'FO422', MESSAGE = 'batch: a device twice in one round';
	END IF;

	-- replays: a security event each (before anything is stored, as
	-- report_ingest; the row they name does not change in this round). The
	-- loops below that are rarely needed run only when they are (a
	-- statement each per round, run or not, was a share of a small batch)
	IF 'replay' = ANY (v_outcome) THEN
		FOR r IN SELECT u.device_id, format('report seq %s, stored seq %s', (u.report->>'seq')::bigint,
		                                    coalesce(d.last_report_seq, 0)) AS detail
		         FROM unnest(p_devices, p_reports, v_outcome) WITH ORDINALITY AS u(device_id, report, outcome, ord)
		         LEFT JOIN LATERAL (SELECT x.last_report_seq FROM devices x WHERE x.device_id = u.device_id
		                            OFFSET 0) d ON true
		         WHERE u.outcome = 'replay'
		         ORDER BY u.ord LOOP
			PERFORM security_event(r.device_id, 'replay', r.detail);
		END LOOP;
	END IF;

	-- the registry: one upsert of every stored report (report_ingest's)
	INSERT INTO devices AS d (device_id, model, hw_revision, version, version_code,
	                          security_counter, keylist_version, rootlist_version, keylist_key_ids,
	                          pending_version, active_slot, state, last_error, last_error_detail,
	                          last_report_seq, last_report_sha256, running_sha256, last_seen)
	SELECT u.device_id, u.report->>'model', u.report->>'hw_revision', u.report->>'version',
	       (u.report->>'version_code')::bigint, (u.report->>'security_counter')::bigint,
	       (u.report->>'keylist_version')::bigint, (u.report->>'rootlist_version')::bigint,
	       ARRAY(SELECT decode(x, 'hex') FROM jsonb_array_elements_text(u.report->'keylist_key_ids') x),
	       u.report->>'pending_version', (u.report->>'active_slot')::integer, u.report->>'state',
	       u.report->>'error', u.report->>'error_detail', (u.report->>'seq')::bigint, u.digest,
	       decode(nullif(u.report->>'running_sha256', ''), 'hex'), now()
	FROM unnest(p_devices, p_reports, p_digests, v_outcome) AS u(device_id, report, digest, outcome)
	WHERE u.outcome = 'stored'
	ORDER BY u.device_id
	ON CONFLICT (device_id) DO UPDATE SET
		model = CASE WHEN EXCLUDED.model <> '' THEN EXCLUDED.model ELSE d.model END,
		hw_revision = CASE WHEN EXCLUDED.hw_revision <> '' THEN EXCLUDED.hw_revision
		                   ELSE d.hw_revision END,
		version = EXCLUDED.version, version_code = EXCLUDED.version_code,
		security_counter = EXCLUDED.security_counter,
		keylist_version = EXCLUDED.keylist_version,
		rootlist_version = EXCLUDED.rootlist_version,
		keylist_key_ids = EXCLUDED.keylist_key_ids,
		pending_version = EXCLUDED.pending_version, active_slot = EXCLUDED.active_slot,
		state = EXCLUDED.state, last_error = EXCLUDED.last_error,
		last_error_detail = EXCLUDED.last_error_detail,
		last_report_seq = EXCLUDED.last_report_seq,
		last_report_sha256 = EXCLUDED.last_report_sha256,
		running_sha256 = EXCLUDED.running_sha256,
		last_seen = report_seen_at(d.last_seen); -- at most once a grain (report.sql)
	END IF;

	-- the rollout engine for every stored and stale report at once
	-- (report_ingest's calls: a refused delta the device falls back from is
	-- no failed install, deltas.sql; report_rollout_set below is
	-- rollout_report over a set, each report's seq against the rows' own),
	-- then post-install health (StatusReport 30..32) per report that has it
	FOR r IN
		WITH st AS (
			SELECT u.ord, u.device_id, u.report,
			       delta_report_state(u.device_id, u.report->>'artifact', u.report->>'state',
			                          u.report->>'error') AS state
			FROM unnest(p_devices, p_reports, v_outcome) WITH ORDINALITY AS u(device_id, report, outcome, ord)
			WHERE u.outcome IN ('stored', 'stale')
		), agg AS (
			SELECT array_agg(st.device_id ORDER BY st.device_id) AS devices,
			       array_agg(st.state ORDER BY st.device_id) AS states,
			       array_agg((st.report->>'version_code')::bigint ORDER BY st.device_id) AS vcs,
			       array_agg((st.report->>'keylist_version')::bigint ORDER BY st.device_id) AS kls,
			       array_agg((st.report->>'rootlist_version')::bigint ORDER BY st.device_id) AS rls,
			       array_agg(st.report->>'error' ORDER BY st.device_id) AS errors,
			       array_agg(st.report->>'campaign_id' ORDER BY st.device_id) AS campaigns,
			       array_agg((st.report->>'seq')::bigint ORDER BY st.device_id) AS seqs
			FROM st
		)
		SELECT st.ord, coalesce(x.changes, 0) AS changes, x.device_id, x.campaigns, x.states
		FROM st LEFT JOIN (SELECT s.* FROM agg, report_rollout_set(agg.devices, agg.states, agg.vcs, agg.kls,
		                                                           agg.rls, agg.errors, agg.campaigns,
		                                                           agg.seqs, false) s) x
		     ON x.device_id = st.device_id
	LOOP
		v_changes[r.ord] := r.changes;
		IF r.campaigns IS NOT NULL THEN
			v_written[r.ord] := jsonb_object(r.campaigns, r.states);
		END IF;
	END LOOP;

	-- the assignments, in one statement after the engine, each row written
	-- once and only when its state or error changes: what report_ingest's
	-- two updates leave (its own of the assignment the stored report names:
	-- the report's state and error; then rollout_report's of the assignment
	-- of each campaign row it wrote: that row's state). Written twice, a row
	-- cost a second version and, updated again in its transaction, the
	-- foreign-key checks of both its keys. Each device's rows by its key (a
	-- device has a few; joined on the artifact with =, the generic plan made
	-- while assignments was empty walked assignments_artifact_idx, every
	-- device of the campaign's artifact per report: a read that grew with
	-- the fleet). Locked and written by tuple id (as report_rollout_set's
	-- campaign rows): the lock gives the newest version of a row the tick or
	-- the manifest path just wrote, after the campaign rows (the tick's
	-- order).
	WITH x AS (
		SELECT l.row_tid, l.state, l.error
		FROM unnest(p_devices, p_reports, v_outcome, v_written) AS u(device_id, report, outcome, written)
		CROSS JOIN LATERAL (
			SELECT y.ctid AS row_tid, n.state, n.error
			FROM assignments y
			CROSS JOIN LATERAL (
				SELECT coalesce(u.written->>y.campaign_id, CASE WHEN named THEN u.report->>'state' END,
				                y.state) AS state,
				       CASE WHEN named THEN u.report->>'error' ELSE y.error END AS error
				FROM (VALUES (u.outcome = 'stored' AND u.report->>'artifact' <> ''
				              AND y.artifact_id = u.report->>'artifact')) AS m(named)) n
			WHERE y.device_id = u.device_id AND (y.state, y.error) IS DISTINCT FROM (n.state, n.error)
			OFFSET 0 FOR NO KEY UPDATE OF y) l
		WHERE (u.outcome = 'stored' AND u.report->>'artifact' <> '') OR u.written IS NOT NULL
	)
	UPDATE assignments a SET state = x.state, error = x.error, updated_at = now()
	FROM x
	WHERE a.ctid = ANY (ARRAY(SELECT x.row_tid FROM x)) AND a.ctid = x.row_tid;
	-- (rollout_health changes nothing, but refuses values out of range, while
	-- no running or paused campaign has a stage that watches health: then
	-- no call, no update and no statement trigger per report)
	IF v_health AND (EXISTS (SELECT 1 FROM campaign_stages s JOIN campaigns k ON k.campaign_id = s.campaign_id
	                         WHERE s.health_window_s IS NOT NULL AND k.state IN ('running', 'paused'))
	                 OR EXISTS (SELECT 1 FROM unnest(p_reports, v_outcome) AS u(report, outcome)
	                            WHERE u.outcome = 'stored' AND coalesce((u.report->>'health_known')::boolean, false)
	                              AND ((u.report->>'unexpected_reboots')::bigint IS NULL
	                                   OR (u.report->>'unexpected_reboots')::bigint < 0
	                                   OR (u.report->>'health_permille')::bigint IS NULL
	                                   OR (u.report->>'health_permille')::bigint NOT BETWEEN 0 AND 1000))) THEN
		FOR r IN SELECT u.ord, u.device_id, u.report
		         FROM unnest(p_devices, p_reports, v_outcome) WITH ORDINALITY AS u(device_id, report, outcome, ord)
		         WHERE u.outcome = 'stored' AND coalesce((u.report->>'health_known')::boolean, false) LOOP
			v_changes[r.ord] := v_changes[r.ord]
			                    + rollout_health(r.device_id, (r.report->>'version_code')::bigint,
			                                     (r.report->>'unexpected_reboots')::bigint,
			                                     (r.report->>'health_permille')::bigint);
		END LOOP;
	END IF;

	-- the events of stored and stale reports, in one insert: each (device,
	-- seq) once, the first in the report as report_ingest's insert keeps it
	-- (p_events false: the caller's, report_batch_events)
	IF p_events THEN
		FOR r IN
			WITH src AS (
				SELECT DISTINCT ON (u.device_id, e.seq) u.ord, e.idx, u.device_id, e.seq, e.kind, e.error,
				       e.version, e.version_code, e.security_counter, e.detail,
				       coalesce(nullif(e.campaign_id, ''), u.report->>'campaign_id') AS campaign_id, e.time
				FROM unnest(p_devices, p_reports, v_outcome) WITH ORDINALITY AS u(device_id, report, outcome, ord)
				CROSS JOIN LATERAL ROWS FROM (jsonb_to_recordset(u.report->'events')
				         AS (seq bigint, kind text, error text, version text, version_code bigint,
				             security_counter bigint, detail text, campaign_id text, time bigint))
				     WITH ORDINALITY AS e(seq, kind, error, version, version_code, security_counter, detail,
				                          campaign_id, time, idx)
				WHERE u.outcome IN ('stored', 'stale')
				ORDER BY u.device_id, e.seq, e.idx
			), ins AS (
				INSERT INTO device_events (device_id, seq, kind, error, version, version_code,
				                           security_counter, detail, campaign_id, device_time)
				SELECT s.device_id, s.seq, s.kind, s.error, s.version, s.version_code, s.security_counter,
				       s.detail, s.campaign_id, s.time
				FROM src s ORDER BY s.ord, s.idx
				ON CONFLICT (device_id, seq) DO NOTHING
				RETURNING device_id, seq
			)
			SELECT s.ord, count(*) AS n,
			       coalesce(array_agg(format('event %s %s: %s', s.seq, s.kind, s.error) ORDER BY s.idx)
			                FILTER (WHERE report_security_error(s.error)), '{}') AS refusals
			FROM ins JOIN src s ON s.device_id = ins.device_id AND s.seq = ins.seq
			GROUP BY s.ord
		LOOP
			v_events[r.ord] := r.n;
			v_refusals[r.ord] := cardinality(r.refusals);
			-- each new event once: a device re-sends its newest events in every report
			FOR i IN 1 .. cardinality(r.refusals) LOOP
				PERFORM security_event(p_devices[r.ord], 'refusal', r.refusals[i]);
			END LOOP;
		END LOOP;
	END IF;

	IF p_refused IS NOT NULL AND 0 < ANY (p_refused) THEN
		FOR r IN SELECT u.device_id, u.refused
		         FROM unnest(p_devices, p_refused, v_outcome) WITH ORDINALITY AS u(device_id, refused, outcome, ord)
		         WHERE u.refused > 0
		         ORDER BY u.ord LOOP
			PERFORM security_event(r.device_id, 'flood',
			                       format('%s reports over the budget refused', r.refused));
		END LOOP;
	END IF;

	-- the suspect flags as the round left them, read by key in the result
	IF p_outcomes IS NOT NULL THEN
		RETURN QUERY
		SELECT i, v_outcome[i], v_events[i], v_changes[i], NULL::boolean, v_refusals[i]
		FROM generate_series(1, v_n) AS i;
		RETURN;
	END IF;
	RETURN QUERY
	SELECT i, v_outcome[i], v_events[i], v_changes[i],
	       coalesce((SELECT d.suspect FROM devices d WHERE d.device_id = p_devices[i]), false), v_refusals[i]
	FROM generate_series(1, v_n) AS i;
END $$;

-- p_devices, p_reports, p_digests, p_refused: one element per report, as
-- report_ingest's arguments. Returns one row per report in their order,
-- ord = its index (1-based), with report_ingest's columns.
CREATE OR REPLACE FUNCTION report_ingest_batch(p_devices text[], p_reports jsonb[], p_digests bytea[],
                                               p_refused integer[] DEFAULT NULL)
RETURNS TABLE (ord integer, outcome text, new_events bigint, campaign_changes bigint, suspect boolean,
               refusal_events bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET jit = off SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
	v_n integer := coalesce(cardinality(p_devices), 0);
	v_round integer[];
	v_rounds integer;
	v_ords integer[];
	v_devices text[];
	v_reports jsonb[];
	v_digests bytea[];
	v_refused integer[];
	-- per report (index = ord)
	v_outcome text[];
	v_events bigint[];
	v_changes bigint[];
	v_suspect boolean[];
	v_refusals bigint[];
	v_events_after boolean;
	-- the reports sorted by round, and a round's bounds in them
	s_ords integer[];
	s_devices text[];
	s_reports jsonb[];
	s_digests bytea[];
	s_refused integer[];
	s_rounds integer[];
	v_lo integer;
	v_hi integer;
	-- the registry once a batch: its devices' stored rows, outcomes
	v_registry boolean;
	dv_ids text[];
	dv_dec boolean[];
	dv_seq bigint[];
	dv_sha bytea[];
	v_all text[];
	s_all text[];
	v_j integer;
	v_seq bigint;
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
	IF v_n = 0 THEN
		RETURN;
	ELSIF v_n = 1 THEN
		-- one report: report_ingest itself (fewer statements, the same rows)
		RETURN QUERY SELECT 1, i.* FROM report_ingest(p_devices[1], p_reports[1], p_digests[1],
		                                               coalesce(p_refused[1], 0)) i;
		RETURN;
	END IF;
	-- the devices' rows locked in one order: two batches never wait on each
	-- other in a circle. FOR NO KEY UPDATE (report_ingest's lock): it
	-- serialises two ingests of a device (it conflicts with itself) but not
	-- the rollout tick's INSERT into assignments, whose foreign key takes
	-- KEY SHARE on the device row (FOR UPDATE blocked it: a deadlock when
	-- the batch then waited on the campaign rows the tick holds)
	PERFORM 1
	FROM (SELECT DISTINCT u.device_id FROM unnest(p_devices) AS u(device_id) ORDER BY u.device_id) u
	CROSS JOIN LATERAL (SELECT 1 FROM devices d WHERE d.device_id = u.device_id OFFSET 0
	                    FOR NO KEY UPDATE) l;
	-- round k: the k-th report of each device in the batch; the reports
	-- also sorted by round (s_*), each round a slice of them (one statement
	-- a batch, not one a round)
	SELECT array_agg(x.round ORDER BY x.ord), max(x.round),
	       array_agg(x.ord ORDER BY x.round, x.ord), array_agg(x.device_id ORDER BY x.round, x.ord),
	       array_agg(x.report ORDER BY x.round, x.ord), array_agg(x.digest ORDER BY x.round, x.ord),
	       array_agg(x.refused ORDER BY x.round, x.ord), array_agg(x.round ORDER BY x.round, x.ord)
	INTO v_round, v_rounds, s_ords, s_devices, s_reports, s_digests, s_refused, s_rounds
	FROM (SELECT u.ord::integer AS ord, u.device_id, u.report, u.digest, u.refused,
	             row_number() OVER (PARTITION BY u.device_id ORDER BY u.ord)::integer AS round
	      FROM unnest(p_devices, p_reports, p_digests, p_refused)
	           WITH ORDINALITY AS u(device_id, report, digest, refused, ord)) x;
	IF v_rounds = 1 THEN
		RETURN QUERY SELECT * FROM report_ingest_distinct(p_devices, p_reports, p_digests, p_refused) i
		             ORDER BY i.ord;
		RETURN;
	END IF;
	-- the events of every round in one insert after the rounds (one
	-- statement instead of one a round; the rows, their order and each
	-- report's new_events as the rounds' own inserts leave them), unless an
	-- event carries a security refusal: its security event and the suspect
	-- flag belong to its round, so then each round stores its own
	v_events_after := NOT EXISTS (SELECT 1 FROM unnest(p_reports) AS u(report)
	                              CROSS JOIN LATERAL jsonb_to_recordset(u.report->'events') AS e(error text)
	                              WHERE report_security_error(e.error));
	-- the registry rows once for all rounds, when no report of the batch
	-- makes a security event (no refusal, none over the budget, no replay):
	-- the rounds' classification done here in report order against the
	-- stored row as the rounds leave it (a stored report sets its seq and
	-- digest), then one upsert of each device's stored reports with what
	-- their upserts one after the other leave (the last report's fields,
	-- the last model and hw_revision that are not empty; last_seen moves at
	-- most once a grain either way). Nothing the rounds do reads these
	-- columns, and nothing in them reads the registry but the statement
	-- triggers, which then see each device's first and last row.
	v_registry := v_events_after AND (p_refused IS NULL OR NOT (0 < ANY (p_refused)));
	IF v_registry THEN
		SELECT array_agg(u.device_id), array_agg(x.decommissioned), array_agg(x.last_report_seq),
		       array_agg(x.last_report_sha256)
		INTO dv_ids, dv_dec, dv_seq, dv_sha
		FROM (SELECT DISTINCT v.device_id FROM unnest(p_devices) AS v(device_id)) u
		LEFT JOIN LATERAL (SELECT d.decommissioned, d.last_report_seq, d.last_report_sha256
		                   FROM devices d WHERE d.device_id = u.device_id OFFSET 0) x ON true;
		FOR i IN 1 .. v_n LOOP
			v_j := array_position(dv_ids, p_devices[i]);
			v_seq := (p_reports[i]->>'seq')::bigint;
			v_all[i] := CASE WHEN dv_dec[v_j] THEN 'decommissioned'
			                 WHEN v_seq = dv_seq[v_j] AND dv_sha[v_j] = p_digests[i] THEN 'duplicate'
			                 WHEN v_seq <= 0 OR v_seq = dv_seq[v_j] THEN 'replay'
			                 WHEN v_seq < dv_seq[v_j] THEN 'stale'
			                 ELSE 'stored' END;
			IF v_all[i] = 'replay' THEN
				v_registry := false;
				EXIT;
			ELSIF v_all[i] = 'stored' THEN
				dv_seq[v_j] := v_seq;
				dv_sha[v_j] := p_digests[i];
			END IF;
		END LOOP;
	END IF;
	IF v_registry THEN
		FOR i IN 1 .. v_n LOOP
			s_all[i] := v_all[s_ords[i]];
		END LOOP;
		INSERT INTO devices AS d (device_id, model, hw_revision, version, version_code,
		                          security_counter, keylist_version, rootlist_version, keylist_key_ids,
		                          pending_version, active_slot, state, last_error, last_error_detail,
		                          last_report_seq, last_report_sha256, running_sha256, last_seen)
		SELECT x.device_id, coalesce(x.model, p_reports[x.first_ord]->>'model'),
		       coalesce(x.hw_revision, p_reports[x.first_ord]->>'hw_revision'), l.report->>'version',
		       (l.report->>'version_code')::bigint, (l.report->>'security_counter')::bigint,
		       (l.report->>'keylist_version')::bigint, (l.report->>'rootlist_version')::bigint,
		       ARRAY(SELECT decode(k, 'hex') FROM jsonb_array_elements_text(l.report->'keylist_key_ids') k),
		       l.report->>'pending_version', (l.report->>'active_slot')::integer, l.report->>'state',
		       l.report->>'error', l.report->>'error_detail', (l.report->>'seq')::bigint, l.digest,
		       decode(nullif(l.report->>'running_sha256', ''), 'hex'), now()
		FROM (SELECT u.device_id, max(u.ord)::integer AS last_ord, min(u.ord)::integer AS first_ord,
		             (array_agg(u.report->>'model' ORDER BY u.ord DESC)
		                  FILTER (WHERE u.report->>'model' <> ''))[1] AS model,
		             (array_agg(u.report->>'hw_revision' ORDER BY u.ord DESC)
		                  FILTER (WHERE u.report->>'hw_revision' <> ''))[1] AS hw_revision
		      FROM unnest(p_devices, p_reports, v_all) WITH ORDINALITY AS u(device_id, report, outcome, ord)
		      WHERE u.outcome = 'stored'
		      GROUP BY u.device_id) x
		CROSS JOIN LATERAL (SELECT p_reports[x.last_ord] AS report, p_digests[x.last_ord] AS digest) l
		ORDER BY x.device_id
		ON CONFLICT (device_id) DO UPDATE SET
			model = CASE WHEN EXCLUDED.model <> '' THEN EXCLUDED.model ELSE d.model END,
			hw_revision = CASE WHEN EXCLUDED.hw_revision <> '' THEN EXCLUDED.hw_revision
			                   ELSE d.hw_revision END,
			version = EXCLUDED.version, version_code = EXCLUDED.version_code,
			security_counter = EXCLUDED.security_counter,
			keylist_version = EXCLUDED.keylist_version,
			rootlist_version = EXCLUDED.rootlist_version,
			keylist_key_ids = EXCLUDED.keylist_key_ids,
			pending_version = EXCLUDED.pending_version, active_slot = EXCLUDED.active_slot,
			state = EXCLUDED.state, last_error = EXCLUDED.last_error,
			last_error_detail = EXCLUDED.last_error_detail,
			last_report_seq = EXCLUDED.last_report_seq,
			last_report_sha256 = EXCLUDED.last_report_sha256,
			running_sha256 = EXCLUDED.running_sha256,
			last_seen = report_seen_at(d.last_seen); -- at most once a grain (report.sql)
	END IF;
	FOR k IN 1 .. v_rounds LOOP
		v_lo := array_position(s_rounds, k);
		v_hi := CASE WHEN k < v_rounds THEN array_position(s_rounds, k + 1) - 1 ELSE v_n END;
		v_ords := s_ords[v_lo:v_hi];
		v_devices := s_devices[v_lo:v_hi];
		v_reports := s_reports[v_lo:v_hi];
		v_digests := s_digests[v_lo:v_hi];
		v_refused := s_refused[v_lo:v_hi];
		FOR r IN SELECT * FROM report_ingest_distinct(v_devices, v_reports, v_digests, v_refused,
		                                              NOT v_events_after,
		                                              CASE WHEN v_registry THEN s_all[v_lo:v_hi] END) LOOP
			v_outcome[v_ords[r.ord]] := r.outcome;
			v_events[v_ords[r.ord]] := r.new_events;
			v_changes[v_ords[r.ord]] := r.campaign_changes;
			v_suspect[v_ords[r.ord]] := r.suspect;
			v_refusals[v_ords[r.ord]] := r.refusal_events;
		END LOOP;
	END LOOP;
	IF v_registry THEN
		-- no security event in the batch: the flags are the rounds' own
		SELECT array_agg(coalesce(x.suspect, false) ORDER BY u.ord) INTO v_suspect
		FROM unnest(p_devices) WITH ORDINALITY AS u(device_id, ord)
		LEFT JOIN LATERAL (SELECT d.suspect FROM devices d WHERE d.device_id = u.device_id OFFSET 0) x ON true;
	END IF;
	IF v_events_after THEN
		-- report_ingest_distinct's insert over all rounds: each (device, seq)
		-- once, from the device's first report that has it, inserted round by
		-- round in report order
		FOR r IN
			WITH src AS (
				SELECT DISTINCT ON (u.device_id, e.seq) u.ord, u.round, e.idx, u.device_id, e.seq, e.kind,
				       e.error, e.version, e.version_code, e.security_counter, e.detail,
				       coalesce(nullif(e.campaign_id, ''), u.report->>'campaign_id') AS campaign_id, e.time
				FROM unnest(p_devices, p_reports, v_outcome, v_round)
				     WITH ORDINALITY AS u(device_id, report, outcome, round, ord)
				CROSS JOIN LATERAL ROWS FROM (jsonb_to_recordset(u.report->'events')
				         AS (seq bigint, kind text, error text, version text, version_code bigint,
				             security_counter bigint, detail text, campaign_id text, time bigint))
				     WITH ORDINALITY AS e(seq, kind, error, version, version_code, security_counter, detail,
				                          campaign_id, time, idx)
				WHERE u.outcome IN ('stored', 'stale')
				ORDER BY u.device_id, e.seq, u.ord, e.idx
			), ins AS (
				INSERT INTO device_events (device_id, seq, kind, error, version, version_code,
				                           security_counter, detail, campaign_id, device_time)
				SELECT s.device_id, s.seq, s.kind, s.error, s.version, s.version_code, s.security_counter,
				       s.detail, s.campaign_id, s.time
				FROM src s ORDER BY s.round, s.ord, s.idx
				ON CONFLICT (device_id, seq) DO NOTHING
				RETURNING device_id, seq
			)
			SELECT s.ord, count(*) AS n
			FROM ins JOIN src s ON s.device_id = ins.device_id AND s.seq = ins.seq
			GROUP BY s.ord
		LOOP
			v_events[r.ord] := r.n;
		END LOOP;
	END IF;
	RETURN QUERY
	SELECT i, v_outcome[i], v_events[i], v_changes[i], v_suspect[i], v_refusals[i]
	FROM generate_series(1, v_n) AS i;
END $$;

-- rollout_report (migrations/code/rollout_engine.sql) for a set of distinct
-- devices, one report each (arrays pairwise, as rollout_report's arguments;
-- p_now: clock_timestamp()): the same statement over the set, one execution
-- instead of one per device. Returns the campaign rows changed per device
-- (devices with none left out). rollout_report's rules copied: a change to
-- them is a change to both (test report-ingest-batch compares the two, case
-- by case, over every campaign-row state a report can meet). p_seqs: the
-- reports' seqs (rollout_report's p_seq; NULL: all apply).
-- p_assignments false: the assignments are left to the caller (report_ingest_distinct writes
-- each row once), which gets the rows written: per device, the campaigns
-- and states of its campaign rows the statement wrote (campaigns, states;
-- rollout_report's assignments update writes the assignment of each).
-- p_seqs added (0022), p_assignments and campaigns, states (issue 19): the
-- old forms go, or calls without them would be ambiguous
DROP FUNCTION IF EXISTS report_rollout_set(text[], text[], bigint[], bigint[], bigint[], text[], text[]);
DROP FUNCTION IF EXISTS report_rollout_set(text[], text[], bigint[], bigint[], bigint[], text[], text[], bigint[]);
CREATE OR REPLACE FUNCTION report_rollout_set(p_devices text[], p_states text[], p_version_codes bigint[],
                                              p_keylists bigint[], p_rootlists bigint[], p_errors text[],
                                              p_campaigns text[], p_seqs bigint[] DEFAULT NULL,
                                              p_assignments boolean DEFAULT true)
RETURNS TABLE (device_id text, changes bigint, campaigns text[], states text[])
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET jit = off SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
	v_now timestamptz := clock_timestamp();
	v_bad text;
BEGIN
	-- every state known: an expression (the array's text lower-cased, NULL
	-- elements stay NULL and fail), no statement; else the first unknown
	IF NOT coalesce(lower(p_states::text)::text[] <@ ARRAY['idle', 'downloading', 'verifying', 'pending', 'trial',
	                                                      'confirmed', 'reverted', 'rejected', 'failed',
	                                                      'unspecified', 'unknown'], false) THEN
		SELECT x INTO v_bad FROM unnest(p_states) WITH ORDINALITY AS u(x, o)
		WHERE lower(coalesce(x, '')) NOT IN ('idle', 'downloading', 'verifying', 'pending', 'trial', 'confirmed',
		                                     'reverted', 'rejected', 'failed', 'unspecified', 'unknown')
		ORDER BY o LIMIT 1;
		IF found THEN
			PERFORM rollout_fail('FO422', 'state: unknown device state ' || lower(coalesce(v_bad, '')));
		END IF;
	END IF;
	RETURN QUERY
	WITH inp AS (
		SELECT u.device_id, lower(coalesce(u.state, '')) AS v_state, u.vc, u.kl, u.rl,
		       CASE WHEN lower(coalesce(u.state, '')) = 'reverted' AND coalesce(u.error, '') = '' THEN 'OTA_ERR_SELFTEST'
		            WHEN lower(coalesce(u.state, '')) IN ('rejected', 'failed') AND coalesce(u.error, '') = ''
		            THEN 'OTA_ERR_TRANSPORT' ELSE coalesce(u.error, '') END AS v_error,
		       coalesce(u.campaign, '') AS campaign, u.seq
		FROM unnest(p_devices, p_states, p_version_codes, p_keylists, p_rootlists, p_errors, p_campaigns,
		            coalesce(p_seqs, '{}'::bigint[]))
		     AS u(device_id, state, vc, kl, rl, error, campaign, seq)
	), cur AS (
		SELECT m.row_tid, m.campaign_id, m.device_id, m.old_state, m.step, m.needed_keylist,
		       m.kind, m.c_kl, m.c_rl, m.c_vc,
		       m.old_state IN ('notified', 'downloading', 'installed', 'timed_out')
		       AND (i.campaign = '' OR i.campaign = m.campaign_id) AS addressed,
		       i.v_state IN ('failed', 'rejected') AND i.v_error IN ('OTA_ERR_TRANSPORT', 'OTA_ERR_TIMEOUT')
		       AND m.old_state IN ('notified', 'downloading', 'installed')
		       AND (i.campaign = '' OR i.campaign = m.campaign_id)
		       AND m.attempts < m.transient_retries AS retry,
		       m.attempts, m.retry_backoff_s, i.v_state, i.v_error, i.vc, i.kl, i.rl, i.seq
		FROM inp i
		CROSS JOIN LATERAL (
			-- the device's campaign rows by its index (rollout_report's rows, locked as there)
			SELECT m.ctid AS row_tid, m.campaign_id, m.device_id, m.state AS old_state, m.step,
			       m.needed_keylist, m.attempts,
			       k.kind, k.keylist_version AS c_kl, k.rootlist_version AS c_rl, a.version_code AS c_vc,
			       k.transient_retries, k.retry_backoff_s
			FROM campaign_devices m
			JOIN campaigns k ON k.campaign_id = m.campaign_id
			LEFT JOIN artifacts a ON a.artifact_id = k.artifact_id
			WHERE m.device_id = i.device_id
			  AND m.state NOT IN ('confirmed', 'superseded', 'cancelled')
			  AND k.state NOT IN ('draft', 'awaiting_approval')
			  -- not older than what the row's state is as of
			  AND (i.seq IS NULL OR m.report_seq IS NULL OR i.seq > m.report_seq)
			OFFSET 0
			FOR UPDATE OF m) m
	), nxt AS (
		SELECT cur.*,
		CASE
			WHEN cur.kind = 'firmware' AND cur.step = 'firmware' AND cur.vc >= cur.c_vc
			     AND cur.v_state IN ('idle', 'confirmed') THEN 'confirmed'
			WHEN cur.kind = 'keylist' AND cur.kl >= cur.c_kl THEN 'confirmed'
			WHEN cur.kind = 'rootlist' AND cur.rl >= cur.c_rl THEN 'confirmed'
			WHEN cur.kind = 'firmware' AND cur.step = 'keylist' AND cur.kl >= cur.needed_keylist
			     AND cur.old_state <> 'failed' THEN 'pending'
			WHEN NOT cur.addressed THEN cur.old_state
			WHEN cur.retry THEN 'pending'
			WHEN cur.v_state IN ('reverted', 'rejected', 'failed') THEN 'failed'
			WHEN cur.old_state = 'timed_out' THEN 'timed_out'
			WHEN cur.kind = 'firmware' AND cur.v_state IN ('pending', 'trial') THEN 'installed'
			WHEN cur.v_state IN ('downloading', 'verifying') AND cur.old_state IN ('notified', 'downloading')
			     THEN 'downloading'
			ELSE cur.old_state
		END AS new_state
		FROM cur
	), upd AS (
		UPDATE campaign_devices m
		SET state = nxt.new_state,
		    step = CASE WHEN nxt.step = 'keylist' AND nxt.kind = 'firmware' AND nxt.new_state = 'pending'
		                     AND NOT nxt.retry
		                THEN 'firmware' ELSE m.step END,
		    attempts = m.attempts + CASE WHEN nxt.retry THEN 1 ELSE 0 END,
		    retry_at = CASE WHEN nxt.retry THEN v_now + rollout_retry_backoff(nxt.retry_backoff_s, nxt.attempts)
		                    WHEN nxt.new_state = 'pending' THEN NULL ELSE m.retry_at END,
		    error = CASE WHEN nxt.retry THEN nxt.v_error
		                 WHEN nxt.new_state = 'failed' AND nxt.old_state <> 'failed' THEN nxt.v_error
		                 WHEN nxt.new_state IN ('confirmed', 'pending') THEN '' ELSE m.error END,
		    reconciled = m.reconciled OR (nxt.old_state = 'timed_out' AND nxt.new_state <> 'timed_out'),
		    done_at = CASE WHEN nxt.new_state IN ('confirmed', 'failed') THEN coalesce(m.done_at, v_now)
		                   WHEN nxt.new_state = 'pending' THEN NULL ELSE m.done_at END,
		    notified_at = CASE WHEN nxt.new_state = 'pending' THEN NULL ELSE m.notified_at END,
		    last_report_at = v_now,
		    reported_version_code = coalesce(nxt.vc, m.reported_version_code),
		    reported_keylist = coalesce(nxt.kl, m.reported_keylist),
		    report_seq = CASE WHEN nxt.seq IS NOT NULL AND nxt.new_state <> nxt.old_state THEN nxt.seq
		                      ELSE m.report_seq END,
		    updated_at = v_now
		FROM nxt
		-- the rows cur locked, by their tuple ids (a join on the key scanned the table)
		WHERE m.ctid = ANY (ARRAY(SELECT n.row_tid FROM nxt n)) AND m.ctid = nxt.row_tid
		  AND m.campaign_id = nxt.campaign_id AND m.device_id = nxt.device_id
		  AND (nxt.new_state <> nxt.old_state
		       OR m.reported_version_code IS DISTINCT FROM coalesce(nxt.vc, m.reported_version_code)
		       OR (nxt.addressed AND nxt.new_state NOT IN ('failed', 'timed_out')))
		RETURNING m.campaign_id, m.device_id, m.state, nxt.old_state
	), asg AS (
		UPDATE assignments x SET state = upd.state, updated_at = v_now
		FROM upd
		WHERE p_assignments
		  AND x.device_id = upd.device_id AND x.campaign_id = upd.campaign_id AND x.state <> upd.state
		RETURNING 1
	)
	SELECT upd.device_id, count(*) FILTER (WHERE upd.state <> upd.old_state), array_agg(upd.campaign_id),
	       array_agg(upd.state)
	FROM upd GROUP BY upd.device_id;
END $$;
