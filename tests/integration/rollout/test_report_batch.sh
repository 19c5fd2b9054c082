#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Batched report ingest (migrations/code/report_batch.sql): the same reports
# given one by one to report_ingest and in batches to report_ingest_batch
# leave the same rows (devices, events, assignments, campaign rows, kept
# queues, security events and suspect flags) and the same outcomes. Each
# device set (the first three characters of its ids) takes the same script
# one way: one by one as psql statements (the reference), one by one from a
# procedure with a commit each (as ota-server's prepared call), and in
# batches of 1, 16 and 256 in report order, and of 256 in device order (all
# of a device's reports in one batch) and of 5 in device order (rounds of
# uneven size, as a fleet's batches have). The script, in three phases:
# registration (the first report of an unknown device); a campaign notifies
# every device, then its install: a redelivery (duplicate), an older report
# after a newer one (stale), a transient failure retried on every fifth
# device, trial, confirm; then security events: a replay, a seq-0 report on
# every second device, a refused signature (security refusal), reports over
# the budget (flood): the third event flags a device suspect. Also a
# decommissioned device, and an unknown device whose first report has seq 0.
# Then report_rollout_set (the batch's rollout engine) against rollout_report
# case by case over every campaign-row state a report can meet.
# The same batch twice at once (two servers): stored once, then duplicates.
# The device-row lock: the rollout tick's insert into assignments does not
# wait for an ingest holding the device, another ingest of it does.
# Bounds: at most report_batch_max() reports, arrays of one length, and a
# report the database refuses stores none of its batch (FO422). Prints the
# PostgreSQL backend CPU per report of each way (CPU seconds of the
# backend, /proc/self/stat: the machine is shared).
source "$(dirname "$0")/lib.sh" "$1"
seed_trust
add_artifact fw-101 101
N=${REPORT_BATCH_DEVICES:-100}
SETS="one pre b01 b16 bxx dev d05"
q "UPDATE rollout_settings SET value = '3' WHERE name = 'suspect_threshold';
   INSERT INTO rollout_settings (name, value) SELECT 'suspect_threshold', '3'
   WHERE NOT EXISTS (SELECT 1 FROM rollout_settings WHERE name = 'suspect_threshold')"

# the report: device I of the set (I 0: the unknown device), phase, step,
# seq, version code, state, error of its newest event, tag of its bytes,
# reports refused before it. Each report carries the events seq - 1 and seq.
q "CREATE TABLE t_script (phase integer, step integer, seq bigint, vc bigint, state text, error text,
                          tag text, refused integer, who text)"
# who: all, even (devices with an even number), fail (every fifth), ok (the
# others), gone (the decommissioned device), zero (the unknown one)
q "INSERT INTO t_script VALUES
   (1, 1, 1, 100, 'idle', '', 'a', 0, 'all'),
   (2, 1, 2, 100, 'downloading', '', 'a', 0, 'all'),
   (2, 1, 2, 100, 'downloading', '', 'a', 0, 'gone'),
   (2, 2, 2, 100, 'downloading', '', 'a', 0, 'all'),
   (2, 3, 4, 101, 'pending', '', 'a', 0, 'ok'),
   (2, 3, 4, 100, 'failed', 'OTA_ERR_TRANSPORT', 'a', 0, 'fail'),
   (2, 4, 3, 100, 'verifying', '', 'a', 0, 'all'),
   (2, 5, 5, 101, 'trial', '', 'a', 0, 'all'),
   (2, 6, 6, 101, 'confirmed', '', 'a', 0, 'all'),
   (2, 7, 7, 101, 'idle', '', 'a', 0, 'all'),
   (3, 1, 0, 101, 'idle', '', 'z', 0, 'even'),
   (3, 1, 0, 101, 'idle', '', 'z', 0, 'zero'),
   (3, 2, 7, 101, 'idle', '', 'b', 0, 'all'),
   (3, 2, 1, 100, 'idle', '', 'a', 0, 'zero'),
   (3, 3, 8, 101, 'idle', 'OTA_ERR_SIGNATURE', 'a', 0, 'all'),
   (3, 3, 1, 100, 'idle', '', 'a', 0, 'zero'),
   (3, 4, 9, 101, 'idle', '', 'a', 2, 'all'),
   (3, 4, 9, 101, 'idle', '', 'a', 2, 'gone')"
q "CREATE TABLE t_reports (prefix text, phase integer, step integer, device_id text, report jsonb,
                           digest bytea, refused integer)"
