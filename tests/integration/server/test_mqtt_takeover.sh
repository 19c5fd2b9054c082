#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two ota-server processes started with one MQTT identity (the same
# mqtt_cert: a replica copied without its own certificate). The broker gives
# a client id to one connection at a time, so each connect of one takes the
# session of the other over (mosquitto 2.0 just closes the old connection;
# other brokers send the MQTT 5 DISCONNECT 0x8E). While they fight, reports
# and Notifies flow (assignments are re-armed every 200 ms, so both publish
# through every take-over). Each server must survive it cleanly: no
# sanitizer report (an ASan heap-use-after-free was seen here once), an
# error naming the likely cause and what to do (docs/scaling.md), the short
# sessions counted in /metrics, and a growing back-off instead of a fight
# every second. Once the second one stops, the first gets its session back
# and stores reports again.
source "$(dirname "$0")/lib.sh"
API_PORT=$(free_port)
standard_setup
TOKEN=$("$OTA_SERVER" token create --role viewer --name takeover --config "$T/server.conf")
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-1', 'art-1'), ('dev-2', 'art-1'),
	('dev-3', 'art-2')"

FIGHT_S=${FIGHT_S:-14}
log "a second server with the same identity (ota-server:1)"
API2=$(free_port)
sed -e "s/^device_listen = .*/device_listen = 127.0.0.1:$(free_port)/" \
	-e "s/^admin_listen = .*/admin_listen = 127.0.0.1:$API2/" "$T/server.conf" >"$T/server2.conf"
# its own report journal, as on another host: on the same one, the default
# (store_dir/report-journal/<client id>) is the first one's, and a second
# process on a journal is refused at start
echo "report_journal_dir = $T/journal2" >>"$T/server2.conf"
"$OTA_SERVER" --config "$T/server2.conf" >"$T/server2.log" 2>&1 &
srv2=$!
stop_srv2() { stop_bg srv2; }
at_cleanup stop_srv2

log "reports and Notifies flow while they take the session from each other for $FIGHT_S s"
t0=$SECONDS
seq=10
while ((SECONDS - t0 < FIGHT_S)); do
	sql -c "UPDATE assignments SET notified_at = NULL"
	seq=$((seq + 1))
	report "dev-$((seq % 3 + 1))" "dev-$((seq % 3 + 1))" "$seq" idle 1.0.0 1 1 >/dev/null 2>&1 || true
	sleep 0.2
	kill -0 "$srv2" 2>/dev/null || fail "the second server died: $(tail -20 "$T/server2.log")"
	kill -0 "$SERVER_PID" 2>/dev/null || fail "the first server died"
done

takeovers() { grep -c "error: mqtt .*each replica needs its own mqtt_cert" "$1" || true; }
connects() { grep -c "mqtt connected" "$1" || true; }
n1=$(takeovers "$T/server.log")
n2=$(takeovers "$T/server2.log")
c1=$(connects "$T/server.log")
c2=$(connects "$T/server2.log")
log "take-overs seen: first $n1, second $n2; connects: first $c1, second $c2"
((n1 >= 1 && n2 >= 1)) || fail "a take-over was not named (first $n1, second $n2)"
grep -q "another process probably uses this MQTT identity (ota-server:1" "$T/server.log" ||
	fail "the error does not name the cause"
# Paho's own 1 s reconnect would fight about $FIGHT_S times each; the
# back-off doubles from 1 s after each take-over.
((c1 + c2 <= 12)) || fail "$((c1 + c2)) connects in $FIGHT_S s: no back-off"
m=$(metric fleetota_mqtt_short_sessions_total)
((m > n1)) || fail "fleetota_mqtt_short_sessions_total $m, the log names $n1 in a row"

log "the second server stops: the first one gets its session back and stores reports"
stop_srv2
((BG_STATUS == 0)) || fail "the second server exited with $BG_STATUS: $(grep -A20 'ERROR: AddressSanitizer\|runtime error' "$T/server2.log" | head -30)"
last_state() { grep -E "mqtt connected|mqtt session taken over" "$T/server.log" | tail -1; }
wait_for 30 bash -c "grep -E 'mqtt connected|mqtt session taken over' '$T/server.log' | tail -1 | grep -q connected" ||
	fail "the first server did not reconnect: $(last_state)"
seq=$((seq + 1))
report dev-1 dev-1 "$seq" idle 1.0.0 1 1 || fail "dev-1 publish"
wait_for 30 sql_eq "$seq" "SELECT last_report_seq FROM devices WHERE device_id = 'dev-1'" ||
	fail "dev-1's report after the fight was not stored"
check_server_exit
log "PASS"
