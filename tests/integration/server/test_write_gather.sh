#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# TLS records gathered into one write (server/src/core/wbio.c, issue 19):
# ranged downloads cut at record and gather boundaries come out byte-exact
# on one keep-alive connection; a reply that ends with the connection
# ("Connection: close", HTTP/1.0) to a slow reader (a full socket: the
# records wait in the BIO when evhttp thinks the reply sent) arrives
# whole; a handshake and small replies are not held back (each answer on a
# quiet connection, also right after a download on it, comes in well under
# a second; a record left waiting would take the write timeout). All of it
# again with a socket that is full at every other write (an LD_PRELOAD
# shim, srv_eagain_shim.c): a handshake flight flushed into a full socket
# once failed the connection.
RATE_PER_SEC=1000
RATE_BURST=1000
SERVER_CONF_EXTRA="device_write_gather=true" # off by default; this test is about it
source "$(dirname "$0")/lib.sh"
standard_setup
grep -q "TLS records gathered per write" "$T/server.log" || fail "device_write_gather is not on"
BIG=16000000
mkdir -p "$T/fx-big"
"$SRV_TESTTOOL" fixtures "$T/fx-big" big:2.0.0:5:$BIG >/dev/null
cp "$T/fx-big/store/"* "$STORE/"
sql -f "$T/fx-big/big.sql"
sql -c "INSERT INTO assignments (device_id, artifact_id, notified_at) VALUES
	('dev-1', 'art-1', now()), ('dev-1', 'big', now())"
URL=https://127.0.0.1:$DEV_PORT
CURL_DEV=(--cacert "$PKI/server-ca.crt" --cert "$PKI/devices/dev-1.crt" --key "$PKI/devices/dev-1.key")

# expect FILE FIRST LAST: FILE holds bytes FIRST..LAST of the big image
expect() {
	cmp -s "$1" <(tail -c +$(($2 + 1)) "$T/fx-big/big.image" | head -c $(($3 - $2 + 1))) ||
		fail "bytes $2-$3 differ ($(stat -c %s "$1") bytes)"
}

checks() {
	log "ranges at record (16 KiB) and gather (64 KiB) boundaries, one keep-alive connection"
	# FIRST-LAST pairs: single bytes at both ends, a record less one, a record
	# and one, across a gather, an odd offset to a chunk's end and past it,
	# the last byte
	ranges=(0-0 1-16383 16383-32768 65529-131085 1048577-4194309 4194303-4194304
		1048575-1048576 3-65538 $((BIG - 1))-$((BIG - 1)) 0-$((BIG - 1)))
	args=()
	for i in "${!ranges[@]}"; do
		((i == 0)) || args+=(--next)
		args+=("${CURL_DEV[@]}" -sS -r "${ranges[i]}" -o "$T/r$i" -w '%{http_code} %{num_connects}\n'
			"$URL/v1/images/big")
	done
	curl "${args[@]}" >"$T/ranges.out" || fail "ranged downloads: curl $?"
	cat "$T/ranges.out"
	[[ $(grep -c '^206 ' "$T/ranges.out") == "${#ranges[@]}" ]] || fail "not all 206"
	[[ $(awk '{ s += $2 } END { print s }' "$T/ranges.out") == 1 ]] || fail "more than one connection"
	for i in "${!ranges[@]}"; do
		expect "$T/r$i" "${ranges[i]%-*}" "${ranges[i]#*-}"
	done

	log "a reply the connection ends with, read slowly (Connection: close; HTTP/1.0)"
	curl "${CURL_DEV[@]}" -sS -H "Connection: close" --limit-rate 6M -r 1048577- -o "$T/close.body" \
		-w '%{http_code}' "$URL/v1/images/big" >"$T/close.status" || fail "Connection: close: curl $?"
	[[ $(cat "$T/close.status") == 206 ]] || fail "Connection: close: $(cat "$T/close.status")"
	expect "$T/close.body" 1048577 $((BIG - 1))
	curl "${CURL_DEV[@]}" -sS -0 --limit-rate 6M -o "$T/http10.body" -w '%{http_code}' \
		"$URL/v1/images/big" >"$T/http10.status" || fail "HTTP/1.0: curl $?"
	[[ $(cat "$T/http10.status") == 200 ]] || fail "HTTP/1.0: $(cat "$T/http10.status")"
	cmp -s "$T/http10.body" "$T/fx-big/big.image" || fail "HTTP/1.0 image differs"

	log "a handshake and small replies leave at once, also after a download on the connection"
	args=()
	for i in $(seq 0 11); do
		((i == 0)) || args+=(--next)
		if ((i == 6)); then
			args+=("${CURL_DEV[@]}" -sS -o /dev/null -w 'image %{http_code} %{time_total}\n' "$URL/v1/images/art-1")
			continue
		fi
		# time_total of a reused connection is the request alone
		args+=("${CURL_DEV[@]}" -sS -o "$T/m$i" -w 'manifest %{http_code} %{time_appconnect} %{time_total}\n'
			"$URL/v1/manifests/art-1")
	done
	curl "${args[@]}" >"$T/latency.out" || fail "manifests: curl $?"
	cat "$T/latency.out"
	[[ $(grep -c '^manifest 200 ' "$T/latency.out") == 11 ]] || fail "not all manifests 200"
	awk '$1 == "manifest" && NR == 1 && $3 > 1.0 { exit 1 }' "$T/latency.out" || fail "handshake took over 1 s"
	awk '$1 == "manifest" && $4 > 1.0 { exit 1 }' "$T/latency.out" || fail "a manifest took over 1 s"
	for i in 1 7 11; do cmp -s "$T/m0" "$T/m$i" || fail "manifest $i differs"; done
}

checks
log "again with a socket that is always full: every other write EAGAIN, a writev short (LD_PRELOAD)"
stop_server
[[ $SERVER_STATUS == 0 ]] || fail "ota-server exited with $SERVER_STATUS"
STACK_SERVER_ENV=("LD_PRELOAD=$SRV_EAGAIN_SHIM" "SHIM_EAGAIN_PORT=$DEV_PORT"
	"ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}verify_asan_link_order=0")
start_server
checks
check_server_exit
log "PASS"