q "INSERT INTO t_reports
   SELECT p, s.phase, s.step, d.device_id,
          jsonb_build_object('seq', s.seq, 'model', 'm1', 'hw_revision', 'r1', 'version', '1.0.' || s.vc,
            'version_code', s.vc, 'security_counter', 0, 'keylist_version', 1, 'rootlist_version', 0,
            'keylist_key_ids', '[]'::jsonb, 'pending_version', '', 'active_slot', 0, 'state', s.state,
            'error', CASE WHEN s.state = 'failed' THEN s.error ELSE '' END, 'error_detail', '',
            'artifact', CASE WHEN s.phase > 1 THEN 'fw-101' ELSE '' END,
            'campaign_id', CASE WHEN s.phase > 1 THEN 'c1' ELSE '' END,
            'events', (SELECT coalesce(jsonb_agg(jsonb_build_object('seq', x, 'kind', s.state,
                         'error', CASE WHEN x = s.seq THEN s.error ELSE '' END, 'version', '1.0.' || s.vc,
                         'version_code', s.vc, 'security_counter', 0, 'detail', '', 'campaign_id', '',
                         'time', x) ORDER BY x), '[]')
                       FROM generate_series(greatest(s.seq - 1, 1), s.seq) x WHERE s.seq > 0)),
          decode(md5(s.seq::text || s.vc || s.state || s.tag), 'hex'), s.refused
   FROM unnest(string_to_array('$SETS', ' ')) p
   CROSS JOIN LATERAL (SELECT i, p || CASE WHEN i = 0 THEN '-zero' WHEN i < 0 THEN '-gone'
                                           ELSE lpad(i::text, 5, '0') END AS device_id
                       FROM generate_series(-1, $N) i) d
   JOIN t_script s ON CASE s.who WHEN 'all' THEN d.i > 0 WHEN 'even' THEN d.i > 0 AND d.i % 2 = 0
                                 WHEN 'fail' THEN d.i > 0 AND d.i % 5 = 0
                                 WHEN 'ok' THEN d.i > 0 AND d.i % 5 <> 0
                                 WHEN 'gone' THEN d.i < 0 WHEN 'zero' THEN d.i = 0 END"
for p in $SETS; do
	q "INSERT INTO devices (device_id, model, decommissioned) VALUES ('$p-gone', 'm1', true)"
done
# A report writes its device's assignment found by the device's key, whatever
# the plan: ota-server's ingest connection plans its statements once (generic
# plans), often while assignments is still empty, and a plan on the artifact's
# index then walked every device of the campaign's artifact for each report
# (a read that grew with the fleet). Devices ax1..ax2000 (model mx: no
# campaign takes them): one session registers two, then 2000 assignments of
# one artifact appear (not analyzed yet), then the two report on it.
q "CREATE FUNCTION t_rep(p_seq bigint, p_state text, p_artifact text) RETURNS jsonb LANGUAGE sql AS \$\$
   SELECT jsonb_build_object('seq', p_seq, 'model', 'mx', 'hw_revision', 'r1', 'version', '1.0.100',
            'version_code', 100, 'security_counter', 0, 'keylist_version', 1, 'rootlist_version', 0,
            'keylist_key_ids', '[]'::jsonb, 'pending_version', '', 'active_slot', 0, 'state', p_state,
            'error', '', 'error_detail', '', 'artifact', p_artifact, 'campaign_id', '', 'events', '[]'::jsonb)
   \$\$"
artifact_reads() {
	q "SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'assignments_artifact_idx'"
}
cd_scans() {
	q "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'campaign_devices'"
}
art0=$(artifact_reads) cds0=$(cd_scans)
"${PSQL[@]}" -At -c "SET client_min_messages = warning" \
	-c "SELECT count(*) FROM report_ingest_batch('{ax1,ax2}', ARRAY[t_rep(1, 'idle', ''), t_rep(1, 'idle', '')],
	                                             '{\\x01,\\x02}')" \
	-c "INSERT INTO devices (device_id, model) SELECT 'ax' || i, 'mx' FROM generate_series(3, 2000) i" \
	-c "INSERT INTO assignments (device_id, artifact_id, state)
	    SELECT 'ax' || i, 'fw-101', 'pending' FROM generate_series(1, 2000) i" \
	-c "SELECT count(*) FROM report_ingest_batch('{ax1,ax2}',
	                                             ARRAY[t_rep(2, 'downloading', 'fw-101'), t_rep(2, 'verifying', 'fw-101')],
	                                             '{\\x03,\\x04}')" -c "SELECT pg_stat_force_next_flush()" >/dev/null
expect_eq "the assignments of the reports written" \
	"$(q "SELECT string_agg(device_id || ':' || state, ',' ORDER BY device_id) FROM assignments
	      WHERE device_id LIKE 'ax%' AND state <> 'pending'")" "ax1:downloading,ax2:verifying"
expect_eq "no assignment read through the artifact's index" "$(($(artifact_reads) - art0))" 0
# likewise the rollout engine's update of the campaign rows it locked: by
# their tuple ids, planned on an empty table it read all of it (a hash join)
expect_eq "no campaign row read by a sequential scan" "$(($(cd_scans) - cds0))" 0
q "DELETE FROM assignments WHERE device_id LIKE 'ax%'; DELETE FROM devices WHERE device_id LIKE 'ax%'"

q "CREATE TABLE t_out (prefix text, phase integer, step integer, device_id text, outcome text, new_events bigint,
                       campaign_changes bigint, suspect boolean, refusal_events bigint)"

