#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Batched report ingest (migrations/code/report_batch.sql): the same reports
# given one by one to report_ingest and in batches to report_ingest_batch
# leave the same rows (devices, events, assignments, campaign rows, security
# events) and the same outcomes: stored, duplicate (a redelivery), replay,
# stale (older seq, its new events kept), several reports of one device in
# one batch, decommissioned. Bounds: at most report_batch_max() reports,
# arrays of one length (FO422, nothing stored). Prints PostgreSQL CPU per
# report both ways, and one by one with cached plans and a commit each (as
# ota-server's prepared call), which is what batches save against.
source "$(dirname "$0")/lib.sh" "$1"
seed_trust
add_artifact fw-101 101
N=${REPORT_BATCH_DEVICES:-200}

# the report of device DEV with sequence SEQ, version code VC, state ST and
# one event numbered SEQ (a device re-sends its newest events)
report() {
	echo "jsonb_build_object('seq', $2, 'model', 'm1', 'hw_revision', 'r1', 'version', '1.0.' || $3,
	  'version_code', $3, 'security_counter', 0, 'keylist_version', 1, 'rootlist_version', 0,
	  'keylist_key_ids', '[]'::jsonb, 'pending_version', '', 'active_slot', 0, 'state', '$4',
	  'error', '', 'error_detail', '', 'artifact', 'fw-101', 'campaign_id', '',
	  'events', jsonb_build_array(jsonb_build_object('seq', $2, 'kind', '$4', 'error', '',
	    'version', '1.0.' || $3, 'version_code', $3, 'security_counter', 0, 'detail', '',
	    'campaign_id', '', 'time', $2)))"
}
# the script of reports every device sends, in order: SEQ VC STATE DIGEST_TAG
script=(
	"1 100 idle a"
	"2 100 downloading a"
	"2 100 downloading a"   # redelivered: duplicate
	"2 100 idle b"          # same seq, other bytes: replay
	"4 101 pending a"
	"3 100 verifying a"     # older: stale, its event kept
	"5 101 confirmed a"
)
# a table of every report: device prefix, step, device, report, digest
q "CREATE TABLE t_reports (prefix text, step integer, device_id text, report jsonb, digest bytea)"
for p in one bat pre; do
	step=0
	for line in "${script[@]}"; do
		read -r seq vc st tag <<<"$line"
		step=$((step + 1))
		q "INSERT INTO t_reports SELECT '$p', $step, '$p' || lpad(i::text, 5, '0'), $(report x "$seq" "$vc" "$st"),
		     decode(md5('$seq$vc$st$tag'), 'hex') FROM generate_series(1, $N) i"
	done
done
# a decommissioned device in each set
for p in one bat pre; do
	q "INSERT INTO devices (device_id, model, decommissioned) VALUES ('$p-gone', 'm1', true);
	   INSERT INTO t_reports SELECT '$p', 8, '$p-gone', report, digest FROM t_reports WHERE prefix = '$p' AND step = 1 LIMIT 1"
done
q "CREATE TABLE t_out (prefix text, step integer, device_id text, outcome text, new_events bigint,
                       campaign_changes bigint, suspect boolean, refusal_events bigint)"

total=$(q "SELECT count(*) FROM t_reports WHERE prefix = 'one'")

# one by one: a transaction per report, as ota-server does now (one psql
# session, so the CPU is the calls', not the connections')
c0=$(pg_cpu)
q "SELECT format('INSERT INTO t_out SELECT %L, %s, %L, * FROM report_ingest(%L, %L::jsonb, %L::bytea);',
                 prefix, step, device_id, device_id, report, digest)
   FROM t_reports WHERE prefix = 'one' ORDER BY step, device_id" >"$STACK/one.sql"
"${PSQL[@]}" -At -f "$STACK/one.sql" >/dev/null
c1=$(pg_cpu)
# batches of up to report_batch_max() in report order (several reports of a
# device may share one)
max=$(q "SELECT report_batch_max()")
q "SELECT format('INSERT INTO t_out SELECT ''bat'', s.step, s.device_id, b.outcome, b.new_events,
                   b.campaign_changes, b.suspect, b.refusal_events
                 FROM report_ingest_batch(%L::text[], %L::jsonb[], %L::bytea[]) b
                 JOIN (SELECT * FROM unnest(%L::integer[], %L::text[]) WITH ORDINALITY AS x(step, device_id, ord)) s
                   ON s.ord = b.ord;',
                 array_agg(device_id ORDER BY n), array_agg(report ORDER BY n), array_agg(digest ORDER BY n),
                 array_agg(step ORDER BY n), array_agg(device_id ORDER BY n))
   FROM (SELECT *, row_number() OVER (ORDER BY step, device_id) - 1 AS n FROM t_reports WHERE prefix = 'bat') r
   GROUP BY n / $max ORDER BY n / $max" >"$STACK/bat.sql"
