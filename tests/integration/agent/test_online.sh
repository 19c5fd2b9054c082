#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent's online path (`ota-agent fetch`) against a local mutual-TLS
# server that misbehaves on purpose: pinning, a foreign CA, stalls, endless
# data, a tampered image, a cut download resumed with Range (also over
# chunked encoding and a server that ignores Range), 429 + Retry-After, and
# a manifest whose key only a newer KeyList trusts.
# usage: test_online.sh OTA_AGENT MKFIXTURES HTTPS_TESTSERVER PKI_SCRIPT
set -euo pipefail

AGENT=$1
MKFIX=$2
SERVER=$3
PKI_SH=$4
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ota-agent-online.XXXXXX")
SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	[ -f "$WORK/server.log" ] && sed 's/^/server: /' "$WORK/server.log" >&2
	exit 1
}

bash "$PKI_SH" "$WORK/pki" dev-online-1 >/dev/null
PKI=$WORK/pki
PIN=$(cat "$PKI/server.pin")
mkdir -p "$WORK/fix"
"$MKFIX" "$WORK/fix"
FIX=$WORK/fix

start_server() { # MODE
	stop_server
	rm -f "$WORK/port"
	"$SERVER" "$WORK/port" "$PKI/server.crt" "$PKI/server.key" "$PKI/device-ca.crt" \
		"$FIX/online" "$1" "$WORK/server.log" &
	SERVER_PID=$!
	for _ in $(seq 100); do
		[ -s "$WORK/port" ] && break
		sleep 0.05
	done
	[ -s "$WORK/port" ] || fail "test server did not start"
	PORT=$(cat "$WORK/port")
	write_config "$CA" "$USE_PIN" "$RETRIES"
}
stop_server() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
	fi
}

CONF=$WORK/agent.conf
write_config() { # CA PIN RETRIES
	CA=$1
	USE_PIN=$2
	RETRIES=$3
	cat >"$CONF" <<EOF
state_dir = $WORK/state
device_id = dev-online-1
model = fx-model
hw_revision = revA
slot_size = 1048576
checkpoint_bytes = 8192
server_url = https://127.0.0.1:$PORT
ca_file = $1
device_cert = $PKI/devices/dev-online-1.crt
device_key = $PKI/devices/dev-online-1.key
server_pins = 1111111111111111111111111111111111111111111111111111111111111111, $2
stall_timeout = 2
download_retries = $3
EOF
}

snapshot() {
	"$AGENT" status --json --config "$CONF" |
		jq -S '{active_slot, installed, version_code, security_counter, keylist_version,
		        rootlist_version}'
}

expect_rejected() { # ARTIFACT ERROR
	local before after line rc
	before=$(snapshot)
	set +e
	line=$(timeout 60 "$AGENT" fetch "$1" --config "$CONF" 2>"$WORK/agent.err")
	rc=$?
	set -e
	[ "$rc" -eq 1 ] || fail "fetch $1: exit $rc, '$line' $(cat "$WORK/agent.err")"
	case "$line" in
	"rejected: $2: "*) ;;
	*) fail "fetch $1: expected $2, got '$line'" ;;
	esac
	after=$(snapshot)
	[ "$before" = "$after" ] || fail "fetch $1 changed the status: $before -> $after"
}

PORT=1
write_config "$PKI/server-ca.crt" "$PIN" 0
"$AGENT" provision --config "$CONF" --rootlist "$FIX/root1.env" --keylist "$FIX/kl1.env" \
	--image "$FIX/v1.otab" >/dev/null

start_server normal
write_config "$PKI/server-ca.crt" 2222222222222222222222222222222222222222222222222222222222222222 0
expect_rejected art-2 OTA_ERR_PIN
write_config "$PKI/device-ca.crt" "$PIN" 0 # a CA that did not issue the server's certificate
expect_rejected art-2 OTA_ERR_TRANSPORT
write_config "$PKI/server-ca.crt" "$PIN" 0
expect_rejected art-bad OTA_ERR_HASH
expect_rejected no-such-artifact OTA_ERR_TRANSPORT

start_server stall
start=$(date +%s)
expect_rejected art-2 OTA_ERR_TIMEOUT
[ $(($(date +%s) - start)) -lt 20 ] || fail "stall not cut short"

start_server endless
expect_rejected art-2 OTA_ERR_SIZE
echo "refusals: pin, foreign CA, tampered image, 404, stall, endless data"

# a download cut halfway resumes from the hashed prefix (chunked encoding)
start_server cut,chunked
write_config "$PKI/server-ca.crt" "$PIN" 3
: >"$WORK/server.log"
"$AGENT" fetch art-2 --config "$CONF" >"$WORK/out" 2>"$WORK/agent.err" ||
	fail "resumed fetch: $(cat "$WORK/out" "$WORK/agent.err")"
grep -q "confirmed: 2.0.0" "$WORK/out" || fail "not confirmed: $(cat "$WORK/out")"
grep -Eq "GET /v1/images/art-2 range=[1-9][0-9]*" "$WORK/server.log" ||
	fail "no Range request after the cut"
s=$(snapshot)
[ "$(jq -r .version_code <<<"$s")" = 20 ] || fail "v2 not installed: $s"
[ "$(jq -r .security_counter <<<"$s")" = 7 ] || fail "counter: $s"

# 429 + Retry-After, then a cut, then a server that ignores Range; and a
# manifest signed by a key that only the server's newer KeyList trusts
cp "$FIX/online/keylist3" "$FIX/online/keylist"
start_server busy,cut,ignore-range
: >"$WORK/server.log"
"$AGENT" fetch art-3 --config "$CONF" >"$WORK/out" 2>"$WORK/agent.err" ||
	fail "fetch art-3: $(cat "$WORK/out" "$WORK/agent.err")"
grep -q "GET /v1/keylist" "$WORK/server.log" || fail "KeyList not fetched"
[ "$(grep -c "GET /v1/images/art-3" "$WORK/server.log")" -ge 3 ] || fail "no retries"
s=$(snapshot)
[ "$(jq -r .version_code <<<"$s")" = 30 ] || fail "v3 not installed: $s"
[ "$(jq -r .keylist_version <<<"$s")" = 3 ] || fail "keylist 3 not stored: $s"
[ "$(jq -r .security_counter <<<"$s")" = 8 ] || fail "counter: $s"
echo "online: resume (chunked, ignored Range), 429 back-off, KeyList refresh"
echo "ota-agent online: all checks passed"