# one by one from a procedure, a commit each, as ota-server's prepared call
q "CREATE PROCEDURE t_one_by_one(p text, ph integer) LANGUAGE plpgsql AS \$\$
   DECLARE r record;
   BEGIN
     FOR r IN SELECT * FROM t_reports WHERE prefix = p AND phase = ph ORDER BY step, device_id LOOP
       INSERT INTO t_out SELECT p, ph, r.step, r.device_id, *
       FROM report_ingest(r.device_id, r.report, r.digest, r.refused);
       COMMIT;
     END LOOP;
   END \$\$"
# batches of SIZE in report order (by device: all of a device's reports in
# one batch), a commit each
q "CREATE PROCEDURE t_batches(p text, ph integer, size integer, by_device boolean) LANGUAGE plpgsql AS \$\$
   DECLARE b record;
   BEGIN
     FOR b IN SELECT array_agg(device_id ORDER BY n) AS devices, array_agg(report ORDER BY n) AS reports,
                     array_agg(digest ORDER BY n) AS digests, array_agg(refused ORDER BY n) AS refused,
                     array_agg(step ORDER BY n) AS steps
              FROM (SELECT *, row_number() OVER (ORDER BY CASE WHEN by_device THEN device_id END, step,
                                                          device_id) - 1 AS n
                    FROM t_reports WHERE prefix = p AND phase = ph) r
              GROUP BY n / size ORDER BY n / size LOOP
       INSERT INTO t_out SELECT p, ph, b.steps[o.ord], b.devices[o.ord], o.outcome, o.new_events,
                                o.campaign_changes, o.suspect, o.refusal_events
       FROM report_ingest_batch(b.devices, b.reports, b.digests, b.refused) o;
       COMMIT;
     END LOOP;
   END \$\$"

hz=$(getconf CLK_TCK)
# run_set SET PHASE: the set's reports of that phase its way; prints the
# backend's CPU ticks
run_set() {
	local cpu='SELECT split_part(s, $$ $$, 14)::bigint + split_part(s, $$ $$, 15)::bigint FROM pg_read_file($$/proc/self/stat$$) s'
	local run
	case $1 in
	one)
		q "SELECT format('INSERT INTO t_out SELECT %L, %s, %s, %L, * FROM report_ingest(%L, %L::jsonb, %L::bytea, %s);',
		                 prefix, phase, step, device_id, device_id, report, digest, refused)
		   FROM t_reports WHERE prefix = 'one' AND phase = $2 ORDER BY step, device_id" >"$STACK/one.sql"
		run=(-f "$STACK/one.sql") ;;
	pre) run=(-c "CALL t_one_by_one('pre', $2)") ;;
	b01) run=(-c "CALL t_batches('b01', $2, 1, false)") ;;
	b16) run=(-c "CALL t_batches('b16', $2, 16, false)") ;;
	bxx) run=(-c "CALL t_batches('bxx', $2, report_batch_max(), false)") ;;
	dev) run=(-c "CALL t_batches('dev', $2, report_batch_max(), true)") ;;
	d05) run=(-c "CALL t_batches('d05', $2, 5, true)") ;;
	esac
	"${PSQL[@]}" -At -c "SET client_min_messages = warning" -c "$cpu" "${run[@]}" -c "$cpu" |
		awk 'NR == 1 { a = $1 } { l = $1 } END { print l - a }'
}
declare -A CPU1 CPU2 CPU3
for p in $SETS; do CPU1[$p]=$(run_set "$p" 1); done

# a campaign for every registered device, all notified
q "SELECT rollout_create('{\"id\":\"c1\",\"artifact\":\"fw-101\",\"rate_per_minute\":100000,\"rate_burst\":100000,
                          \"transient_retries\":2,\"target\":{\"model\":[\"m1\"]},
                          \"stages\":[{\"percent\":100,\"max_in_flight\":100000}]}', 'alice')" >/dev/null
q "SELECT rollout_start('c1', 'alice')" >/dev/null
q "SELECT count(*) FROM rollout_tick('s', NULL, 30, 32, 1000000)" >/dev/null
expect_eq "the campaign notified every registered device" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'c1' AND state = 'notified'")" \
	"$((7 * N))"

for p in $SETS; do CPU2[$p]=$(run_set "$p" 2); done
for p in $SETS; do CPU3[$p]=$(run_set "$p" 3); done
load=$(cut -d' ' -f1-3 /proc/loadavg)
per() { # TICKS REPORTS: microseconds per report
	echo $(($1 * 1000000 / hz / $2))
}
count() { q "SELECT count(*) FROM t_reports WHERE prefix = 'one' AND phase = $1"; }
n1=$(count 1) n2=$(count 2) n3=$(count 3)
echo "   PostgreSQL backend CPU per report (us): registration ($n1 reports) / install ($n2) /" \
	"security events ($n3), load average $load:"
