#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The database and the broker restart under a running server: reports sent
# while PostgreSQL is down are queued and stored after it is back (none
# lost); delivery answers 503 meanwhile and recovers; after a broker restart
# the server reconnects, re-subscribes, receives reports and notifies again;
# a database that turns read-only (25006) makes the pool reconnect.
source "$(dirname "$0")/lib.sh"
standard_setup

# expect_notify DEVICE WHEN: art-2 assigned to DEVICE reaches it as a Notify
expect_notify() {
	local sub
	mosquitto_sub -V 5 -q 1 -h 127.0.0.1 -p "$MQ_PORT" --cafile "$PKI/server-ca.crt" \
		--cert "$PKI/devices/$1.crt" --key "$PKI/devices/$1.key" \
		-t "fleetota/v1/$1/cmd" -C 1 -W 15 -N >"$T/notify-$1.bin" &
	sub=$!
	sleep 0.5
	sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('$1', 'art-2')"
	wait "$sub" || fail "no Notify $2"
	[[ "$("$SRV_TESTTOOL" notify "$T/notify-$1.bin")" == "1 art-2 1.2.0 3" ]] || fail "bad Notify to $1 $2"
}

sql -c "INSERT INTO assignments (device_id, artifact_id, notified_at) VALUES ('dev-1', 'art-1', now())"

report dev-1 dev-1 1 idle 1.0.0 1 1 1:12
wait_for 10 sql_eq 1 "SELECT count(*) FROM device_events WHERE device_id = 'dev-1'" || fail "first report"

log "PostgreSQL stops while the server runs"
stop_pg
report dev-1 dev-1 2 downloading 1.0.0 1 1 art-1 2:1
report dev-1 dev-1 3 pending 1.0.0 1 1 art-1 3:3 4:4
report dev-2 dev-2 1 idle 1.0.0 1 1 1:12
report dev-1 dev-1 4 trial 1.1.0 2 1 art-1 5:12 6:5
dev_curl dev-1 /v1/manifests/art-1 -D "$T/headers"
[[ $(status) == 503 ]] || fail "delivery without a database: $(status)"
grep -qi "^Retry-After:" "$T/headers" || fail "503 without Retry-After"
kill -0 "$SERVER_PID" || fail "the server died with the database"
sleep 1

log "PostgreSQL is back: queued reports are stored, delivery recovers"
start_pg
wait_for 20 sql_eq "6|1.1.0|trial|4" "SELECT count(e.*), d.version, d.state, d.last_report_seq
	FROM devices d JOIN device_events e USING (device_id) WHERE device_id = 'dev-1'
	GROUP BY d.version, d.state, d.last_report_seq" ||
	fail "reports lost: $(sql -c "SELECT device_id, seq, kind FROM device_events ORDER BY 1, 2")"
sql_eq 1 "SELECT count(*) FROM device_events WHERE device_id = 'dev-2'" || fail "dev-2's report lost"
wait_for 20 bash -c "source /dev/null; curl -s -o /dev/null -w '%{http_code}' --cacert '$PKI/server-ca.crt' \
	--cert '$PKI/devices/dev-1.crt' --key '$PKI/devices/dev-1.key' \
	https://127.0.0.1:$DEV_PORT/v1/manifests/art-1 | grep -q 200" || fail "delivery did not recover"
grep -q "db connection [0-9] lost" "$T/server.log" || fail "the database loss went unnoticed"
(($(grep -c "db connection [0-9] up" "$T/server.log") >= 3)) || fail "no reconnect logged"

log "the broker restarts: the server reconnects and re-subscribes"
stop_broker
sleep 1
start_broker
wait_for 20 bash -c "[[ \$(grep -c 'mqtt connected' '$T/server.log') -ge 2 ]]" || fail "no MQTT reconnect"
report dev-1 dev-1 5 confirmed 1.1.0 2 2 art-1 7:6
wait_for 10 sql_eq "confirmed|7" "SELECT d.state, count(e.*) FROM devices d JOIN device_events e
	USING (device_id) WHERE device_id = 'dev-1' GROUP BY d.state" || fail "report after broker restart"
expect_notify dev-2 "after the broker restart"

log "a read-only database (25006): the pool drops the connection and reconnects"
# as a demoted primary answers through a pooler that still points at it:
# the pool's writes (here the notifier's claims) are refused; a new
# connection is where target_session_attrs=read-write finds the primary
sql -c "ALTER SYSTEM SET default_transaction_read_only = on" -c "SELECT pg_reload_conf()" >/dev/null
wait_for 20 grep -q "db connection [0-9] lost: .*read-only transaction" "$T/server.log" ||
	fail "a read-only connection was kept: $(grep -m 3 "read-only" "$T/server.log")"
sleep 3
# while read-only, the back-off grows (100 ms doubling to 5 s): a few
# reconnects, not one per refused write
lost=$(grep -c "db connection [0-9] lost: .*read-only transaction" "$T/server.log")
((lost <= 12)) || fail "$lost reconnects to a read-only database in about 3 s"
sql -c "SET default_transaction_read_only = off" -c "ALTER SYSTEM RESET default_transaction_read_only" \
	-c "SELECT pg_reload_conf()" >/dev/null
expect_notify dev-3 "after the database took writes again"

check_server_exit
log "PASS"
