#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The report ingest's SQL alone (issue 19): a fleet's install given to
# report_ingest_batch() straight from a procedure in a private PostgreSQL
# (the rollout tests' fixture, tests/integration/rollout/lib.sh: fsync off),
# no server, broker or devices. Fast and repeatable where the fleet bench
# (bench/fleet.sh) mixes the rollout engine's tick, the manifests and the
# batch sizes the load of the moment makes.
#
#   bench/report_sql.sh SRC [DEVICES] [G] [K]
#
# SRC: a source tree whose migrations are measured (e.g. a `git archive` of
# another commit: A/B of two SQL versions). DEVICES (1000, 10..100000)
# register (one idle report each), one campaign notifies them all, then
# each reports downloading, verifying, pending, trial (the new version),
# confirmed, idle: six reports, each carrying its newest eight events (the
# agent's OTA_MAX_REPORT_EVENTS / 2), in batches of G devices (4) x K
# consecutive reports of each (3): K rounds a batch, as the fleet bench's
# batches of ~10 reports hold ~2.4. Prints the CPU of the backend that ran
# the install (/proc, ms per install) and the rows it left.
# REPORT_SQL_PGSS=1: also pg_stat_statements (track = all; the statements
# of most execution time, ms per install and calls per install) and the
# functions of most self time (track_functions = all). Execution time is
# wall time (the load stretches it); ExecutorStart of a statement is not
# in its own time but in its caller's self time.
set -euo pipefail
SRC=$(cd "${1:?SRC}" && pwd)
N=${2:-1000}
G=${3:-4}
K=${4:-3}
for v in "$N" "$G" "$K"; do
	[[ $v =~ ^[0-9]+$ ]] || { echo "report_sql: DEVICES, G and K are numbers" >&2; exit 2; }
