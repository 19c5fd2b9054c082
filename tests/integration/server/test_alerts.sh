#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A refused client certificate is told why: the device listener sends the
# TLS alert and closes gracefully (the alert, its FIN, what the client
# still sends read and dropped), so the client reads the alert's name
# instead of a TCP reset. Each case runs TRIES connections made as
# ota-agent makes them (the request right after the handshake: under TLS
# 1.3 it reaches the server before the server refuses the certificate,
# and a close with it unread sent a reset): every one must read the alert.
# A request in two writes (GAP_MS apart, a head and then a body) is what a
# reset broke: the second write failed ("EOF occurred in violation of
# protocol", "connection reset") and the client never read the alert.
# Revoked (44 certificate_revoked), another CA (48 unknown_ca), no
# certificate (TLS 1.3: 116 certificate_required; TLS 1.2: 40
# handshake_failure), under TLS 1.3 and 1.2; ota-agent names the alert
# (OTA_ERR_TRANSPORT with "TLS alert certificate revoked (44)", not
# "status 0").
source "$(dirname "$0")/lib.sh"
TRIES=${ALERT_TRIES:-20}
SERVER_CONF_EXTRA="device_crl = $PKI/device-ca.crl"
standard_setup
"$TOP/scripts/pki.sh" "$T/other" dev-1 >/dev/null
"$TOP/scripts/pki.sh" revoke "$PKI" dev-3
kill -HUP "$SERVER_PID"
wait_for 10 grep -q "reload (SIGHUP): device listener CA, CRL, certificate and key reloaded" "$T/server.log" ||
	fail "ota-server did not reload"

# expect NAME VERSION GAP_MS EXPECTED [CERT KEY]: every one of TRIES connections reads EXPECTED
expect() {
	local name=$1 version=$2 gap=$3 want=$4 got
	shift 4
	got=$(python3 "$TOP/tests/integration/server/tls_refusal.py" 127.0.0.1 "$DEV_PORT" \
		"$PKI/server-ca.crt" "$version" "$TRIES" "$gap" "$@" | sort | uniq -c | sed 's/^ *//' | tr '\n' ',')
	log "$name, TLS $version, request in two writes $gap ms apart: $got"
	[[ "$got" == "$TRIES $want," ]] || fail "$name, TLS $version, gap $gap ms: expected $TRIES x $want, got $got"
}

for v in 1.3 1.2; do
	for gap in 0 50; do
		expect "dev-2 (valid)" $v $gap "HTTP 200" "$PKI/devices/dev-2.crt" "$PKI/devices/dev-2.key"
		expect "dev-3 (revoked)" $v $gap SSLV3_ALERT_CERTIFICATE_REVOKED \
			"$PKI/devices/dev-3.crt" "$PKI/devices/dev-3.key"
		expect "another CA" $v $gap TLSV1_ALERT_UNKNOWN_CA "$T/other/devices/dev-1.crt" "$T/other/devices/dev-1.key"
	done
	expect "no certificate" $v 50 "$([[ $v == 1.3 ]] && echo TLSV13_ALERT_CERTIFICATE_REQUIRED ||
		echo SSLV3_ALERT_HANDSHAKE_FAILURE)"
done
log "ota-agent names the alert"
# agent_fetch DEVICE CERT_DIR: ota-agent fetch art-1 as DEVICE with the certificate in CERT_DIR
agent_fetch() {
	mkdir -p "$T/agent-$1"
	agent_config "$T/agent-$1.conf" "$1" "$T/agent-$1" 1048576
	sed -i "s|$PKI/devices/|$2/|" "$T/agent-$1.conf"
	agent_provision "$T/agent-$1.conf"
	"$OTA_AGENT" fetch art-1 --config "$T/agent-$1.conf" >"$T/agent-$1.out" 2>&1 || true
}
agent_fetch dev-3 "$PKI/devices"
grep -q "^ota-agent: warn: OTA_ERR_TRANSPORT: GET /v1/manifests/art-1: TLS alert certificate revoked (44)$" \
	"$T/agent-dev-3.out" || fail "ota-agent, revoked: $(cat "$T/agent-dev-3.out")"
agent_fetch dev-1 "$T/other/devices"
grep -q "^ota-agent: warn: OTA_ERR_TRANSPORT: GET /v1/manifests/art-1: TLS alert unknown CA (48)$" \
	"$T/agent-dev-1.out" || fail "ota-agent, another CA: $(cat "$T/agent-dev-1.out")"

# refused: the client closed first; counted again below
n_client_closed=$(grep -c "refused connection: socket [0-9]* closed after [0-9]* bytes read: client closed" "$T/server.log" || true)
((n_client_closed > 0)) || fail "no refused socket was closed by its client"

log "bounds: one refused connection sends 1 MiB, then 9 more of the same peer are held open"
n_graceful=$(grep -c "handshake refused (alert certificate revoked): closing gracefully" "$T/server.log")
n_closed=$(grep -c "handshake refused (alert certificate revoked): closed$" "$T/server.log" || true)
python3 - "$DEV_PORT" "$PKI" <<'PY'
import os, socket, ssl, sys, time
port, pki = int(sys.argv[1]), sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(pki + "/server-ca.crt")
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(pki + "/devices/dev-3.crt", pki + "/devices/dev-3.key")
def refused():
    t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1")
    t.sendall(b"GET /v1/keylist HTTP/1.1\r\n")
    return t
# the first one's raw socket sends 1 MiB behind the handshake: the server
# reads and drops 64 KiB of it, then closes (a reset: this send fails)
first = refused()
time.sleep(0.3)
raw = socket.socket(fileno=os.dup(first.fileno()))
raw.settimeout(10)
try:
    raw.sendall(b"x" * (1 << 20))
except OSError:
    pass
time.sleep(0.3)
# 9 more held open: 8 linger (the per-peer bound), the 9th closes at once
held = [refused() for _ in range(9)]
time.sleep(4)  # past the deadline, still open
PY
got=$(($(grep -c "handshake refused (alert certificate revoked): closing gracefully" "$T/server.log") - n_graceful))
[[ $got == 9 ]] || fail "graceful closes: $got, expected 9 (8 of them at once)"
got=$(($(grep -c "handshake refused (alert certificate revoked): closed$" "$T/server.log" || true) - n_closed))
[[ $got == 1 ]] || fail "refusals closed at once past the per-peer bound: $got, expected 1"
got=$(grep -c "refused connection: socket [0-9]* closed after [0-9]* bytes read: byte bound" "$T/server.log" || true)
[[ $got == 1 ]] || fail "closes at the byte bound: $got"
got=$(grep -c "refused connection: socket [0-9]* closed after [0-9]* bytes read: deadline" "$T/server.log" || true)
[[ $got == 8 ]] || fail "closes at the deadline: $got"

check_server_exit
log "PASS"