line() { # WHAT SET
	printf '     %-44s %5s / %5s / %5s\n' "$1:" "$(per "${CPU1[$2]}" "$n1")" "$(per "${CPU2[$2]}" "$n2")" \
		"$(per "${CPU3[$2]}" "$n3")"
}
line "one by one, psql statements" one
line "one by one, cached plans, a commit each" pre
line "batches of 1" b01
line "batches of 16" b16
line "batches of 256" bxx
line "batches of 256, a device's reports in one" dev
line "batches of 5 in device order (rounds of 2, then 1)" d05

total=$(q "SELECT count(*) FROM t_reports WHERE prefix = 'one'")
expect_eq "every report has an outcome each way" \
	"$(q "SELECT string_agg(c::text, ',' ORDER BY p) FROM (SELECT prefix p, count(*) c FROM t_out GROUP BY 1) x")" \
	"$total,$total,$total,$total,$total,$total,$total"
expect_eq "outcomes per step" \
	"$(q "SELECT string_agg(DISTINCT phase || '.' || step || ':' || outcome, ',') FROM t_out
	      WHERE prefix = 'one' AND device_id NOT LIKE '%-%'")" \
	"1.1:stored,2.1:stored,2.2:duplicate,2.3:stored,2.4:stale,2.5:stored,2.6:stored,2.7:stored,3.1:replay,3.2:replay,3.3:stored,3.4:stored"
expect_eq "the unknown device and the decommissioned one" \
	"$(q "SELECT string_agg(phase || '.' || step || ':' || outcome, ',' ORDER BY device_id, phase, step) FROM t_out
	      WHERE prefix = 'one' AND device_id LIKE '%-%'")" \
	"2.1:decommissioned,3.4:decommissioned,3.1:replay,3.2:stored,3.3:duplicate"
expect_eq "campaign rows changed, refusals and suspects seen" \
	"$(q "SELECT sum(campaign_changes) > 0, sum(refusal_events), count(*) FILTER (WHERE suspect)
	      FROM t_out WHERE prefix = 'one'")" "t|$N|$((N * 3 / 2))"
for p in pre b01 b16 bxx dev d05; do
	expect_eq "the same outcomes report by report ($p)" \
		"$(q "SELECT count(*) FROM t_out a FULL JOIN t_out b ON b.prefix = '$p' AND b.phase = a.phase
		        AND b.step = a.step AND b.device_id = '$p' || substr(a.device_id, 4)
		      WHERE (a.prefix = 'one' OR a.prefix IS NULL) AND (b.prefix = '$p' OR b.prefix IS NULL)
		        AND (a.outcome, a.new_events, a.campaign_changes, a.suspect, a.refusal_events)
		            IS DISTINCT FROM (b.outcome, b.new_events, b.campaign_changes, b.suspect, b.refusal_events)")" 0
done
same() { # WHAT SQL ROWS: SQL over rows with p (the set) and k (the device id without it)
	local p one="SELECT to_jsonb(x) - 'p' FROM ($2) x WHERE p = 'one'"
	for p in pre b01 b16 bxx dev d05; do
		local other="SELECT to_jsonb(x) - 'p' FROM ($2) x WHERE p = '$p'"
		expect_eq "$1 ($p)" "$(q "SELECT count(*), (SELECT count(*) FROM ($one) o)
		                          FROM (($one EXCEPT ALL $other) UNION ALL ($other EXCEPT ALL $one)) d")" "0|$3"
	done
}
same "the same device rows" \
	"SELECT left(device_id, 3) AS p, substr(device_id, 4) AS k, model, hw_revision, version, version_code,
	        security_counter, keylist_version, rootlist_version, keylist_key_ids, pending_version, active_slot,
	        state, last_error, last_report_seq, last_report_sha256, running_sha256, suspect, suspect_reason,
	        suspect_at IS NOT NULL AS suspect_at, decommissioned, last_seen IS NOT NULL AS seen FROM devices" \
	$((N + 2))
same "the same device events" \
	"SELECT left(device_id, 3) AS p, substr(device_id, 4) AS k, seq, kind, error, version, version_code,
	        security_counter, detail, campaign_id, device_time FROM device_events" $((N * 9 + 1))
same "the same security events and suspect flags" \
	"SELECT substr(object, 8, 3) AS p, substr(object, 11) AS k, actor = object AS own, action,
	        after - 'suspect_at' - 'suspect_reason' AS after, after->>'suspect_reason' AS reason
	 FROM audit WHERE action LIKE 'security.%' OR action = 'device.suspect'" \
	$((N * 9 / 2 + 2))
same "the same campaign rows" \
	"SELECT left(device_id, 3) AS p, substr(device_id, 4) AS k, state, step, attempts, error, reconciled,
	        reported_version_code, reported_keylist, done_at IS NOT NULL AS done, notified_at IS NOT NULL AS notified,
	        retry_at IS NOT NULL AS retry FROM campaign_devices" "$N"
same "the same assignments" \
	"SELECT left(device_id, 3) AS p, substr(device_id, 4) AS k, artifact_id, campaign_id, state, error,
	        delivery, delta_rejection_forgiven FROM assignments" "$N"
