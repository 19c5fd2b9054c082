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
# handshake_failure), under TLS 1.3 and 1.2; ota-agent names the alert.
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

check_server_exit
log "PASS"
