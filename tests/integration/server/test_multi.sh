#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two ota-server processes on one database and one broker: reports are
# shared between them ($share subscription) and stored exactly once;
# assignments are notified exactly once (claims with SKIP LOCKED); one
# server killed with SIGKILL and restarted loses no report.
source "$(dirname "$0")/lib.sh"
SERVER2_PID=
stop_server2() {
	[[ -n "$SERVER2_PID" ]] || return 0
	kill -TERM "$SERVER2_PID" 2>/dev/null || true
	wait "$SERVER2_PID" 2>/dev/null || true
	SERVER2_PID=
}
at_cleanup stop_server2
standard_setup

DEV_PORT2=$(free_port)
second_server_config "$DEV_PORT2" "$T/server2.conf"
start_server2() {
	"$OTA_SERVER" --config "$T/server2.conf" >>"$T/server2.log" 2>&1 &
	SERVER2_PID=$!
	wait_for 20 bash -c "[[ \$(grep -c 'mqtt connected' '$T/server2.log') -ge $1 ]]" ||
		fail "second server did not come up: $(tail -5 "$T/server2.log")"
}
start_server2 1

log "20 reports through two servers: each stored once, both servers took some"
for i in $(seq 1 20); do
	report dev-1 dev-1 "$i" idle 1.0.0 1 1 "$i:12"
done
wait_for 20 sql_eq "20|20" "SELECT count(*), max(d.last_report_seq) FROM device_events e
	JOIN devices d USING (device_id) WHERE device_id = 'dev-1'" ||
	fail "reports: $(sql -c "SELECT count(*) FROM device_events")"
n1=$(grep -c "report dev-1 seq" "$T/server.log" || true)
n2=$(grep -c "report dev-1 seq" "$T/server2.log" || true)
log "server 1 stored $n1, server 2 stored $n2"
((n1 + n2 == 20 && n1 > 0 && n2 > 0)) || fail "shared subscription: $n1 + $n2"

log "six assignments: each notified exactly once by one of the two"
sql -c "INSERT INTO assignments (device_id, artifact_id)
	SELECT d, a FROM unnest(ARRAY['dev-1','dev-2','dev-3']) d, unnest(ARRAY['art-1','art-2']) a"
wait_for 10 sql_eq 0 "SELECT count(*) FROM assignments WHERE notified_at IS NULL" || fail "not all notified"
sleep 1
sql_eq "6|1" "SELECT count(*), max(notify_count) FROM assignments" || fail "notified twice"
m1=$(grep -c "notified dev-" "$T/server.log" || true)
m2=$(grep -c "notified dev-" "$T/server2.log" || true)
((m1 + m2 == 6)) || fail "notifications sent: $m1 + $m2"

log "server 2 is killed with SIGKILL mid-stream and restarted: no report lost"
kill -KILL "$SERVER2_PID"
wait "$SERVER2_PID" 2>/dev/null || true
SERVER2_PID=
for i in $(seq 21 30); do
	report dev-1 dev-1 "$i" idle 1.0.0 1 1 "$i:12"
done
start_server2 2
wait_for 20 sql_eq "30|30" "SELECT count(*), max(d.last_report_seq) FROM device_events e
	JOIN devices d USING (device_id) WHERE device_id = 'dev-1'" ||
	fail "reports lost after SIGKILL: $(sql -c "SELECT string_agg(seq::text, ',') FROM device_events")"

stop_server2
check_server_exit
log "PASS"
