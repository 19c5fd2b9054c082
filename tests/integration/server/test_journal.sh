#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The report journal (issue 19): a report is made durable on local disk
# before its MQTT acknowledgement and stored in PostgreSQL in batches
# (report_ingest_batch). Shows: reports are stored in batches (the server's
# batch log lines, fleetota_report_batches_total, pg_stat_user_functions);
# reports acknowledged while
# PostgreSQL is down, left in the journal by a kill -9 (with a torn frame
# appended to its WAL, as a power cut may leave it) and a broker that
# forgot the server's session, are stored by the next server, first, in
# full batches; a journal that is not a database is moved aside; a second
# process on the same journal directory is refused; a database that turned
# read-only (a demoted primary behind a pooler: 25006) keeps the reports
# journaled until it takes them.
REPORT_RATE=1000 # within budget: nothing is held in memory
REPORT_BURST=1000
source "$(dirname "$0")/lib.sh"
API_PORT=$(free_port)
standard_setup
TOKEN=$("$OTA_SERVER" token create --role viewer --name journal --config "$T/server.conf")
N=400
# the default: store_dir/report-journal/<client id, ':' made '_'>
JOURNAL=$STORE/report-journal/ota-server_1
[[ -f $JOURNAL/reports.db ]] || fail "no journal at $JOURNAL"

