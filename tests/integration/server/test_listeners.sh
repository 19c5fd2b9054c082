#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The connection guard of both listeners (issue 12, finding 3), attacked
# the way the finding was reproduced:
#  - slowloris, one byte a second, on the device listener (TLS handshake
#    dribbled; request head dribbled after a full mTLS handshake) and on
#    the REST listener: closed by the absolute deadline in its exact time
#    window (evhttp's idle timeout is 30 s here and never fires), counted
#    in /metrics, while /healthz and a normal device are served;
#  - one peer opening more than its cap: its oldest idle connections are
#    closed, another peer is served;
#  - the total cap: the oldest idle connections are closed first for new
#    peers (/healthz among them);
#  - a server with `ulimit -n 160` under 300 slow connections from 16
#    addresses: caps fitted to the limit, /healthz and a device answer.
# Nothing the attack did reached the database (fingerprint unchanged).
source "$(dirname "$0")/lib.sh"
: "${SRV_SLOWCLIENT:?}"
API_PORT=$(free_port)
# the attack's settings in the first start (one start, not a start and a
# restart): later lines of the config win over lib.sh's
SERVER_CONF_EXTRA="http_timeout_sec = 30
http_handshake_timeout_sec = 2
http_header_timeout_sec = 3
http_request_timeout_sec = 6
device_max_conns = 40
device_max_conns_per_peer = 10
admin_max_conns = 16
admin_max_conns_per_peer = 6" standard_setup
sql -c "INSERT INTO assignments (device_id, artifact_id, notified_at) VALUES ('dev-1', 'art-1', now())"
TOKEN=$("$OTA_SERVER" token create --role viewer --name listeners --config "$T/server.conf")
API=http://127.0.0.1:$API_PORT
TLS_DEV1=(--tls "$PKI/server-ca.crt" "$PKI/devices/dev-1.crt" "$PKI/devices/dev-1.key")

fingerprint() {
	sql -c "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM (
		SELECT d::text AS t FROM devices d UNION ALL SELECT a::text FROM assignments a
		UNION ALL SELECT e::text FROM device_events e UNION ALL SELECT u::text FROM audit u) x"
}
# dev-1's first manifest records how it was delivered (assignments.delivery,
# docs/server.md "Delta updates"): done once before the fingerprint, so that
# the probes of a normal device below change nothing the attacks could hide in
dev_curl dev-1 /v1/manifests/art-1
[[ $(status) == 200 ]] || fail "dev-1's manifest: status $(status)"
FP=$(fingerprint)

# metric LISTENER REASON: fleetota_connections_closed_total{...}
metric() {
	curl -sS -H "Authorization: Bearer $TOKEN" "$API/metrics" |
		sed -n "s/^fleetota_connections_closed_total{listener=\"$1\",reason=\"$2\"} //p"
}
field() { sed -E "s/.*(^| )$1=([^ ]*).*/\2/" <<<"$2"; }
# in_window OUT MIN_MS MAX_MS: every connection lived MIN..MAX ms
in_window() {
	local lo hi
	lo=$(field life_min_ms "$1")
	hi=$(field life_max_ms "$1")
	((lo >= $2 && hi <= $3)) || fail "lifetimes ${lo}..${hi} ms, expected $2..$3 ms: $1"
}
probe_ok() { # NAME PORT PATH [OPTIONS]: 5 requests, all 2xx
	local out
	out=$("$SRV_SLOWCLIENT" probe --count 5 --interval-ms 100 --timeout-ms 3000 "${@:4}" 127.0.0.1 "$2" "$3")
	[[ $(field ok "$out") == 5 ]] || fail "$1 not served: $out"
	log "$1 served: $out"
}

# The three attacks run at once (each its own listener or reason, each
# connection's lifetime measured from its own accept): the test runs alone
# and waits out each deadline once, not three times in a row.
log "slowloris, 1 byte/s, at once: the device listener's request head (after the mTLS" \
	"handshake) and its TLS handshake, and the REST listener's request head"
