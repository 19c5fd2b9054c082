#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Revocation takes effect without a restart (issue 12, finding 2; issue 11
# "SIGHUP reloads the configuration and the CRL without dropping
# connections"). dev-3 is revoked (pki.sh revoke), then ota-server and the
# broker are reloaded by SIGHUP: dev-3 is refused at the delivery listener
# (new handshakes, its open keep-alive connection, a resumed TLS session)
# and at the broker: new connections are refused, and the reload itself ends
# its live session (it keeps publishing 10 reports a second until then: the
# reload's ACL refuses them at once and closes the session within a bound);
# nothing it published after the revocation is ingested. dev-2's
# open HTTPS connection and MQTT session survive the reloads. A config
# change is applied live or named as needing a restart; with
# device_reload_sec (ota-server) and mosquitto.sh watch (the broker) the CRL
# is picked up without a signal.
source "$(dirname "$0")/lib.sh"
# dev-3 publishes 10 reports a second: all in budget (none held for later)
REPORT_RATE=50
REPORT_BURST=100
# keep-alive connections survive the slow steps of a loaded machine
SERVER_CONF_EXTRA="device_crl = $PKI/device-ca.crl
device_reload_sec = 0
http_timeout_sec = 120"
standard_setup
server_pid=$SERVER_PID

# keepalive DEVICE NAME: one TLS connection, GET /v1/keylist now and again
# once $T/NAME.go exists; the status lines go to $T/NAME.out
keepalive() {
	local dev=$1 name=$2
	{
		printf 'GET /v1/keylist HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
		while [[ ! -f "$T/$name.go" ]]; do sleep 0.1; done
		printf 'GET /v1/keylist HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'
	} | timeout 150 openssl s_client -quiet -connect "127.0.0.1:$DEV_PORT" \
		-CAfile "$PKI/server-ca.crt" -cert "$PKI/devices/$dev.crt" \
		-key "$PKI/devices/$dev.key" >"$T/$name.raw" 2>"$T/$name.err" || true
	{ grep -ao 'HTTP/1.1 [0-9]*' "$T/$name.raw" || true; } | cut -d' ' -f2 | tr '\n' ' ' >"$T/$name.out"
}
statuses() { sed 's/ $//' "$T/$1.out"; }
# a test that fails early still lets the keep-alive clients go
release_keepalives() { touch "$T/ka3.go" "$T/ka2.go"; }
at_cleanup release_keepalives

# tls_try DEVICE [s_client args]: a fresh handshake + request; s_client's
# output in $T/tls.out
# The request goes a second after the handshake: under TLS 1.3 the server
# checks the client certificate after the client finished its handshake,
# and a request already sent when the server refuses (alert, close) can
# come back as a TCP reset that discards the alert unread (seen twice in
# ten runs of this test on 2 Dec: s_client printed neither an alert nor
# HTTP).
tls_try() {
	local dev=$1
	shift
	{ sleep 1; printf 'GET /v1/keylist HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'; } |
		timeout 20 openssl s_client -ign_eof -connect "127.0.0.1:$DEV_PORT" \
			-CAfile "$PKI/server-ca.crt" -cert "$PKI/devices/$dev.crt" \
			-key "$PKI/devices/$dev.key" "$@" >"$T/tls.out" 2>&1 || true
}
row() { sql -c "SELECT row(d.*)::text FROM devices d WHERE device_id = '$1'"; }

log "before: dev-3 reports (stored), keeps an HTTPS connection and an MQTT session open"
report dev-3 dev-3 5 idle 1.0.0 1 1 || fail "dev-3 publish before revocation"
wait_for 10 sql_eq 5 "SELECT last_report_seq FROM devices WHERE device_id = 'dev-3'" || fail "dev-3's report"
# dev-3's live session: a publisher, 10 reports a second for up to 180 s
pub dev-3 100 1800 10 >"$T/pub3.out" 2>"$T/pub3.err" &
pub3=$!
stop_pub3() { stop_bg pub3; }
at_cleanup stop_pub3
wait_for 30 sql_eq t "SELECT last_report_seq >= 100 FROM devices WHERE device_id = 'dev-3'" ||
	fail "dev-3's live publisher is not stored"
tls_try dev-3 -sess_out "$T/dev3.session"
grep -q "HTTP/1.1 200" "$T/tls.out" && [[ -s "$T/dev3.session" ]] || fail "dev-3 session: $(tail -3 "$T/tls.out")"
keepalive dev-3 ka3 &
ka3=$!
keepalive dev-2 ka2 &
ka2=$!
mq_sub_bg dev-2 dev-2 "$T/dev2.msgs"
sub2=$MQ_SUB_PID
wait_for 10 bash -c "grep -q \"as dev-3 (p5\" '$T/mq/mosquitto.log' && grep -q \"as dev-2 (p5\" '$T/mq/mosquitto.log'" ||
	fail "subscribers did not connect"