# the queue keeps the order only since 0020 (rank hashes the whole device id, so it differs between the ways): which campaigns queue each device
same "the same kept queue" \
	"SELECT left(device_id, 3) AS p, substr(device_id, 4) AS k, campaign_id
	 FROM campaign_targets" 1

# report_rollout_set against rollout_report, case by case: devices a and b
# in the same campaign rows (every row state, both steps, retries left or
# not, campaigns of each kind, a draft, two rows for some), each given the
# same report (every device state, errors transient or not, versions below,
# at and above, addressed to its campaign, another, or none; its seq none,
# older or newer than the row's own, 0022): a by
# rollout_report, b by the set
M=${REPORT_BATCH_CASES:-2000}
q "INSERT INTO artifacts (artifact_id, digest, manifest, product, hw_revisions, version, version_code,
                          image_sha256, image_size, signing_key_id, store_path)
   VALUES ('fw-9', decode(md5('fw-9'), 'hex'), '\\x00', 'm9', '{}', '1.0.101', 101,
           decode(repeat('ab', 32), 'hex'), 1, $KEY1, 'x')"
for spec in '"id":"dk","kind":"keylist","keylist_version":2' '"id":"dr","kind":"rootlist","rootlist_version":1' \
	'"id":"df","artifact":"fw-9","transient_retries":2' '"id":"dd","artifact":"fw-9"'; do
	q "SELECT rollout_create('{$spec,\"target\":{\"model\":[\"m9\"]},\"stages\":[{\"percent\":100}]}', 'alice')" >/dev/null
done
q "SELECT rollout_start(c, 'alice') FROM unnest(ARRAY['dk', 'dr', 'df']) c" >/dev/null
q "CREATE TABLE t_case AS
   SELECT i, (ARRAY['dk', 'dr', 'df', 'dd'])[1 + i % 4] AS campaign_id,
          (ARRAY['pending', 'notified', 'downloading', 'installed', 'confirmed', 'failed', 'timed_out',
                 'superseded', 'cancelled'])[1 + (i / 4) % 9] AS row_state,
          (ARRAY['firmware', 'keylist'])[1 + (i / 36) % 2] AS step, (i / 72) % 3 AS attempts,
          (ARRAY['idle', 'downloading', 'verifying', 'pending', 'trial', 'confirmed', 'reverted', 'rejected',
                 'failed', 'unspecified', 'unknown'])[1 + (i * 7919) % 11] AS state,
          (ARRAY['', 'OTA_ERR_TRANSPORT', 'OTA_ERR_TIMEOUT', 'OTA_ERR_HASH'])[1 + (i * 104729) % 4] AS error,
          100 + (i * 31) % 3 AS vc, 1 + (i * 17) % 2 AS kl, (i * 13) % 2 AS rl,
          (ARRAY['', 'dk', 'df', 'zz'])[1 + (i * 37) % 4] AS report_campaign,
          (ARRAY[NULL, 5, 10])[1 + (i * 7) % 3]::bigint AS seq, CASE WHEN i % 5 = 0 THEN 7 END::bigint AS row_seq
   FROM generate_series(1, $M) i;
   INSERT INTO devices (device_id, model) SELECT s || lpad(i::text, 5, '0'), 'm9' FROM t_case, unnest(ARRAY['dfa', 'dfb']) s;
   INSERT INTO campaign_devices (campaign_id, device_id, stage_no, step, needed_keylist, state, attempts, admit_seq,
                                 admitted_at, reported_version_code, report_seq)
   SELECT c.campaign_id, s || lpad(c.i::text, 5, '0'), 1, CASE WHEN c.campaign_id IN ('df', 'dd') THEN c.step ELSE 'firmware' END,
          2, c.row_state, c.attempts, c.i, now(), CASE WHEN c.i % 3 = 0 THEN 100 END, c.row_seq
   FROM t_case c, unnest(ARRAY['dfa', 'dfb']) s
   UNION ALL
   SELECT 'df', s || lpad(c.i::text, 5, '0'), 1, 'firmware', 0, 'notified', 0, c.i, now(), NULL, NULL
   FROM t_case c, unnest(ARRAY['dfa', 'dfb']) s WHERE c.i % 7 = 0 AND c.campaign_id <> 'df';
   INSERT INTO assignments (device_id, artifact_id, campaign_id, state)
   SELECT m.device_id, 'fw-9', m.campaign_id, 'notified' FROM campaign_devices m WHERE m.campaign_id = 'df'"