"$SRV_SLOWCLIENT" slow "${TLS_DEV1[@]}" --mode head --path /v1/manifests/art-1 \
	--src 127.0.0.2 127.0.0.1 "$DEV_PORT" 3 >"$T/slow.out" &
SLOW=$!
"$SRV_SLOWCLIENT" slow --mode hs --src 127.0.0.2 127.0.0.1 "$DEV_PORT" 3 >"$T/slow-hs.out" &
SLOW_HS=$!
"$SRV_SLOWCLIENT" slow --mode head --path /healthz --src 127.0.0.2 127.0.0.1 "$API_PORT" 3 \
	>"$T/slow-rest.out" &
SLOW_REST=$!
sleep 1
probe_ok "a normal device (dev-1)" "$DEV_PORT" /v1/manifests/art-1 "${TLS_DEV1[@]}"
probe_ok "/healthz" "$API_PORT" /healthz
wait $SLOW
wait $SLOW_HS
wait $SLOW_REST

log "device listener, request head 1 byte/s after the mTLS handshake"
out=$(cat "$T/slow.out")
log "$out"
[[ $(field closed_by_server "$out") == 3 ]] || fail "slow heads not closed: $out"
in_window "$out" 2950 3900 # http_header_timeout_sec = 3, from accept
[[ $(metric device header_deadline) == 3 ]] || fail "header_deadline metric: $(metric device header_deadline)"

log "device listener, TLS handshake 1 byte/s"
out=$(cat "$T/slow-hs.out")
log "$out"
[[ $(field closed_by_server "$out") == 3 ]] || fail "slow handshakes not closed: $out"
in_window "$out" 1950 2900 # http_handshake_timeout_sec = 2
[[ $(metric device handshake_deadline) == 3 ]] || fail "handshake_deadline metric"

log "REST listener, request head 1 byte/s"
out=$(cat "$T/slow-rest.out")
log "$out"
[[ $(field closed_by_server "$out") == 3 ]] || fail "slow REST heads not closed: $out"
in_window "$out" 2950 3900
[[ $(metric admin header_deadline) == 3 ]] || fail "admin header_deadline metric"

[[ "$(fingerprint)" == "$FP" ]] || fail "the attack changed the database"
check_server_exit

# the caps, with the default deadlines (a loaded machine opens connections slowly)
printf '%s\n' "http_handshake_timeout_sec = 10" "http_header_timeout_sec = 20" \
	"http_request_timeout_sec = 30" >>"$T/server.conf"
: >"$T/server.log"
start_server
# The two listeners' caps at once (each its own listener, peers and
# metrics), as the slowloris attacks above.
log "one peer opens 13 device connections (cap 10): its 3 oldest are closed, another peer is" \
	"served; REST cap 16 (one slot reserved) at the same time: 14 connections from 3 addresses," \
	"then 4 from new ones"
"$SRV_SLOWCLIENT" slow "${TLS_DEV1[@]}" --mode head --path /v1/keylist --sequential \
	--ready "$T/ready" --hold 60 --src 127.0.0.3 127.0.0.1 "$DEV_PORT" 13 >"$T/slow.out" &
SLOW=$!
"$SRV_SLOWCLIENT" slow --mode head --path /healthz --sequential --ready "$T/ready-rest" --hold 60 \
	--src 127.0.0.11,127.0.0.12,127.0.0.13 127.0.0.1 "$API_PORT" 14 >"$T/slow-rest.out" &
SLOW_REST=$!
wait_for 40 test -e "$T/ready" -a -e "$T/ready-rest" || fail "slow connections not up"
probe_ok "dev-1 from another address" "$DEV_PORT" /v1/manifests/art-1 "${TLS_DEV1[@]}"
# the 15th and 16th fill the table (a new peer may take the reserved slot),
# the 17th and 18th close the two oldest idle ones
"$SRV_SLOWCLIENT" slow --mode head --path /healthz --sequential --ready "$T/ready-rest2" --hold 60 \
	--src 127.0.0.21,127.0.0.22,127.0.0.23,127.0.0.24 127.0.0.1 "$API_PORT" 4 >"$T/slow-rest2.out" &
