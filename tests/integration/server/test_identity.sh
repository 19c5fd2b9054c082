#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# MQTT identity is the certificate (issue 12, finding 1): a device that asks
# for the server's client id, or another device's, is given its own (the
# certificate CN) by the broker. The server is never knocked off (one
# connect, no loss in its log), the other device keeps its session, and a
# report a third device publishes during the attack is stored. The server
# refuses to start with a client id that is not its certificate's CN, or
# with a certificate whose CN could be a device id; pki.sh refuses to issue
# a device certificate with a server identity.
source "$(dirname "$0")/lib.sh"
standard_setup

server_id=$(openssl x509 -in "$PKI/servers/1.crt" -noout -subject -nameopt RFC2253 | sed 's/.*CN=\([^,]*\).*/\1/')
[[ $server_id == ota-server:1 ]] || fail "server identity: $server_id"
grep -q "mqtt client id ota-server:1 (the CN of" "$T/server.log" || fail "server client id not logged"

log "dev-1 holds a live session (subscribed to its cmd topic)"
mq_sub_bg dev-1 dev-1 "$T/dev1.msgs"
dev1_sub=$MQ_SUB_PID
wait_for 10 grep -q "as dev-1 (p5" "$T/mq/mosquitto.log" || fail "dev-1 did not connect"

row_before=$(sql -c "SELECT last_report_seq FROM devices WHERE device_id = 'dev-3'")
# everything but dev-3's rows (its report below is stored) and the audit trail
others() {
	sql -c "SELECT md5(string_agg(t, '|')) FROM (
		SELECT (SELECT md5(coalesce(string_agg(d::text, ',' ORDER BY device_id), '')) FROM devices d
			WHERE device_id <> 'dev-3') AS t
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(e::text, ',' ORDER BY id), '')) FROM device_events e
			WHERE device_id <> 'dev-3')
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(a::text, ',' ORDER BY device_id, artifact_id), ''))
			FROM assignments a)
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(u::text, ',' ORDER BY id), '')) FROM audit u)) s"
}
others_before=$(others)
log "dev-2 connects 10 times as 'ota-server:1' and 10 times as 'dev-1'; dev-3 reports meanwhile"
attack() {
	local id
	for _ in $(seq 1 10); do
		for id in ota-server:1 dev-1; do
			timeout 5 mosquitto_sub -V 5 -h 127.0.0.1 -p "$MQ_PORT" --cafile "$PKI/server-ca.crt" \
				--cert "$PKI/devices/dev-2.crt" --key "$PKI/devices/dev-2.key" -i "$id" \
				-t "fleetota/v1/dev-2/cmd" -E >/dev/null 2>&1 || echo "attack connect $id failed" >>"$T/attack.err"
		done
	done
}
attack &
attack_pid=$!
sleep 0.3
report dev-3 dev-3 7 idle 1.0.0 1 1 || fail "dev-3 could not publish"
wait "$attack_pid"
[[ ! -s "$T/attack.err" ]] || fail "$(cat "$T/attack.err")"

log "dev-3's report is stored"
wait_for 10 sql_eq 7 "SELECT last_report_seq FROM devices WHERE device_id = 'dev-3'" ||
	fail "dev-3's report was not stored (seq before $row_before, now $(sql -c "SELECT last_report_seq FROM devices WHERE device_id = 'dev-3'"))"

[[ $(others) == "$others_before" ]] || fail "the attack changed the database beyond dev-3's report"

log "the broker gave dev-2 its own id every time; nobody was taken over"
n_as_dev2=$(grep -c "as dev-2 (p5, c1, k60, u'dev-2')" "$T/mq/mosquitto.log" || true)
((n_as_dev2 == 20)) || fail "dev-2 connections under its own id: $n_as_dev2 (expected 20)"
if grep -E "as (ota-server:1|dev-1) \(p5, c1, k60, u'dev-2'\)|Client (ota-server:1|dev-1) already connected" \
	"$T/mq/mosquitto.log"; then
	fail "a client id was taken over"
fi
n_connected=$(grep -c "mqtt connected" "$T/server.log" || true)
n_lost=$(grep -c "mqtt connection lost" "$T/server.log" || true)
[[ "$n_connected|$n_lost" == "1|0" ]] || fail "server MQTT connects|losses: $n_connected|$n_lost (expected 1|0)"
kill -0 "$dev1_sub" 2>/dev/null || fail "dev-1's session was closed: $(cat "$T/dev1.msgs.err")"

log "dev-1's session still gets its notifications"
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-1', 'art-1')"
wait_for 10 test -s "$T/dev1.msgs" || fail "dev-1 got no Notify after the attack"

log "the server refuses a client id that is not its certificate's CN"
PORT2=$(free_port)
second_server_config "$PORT2" "$T/bad.conf"
echo "mqtt_client_id = ota-server-1" >>"$T/bad.conf"
rc=0
timeout 30 "$OTA_SERVER" --config "$T/bad.conf" >"$T/bad.log" 2>&1 || rc=$?
[[ $rc == 1 ]] || fail "ota-server with a wrong mqtt_client_id exited $rc"
grep -q "mqtt_client_id 'ota-server-1' is not the CN 'ota-server:2' of mqtt_cert" "$T/bad.log" ||
	fail "no clear error: $(tail -3 "$T/bad.log")"

log "the server refuses a certificate whose CN could be a device id"
second_server_config "$PORT2" "$T/bad.conf"
sed -i -e "s|^mqtt_cert = .*|mqtt_cert = $PKI/devices/dev-1.crt|" \
	-e "s|^mqtt_key = .*|mqtt_key = $PKI/devices/dev-1.key|" "$T/bad.conf"
rc=0
timeout 30 "$OTA_SERVER" --config "$T/bad.conf" >"$T/bad.log" 2>&1 || rc=$?
[[ $rc == 1 ]] || fail "ota-server with a device certificate exited $rc"
grep -q "CN 'dev-1' is a valid device id" "$T/bad.log" || fail "no clear error: $(tail -3 "$T/bad.log")"

log "no device certificate can carry a server identity"
rc=0
"$TOP/scripts/pki.sh" "$PKI" "ota-server:1" 2>"$T/pki.err" || rc=$?
[[ $rc == 2 ]] && grep -q "invalid device id 'ota-server:1'" "$T/pki.err" || fail "pki.sh issued it ($rc)"
[[ ! -e "$PKI/devices/ota-server:1.crt" ]] || fail "a device certificate for ota-server:1 exists"

n_connected=$(grep -c "mqtt connected" "$T/server.log" || true)
[[ $n_connected == 1 ]] || fail "server MQTT connects at the end: $n_connected"
check_server_exit
log "PASS"
