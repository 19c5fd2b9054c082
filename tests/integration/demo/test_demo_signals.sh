#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo's exits other than the happy path, with 10 devices and the short
# story (DEMO_STORY=scale):
#   1. stdout's reader goes away (`make demo | head`): SIGPIPE on the next
#      write; the cleanup still stops everything and removes the temp dir
#      with the private keys;
#   2. `make demo | tee log`, then Ctrl-C (SIGINT to the whole process
#      group, tee included): same outcome, and the private keys go before
#      the processes are stopped;
#   3. DEMO_STAY=1 leaves ota-server, PostgreSQL and mosquitto running and
#      prints the URL, a token and three curl lines; they work; Ctrl-C then
#      cleans up.
set -euo pipefail
: "${TOP:?}" "${DEMO_BUILD:?}"
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$TOP/tests/lsan.supp:print_suppressions=0}
W=$(mktemp -d /tmp/fleetota-demo-signals.XXXXXX)
GROUP=
cleanup() {
	[[ -z "$GROUP" ]] || kill -KILL -- "-$GROUP" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
log() { echo "[$(date +%T)] $*"; }
export DEMO_SKIP_BUILD=1 DEMO_DEVICES=10 DEMO_STORY=scale DEMO_POWER_LOSS=0 DEMO_SLOW=0 \
	DEMO_IMAGE_KB=20

# start_demo NAME PIPELINE: the demo in a process group of its own, its
# stdout into PIPELINE, as a terminal's foreground job is: SIGINT and
# SIGQUIT at their defaults. A background job of this non-interactive shell
# starts with both ignored, and a shell cannot trap a signal ignored at its
# start: the demo's Ctrl-C handling would never run (only ota-server, which
# sets its own handler, would see the Ctrl-C).
start_demo() {
	local name=$1 pipeline=$2
	setsid python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGQUIT, signal.SIG_DFL)
os.execvp("bash", ["bash", "-c", sys.argv[1]])' \
		"DEMO_LOGS='$W/$name-logs' bash '$TOP/scripts/demo.sh' 2>'$W/$name.err' | $pipeline" &
	GROUP=$!
}
# the demo's state dir, from its first lines (kept by the pipeline's reader)
state_dir() {
	sed -n 's/.*state in \(\/tmp\/fleetota-demo\.[A-Za-z0-9]*\)).*/\1/p' "$1" | head -1
}
wait_gone() { # NAME STATE-DIR: the group ended, the state dir and its processes are gone
	local name=$1 state=$2
	for _ in $(seq 1 600); do
		kill -0 -- "-$GROUP" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 -- "-$GROUP" 2>/dev/null && fail "$name: the demo did not end: $(cat "$W/$name.err")"
	GROUP=
	[[ -n "$state" ]] || fail "$name: no state dir in the output"
	[[ ! -e "$state" ]] || fail "$name: $state is still there: $(ls -R "$state" | head -20)"
	! pgrep -f "$state" >/dev/null || fail "$name: processes of the demo still run: $(pgrep -af "$state")"
}

log "1. the reader of stdout exits early (SIGPIPE)"
start_demo pipe "head -n 3 >'$W/pipe.out'"
for _ in $(seq 1 300); do
	[[ -n $(state_dir "$W/pipe.out") ]] && break
	sleep 0.1
done
wait_gone pipe "$(state_dir "$W/pipe.out")"
log "   cleaned up: $(grep -c . "$W/pipe.err" || true) lines on stderr"

log "2. | tee, then Ctrl-C once the stack is up"
start_demo tee "tee '$W/tee.out'"
for _ in $(seq 1 600); do
	grep -q "ota-server: devices" "$W/tee.out" 2>/dev/null && break
	sleep 0.1
done
grep -q "ota-server: devices" "$W/tee.out" || fail "tee: the stack did not come up: $(cat "$W/tee.err")"
state=$(state_dir "$W/tee.out")
[[ -d "$state/keys" ]] || fail "tee: no key material in $state to protect (test premise)"
# the key material goes first: ota-server is frozen (SIGSTOP), so the
# cleanup's stop of it waits 10 s before SIGKILL; the keys must be gone
# while it is still there, frozen
server=$(pgrep -f -- "ota-server --config $state/server.conf" | head -1)
[[ -n "$server" ]] || fail "tee: no ota-server of $state (test premise)"
kill -STOP "$server"
kill -INT -- "-$GROUP"
for _ in $(seq 1 600); do
	[[ -e "$state/keys" || -e "$state/pki" ]] || break
	sleep 0.1
done
[[ ! -e "$state/keys" && ! -e "$state/pki" ]] || fail "tee: key material still there 60 s after Ctrl-C"
[[ $(ps -o stat= -p "$server") == T* ]] ||
	fail "tee: the key material was removed only after ota-server was stopped"
log "   the key material was gone while ota-server was still running"
kill -CONT "$server" 2>/dev/null || true
wait_gone tee "$state"
grep -q "interrupted, cleaning up" "$W/tee.err" "$W/tee.out" 2>/dev/null ||
	log "   (the interrupt notice went to the closed pipe)"

log "3. DEMO_STAY=1: the stack stays up; the printed curl lines work; Ctrl-C cleans up"
DEMO_STAY=1 start_demo stay "cat >'$W/stay.out'"
for _ in $(seq 1 1800); do
	grep -q "curl .*metrics" "$W/stay.out" 2>/dev/null && break
	kill -0 -- "-$GROUP" 2>/dev/null || fail "stay: the demo ended: $(tail -20 "$W/stay.out") $(cat "$W/stay.err")"
	sleep 0.1
done
state=$(state_dir "$W/stay.out")
grep -E "^   REST API +http://127\.0\.0\.1:[0-9]+" "$W/stay.out" >/dev/null || fail "stay: no URL"
grep -E "^   token +fota_" "$W/stay.out" >/dev/null || fail "stay: no token"
console=$(sed -nE 's|^   console +(http://127\.0\.0\.1:[0-9]+/console/) .*|\1|p' "$W/stay.out")
[[ -n "$console" ]] || fail "stay: no console URL"
curl -sS -D - -o /dev/null "$console" | tr -d '\r' | grep -q "^Content-Security-Policy: default-src 'none'" ||
	fail "stay: the console at $console does not answer with its CSP"
log "   ok: the console answers at $console"
mapfile -t tries < <(sed -n 's/^     *\(curl .*\)$/\1/p' "$W/stay.out")
((${#tries[@]} == 3)) || fail "stay: ${#tries[@]} curl lines: $(cat "$W/stay.out")"
for t in "${tries[@]}"; do
	out=$(bash -o pipefail -c "$t") || fail "stay: '$t' failed"
	[[ -n "$out" ]] || fail "stay: '$t' printed nothing"
	log "   ok: ${t:0:70}..."
done
sleep 1
kill -0 -- "-$GROUP" 2>/dev/null || fail "stay: the demo did not stay"
kill -INT -- "-$GROUP"
wait_gone stay "$state"
echo "PASS"