done
((N >= 10 && N <= 100000 && G >= 1 && G <= 256 && K >= 1 && K <= 6 && G * K <= 256)) ||
	{ echo "report_sql: DEVICES 10..100000, G 1..256, K 1..6, G * K <= 256" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
source "$top/tests/integration/rollout/lib.sh" "$SRC"
seed_trust
add_artifact fw-101 101
q "CREATE TABLE t_script (step integer, seq bigint, vc bigint, state text, artifact text, campaign text)"
q "INSERT INTO t_script VALUES (0, 1, 100, 'idle', '', ''),
   (1, 2, 100, 'downloading', 'fw-101', 'c1'), (2, 3, 100, 'verifying', 'fw-101', 'c1'),
   (3, 4, 100, 'pending', 'fw-101', 'c1'), (4, 5, 101, 'trial', 'fw-101', 'c1'),
   (5, 6, 101, 'confirmed', 'fw-101', 'c1'), (6, 7, 101, 'idle', '', '')"
# events: two per report (a state change and its progress), the newest eight sent
q "CREATE TABLE t_reports AS
   SELECT s.step, d.i, 'rs' || lpad(d.i::text, 6, '0') AS device_id,
          jsonb_build_object('seq', s.seq, 'model', 'm1', 'hw_revision', 'r1', 'version', '1.0.' || s.vc,
            'version_code', s.vc, 'security_counter', 0, 'keylist_version', 1, 'rootlist_version', 0,
            'keylist_key_ids', '[]'::jsonb, 'pending_version', '', 'active_slot', 0, 'state', s.state,
            'error', '', 'error_detail', '', 'artifact', s.artifact, 'campaign_id', s.campaign,
            'running_sha256', CASE WHEN s.vc = 101 THEN repeat('ab', 32) ELSE repeat('cd', 32) END,
            'events', (SELECT jsonb_agg(jsonb_build_object('seq', x, 'kind', 'state', 'error', '',
                         'version', '1.0.' || s.vc, 'version_code', s.vc, 'security_counter', 0, 'detail', '',
                         'campaign_id', '', 'time', x) ORDER BY x)
                       FROM generate_series(greatest(s.seq * 2 - 7, 1), s.seq * 2) x)) AS report,
          decode(md5(s.seq::text || d.i), 'hex') AS digest
   FROM generate_series(1, $N) d(i) CROSS JOIN t_script s"
q "CREATE PROCEDURE t_batches(ph integer, g integer, k integer) LANGUAGE plpgsql AS \$\$
   DECLARE b record;
   BEGIN
     FOR b IN SELECT array_agg(device_id ORDER BY step, i) AS devices, array_agg(report ORDER BY step, i) AS reports,
                     array_agg(digest ORDER BY step, i) AS digests
              FROM t_reports WHERE (ph = 0 AND step = 0) OR (ph = 1 AND step > 0)
              GROUP BY (i - 1) / g, (step - 1) / k ORDER BY (i - 1) / g, (step - 1) / k LOOP
       PERFORM * FROM report_ingest_batch(b.devices, b.reports, b.digests, NULL);
       COMMIT;
     END LOOP;
   END \$\$"
q "CALL t_batches(0, 16, 1)"
q "SELECT rollout_create('{\"id\":\"c1\",\"artifact\":\"fw-101\",\"rate_per_minute\":1000000,\"rate_burst\":1000000,
                          \"target\":{\"model\":[\"m1\"]},
                          \"stages\":[{\"percent\":100,\"max_in_flight\":1000000}]}', 'alice')" >/dev/null
q "SELECT rollout_start('c1', 'alice')" >/dev/null
q "SELECT count(*) FROM rollout_tick('s', NULL, 30, 32, 1000000)" >/dev/null
q "VACUUM ANALYZE" >/dev/null
if [[ ${REPORT_SQL_PGSS:-0} = 1 ]]; then
	q "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
	"$top/scripts/pg.sh" stop "$PGDIR" >/dev/null
	stack_pg_start "$PGDIR" "$PGPORT"
	q "CREATE EXTENSION pg_stat_statements"
	q "ALTER SYSTEM SET pg_stat_statements.track = 'all'"
	q "ALTER SYSTEM SET track_functions = 'all'"
	q "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
	q "SELECT pg_stat_statements_reset(), pg_stat_reset()" >/dev/null
fi
cpu='SELECT split_part(s, $$ $$, 14)::bigint + split_part(s, $$ $$, 15)::bigint FROM pg_read_file($$/proc/self/stat$$) s'
ticks=$("${PSQL[@]}" -At -c "SET client_min_messages = warning" -c "$cpu" -c "CALL t_batches(1, $G, $K)" -c "$cpu" |
	awk 'NR == 1 { a = $1 } { l = $1 } END { print l - a }')
if [[ ${REPORT_SQL_PGSS:-0} = 1 ]]; then
	echo "report_sql: pg_stat_statements (ms per install: execution; calls per install):"
	q "SELECT round((total_exec_time / $N)::numeric, 3), round(calls::numeric / $N, 2),
	          left(regexp_replace(query, '\\s+', ' ', 'g'), 100)
	   FROM pg_stat_statements WHERE query NOT LIKE 'CALL%' AND query NOT LIKE '%pg_stat%'
	   ORDER BY total_exec_time DESC LIMIT 25" | sed 's/^/report_sql:   /'
	echo "report_sql: functions (ms per install: total, self; calls per install):"
	q "SELECT round((total_time / $N)::numeric, 3), round((self_time / $N)::numeric, 3),
	          round(calls::numeric / $N, 2), funcname
	   FROM pg_stat_user_functions ORDER BY self_time DESC LIMIT 12" | sed 's/^/report_sql:   /'
fi
hz=$(getconf CLK_TCK)
echo "report_sql: $SRC: $N devices, batches of $G devices x $K reports:" \
	"backend CPU $(awk -v t="$ticks" -v h="$hz" -v n="$N" 'BEGIN { printf "%.3f", t / h * 1000 / n }') ms per install;" \
	"confirmed $(q "SELECT count(*) FROM campaign_devices WHERE state = 'confirmed'")," \
	"assignments $(q "SELECT string_agg(state || ':' || n, ',') FROM (SELECT state, count(*) n FROM assignments GROUP BY 1) x")," \
	"events $(q "SELECT count(*) FROM device_events"); load $(cut -d' ' -f1-3 /proc/loadavg)"