"${PSQL[@]}" -At -f "$STACK/bat.sql" >/dev/null
c2=$(pg_cpu)
hz=$(getconf CLK_TCK)
echo "   $total reports: PostgreSQL CPU one by one $(((c1 - c0) * 1000000 / hz / total)) us/report," \
	"in batches of $max $(((c2 - c1) * 1000000 / hz / total)) us/report (load average $(cut -d' ' -f1-3 /proc/loadavg))"
# The figure above one by one includes parsing and planning each psql
# statement (a literal report each); ota-server sends a prepared statement,
# one transaction per report. As that: a procedure (plans cached) that
# commits after each report.
q "CREATE PROCEDURE t_one_by_one(p text) LANGUAGE plpgsql AS \$\$
   DECLARE r record;
   BEGIN
     FOR r IN SELECT * FROM t_reports WHERE prefix = p ORDER BY step, device_id LOOP
       INSERT INTO t_out SELECT p, r.step, r.device_id, * FROM report_ingest(r.device_id, r.report, r.digest);
       COMMIT;
     END LOOP;
   END \$\$"
c3=$(pg_cpu)
q "CALL t_one_by_one('pre')"
c4=$(pg_cpu)
echo "   one by one with cached plans and a commit each (as ota-server's prepared call):" \
	"$(((c4 - c3) * 1000000 / hz / total)) us/report (load average $(cut -d' ' -f1-3 /proc/loadavg))"

expect_eq "every report has an outcome each way" \
	"$(q "SELECT count(*) FILTER (WHERE prefix = 'one'), count(*) FILTER (WHERE prefix = 'bat'),
	            count(*) FILTER (WHERE prefix = 'pre') FROM t_out")" \
	"$total|$total|$total"
expect_eq "outcomes per step (stored, duplicate, replay, stale, decommissioned)" \
	"$(q "SELECT string_agg(DISTINCT step || ':' || outcome, ',') FROM t_out WHERE prefix = 'bat'")" \
	"1:stored,2:stored,3:duplicate,4:replay,5:stored,6:stale,7:stored,8:decommissioned"
expect_eq "the same outcomes report by report" \
	"$(q "SELECT count(*) FROM t_out a JOIN t_out b ON b.prefix = 'bat' AND b.step = a.step
	        AND b.device_id = 'bat' || substr(a.device_id, 4)
	      WHERE a.prefix = 'one' AND (a.outcome, a.new_events, a.campaign_changes, a.suspect, a.refusal_events)
	            IS DISTINCT FROM (b.outcome, b.new_events, b.campaign_changes, b.suspect, b.refusal_events)")" 0
expect_eq "the same outcomes with cached plans" \
	"$(q "SELECT count(*) FROM t_out a JOIN t_out b ON b.prefix = 'pre' AND b.step = a.step
	        AND b.device_id = 'pre' || substr(a.device_id, 4)
	      WHERE a.prefix = 'one' AND (a.outcome, a.new_events, a.campaign_changes, a.suspect, a.refusal_events)
	            IS DISTINCT FROM (b.outcome, b.new_events, b.campaign_changes, b.suspect, b.refusal_events)")" 0
same() { # WHAT SQL over rows with a column k (the device id without its prefix)
	local one="SELECT to_jsonb(x) - 'p' FROM ($2) x WHERE p = 'one'" bat="SELECT to_jsonb(x) - 'p' FROM ($2) x WHERE p = 'bat'"
	expect_eq "$1" "$(q "SELECT count(*), (SELECT count(*) FROM ($one) o)
	                     FROM (($one EXCEPT ALL $bat) UNION ALL ($bat EXCEPT ALL $one)) d")" "0|$3"
}
# (p: the prefix, left out of the comparison; the last argument: rows per side)
same "the same device rows" \
	"SELECT left(device_id, 3) AS p, substr(device_id, 4) AS k, model, version, version_code, state,
	        last_report_seq, last_report_sha256, suspect, decommissioned FROM devices" $((N + 1))
same "the same device events" \
	"SELECT left(device_id, 3) AS p, substr(device_id, 4) AS k, seq, kind, version_code, device_time FROM device_events" $((N * 5))
same "the same security events" \
	"SELECT substr(object, 8, 3) AS p, substr(object, 11) AS k, action FROM audit WHERE action LIKE 'security.%'" "$N"
expect_eq "replays were security events" \
	"$(q "SELECT count(*) FROM audit WHERE action = 'security.replay' AND object LIKE 'device:bat%'")" "$N"

before=$(q "SELECT count(*) FROM device_events")
expect_sqlstate "more than report_batch_max() reports refused" FO422 \
	"SELECT * FROM report_ingest_batch(array_fill('bat00001'::text, ARRAY[$max + 1]),
	   array_fill($(report x 9 101 idle), ARRAY[$max + 1]), array_fill('\\x00'::bytea, ARRAY[$max + 1]))"
expect_sqlstate "arrays of different lengths refused" FO422 \
	"SELECT * FROM report_ingest_batch(ARRAY['bat00001', 'bat00002'], ARRAY[$(report x 9 101 idle)], ARRAY['\\x00'::bytea])"
expect_eq "nothing stored by refused batches" "$(q "SELECT count(*) FROM device_events")" "$before"
echo "PASS"
