#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The manifest cache (device/assign_cache-internal.h, docs/scaling.md) on
# two replicas of one database: a manifest asked again is answered without
# PostgreSQL; an assignment withdrawn on one replica stops delivery on the
# other within the documented bound (manifest_cache_stale_ms, 1000 ms by
# default): every request sent later than that after the withdrawal
# committed is refused, and the time the other replica actually took is
# printed. Withdrawals: a device decommissioned through replica 1's REST
# API, an assignment deleted in SQL. A refusal (not assigned) is never
# cached: it still records its security event.
# the withdrawal checks poll a device's manifest for over a second as fast
# as curl goes (60+ a second on a quiet machine): above the default
# per-device budget (20/s, burst 40), which is not what this test is about
RATE_PER_SEC=1000
RATE_BURST=1000
source "$(dirname "$0")/lib.sh"
STALE_MS=1000
SERVER2_PID=
stop_server2() {
	[[ -n "$SERVER2_PID" ]] || return 0
	kill -TERM "$SERVER2_PID" 2>/dev/null || true
	wait "$SERVER2_PID" 2>/dev/null || true
	SERVER2_PID=
}
at_cleanup stop_server2
API_PORT=$(free_port)
standard_setup

DEV_PORT2=$(free_port)
API_PORT2=$(free_port)
second_server_config "$DEV_PORT2" "$T/server2.conf"
sed -i "s/^admin_listen = .*/admin_listen = 127.0.0.1:$API_PORT2/" "$T/server2.conf"
"$OTA_SERVER" --config "$T/server2.conf" >>"$T/server2.log" 2>&1 &
SERVER2_PID=$!
wait_for 30 grep -q "db connection 0 up" "$T/server2.log" || fail "server 2 did not come up"
TOKEN=$("$OTA_SERVER" token create --role admin --name cache-test --config "$T/server.conf" 2>/dev/null)
[[ -n "$TOKEN" ]] || fail "no token"
# metric2 NAME: its value on server 2
metric2() {
	curl -sS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$API_PORT2/metrics" |
		awk -v m="$1" '$1 == m { print $2 }'
}
# on2 DEVICE ARTIFACT: the manifest's status from server 2
on2() {
	DEV_PORT=$DEV_PORT2 dev_curl "$1" "/v1/manifests/$2"
	status
}
now_ms() { date +%s%3N; }

sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-1', 'art-1'), ('dev-2', 'art-1')"

log "a manifest asked again is answered from the cache"
[[ $(on2 dev-1 art-1) == 200 ]] || fail "dev-1 art-1: $(status)"
cp "$T/body" "$T/manifest.db"
hits0=$(metric2 fleetota_manifest_cache_hits_total)
misses0=$(metric2 fleetota_manifest_cache_misses_total)
for _ in 1 2 3 4 5; do
	[[ $(on2 dev-1 art-1) == 200 ]] || fail "dev-1 art-1 again: $(status)"
	cmp -s "$T/body" "$T/manifest.db" || fail "the cached manifest differs from the database's"
done
hits=$(metric2 fleetota_manifest_cache_hits_total)
misses=$(metric2 fleetota_manifest_cache_misses_total)
((hits - hits0 == 5 && misses == misses0)) ||
	fail "5 repeats: $((hits - hits0)) hits, $((misses - misses0)) misses"
echo "ok - 5 repeated manifests: 5 cache hits, no database query, the same bytes"

log "pipelined requests on one connection are answered in order"
# a reply from the cache is written at once, inside the request's own
# loop turn (docs/server.md, "Per-request system calls"); the requests
# behind it in the same TLS record must still be answered, each once
# (Python's ssl: one sendall, one record; openssl s_client got a single
# reply here from this server before and after that change alike)
replies=$(timeout 30 python3 - "$DEV_PORT2" "$PKI" "$T/manifest.db" <<'PY' || true
import socket, ssl, sys
port, pki, manifest = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "rb").read()
ctx = ssl.create_default_context(cafile=pki + "/server-ca.crt")
ctx.check_hostname = False
ctx.load_cert_chain(pki + "/devices/dev-1.crt", pki + "/devices/dev-1.key")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20))
req = b"GET /v1/manifests/art-1 HTTP/1.1\r\nHost: x\r\n"
s.sendall(req + b"\r\n" + req + b"\r\n" + req + b"Connection: close\r\n\r\n")  # one record
data = b""
while True:
    got = s.recv(65536)
    if not got:
        break
    data += got
