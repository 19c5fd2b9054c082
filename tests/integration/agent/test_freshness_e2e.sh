#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Signed freshness end to end with the real ota-server, PostgreSQL, mosquitto
# and ota-agent: the server holds the timestamp role's key (the fixture
# KeyList lists it with that role) and serves a short-lived Timestamp per
# product line at /v1/timestamp/MODEL; ota-keys verifies it; `ota-agent
# freshness` keeps it. Then the server's signing freezes (its SQL function is
# renamed away, so it keeps serving the last Timestamp it signed): the
# running agent is fed the stale Timestamp and reports that it may be frozen
# (event freeze_suspected with OTA_ERR_FROZEN in the database); once the
# server signs again, a fresh Timestamp clears the report (freshness_restored).
# env: OTA_SERVER SRV_TESTTOOL TOP OTA_AGENT OTA_KEYS
set -euo pipefail
: "${OTA_AGENT:?}" "${OTA_KEYS:?}"
source "$TOP/tests/integration/server/lib.sh"
LIFETIME=10
SERVER_CONF_EXTRA="timestamp_key = $T/fixtures/timestamp.key
timestamp_lifetime_sec = $LIFETIME"
standard_setup
grep -q "timestamp role on" "$T/server.log" || fail "timestamp role not started"

log "the server serves a Timestamp per product line; ota-keys verifies it"
wait_for 10 eval 'dev_curl dev-1 /v1/timestamp/fx-model; [[ $(status) == 200 ]]' ||
	fail "timestamp status $(status)"
cp "$T/body" "$T/ts.bin"
"$OTA_KEYS" verify "$T/ts.bin" --rootlist "$T/fixtures/rootlist.bin" \
	--keylist "$T/fixtures/keylist.bin" >"$T/verify.out" || fail "ota-keys verify: $(cat "$T/verify.out")"
grep -q "timestamp fx-model current 1.2.0 (code 3)" "$T/verify.out" || fail "verify: $(cat "$T/verify.out")"
dev_curl dev-1 /v1/timestamp/no-such-model
[[ $(status) == 404 ]] || fail "unknown product line: status $(status)"

agent_config "$T/agent.conf" dev-1 "$T/agent-state" 4194304 "trust_clock = true" \
	"report_interval = 2" "freshness_max_age = 1" "timestamp_interval = 1"
agent_provision "$T/agent.conf"

log "ota-agent freshness: fetched, verified, kept"
"$OTA_AGENT" freshness --config "$T/agent.conf" >"$T/fresh.out" || fail "freshness: $(cat "$T/fresh.out")"
grep -q "fresh: fx-model current 1.2.0 (code 3)" "$T/fresh.out" || fail "freshness: $(cat "$T/fresh.out")"
s=$("$OTA_AGENT" status --json --config "$T/agent.conf")
[[ $(jq -r .freshness.frozen <<<"$s") == false && $(jq -r .freshness.current_version_code <<<"$s") == 3 ]] ||
	fail "status: $s"

log "ota-agent run: fresh Timestamps, no freeze report"
start_agent "$T/agent.conf" dev-1
sleep 3
sql_eq 0 "SELECT count(*) FROM device_events WHERE device_id = 'dev-1' AND kind = 'freeze_suspected'" ||
	fail "a freeze was reported while the server signs"

log "the server's signing freezes: the agent is fed the stale Timestamp and reports it"
sql -c "ALTER FUNCTION timestamp_releases(integer) RENAME TO timestamp_releases_frozen"
wait_for $((LIFETIME + 20)) sql_eq "OTA_ERR_FROZEN" \
	"SELECT error FROM device_events WHERE device_id = 'dev-1' AND kind = 'freeze_suspected'" ||
	fail "no freeze report: $(sql -c "SELECT seq, kind, error FROM device_events WHERE device_id = 'dev-1' ORDER BY seq"); agent: $(tail -10 "$T/agent.log")"
dev_curl dev-1 /v1/timestamp/fx-model
[[ $(status) == 200 ]] || fail "the frozen server stopped serving: $(status)"
"$OTA_KEYS" verify "$T/body" --rootlist "$T/fixtures/rootlist.bin" \
	--keylist "$T/fixtures/keylist.bin" >"$T/verify.out" 2>&1 && fail "a stale Timestamp verified as fresh"
grep -q "OTA_ERR_EXPIRED" "$T/verify.out" || fail "stale verify: $(cat "$T/verify.out")"

log "the server signs again: a fresh Timestamp clears the report"
sql -c "ALTER FUNCTION timestamp_releases_frozen(integer) RENAME TO timestamp_releases"
wait_for $((LIFETIME + 20)) sql_eq 1 \
	"SELECT count(*) FROM device_events WHERE device_id = 'dev-1' AND kind = 'freshness_restored'" ||
	fail "freeze report not cleared: agent: $(tail -10 "$T/agent.log")"
stop_agent
s=$("$OTA_AGENT" status --json --config "$T/agent.conf")
[[ $(jq -r .freshness.frozen <<<"$s") == false ]] || fail "still frozen: $s"
check_server_exit
log "PASS"