journal_rows() { # rows in the journal (read-only; the server may hold it)
	python3 - "$JOURNAL/reports.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print(db.execute("SELECT count(*) FROM reports").fetchone()[0])
PY
}
journal_is() { [[ "$(journal_rows)" == "$1" ]]; }
journal_is_at_least() { (($(journal_rows) >= $1)); }
# the journal took all N published so far, or is full
caught_up() { journal_is_at_least "$1" || grep -q "report journal is full" "$T/server.log"; }
events() { sql -c "SELECT count(*) FROM device_events"; }
batch_calls() { sql -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = 'report_ingest_batch'"; }
batch_calls_over() { (($(batch_calls) > $1)); }
batch_lines() { grep -c 'ingest: batch of' "$1" || true; }

sql -c "ALTER SYSTEM SET track_functions = 'pl'" -c "SELECT pg_reload_conf()" >/dev/null

log "1. dev-1..3 publish $N reports each, as fast as they can"
PUBS=()
stop_pubs() { for p in "${PUBS[@]+"${PUBS[@]}"}"; do kill "$p" 2>/dev/null || true; done; }
at_cleanup stop_pubs
for d in dev-1 dev-2 dev-3; do
	pub "$d" 1 "$N" >"$T/pub.$d" 2>&1 &
	PUBS+=($!)
done
for p in "${PUBS[@]}"; do wait "$p" || fail "a publisher failed: $(cat "$T"/pub.*)"; done
PUBS=()
wait_for 60 sql_eq $((3 * N)) "SELECT count(*) FROM device_events" || fail "stored: $(events)"
wait_for 10 journal_is 0 || fail "journal not drained: $(journal_rows) rows"
batches=$(batch_lines "$T/server.log")
log "$((3 * N)) reports stored in $batches batches of 2 or more (the rest one by one)"
((batches > 0)) || fail "no batch"
[[ "$(metric fleetota_report_batches_total)" == "$batches" ]] ||
	fail "fleetota_report_batches_total $(metric fleetota_report_batches_total), the log $batches"
grep -E 'ingest: batch of [0-9]+' -o "$T/server.log" | awk '{ n += $4; b++ } END { printf "  %d reports in batches, %.1f a batch\n", n, n / b }'
# fleetota_report_batch_size: every report of a call counted once (the sum),
# every call once (batches and reports alone), the buckets cumulative
[[ "$(metric fleetota_report_batch_size_sum)" == $((3 * N)) ]] ||
	fail "fleetota_report_batch_size_sum $(metric fleetota_report_batch_size_sum), not $((3 * N))"
ones=$(metric 'fleetota_report_batch_size_bucket{le="1"}')
[[ "$(metric fleetota_report_batch_size_count)" == $((batches + ones)) ]] ||
	fail "fleetota_report_batch_size_count $(metric fleetota_report_batch_size_count), not $batches batches + $ones alone"
[[ "$(metric 'fleetota_report_batch_size_bucket{le="+Inf"}')" == "$(metric fleetota_report_batch_size_count)" ]] ||
	fail "the +Inf bucket is not the count"
largest=$(grep -E 'ingest: batch of [0-9]+' -o "$T/server.log" | awk '{ print $4 }' | sort -n | tail -1)
le=1
while ((le < largest)); do le=$((le * 2)); done
[[ "$(metric "fleetota_report_batch_size_bucket{le=\"$le\"}")" == "$(metric fleetota_report_batch_size_count)" ]] ||
	fail "the largest batch ($largest) is not in the bucket le=$le"
log "fleetota_report_batch_size: $(metric fleetota_report_batch_size_count) calls, $ones of one report"

log "2. PostgreSQL down: reports are acknowledged into the journal"
stop_pg
for d in dev-1 dev-2 dev-3; do
	pub "$d" $((N + 1)) "$N" >"$T/pub.$d" 2>&1 &
	PUBS+=($!)
done
for p in "${PUBS[@]}"; do wait "$p" || fail "a publisher failed: $(cat "$T"/pub.*)"; done
PUBS=()
wait_for 60 journal_is $((3 * N)) ||
	fail "the journal holds $(journal_rows) of $((3 * N)) reports"
log "   the journal holds $((3 * N)) reports; kill -9, a torn frame on its WAL, a broker that forgot the session"
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
[[ -s $JOURNAL/reports.db-wal ]] || fail "no WAL left behind"
head -c 3000 /dev/urandom >>"$JOURNAL/reports.db-wal"
stop_broker
start_broker
start_pg
sql -c "SELECT pg_stat_reset()" >/dev/null
mv "$T/server.log" "$T/server.log.1"
start_server
wait_for 60 sql_eq $((6 * N)) "SELECT count(*) FROM device_events" ||
	fail "journal not stored: $(events) events, journal $(journal_rows)"
sql_eq "dev-1|$((2 * N)) dev-2|$((2 * N)) dev-3|$((2 * N))" "SELECT string_agg(device_id || '|' ||
	last_report_seq, ' ' ORDER BY device_id) FROM devices" ||
	fail "rows: $(sql -c "SELECT device_id, last_report_seq FROM devices")"
wait_for 10 journal_is 0 || fail "journal not drained: $(journal_rows) rows"
grep -q "$((3 * N)) reports left in the journal: stored first" "$T/server.log" ||
	fail "no 'left in the journal' line"
sql_eq 0 "SELECT count(*) FROM audit WHERE action LIKE 'security.%'" ||
	fail "security events: $(sql -c "SELECT action, after FROM audit")"
# a backend's function statistics reach the shared view when it exits
check_server_exit
wait_for 10 batch_calls_over 0 || fail "report_ingest_batch never counted"
calls=$(batch_calls)
log "   $((3 * N)) journaled reports stored by $calls report_ingest_batch calls"
((calls <= (3 * N + 255) / 256 + 2)) || fail "$calls batch calls for $((3 * N)) reports: not batched"

log "3. a journal that is not a database is moved aside"
echo "not a database" >"$JOURNAL/reports.db"
rm -f "$JOURNAL/reports.db-wal" "$JOURNAL/reports.db-shm"
mv "$T/server.log" "$T/server.log.2"
start_server
grep -q "moved to $JOURNAL/reports.db.corrupt-" "$T/server.log" || fail "not moved aside"
ls "$JOURNAL"/reports.db.corrupt-* >/dev/null || fail "no corrupt copy kept"
report dev-1 dev-1 $((2 * N + 1)) idle 1.0.$((2 * N + 1)) $((2 * N + 1)) 1 >/dev/null
wait_for 20 sql_eq $((2 * N + 1)) "SELECT last_report_seq FROM devices WHERE device_id = 'dev-1'" ||
	fail "no report stored after the new journal"

log "4. a second process on the same journal directory is refused"
second_server_config "$(free_port)" "$T/server2.conf"
sed -i "s/^admin_listen = .*/admin_listen = 127.0.0.1:$(free_port)/" "$T/server2.conf"
echo "report_journal_dir = $JOURNAL" >>"$T/server2.conf"
rc=0
timeout 60 "$OTA_SERVER" --config "$T/server2.conf" >"$T/server2.log" 2>&1 || rc=$?
((rc != 0 && rc != 124)) || fail "the second server did not refuse (status $rc)"
grep -q "is in use by another process" "$T/server2.log" || fail "no refusal: $(tail -5 "$T/server2.log")"

log "5. SIGTERM: the writer stores what the journal holds before it exits"
# dev-2's row locked by another session: the writer's batch waits for it
mkfifo "$T/lock.fifo"
psql "host=$T/pg port=$PG_PORT dbname=fleetota user=postgres" -v ON_ERROR_STOP=1 -q \
	<"$T/lock.fifo" >"$T/lock.out" 2>&1 &
lock_psql=$!
exec {lockfd}>"$T/lock.fifo"
echo "BEGIN; SELECT 1 FROM devices WHERE device_id = 'dev-2' FOR UPDATE;" >&$lockfd
echo "\\! touch $T/locked" >&$lockfd
wait_for 10 test -f "$T/locked" || fail "the row was not locked: $(cat "$T/lock.out")"
pub dev-2 $((2 * N + 1)) 50 >"$T/pub.dev-2" 2>&1 || fail "publisher: $(cat "$T/pub.dev-2")"
wait_for 30 journal_is 50 || fail "the journal holds $(journal_rows) of 50 reports"
[[ "$(metric fleetota_report_journal_reports)" == 50 ]] ||
	fail "fleetota_report_journal_reports $(metric fleetota_report_journal_reports), not 50"
kill -TERM "$SERVER_PID"
sleep 1
echo "COMMIT;" >&$lockfd
exec {lockfd}>&-
wait "$lock_psql" || fail "the locking session: $(cat "$T/lock.out")"
check_server_exit
# the batch that waited for the lock ends after the signal (and any after it)
sed -n '/signal 15/,$p' "$T/server.log" | grep -q "ingest: batch of [0-9]* reports stored" ||
	fail "the batch was not stored after SIGTERM: $(sed -n '/signal 15/,$p' "$T/server.log" | head)"
! grep -q "stay in the journal" "$T/server.log" || fail "not drained: $(grep 'stay in' "$T/server.log")"
journal_is 0 || fail "the journal holds $(journal_rows) reports after the stop"
sql_eq $((2 * N + 50)) "SELECT last_report_seq FROM devices WHERE device_id = 'dev-2'" ||
	fail "dev-2 at seq $(sql -c "SELECT last_report_seq FROM devices WHERE device_id = 'dev-2'")"

log "6. a full journal: reports wait in the broker until it drains"
echo "report_journal_max_mb = 1" >>"$T/server.conf"
mv "$T/server.log" "$T/server.log.5"
start_server
stop_pg
# in chunks, so that what waits in the broker stays within its queue
# (mosquitto's max_queued_messages, 1000)
seq=$((2 * N + 1))
for ((chunk = 0; chunk < 40; chunk++)); do
	pub dev-3 "$seq" 250 >"$T/pub.dev-3" 2>&1 || fail "publisher: $(cat "$T/pub.dev-3")"
	seq=$((seq + 250))
	wait_for 60 caught_up $((seq - 2 * N - 1)) || fail "the journal holds $(journal_rows) reports"
	grep -q "report journal is full" "$T/server.log" && break
done
grep -q "report journal is full" "$T/server.log" || fail "the journal never filled"
pub dev-3 "$seq" 300 >"$T/pub.dev-3" 2>&1 || fail "publisher: $(cat "$T/pub.dev-3")"
last=$((seq + 299))
full=$(journal_rows)
log "   full at $full reports; $((last - 2 * N - full)) wait in the broker"
((full < last - 2 * N)) || fail "the journal took all $((last - 2 * N)) reports"
start_pg
wait_for 120 sql_eq "$last" "SELECT last_report_seq FROM devices WHERE device_id = 'dev-3'" ||
	fail "dev-3 at seq $(sql -c "SELECT last_report_seq FROM devices WHERE device_id = 'dev-3'")"
sql_eq $((last - 2 * N)) "SELECT count(*) FROM device_events WHERE device_id = 'dev-3' AND seq > $((2 * N))" ||
	fail "events lost: $(sql -c "SELECT count(*) FROM device_events WHERE device_id = 'dev-3' AND seq > $((2 * N))")"
grep -q "report journal takes reports again" "$T/server.log" || fail "no 'takes reports again' line"
wait_for 10 journal_is 0 || fail "the journal holds $(journal_rows) reports"
check_server_exit

log "7. a read-only database (25006): reports stay journaled until it takes them"
# as a demoted primary answers through a pooler that still points at it:
# every transaction read-only, the writer's calls refused
sed -i '/^report_journal_max_mb = /d' "$T/server.conf"
mv "$T/server.log" "$T/server.log.6"
start_server
sql -c "ALTER SYSTEM SET default_transaction_read_only = on" -c "SELECT pg_reload_conf()" >/dev/null
first=$((last + 1))
pub dev-1 "$first" 20 >"$T/pub.dev-1" 2>&1 || fail "publisher: $(cat "$T/pub.dev-1")"
wait_for 30 grep -q "read-only transaction" "$T/server.log" ||
	fail "the writer was not refused: $(tail -5 "$T/server.log")"
sleep 2 # the writer retries meanwhile
journal_is 20 || fail "the read-only database's refusals left $(journal_rows) of 20 reports in the journal"
sql_eq 0 "SELECT count(*) FROM device_events WHERE device_id = 'dev-1' AND seq >= $first" ||
	fail "stored while read-only?"
sql -c "SET default_transaction_read_only = off" -c "ALTER SYSTEM RESET default_transaction_read_only" \
	-c "SELECT pg_reload_conf()" >/dev/null
wait_for 60 sql_eq 20 "SELECT count(*) FROM device_events WHERE device_id = 'dev-1' AND seq >= $first" ||
	fail "stored after: $(sql -c "SELECT count(*) FROM device_events WHERE device_id = 'dev-1' AND seq >= $first")"
wait_for 10 journal_is 0 || fail "the journal holds $(journal_rows) reports"
check_server_exit
log "PASS"
