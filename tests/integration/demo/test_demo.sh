#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo's story with 50 devices, asserted (DEMO_CHECK=1 makes every told
# outcome a failure when it does not happen: the bad canary pauses its
# campaign with OTA_ERR_SELFTEST and nobody beyond the canaries is admitted;
# 1.1.1, the KeyList v2 campaign and 1.2.0 signed by the new key complete on
# every device; the rollback to 1.0.0 is refused by every device). Then:
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
state=$(sed -n 's/.*state in \(\/tmp\/fleetota-demo\.[A-Za-z0-9]*\)).*/\1/p' "$LOGS/out.txt")
[[ -n "$state" && ! -e "$state" ]] || fail "the demo's temp dir $state is still there"
if grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$LOGS"/*.log; then
	fail "sanitizer report (above)"
fi
if pgrep -f "$state" >/dev/null; then
	fail "processes of the demo still run: $(pgrep -af "$state")"
fi
# the simulator's own account agrees with the API's
jq -e '.artifacts["fw-1.0.0"].rejected.OTA_ERR_ROLLBACK == 50 and .versions["1.2.0"] == 50
	and .artifacts["fw-1.1.0"].reverted >= 1 and .artifacts["fw-1.1.0"].confirmed == 0' \
	"$LOGS/sim-summary.json" >/dev/null || fail "simulator summary: $(cat "$LOGS/sim-summary.json")"
echo "PASS"
