#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ota-fleet-sim's fault injection against the real pieces (PostgreSQL,
# mosquitto with TLS + ACL, ota-server with its REST API): 30 devices, a
# share of each fault, one campaign to every device. Each device's outcome
# in the campaign must match the fault the simulator picked for it:
# offline -> timed_out; self-test failure -> failed OTA_ERR_SELFTEST and
# still on 1.0.0; power loss mid-download -> a power cut, then resumed and
# confirmed; slow link -> confirmed; the rest confirmed. The simulator's
# summary must agree with the server.
source "$TOP/tests/integration/server/lib.sh"
: "${OTA_KEYS:?}" "${OTA_FLEET_SIM:?}"
N=30
SIM_PID=
stop_sim() { stop_bg SIM_PID; }
# keep the failing status for cleanup (it exits with the status it sees)
at_cleanup stop_sim

setup_pki
start_pg
start_broker
write_config
API_PORT=$(free_port)
API=http://127.0.0.1:$API_PORT
echo "admin_listen = 127.0.0.1:$API_PORT" >>"$T/server.conf"
sed -i 's/^log_level = .*/log_level = info/' "$T/server.conf"
mkdir -p "$STORE"
migrate >/dev/null 2>&1 || { migrate; fail "migrate"; }
export OTA_ROLLOUT_TICK_MS=300
start_server
TOKEN=$("$OTA_SERVER" token create --role admin --name fleet-test --config "$T/server.conf" 2>/dev/null)
api() { curl --fail-with-body -sS -H "Authorization: Bearer $TOKEN" "$@"; }
upload() { api -H 'Content-Type: application/octet-stream' --data-binary @"$2" "$API$1" >/dev/null; }

log "trust anchors and firmware (ota-keys)"
K=$T/keys
sign_firmware "$K"
upload /api/v1/rootlists "$K/roots/rootlist-1.signed"
upload /api/v1/keylists "$K/kl.signed"
upload "/api/v1/artifacts?id=fw-1.1.0" "$K/fw-1.1.0.otab"

log "$N simulated devices with faults"
"$OTA_FLEET_SIM" --devices $N --prefix fd- --pki "$PKI" --state-dir "$T/fleet" \
	--server "https://127.0.0.1:$DEV_PORT" --broker "ssl://127.0.0.1:$MQ_PORT" \
	--rootlist "$K/roots/rootlist-1.signed" --keylist "$K/kl.signed" --image "$K/fw-1.0.0.otab" \
	--slot-size 262144 --workers 8 --progress 5 --seed 7 \
	--offline 0.2 --selftest-fail 0.2 --power-loss 0.25 --slow 0.2 --slow-rate 20000 \
	--summary-json "$T/summary.json" >"$T/fleet.log" 2>&1 &
SIM_PID=$!
wait_for 60 sql_eq $N "SELECT count(*) FROM devices WHERE version = '1.0.0'" ||
	fail "registered: $(sql -c "SELECT count(*) FROM devices")"
# offline devices leave after registering (and reporting)
wait_for 30 grep -q "offline devices registered and went away" "$T/fleet.log" ||
	fail "offline devices did not leave: $(tail -3 "$T/fleet.log")"

log "one campaign to every device (a device that does not answer in 15 s times out, no retry)"
api -H 'Content-Type: application/json' -d '{"id": "faults", "artifact": "fw-1.1.0",
	"stages": [{"percent": 100, "failure_ratio": 0.99}],
	"rate_per_minute": 6000, "device_timeout_seconds": 15, "transient_retries": 0}' "$API/api/v1/campaigns" >/dev/null
api -X POST "$API/api/v1/campaigns/faults/start" >/dev/null
finished() {
	sql_eq $N "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'faults'
		AND state IN ('confirmed', 'failed', 'timed_out')"
}
wait_for 90 finished || fail "campaign devices: $(sql -c "SELECT state, count(*) FROM campaign_devices GROUP BY 1") campaign: $(sql -c "SELECT state, state_reason, target_size FROM campaigns") devices: $(sql -c "SELECT device_id, state, version, last_seen FROM devices ORDER BY 1" | tr '\n' ' ')"
stop_sim
grep -q "== ota-fleet-sim summary" "$T/fleet.log" || fail "no summary: $(tail -5 "$T/fleet.log")"
sed -n '/== ota-fleet-sim summary/,$p' "$T/fleet.log"
if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T/fleet.log"; then
	fail "sanitizer report in the simulator"
fi

S=$T/summary.json
ids() { jq -r ".faults.$1[]" "$S"; }
mapfile -t offline < <(ids offline)
mapfile -t selftest < <(ids selftest_fails)
mapfile -t power < <(ids power_loss)
mapfile -t slow < <(ids slow)
((${#offline[@]} > 0 && ${#selftest[@]} > 0 && ${#power[@]} > 0 && ${#slow[@]} > 0)) ||
	fail "every fault picked at least once: $(jq -c .faults "$S")"
state_of() { sql -c "SELECT state || ':' || error || ':' || coalesce(reported_version_code, 0)
	FROM campaign_devices WHERE campaign_id = 'faults' AND device_id = '$1'"; }
in_list() {
	local x=$1
	shift
	local e
	for e in "$@"; do [[ $e == "$x" ]] && return 0; done
	return 1
}
expect_cuts=0
for i in $(seq 0 $((N - 1))); do
	d=$(printf 'fd-%05d' "$i")
	got=$(state_of "$d")
	if in_list "$d" "${offline[@]}"; then
		[[ $got == timed_out:* ]] || fail "$d (offline): $got"
	elif in_list "$d" "${selftest[@]}"; then
		[[ $got == failed:OTA_ERR_SELFTEST:100 ]] || fail "$d (self-test fails): $got"
		sql_eq 1.0.0 "SELECT version FROM devices WHERE device_id = '$d'" || fail "$d not back on 1.0.0"
	else
		[[ $got == confirmed:* ]] || fail "$d: $got"
		sql_eq 1.1.0 "SELECT version FROM devices WHERE device_id = '$d'" || fail "$d not on 1.1.0"
		in_list "$d" "${power[@]}" && expect_cuts=$((expect_cuts + 1))
	fi
done
echo "ok - every device's campaign outcome matches its injected fault"
[[ $(jq .power_cuts "$S") == "$expect_cuts" ]] ||
	fail "power cuts: $(jq .power_cuts "$S"), expected $expect_cuts"
echo "ok - $expect_cuts power cuts mid-download, each resumed and confirmed"
confirmed=$(sql -c "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'faults' AND state = 'confirmed'")
[[ $(jq '.artifacts["fw-1.1.0"].confirmed' "$S") == "$confirmed" ]] ||
	fail "simulator confirmed $(jq '.artifacts["fw-1.1.0"].confirmed' "$S"), server $confirmed"
[[ $(jq '.artifacts["fw-1.1.0"].reverted' "$S") == "$(sql -c "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'faults' AND error = 'OTA_ERR_SELFTEST'")" ]] ||
	fail "reverted counts differ"
echo "ok - the simulator's summary agrees with the server"
check_server_exit
log "PASS"
