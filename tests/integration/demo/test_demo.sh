#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo's story with 50 devices, asserted (DEMO_CHECK=1 makes every told
# outcome a failure when it does not happen: the bad canary pauses its
# campaign with OTA_ERR_SELFTEST and nobody beyond the canaries is admitted;
# 1.1.1 (with a delta from 1.0.0), the KeyList v2 campaign and 1.2.0 signed
# by the new key complete on every device; the rollback to 1.0.0 is refused by every device), and the
# screen a new user reads (stage numbers, states, counts, tables). Then:
# no sanitizer report from the simulator or the server, nothing left
# running, the temp dir removed.
set -euo pipefail
: "${TOP:?}" "${DEMO_BUILD:?}"
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$TOP/tests/lsan.supp:print_suppressions=0}
LOGS=$(mktemp -d /tmp/fleetota-demo-test.XXXXXX)
trap 'rm -rf "$LOGS"' EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
rc=0
DEMO_SKIP_BUILD=1 DEMO_CHECK=1 DEMO_DEVICES=${DEMO_DEVICES:-50} DEMO_LOGS=$LOGS \
	bash "$TOP/scripts/demo.sh" >"$LOGS/out.txt" 2>&1 || rc=$?
cat "$LOGS/out.txt"
[[ $rc == 0 ]] || fail "demo exited with $rc"
grep -q "rollback refused by 50 of 50 devices" "$LOGS/out.txt" || fail "rollback line"
# the encrypted campaign (issue 16): fw-1.2.0 went out as ciphertext and
# every device decrypted it (versions["1.2.0"] == 50 below)
grep -q "fw-1.2.0 encrypted for the product line's key" "$LOGS/out.txt" || fail "encrypted campaign line"
# what a new user reads (issue 11): one stage base, a cancelled campaign
# shown as cancelled, the failed and reverted counts agree, the first
# progress line shows the real target, coverage as a table
out=$LOGS/out.txt
grep -q "stage 0" "$out" && fail "a stage is counted from 0: $(grep "stage 0" "$out")"
grep -qE "state: paused — stage 1: [0-9]+ of [0-9]+ devices failed \(OTA_ERR_SELFTEST" "$out" ||
	fail "pause reason: $(grep "state: paused" "$out")"
grep -qE "\| target 0 \|" "$out" && fail "a progress line shows target 0: $(grep -E "\| target 0 \|" "$out")"
grep -qE "^   rel-1\.1\.0 +cancelled +50 +0 +[1-9][0-9]* +[0-9]+$" "$out" ||
	fail "summary of rel-1.1.0: $(grep "^   rel-1.1.0 " "$out")"
completed=$(grep -cE "^   (rel-1\.1\.1|keylist-2|rel-1\.2\.0) +completed +50 +50 +[0-9]+ +[0-9]+$" "$out" || true)
((completed == 3)) || fail "summary: not every release completed on 50 devices: $(grep -A5 "ended as" "$out")"
failed=$(sed -nE 's/^   rel-1\.1\.0 +cancelled +50 +0 +([0-9]+) +[0-9]+$/\1/p' "$out")
grep -q "fw-1.1.0: $failed failed in the campaign = $failed reverted on the devices" "$out" ||
	fail "failed and reverted counts: $(grep "fw-1.1.0:" "$out")"
grep -qE "^     KeyList +devices +share +last seen$" "$out" || fail "no coverage table"
grep -qE "^     v2 +50 +100 % +[0-9]{4}-" "$out" || fail "coverage row: $(grep -A3 "KeyList  " "$out")"
# deltas (issue 15): fw-1.1.1 carries a delta from 1.0.0; the devices that
# can apply it download only that, the share without delta support takes the
# full image after refusing it
grep -qE "^   deltas \(fw-1\.1\.1 from 1\.0\.0\): [1-9][0-9]* devices got the delta, [0-9]+ the full image after refusing it, [0-9]+ the full image; [0-9.]+ MB of [0-9.]+ MB not downloaded \([1-9][0-9]* %\)$" "$out" ||
	fail "delta summary: $(grep "deltas (" "$out")"
grep -q '\[{' "$out" && fail "raw JSON on screen: $(grep '\[{' "$out")"
# the operator console's URL and a token to sign in with (docs/console.md)
grep -qE "^   console: http://127\.0\.0\.1:[0-9]+/console/ \(sign in with the token fota_[A-Za-z0-9_-]{43}\)$" "$out" ||
	fail "no console URL and token: $(grep -i console "$out")"
state=$(sed -n 's/.*state in \(\/tmp\/fleetota-demo\.[A-Za-z0-9]*\)).*/\1/p' "$LOGS/out.txt")
[[ -n "$state" && ! -e "$state" ]] || fail "the demo's temp dir $state is still there"
if grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$LOGS"/*.log; then
	fail "sanitizer report (above)"
fi
if pgrep -f "$state" >/dev/null; then
	fail "processes of the demo still run: $(pgrep -af "$state")"
fi
# the simulator's own account agrees with the API's
jq -e --argjson failed "$failed" '.artifacts["fw-1.0.0"].rejected.OTA_ERR_ROLLBACK == 50 and .versions["1.2.0"] == 50
	and .artifacts["fw-1.1.0"].reverted == $failed and .artifacts["fw-1.1.0"].confirmed == 0' \
	"$LOGS/sim-summary.json" >/dev/null || fail "simulator summary: $(cat "$LOGS/sim-summary.json")"
echo "PASS"