sleep 0.5

log "revoke dev-3, SIGHUP to ota-server"
"$TOP/scripts/pki.sh" revoke "$PKI" dev-3
kill -HUP "$SERVER_PID"
wait_for 10 grep -q "reload (SIGHUP): device listener CA, CRL, certificate and key reloaded" "$T/server.log" ||
	fail "ota-server did not reload: $(grep reload "$T/server.log")"
grep -q "reload (SIGHUP): config $T/server.conf: applied: no change" "$T/server.log" || fail "config reload line"

log "delivery listener: dev-3's open connection is refused on its next request, dev-2's goes on"
touch "$T/ka3.go" "$T/ka2.go"
wait "$ka3" "$ka2" || true
[[ "$(statuses ka3)" == "200 403" ]] || fail "dev-3 keep-alive statuses: $(statuses ka3)"
[[ "$(statuses ka2)" == "200 200" ]] || fail "dev-2 keep-alive statuses: $(statuses ka2)"

log "delivery listener: a new handshake and a resumed session of dev-3 are refused"
tls_try dev-3
grep -q "alert certificate revoked" "$T/tls.out" || fail "dev-3 new handshake: $(tail -c 600 "$T/tls.out")"
! grep -q "HTTP/1.1" "$T/tls.out" || fail "dev-3 got an HTTP answer"
tls_try dev-3 -sess_in "$T/dev3.session"
grep -q "alert certificate revoked" "$T/tls.out" || fail "dev-3 resumed session: $(tail -c 600 "$T/tls.out")"
! grep -q "^Reused" "$T/tls.out" || fail "dev-3's old session was resumed"
dev_curl dev-2 /v1/keylist
[[ $(status) == 200 ]] || fail "dev-2 new connection after the reload: $(status)"

log "broker reload: dev-3's live session (publishing all along) ends, nothing more of it is stored"
kill -0 "$pub3" 2>/dev/null || fail "dev-3's publisher ended before the broker reload: $(cat "$T/pub3.err")"
t_reload=$(date +%s.%N)
"$TOP/scripts/mosquitto.sh" reload "$T/mq" >"$T/reload.out" || fail "broker reload"
reload_ms=$(awk -v a="$t_reload" -v b="$(date +%s.%N)" 'BEGIN { printf "%d", (b - a) * 1000 }')
grep -qx "kicked dev-3" "$T/reload.out" || fail "the reload did not close dev-3's session: $(cat "$T/reload.out")"
wait_for 10 bash -c "! kill -0 $pub3 2>/dev/null" || fail "dev-3's publisher is still connected after the reload"
log "dev-3's session closed by the reload in $reload_ms ms ($(tail -1 "$T/pub3.err"))"
# a bound for a loaded shared machine (65 s seen at a load average of 70; the
# reload signs a take-over certificate): without the kick it never closes
((reload_ms < 90000)) || fail "the reload took $reload_ms ms"
! grep -q "^published" "$T/pub3.out" || fail "dev-3's publisher finished instead of losing its session"
row3=$(row dev-3)

log "broker: dev-3 cannot connect any more"
n_fail_before=$(grep -c "certificate verify failed" "$T/mq/mosquitto.log" || true)
rc=0
report dev-3 dev-3 6 idle 1.0.0 1 1 2>/dev/null || rc=$?
((rc != 0)) || fail "dev-3 published after the revocation"
n_fail=$(grep -c "certificate verify failed" "$T/mq/mosquitto.log" || true)
((n_fail == n_fail_before + 1)) || fail "broker refusals: $n_fail_before -> $n_fail"
grep -q "Client dev-3 already connected, closing old connection" "$T/mq/mosquitto.log" || fail "dev-3's session was not closed"
sleep 1
[[ "$(row dev-3)" == "$row3" ]] || fail "dev-3's row changed: $row3 -> $(row dev-3)"
stored_seq=$(sql -c "SELECT last_report_seq FROM devices WHERE device_id = 'dev-3'")
! grep -q "report dev-3 seq $((stored_seq + 1)):" "$T/server.log" || fail "a report of dev-3 after the revocation reached ota-server"