q "CREATE TABLE t_case_out AS
   SELECT 'dfa' AS p, c.i, rollout_report('dfa' || lpad(c.i::text, 5, '0'), c.state, c.vc, c.kl, c.rl, c.error,
                                         c.report_campaign, NULL, c.seq) AS changes
   FROM t_case c;
   INSERT INTO t_case_out
   SELECT 'dfb', c.i, coalesce(x.changes, 0)
   FROM t_case c
   LEFT JOIN report_rollout_set((SELECT array_agg('dfb' || lpad(i::text, 5, '0') ORDER BY i) FROM t_case),
                                (SELECT array_agg(state ORDER BY i) FROM t_case), (SELECT array_agg(vc::bigint ORDER BY i) FROM t_case),
                                (SELECT array_agg(kl::bigint ORDER BY i) FROM t_case), (SELECT array_agg(rl::bigint ORDER BY i) FROM t_case),
                                (SELECT array_agg(error ORDER BY i) FROM t_case),
                                (SELECT array_agg(report_campaign ORDER BY i) FROM t_case),
                                (SELECT array_agg(seq ORDER BY i) FROM t_case)) x
     ON x.device_id = 'dfb' || lpad(c.i::text, 5, '0')"
expect_eq "the set changes what rollout_report changes, device by device" \
	"$(q "SELECT count(*), sum(a.changes) > 0 FROM t_case_out a JOIN t_case_out b ON b.p = 'dfb' AND b.i = a.i
	      WHERE a.p = 'dfa' AND a.changes = b.changes")" "$M|t"
pair() { # WHAT SQL ROWS: rows with p (dfa, dfb) and k, equal for both
	local a="SELECT to_jsonb(x) - 'p' FROM ($2) x WHERE p = 'dfa'" b="SELECT to_jsonb(x) - 'p' FROM ($2) x WHERE p = 'dfb'"
	expect_eq "$1" "$(q "SELECT count(*), (SELECT count(*) FROM ($a) o)
	                     FROM (($a EXCEPT ALL $b) UNION ALL ($b EXCEPT ALL $a)) d")" "0|$3"
}
pair "the same campaign rows as rollout_report's" \
	"SELECT left(device_id, 3) AS p, substr(device_id, 4) AS k, campaign_id, state, step, attempts, error, reconciled,
	        reported_version_code, reported_keylist, done_at IS NOT NULL AS done, notified_at IS NOT NULL AS notified,
	        retry_at IS NOT NULL AS retry, last_report_at IS NOT NULL AS reported, report_seq FROM campaign_devices
	 WHERE device_id LIKE 'df%'" "$(q "SELECT count(*) FROM campaign_devices WHERE device_id LIKE 'dfa%'")"
pair "the same assignments as rollout_report's" \
	"SELECT left(device_id, 3) AS p, substr(device_id, 4) AS k, campaign_id, state FROM assignments
	 WHERE device_id LIKE 'df%'" "$(q "SELECT count(*) FROM assignments WHERE device_id LIKE 'dfa%'")"
expect_eq "a report older than the row's state skips it; a change moves the row's seq" \
	"$(q "SELECT count(*) FILTER (WHERE c.row_seq = 7 AND c.seq = 5 AND m.last_report_at IS NOT NULL),
	             count(*) FILTER (WHERE c.row_seq = 7 AND c.seq = 5) > 0, count(*) FILTER (WHERE m.report_seq = 10) > 0
	      FROM t_case c JOIN campaign_devices m ON m.device_id = 'dfa' || lpad(c.i::text, 5, '0')
	                                           AND m.campaign_id = c.campaign_id")" "0|t|t"
expect_eq "the cases reach every rule" \
	"$(q "SELECT string_agg(DISTINCT m.state, ',' ORDER BY m.state) FROM campaign_devices m WHERE m.device_id LIKE 'dfa%'
	        AND m.updated_at > (SELECT min(admitted_at) FROM campaign_devices WHERE device_id LIKE 'dfa%')
	        AND m.last_report_at IS NOT NULL")" "confirmed,downloading,failed,installed,notified,pending,timed_out"
expect_sqlstate "an unknown device state refused as rollout_report refuses it" FO422 \
	"SELECT * FROM report_rollout_set(ARRAY['dfb00001'], ARRAY['sleeping'], ARRAY[1::bigint], ARRAY[1::bigint],
	   ARRAY[0::bigint], ARRAY[''], ARRAY[''])"

# two servers given the same 16 reports at once (a redelivery to another
# member of the shared subscription): one stores them, the other waits for
# its locks and finds them duplicates
same16="SELECT string_agg(o.outcome, ',' ORDER BY o.ord) FROM report_ingest_batch(
          ARRAY(SELECT device_id FROM t_reports WHERE prefix = 'b16' AND phase = 3 AND step = 4 ORDER BY device_id DESC LIMIT 16),
          ARRAY(SELECT jsonb_set(report, '{seq}', '10') FROM t_reports WHERE prefix = 'b16' AND phase = 3 AND step = 4
                ORDER BY device_id DESC LIMIT 16),
          array_fill('\\x10'::bytea, ARRAY[16])) o"
q "$same16" >"$STACK/same-a" & a=$!
q "$same16" >"$STACK/same-b" & b=$!
wait "$a" "$b"
expect_eq "the same batch twice at once: stored once, then duplicates" \
	"$(sort "$STACK/same-a" "$STACK/same-b" | tr '\n' ' ')" \
	"$(printf 'duplicate,%.0s' {1..16} | sed 's/,$//') $(printf 'stored,%.0s' {1..16} | sed 's/,$//') "

