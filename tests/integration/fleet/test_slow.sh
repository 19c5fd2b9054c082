#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Slow devices do not block fast ones (issue 19): 12 devices, about half on
# a slow link (2,500 bytes/s: the 100,000-byte image takes about 40 s), two
# workers. Every fast device confirms within 25 s of its Notify and before
# any slow device is done; the slow ones still complete. With workers that
# a slow download holds, the two workers sit in slow downloads while the
# fast devices wait behind them.
source "$TOP/tests/integration/server/lib.sh"
: "${OTA_KEYS:?}" "${OTA_FLEET_SIM:?}"
N=12
FAST_S=25
SIM_PID=
stop_sim() { stop_bg SIM_PID; }
at_cleanup stop_sim
source "$TOP/tests/integration/fleet/lib_fleet.sh"
fleet_stack

log "$N simulated devices, slow links, 2 workers"
fleet_sim "$T/fleet.log" --devices $N --prefix sl- --slot-size 262144 --workers 2 \
	--progress 5 --seed 3 --slow 0.5 --slow-rate 2500 --summary-json "$T/summary.json"
wait_for 60 sql_eq $N "SELECT count(*) FROM devices WHERE version = '1.0.0'" ||
	fail "registered: $(sql -c "SELECT count(*) FROM devices")"

log "one campaign to every device"
api -H 'Content-Type: application/json' -d '{"id": "slow", "artifact": "fw-1.1.0",
	"stages": [{"percent": 100, "failure_ratio": 0.99}],
	"rate_per_minute": 6000, "device_timeout_seconds": 120, "transient_retries": 0}' "$API/api/v1/campaigns" >/dev/null
api -X POST "$API/api/v1/campaigns/slow/start" >/dev/null
wait_for 90 sql_eq $N "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'slow' AND state = 'confirmed'" ||
	fail "campaign devices: $(sql -c "SELECT device_id, state, error FROM campaign_devices" | tr '\n' ' ') $(tail -3 "$T/fleet.log")"
stop_sim
fleet_summary_ok "$T/fleet.log"

mapfile -t slow < <(jq -r '.faults.slow[]' "$T/summary.json")
((${#slow[@]} >= 3 && ${#slow[@]} <= N - 3)) || fail "slow devices picked: ${slow[*]}"
list=$(printf "'%s'," "${slow[@]}")
list=${list%,}
q() { sql -c "SELECT $1 FROM campaign_devices WHERE campaign_id = 'slow' AND $2"; }
fast_max=$(q "max(extract(epoch FROM done_at - notified_at))" "device_id NOT IN ($list)")
fast_last=$(q "extract(epoch FROM max(done_at))" "device_id NOT IN ($list)")
slow_first=$(q "extract(epoch FROM min(done_at))" "device_id IN ($list)")
slow_min=$(q "min(extract(epoch FROM done_at - notified_at))" "device_id IN ($list)")
echo "fast devices: longest Notify -> confirmed ${fast_max} s; slow devices: shortest ${slow_min} s"
awk -v f="$fast_max" -v m=$FAST_S 'BEGIN { exit !(f < m) }' ||
	fail "a fast device took ${fast_max} s from its Notify to confirmed (bound ${FAST_S} s)"
awk -v f="$fast_last" -v s="$slow_first" 'BEGIN { exit !(f < s) }' ||
	fail "a slow device was done before the last fast one ($slow_first <= $fast_last)"
echo "ok - ${#slow[@]} slow downloads held no worker: $((N - ${#slow[@]})) fast devices confirmed first, each within ${FAST_S} s"
check_server_exit
log "PASS"