log "dev-2's MQTT session and the server's survived: a Notify reaches dev-2"
kill -0 "$sub2" 2>/dev/null || fail "dev-2's subscriber died: $(cat "$T/dev2.msgs.err")"
! grep -q "Client dev-2 disconnected\|Client dev-2 already connected" "$T/mq/mosquitto.log" || fail "dev-2 was disconnected"
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-2', 'art-1')"
wait_for 10 test -s "$T/dev2.msgs" || fail "no Notify for dev-2 after the reloads"
[[ "$(grep -c "mqtt connected" "$T/server.log")|$(grep -c "mqtt connection lost" "$T/server.log" || true)" == "1|0" ]] ||
	fail "the server's MQTT session was dropped"
report dev-2 dev-2 9 idle 1.0.0 1 1 || fail "dev-2 publish after the reloads"
wait_for 10 sql_eq 9 "SELECT last_report_seq FROM devices WHERE device_id = 'dev-2'" || fail "dev-2's report"

log "config reload: live keys applied, the others named"
sed -i -e 's/^log_level = debug/log_level = info/' -e 's/^db_pool_size = 2/db_pool_size = 3/' \
	-e 's/^device_reload_sec = 0/device_reload_sec = 1/' "$T/server.conf"
kill -HUP "$SERVER_PID"
wait_for 10 grep -q "applied: device_reload_sec, log_level" "$T/server.log" ||
	fail "live keys: $(grep 'reload (SIGHUP): config' "$T/server.log" | tail -1)"
grep -q "changed but need a restart (running values kept): db_pool_size" "$T/server.log" ||
	fail "restart keys: $(grep 'need a restart' "$T/server.log")"
echo "log_level = nonsense" >>"$T/server.conf"
kill -HUP "$SERVER_PID"
wait_for 10 grep -q "reload (SIGHUP): config not applied: .*log_level = 'nonsense'" "$T/server.log" ||
	fail "a bad config: $(grep 'reload' "$T/server.log" | tail -2)"
sed -i '$d' "$T/server.conf"

log "device_reload_sec = 1 and mosquitto.sh watch: revoking dev-1 takes effect at both without a signal"
dev_curl dev-1 /v1/keylist
[[ $(status) == 200 ]] || fail "dev-1 before: $(status)"
mq_sub_bg dev-1 dev-1 "$T/dev1.msgs"
sub1=$MQ_SUB_PID
grep -q "Client dev-1 already connected" "$T/mq/mosquitto.log" && fail "dev-1 was taken over before"
wait_for 10 grep -q "as dev-1 (p5" "$T/mq/mosquitto.log" || fail "dev-1 did not connect to the broker"
"$TOP/scripts/mosquitto.sh" watch "$T/mq" 1 >"$T/watch.out" 2>&1 &
watch=$!
stop_watch() { stop_bg watch; }
at_cleanup stop_watch
wait_for 10 grep -q "^watching " "$T/watch.out" || fail "mosquitto.sh watch did not start: $(cat "$T/watch.out")"
reloads_before=$(grep -c "Reloading config" "$T/mq/mosquitto.log")
row1=$(row dev-1)
"$TOP/scripts/pki.sh" revoke "$PKI" dev-1
wait_for 10 grep -q "reload (files changed): device listener" "$T/server.log" || fail "no timed reload"
tls_try dev-1
grep -q "alert certificate revoked" "$T/tls.out" || fail "dev-1 after the timed reload: $(tail -c 600 "$T/tls.out")"
# the broker: one reload by the watch, which closes dev-1's live session
wait_for 90 grep -qx "kicked dev-1" "$T/watch.out" || fail "the watch did not reload and kick: $(cat "$T/watch.out")"
grep -q "Client dev-1 already connected, closing old connection" "$T/mq/mosquitto.log" ||
	fail "dev-1's MQTT session survived the watch's reload"
# its subscriber reconnects on its own: every attempt fails the handshake
kill "$sub1"
rc=0
report dev-1 dev-1 3 idle 1.0.0 1 1 2>/dev/null || rc=$?
((rc != 0)) || fail "dev-1 published after the revocation"
[[ "$(row dev-1)" == "$row1" ]] || fail "dev-1's row changed: $row1 -> $(row dev-1)"
sleep 3 # more periods: nothing changed, no second reload
[[ $(grep -c "Reloading config" "$T/mq/mosquitto.log") == $((reloads_before + 1)) ]] ||
	fail "broker reloads: $reloads_before -> $(grep -c "Reloading config" "$T/mq/mosquitto.log") (expected one)"
[[ $(grep -c "files changed: reload" "$T/watch.out") == 1 ]] || fail "watch, one reload expected: $(cat "$T/watch.out")"
stop_watch

[[ "$SERVER_PID" == "$server_pid" && $(grep -c "info: ota-server .*running$" "$T/server.log") == 1 ]] ||
	fail "ota-server was restarted"
check_server_exit
log "PASS"