before=$(q "SELECT count(*) FROM device_events")
max=$(q "SELECT report_batch_max()")
report() { # SEQ STATE: a report of device b0100001
	echo "jsonb_build_object('seq', $1, 'model', 'm1', 'hw_revision', 'r1', 'version', '1.0.101',
	  'version_code', 101, 'security_counter', 0, 'keylist_version', 1, 'rootlist_version', 0,
	  'keylist_key_ids', '[]'::jsonb, 'pending_version', '', 'active_slot', 0, 'state', '$2',
	  'error', '', 'error_detail', '', 'artifact', '', 'campaign_id', '',
	  'events', jsonb_build_array(jsonb_build_object('seq', $1, 'kind', 'idle', 'error', '',
	    'version', '1.0.101', 'version_code', 101, 'security_counter', 0, 'detail', '',
	    'campaign_id', '', 'time', $1)))"
}
expect_sqlstate "more than report_batch_max() reports refused" FO422 \
	"SELECT * FROM report_ingest_batch(array_fill('b0100001'::text, ARRAY[$max + 1]),
	   array_fill($(report 99 idle), ARRAY[$max + 1]), array_fill('\\x00'::bytea, ARRAY[$max + 1]))"
expect_sqlstate "arrays of different lengths refused" FO422 \
	"SELECT * FROM report_ingest_batch(ARRAY['b0100001', 'b0100002'], ARRAY[$(report 99 idle)], ARRAY['\\x00'::bytea])"
expect_sqlstate "a report the database refuses (an unknown state) refuses its batch" FO422 \
	"SELECT * FROM report_ingest_batch(ARRAY['b0100001', 'b0100002'],
	   ARRAY[$(report 99 idle), $(report 99 sleeping)], ARRAY['\\x01'::bytea, '\\x02'])"
expect_eq "nothing stored by refused batches" \
	"$(q "SELECT count(*), max(last_report_seq) FROM device_events, devices WHERE devices.device_id = 'b0100001'")" \
	"$before|9"