SLOW_REST2=$!
wait_for 40 test -e "$T/ready-rest2" || fail "slow connections not up"
# /healthz closes the third oldest
probe_ok "/healthz with the table full" "$API_PORT" /healthz
kill -TERM $SLOW $SLOW_REST $SLOW_REST2
wait $SLOW $SLOW_REST $SLOW_REST2
out=$(cat "$T/slow.out")
log "device: $out"
[[ $(field closed_ids "$out") == 0,1,2 && $(field open_at_end "$out") == 10 ]] ||
	fail "per-peer cap: expected the 3 oldest closed and 10 left: $out"
[[ $(metric device evicted_idle) == 3 ]] || fail "evicted_idle metric: $(metric device evicted_idle)"
out=$(cat "$T/slow-rest.out")
log "REST: $out"
log "REST, new peers: $(cat "$T/slow-rest2.out")"
[[ $(field closed_ids "$out") == 0,1,2 && $(field open_at_end "$out") == 11 ]] ||
	fail "total cap: expected the 3 oldest closed and 11 left: $out"
[[ $(field open_at_end "$(cat "$T/slow-rest2.out")") == 4 ]] || fail "a newer connection was closed"
[[ $(metric admin evicted_idle) == 3 ]] || fail "admin evicted_idle metric: $(metric admin evicted_idle)"
[[ $(metric admin total_cap) == 0 && $(metric admin peer_cap) == 0 ]] || fail "a connection was refused"
[[ "$(fingerprint)" == "$FP" ]] || fail "the attack changed the database"
check_server_exit

log "ulimit -n 160: 200 slow device and 100 slow REST connections from 16 addresses"
: >"$T/server.log"
(
	ulimit -n 160
	exec "$OTA_SERVER" --config "$T/server.conf"
) >>"$T/server.log" 2>&1 &
SERVER_PID=$!
wait_for 20 grep -q "db connection 0 up" "$T/server.log" || fail "server under ulimit did not start"
grep -q "device listener: at most 36 connections fit the descriptor limit (160)" "$T/server.log" ||
	fail "device cap not fitted to the limit: $(grep 'fit the descriptor' "$T/server.log")"
SRC=$(seq -s, -f '127.0.1.%g' 1 16)
rm -f "$T/ready" "$T/ready2"
"$SRV_SLOWCLIENT" slow --mode hs --hold 60 --ready "$T/ready" --src "$SRC" 127.0.0.1 "$DEV_PORT" 200 \
	>"$T/slow-dev.out" &
SLOW=$!
"$SRV_SLOWCLIENT" slow --mode head --path /healthz --hold 60 --ready "$T/ready2" --src "$SRC" \
	127.0.0.1 "$API_PORT" 100 >"$T/slow-api.out" &
SLOW2=$!
wait_for 40 test -e "$T/ready" -a -e "$T/ready2" || fail "slow connections not up"
fds=$(ls "/proc/$SERVER_PID/fd" | wc -l)
probe_ok "/healthz under the limit" "$API_PORT" /healthz
probe_ok "dev-1 under the limit" "$DEV_PORT" /v1/manifests/art-1 "${TLS_DEV1[@]}"
kill -TERM $SLOW $SLOW2
wait $SLOW $SLOW2
out=$(cat "$T/slow-dev.out")
log "device attack: $out"
(($(field open_at_end "$out") <= 36)) || fail "more device connections than the fitted cap"
out=$(cat "$T/slow-api.out")
log "REST attack: $out"
(($(field open_at_end "$out") <= 12)) || fail "more REST connections than the fitted cap"
grep -q "accept: Too many open files" "$T/server.log" && fail "accept ran out of descriptors"
log "server descriptors during the attack: $fds of 160"
((fds < 160)) || fail "the server ran out of descriptors"
kill -0 "$SERVER_PID" || fail "the server died under the descriptor limit"
[[ "$(fingerprint)" == "$FP" ]] || fail "the attack changed the database"
check_server_exit
log "PASS"
