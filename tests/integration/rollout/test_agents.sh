#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A staged campaign on real agents (`ota-agent run`, each its own identity
# and file-backed slots) through the real ota-server, PostgreSQL and
# mosquitto: while the self-test fails on purpose, the canaries revert, the
# campaign pauses by itself and nobody beyond the canaries is notified; with
# a good artifact all stages complete and every device confirms the new
# version (read from the devices' own reports).
# env: OTA_SERVER SRV_TESTTOOL TOP OTA_AGENT [ROLLOUT_AGENTS]
set -euo pipefail
: "${OTA_AGENT:?}"
source "$TOP/tests/integration/server/lib.sh"
N=${ROLLOUT_AGENTS:-200}
DEVICES=()
for i in $(seq 1 "$N"); do DEVICES+=("dev-$i"); done
AGENT_PIDS=()
stop_agents() {
	local p
	for p in "${AGENT_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${AGENT_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	AGENT_PIDS=()
}
at_cleanup stop_agents

setup_pki "${DEVICES[@]}"
start_pg
start_broker
write_config
migrate >/dev/null 2>&1 || { migrate; fail "migrate"; }
mkdir -p "$T/fixtures"
"$SRV_TESTTOOL" fixtures "$T/fixtures" art-bad:1.1.0:2:200000 art-good:1.2.0:3:200000 >/dev/null
sql -f "$T/fixtures/trust.sql"
sql -f "$T/fixtures/art-bad.sql"
sql -f "$T/fixtures/art-good.sql"
OTA_ROLLOUT_TICK_MS=200 start_server

FLAG=$T/selftest-fails
touch "$FLAG"
# A provisioned state holds the RootList and KeyList records and nothing of
# the device's own (its identity is in the config): `ota-agent provision`
# makes the first agent's, each other agent starts from a copy of it (100
# provisionings, an ASan process each, cost some 20 CPU seconds). Every step
# of an install is reported when it happens; the periodic report comes every
# 30 s (every 2 s, the 100 agents sent 50 reports a second that ota-server
# and PostgreSQL stored all through the test, for nothing it checks).
for d in "${DEVICES[@]}"; do
	agent_config "$T/$d.conf" "$d" "$T/$d-state" 1048576 "checkpoint_bytes = 65536" \
		"stall_timeout = 5" "report_interval = 30" "selftest_cmd = test ! -e $FLAG"
	if [[ $d == "${DEVICES[0]}" ]]; then
		agent_provision "$T/$d.conf"
		cp -a "$T/$d-state" "$T/provisioned-state"
	else
		cp -a "$T/provisioned-state" "$T/$d-state"
	fi
	"$OTA_AGENT" run --config "$T/$d.conf" >>"$T/$d.log" 2>&1 &
	AGENT_PIDS+=($!)
done
wait_for 180 sql_eq "$N" "SELECT count(*) FROM devices WHERE keylist_version = 1 AND model = 'fx-model'" ||
	fail "agents did not report: $(sql -c "SELECT count(*) FROM devices")"

STAGES='[{"count":2,"failure_ratio":0.4},{"percent":50,"soak_seconds":1},{"percent":100}]'
log "canaries whose self-test fails: the campaign pauses by itself"
sql -c "SELECT rollout_create('{\"id\":\"bad\",\"artifact\":\"art-bad\",\"rate_per_minute\":600,\"device_timeout_seconds\":600,\"stages\":$STAGES}', 'alice')" >/dev/null
sql -c "SELECT rollout_start('bad', 'alice')" >/dev/null
wait_for 180 sql_eq paused "SELECT state FROM campaigns WHERE campaign_id = 'bad'" ||
	fail "bad campaign: $(sql -c "SELECT rollout_status('bad')"); $(tail -5 "$T/dev-1.log")"
log "paused: $(sql -c "SELECT state_reason FROM campaigns WHERE campaign_id = 'bad'")"
sql_eq "2" "SELECT count(DISTINCT device_id) FROM rollout_notifications WHERE campaign_id = 'bad'" ||
	fail "notified beyond the canaries"
wait_for 180 sql_eq "2" "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'bad' AND state = 'failed' AND error = 'OTA_ERR_SELFTEST'" ||
	fail "canaries: $(sql -c "SELECT string_agg(device_id || ':' || state || ':' || error, ',') FROM campaign_devices")"
sql_eq "2" "SELECT count(*) FROM devices d JOIN campaign_devices m USING (device_id) WHERE m.campaign_id = 'bad' AND d.version_code < 2 AND m.reported_version_code = d.version_code" ||
	fail "reverted canaries not recorded on the version they run: $(sql -c "SELECT string_agg(d.device_id || ':' || d.version || ':' || d.version_code || ':' || coalesce(m.reported_version_code::text, '-'), ',') FROM devices d JOIN campaign_devices m USING (device_id) WHERE m.campaign_id = 'bad'")"
sql -c "SELECT rollout_cancel('bad', 'alice')" >/dev/null

log "a good artifact: every stage completes on every device"
rm -f "$FLAG"
sql -c "SELECT rollout_create('{\"id\":\"good\",\"artifact\":\"art-good\",\"rate_per_minute\":3000,\"device_timeout_seconds\":600,\"stages\":$STAGES}', 'alice')" >/dev/null
sql -c "SELECT rollout_start('good', 'alice')" >/dev/null
wait_for 300 sql_eq completed "SELECT state FROM campaigns WHERE campaign_id = 'good'" ||
	fail "good campaign: $(sql -c "SELECT rollout_status('good')")"
sql_eq "$N|$N" "SELECT count(*), count(*) FILTER (WHERE state = 'confirmed') FROM campaign_devices WHERE campaign_id = 'good'" ||
	fail "good campaign devices: $(sql -c "SELECT string_agg(device_id || ':' || state, ',') FROM campaign_devices WHERE campaign_id = 'good'")"
sql_eq "$N" "SELECT count(*) FROM devices WHERE version = '1.2.0' AND version_code = 3" || fail "devices not on 1.2.0"
# each agent's own status (one jq for all of them)
statuses=$(for d in "${DEVICES[@]}"; do
	"$OTA_AGENT" status --json --config "$T/$d.conf" || echo "{\"device_id\": \"$d\", \"version\": \"status failed\"}"
done | jq -rs '"\(length) " + ([.[] | select(.version != "1.2.0") | "\(.device_id) \(.version)"] | join(", "))')
[[ $statuses == "$N " ]] || fail "agents' status (count, then those not on 1.2.0): $statuses"
# rate: for any two notifications a <= b, count in [a, b] <= burst + rate * (b - a)
sql_eq 0 "WITH k AS (SELECT rate_per_minute AS rate, rate_burst AS burst FROM campaigns WHERE campaign_id = 'good'),
	n AS (SELECT row_number() OVER (ORDER BY created_at, id) AS rn, extract(epoch FROM created_at) AS t
	      FROM rollout_notifications WHERE campaign_id = 'good')
	SELECT count(*) FROM n a JOIN n b ON b.rn >= a.rn, k WHERE (b.rn - a.rn + 1) > k.burst + k.rate * (b.t - a.t) / 60.0 + 1e-6" ||
	fail "notify rate limit exceeded"
log "stages: $(sql -c "SELECT string_agg(admitted || '/' || confirmed, ' ') FROM rollout_stage_counts('good')") (admitted/confirmed)"
stop_agents
check_server_exit
log "PASS"