# the ingest's device-row lock and the rollout tick (issue 19): while a
# transaction holds what an ingest locks on a device, the tick's INSERT into
# assignments (its foreign key takes KEY SHARE on the device row) must not
# wait; a FOR UPDATE lock (what the ingest took before) makes it wait, which
# with the campaign rows the tick holds was a deadlock. Two ingests of a
# device still wait on each other (the lock conflicts with itself).
for d in lk1 lk2 lk3; do q "SELECT 1 FROM report_ingest('$d', $(report 1 idle), '\\x01'::bytea)" >/dev/null; done
held() { # NAME SQL: runs SQL in a transaction that stays open 20 s, returns once it holds its locks
	PGAPPNAME="lock-$1" "${PSQL[@]}" -At -c "BEGIN" -c "$2" -c "SELECT pg_sleep(20)" -c "ROLLBACK" \
		>/dev/null 2>&1 &
	holder=$!
	for _ in $(seq 200); do
		[[ $(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lock-$1'
		         AND wait_event = 'PgSleep'") == 1 ]] && return
		sleep 0.1
	done
	fail "$1: the holding transaction never got its locks"
}
release() { # the holder's backend ends its transaction (rolled back)
	q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'lock-%'" >/dev/null
	wait "$holder" || true
}
tick_insert="SET lock_timeout = '2s'; BEGIN;
  INSERT INTO assignments (device_id, artifact_id, campaign_id, state) VALUES ('lk1', 'fw-101', 'c-lock', 'notified');
  SELECT 'inserted'; ROLLBACK"
held single "SELECT outcome FROM report_ingest('lk1', $(report 2 idle), '\\x02'::bytea)"
expect_eq "report_ingest holding a device: the tick's assignment insert does not wait" "$(q "$tick_insert")" inserted
release
held batch "SELECT count(*) FROM report_ingest_batch(ARRAY['lk1', 'lk2'],
  ARRAY[$(report 2 idle), $(report 2 idle)], ARRAY['\\x02'::bytea, '\\x02'])"
expect_eq "report_ingest_batch holding devices: the tick's assignment insert does not wait" "$(q "$tick_insert")" inserted
expect_sqlstate "report_ingest_batch holding devices: another ingest of one waits" 55P03 \
	"SET lock_timeout = '1s'; SELECT * FROM report_ingest('lk2', $(report 3 idle), '\\x03'::bytea)"
release
held for-update "SELECT 1 FROM devices WHERE device_id = 'lk1' FOR UPDATE"
expect_sqlstate "a FOR UPDATE lock on the device: the tick's assignment insert waits" 55P03 "$tick_insert"
release
expect_eq "the held ingests rolled back" \
	"$(q "SELECT string_agg(last_report_seq::text, ',' ORDER BY device_id) FROM devices WHERE device_id LIKE 'lk%'")" \
	"1,1,1"

# a device unknown before the batch, its reports in several rounds, models
# and hw revisions left empty by some (an empty one keeps the stored one):
# the batch leaves the row and outcomes the calls one by one leave
rx() { # SEQ MODEL HW VERSION_CODE
	echo "jsonb_build_object('seq', $1, 'model', '$2', 'hw_revision', '$3', 'version', '1.0.$4',
	  'version_code', $4, 'security_counter', 0, 'keylist_version', 1, 'rootlist_version', 0,
	  'keylist_key_ids', '[]'::jsonb, 'pending_version', '', 'active_slot', 0, 'state', 'idle',
	  'error', '', 'error_detail', '', 'artifact', '', 'campaign_id', '',
	  'events', jsonb_build_array(jsonb_build_object('seq', $1, 'kind', 'idle', 'error', '',
	    'version', '1.0.$4', 'version_code', $4, 'security_counter', 0, 'detail', '',
	    'campaign_id', '', 'time', $1)))"
}
xs=("$(rx 1 '' '' 100)" "$(rx 2 mA '' 100)" "$(rx 2 mA '' 100)" "$(rx 4 '' h4 101)" "$(rx 3 mB hB 100)" "$(rx 5 '' '' 102)")
xd=("'\\x01'" "'\\x02'" "'\\x02'" "'\\x04'" "'\\x03'" "'\\x05'")
one=""
for i in "${!xs[@]}"; do
	one+="$(q "SELECT outcome || ':' || new_events FROM report_ingest('x1', ${xs[$i]}, ${xd[$i]}::bytea)"),"
done
batch=$(q "SELECT string_agg(outcome || ':' || new_events, ',' ORDER BY ord) || ','
           FROM report_ingest_batch(ARRAY['x2', 'x2', 'x2', 'x2', 'x2', 'x2'],
                                    ARRAY[$(IFS=,; echo "${xs[*]}")], ARRAY[$(IFS=,; echo "${xd[*]}")]::bytea[])")
expect_eq "a new device over several rounds: the same outcomes" "$batch" "$one"
expect_eq "a new device over several rounds: the same row" \
	"$(q "SELECT count(DISTINCT (model, hw_revision, version, version_code, last_report_seq, last_report_sha256))
	      || ':' || max(model) || ':' || max(hw_revision) || ':' || max(last_report_seq)
	      FROM devices WHERE device_id IN ('x1', 'x2')")" "1:mA:h4:5"

# last_seen at a grain (report_seen_at, report.sql): a stored report moves
# it only when the stored value is older than 30 s (or ahead of now()), by
# either function; fleetota.last_seen_grain_s sets the grain (0: every
# report), a value that is no number of seconds up to 3600 counts as unset
seen() { # SEQ AGE DEVICE [GRAIN]: last_seen set AGE ago, a report SEQ stored: "OUTCOME MOVED"
	local call="report_ingest('$3', $(report "$1" idle), '\\x$1'::bytea)"
	[[ $3 == b0100001 ]] ||
		call="report_ingest_batch(ARRAY['$3'], ARRAY[$(report "$1" idle)], ARRAY['\\x$1'::bytea])"
	local was
	was=$(q "UPDATE devices SET last_seen = now() - interval '$2' WHERE device_id = '$3' RETURNING last_seen")
	echo "$(q "${4:+SET fleetota.last_seen_grain_s = '$4';}
	           SELECT o.outcome FROM $call o") $(q "SELECT last_seen <> '$was' FROM devices WHERE device_id = '$3'")"
}
for d in b0100001 b0100002; do
	expect_eq "$d: a last_seen 10 s old stays" "$(seen 40 '10 s' $d)" "stored f"
	expect_eq "$d: a last_seen 29 s old stays" "$(seen 41 '29 s' $d)" "stored f"
	expect_eq "$d: a last_seen 31 s old moves" "$(seen 42 '31 s' $d)" "stored t"
	expect_eq "$d: a last_seen ahead of now() moves" "$(seen 43 '-1 hour' $d)" "stored t"
	expect_eq "$d: grain 0, a last_seen 1 s old moves" "$(seen 44 '1 s' $d 0)" "stored t"
	expect_eq "$d: grain 120, a last_seen 100 s old stays" "$(seen 45 '100 s' $d 120)" "stored f"
	expect_eq "$d: grain 'x' (the default), a last_seen 31 s old moves" "$(seen 46 '31 s' $d x)" "stored t"
	expect_eq "$d: grain 3601 (the default), a last_seen 10 s old stays" "$(seen 47 '10 s' $d 3601)" "stored f"
done
q "UPDATE devices SET last_seen = NULL WHERE device_id = 'b0100001'"
q "SELECT o.outcome FROM report_ingest('b0100001', $(report 48 idle), '\\x48'::bytea) o" >/dev/null
expect_eq "a device never seen: its report sets last_seen" \
	"$(q "SELECT last_seen IS NOT NULL FROM devices WHERE device_id = 'b0100001'")" "t"
echo "PASS"