print(data.count(b"HTTP/1.1 200 OK\r\n"), data.count(manifest))
PY
)
[[ $replies == "3 3" ]] || fail "3 pipelined requests: replies and manifests: '$replies', expected '3 3'"
echo "ok - 3 pipelined manifests in one TLS record: 3 replies of 200, each the manifest"

log "a refusal is not cached"
cross="SELECT count(*) FROM audit WHERE object = 'device:dev-3' AND action = 'security.cross_device'"
events0=$(sql -c "$cross")
for _ in 1 2; do
	[[ $(on2 dev-3 art-1) == 403 ]] || fail "dev-3 art-1 (not assigned): $(status)"
done
wait_for 10 sql_eq $((events0 + 2)) "$cross" || fail "each refusal records its security event: $(sql -c "$cross")"
echo "ok - not assigned: 403 twice, two security events (asked PostgreSQL each time)"

# withdraw WHAT DEVICE ARTIFACT COMMAND...: the manifest cached on server 2,
# then COMMAND withdraws it; polls server 2 until it refuses; every request
# sent more than STALE_MS after COMMAND returned must be refused
withdraw() {
	local what=$1 dev=$2 art=$3 t_done t_send st first_403=
	shift 3
	on2 "$dev" "$art" >/dev/null
	[[ $(on2 "$dev" "$art") == 200 ]] || fail "$what: $dev not served before: $(status)"
	"$@" || fail "$what: the withdrawal failed"
	t_done=$(now_ms)
	for _ in $(seq 1 100); do
		t_send=$(now_ms)
		st=$(on2 "$dev" "$art")
		if [[ $st == 403 ]]; then
			first_403=${first_403:-$((t_send - t_done))}
		elif [[ $st == 200 ]]; then
			((t_send - t_done <= STALE_MS)) ||
				fail "$what: served $((t_send - t_done)) ms after the withdrawal (bound $STALE_MS ms)"
			[[ -z "$first_403" ]] || fail "$what: served again after a refusal"
		else
			fail "$what: status $st"
		fi
		# refused, and polled on past the bound: nothing was served again
		[[ -n "$first_403" ]] && ((t_send - t_done > STALE_MS + 200)) && break
	done
	[[ -n "$first_403" ]] || fail "$what: server 2 never refused"
	echo "ok - $what: server 2 refuses $dev from ${first_403} ms after (bound $STALE_MS ms), and from then on"
}
decommission() {
	[[ $(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
		"http://127.0.0.1:$API_PORT/api/v1/devices/$1/decommission") == 200 ]]
}
withdraw "decommission through server 1's REST API" dev-2 art-1 decommission dev-2
withdraw "assignment deleted in SQL" dev-1 art-1 sql -c "DELETE FROM assignments WHERE device_id = 'dev-1'"

log "the cache answers nothing once its polls stop succeeding"
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-3', 'art-2')"
on2 dev-3 art-2 >/dev/null
[[ $(on2 dev-3 art-2) == 200 ]] || fail "dev-3 art-2: $(status)"
stop_pg
sleep "$(((STALE_MS + 999) / 1000)).2"
[[ $(on2 dev-3 art-2) == 503 ]] || fail "database down for longer than the bound: $(status), expected 503"
echo "ok - database away longer than $STALE_MS ms: 503 (no answer from a cache that cannot learn of withdrawals)"
start_pg
served2() { [[ $(on2 dev-3 art-2) == 200 ]]; }
wait_for 30 served2 || fail "after the database came back: $(status)"
echo "ok - the database back: served again"

stop_server2
check_server_exit
log "PASS"
