#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `ota-agent run` end to end with the real ota-server, PostgreSQL and
# mosquitto (the server tests' world, tests/integration/server/lib.sh):
# the device is provisioned with the server's trust anchors, an artifact is
# assigned, the server notifies over MQTT, the agent fetches the manifest
# and the image over mutual TLS with the server pinned, installs, boots,
# confirms, and the database shows the new version and the event history.
# The agent keeps its TLS session: one full handshake for both updates.
# env: OTA_SERVER SRV_TESTTOOL TOP OTA_AGENT
set -euo pipefail
: "${OTA_AGENT:?}"
source "$TOP/tests/integration/server/lib.sh"
API_PORT=$(free_port)
standard_setup
TOKEN=$("$OTA_SERVER" token create --role viewer --name e2e --config "$T/server.conf")

agent_config "$T/agent.conf" dev-1 "$T/agent-state" 4194304 "checkpoint_bytes = 65536" \
	"stall_timeout = 5" "report_interval = 2"

log "provision dev-1 with the fleet's RootList and KeyList"
agent_provision "$T/agent.conf"

log "ota-agent run reports at start"
start_agent "$T/agent.conf" dev-1

log "assign art-1; the server notifies; the agent installs and confirms"
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-1', 'art-1')"
wait_for 40 sql_eq "1.1.0|2|2|confirmed" \
	"SELECT version, version_code, security_counter, state FROM devices WHERE device_id = 'dev-1'" ||
	fail "device not on art-1: $(sql -c "SELECT * FROM devices WHERE device_id = 'dev-1'"); agent: $(tail -20 "$T/agent.log")"
for kind in install_started verified pending trial_boot confirmed counter_advanced; do
	sql_eq 1 "SELECT count(*) FROM device_events WHERE device_id = 'dev-1' AND kind = '$kind'" ||
		fail "event $kind missing: $(sql -c "SELECT seq, kind FROM device_events WHERE device_id = 'dev-1' ORDER BY seq")"
done

log "the same Notify again (notifications are delivered at least once): the agent drops it"
reports_before=$(sql -c "SELECT last_report_seq FROM devices WHERE device_id = 'dev-1'")
sql -c "UPDATE assignments SET notified_at = NULL WHERE device_id = 'dev-1' AND artifact_id = 'art-1'"
wait_for 20 sql_eq 2 "SELECT notify_count FROM assignments WHERE device_id = 'dev-1' AND artifact_id = 'art-1'" ||
	fail "art-1 not notified again"
# two idle reports (report_interval 2 s) after the repeated Notify
wait_for 20 sql_eq t "SELECT last_report_seq >= $reports_before + 2 FROM devices WHERE device_id = 'dev-1'" ||
	fail "no idle reports after the repeated Notify: $(tail -5 "$T/agent.log")"
sql_eq "idle|1.1.0|" "SELECT state, version, last_error FROM devices WHERE device_id = 'dev-1'" ||
	fail "a repeated Notify changed the device: $(sql -c "SELECT state, version, last_error FROM devices WHERE device_id = 'dev-1'")"
sql_eq 1 "SELECT count(*) FROM device_events WHERE device_id = 'dev-1' AND kind = 'install_started'" ||
	fail "a repeated Notify started an install: $(sql -c "SELECT seq, kind, error FROM device_events WHERE device_id = 'dev-1' ORDER BY seq")"

s=$("$OTA_AGENT" status --json --config "$T/agent.conf") # readable while run holds the device
[[ $(jq -r .version <<<"$s") == 1.1.0 ]] || fail "status while running: $s"
if "$OTA_AGENT" confirm --config "$T/agent.conf" >/dev/null 2>&1; then
	fail "a second agent changed the device while run holds it"
fi

log "the broker restarts; the agent reconnects, reports, and takes the next update"
seq_before=$(sql -c "SELECT last_report_seq FROM devices WHERE device_id = 'dev-1'")
stop_broker >/dev/null
start_broker
wait_for 40 sql_eq t \
	"SELECT last_report_seq > $seq_before FROM devices WHERE device_id = 'dev-1'" ||
	fail "no report after the broker restart: $(tail -5 "$T/agent.log")"
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-1', 'art-2')"
wait_for 40 sql_eq "1.2.0|3|3|confirmed" \
	"SELECT version, version_code, security_counter, state FROM devices WHERE device_id = 'dev-1'" ||
	fail "device not on art-2 after the broker restart: $(sql -c "SELECT * FROM devices WHERE device_id = 'dev-1'"); agent: $(tail -20 "$T/agent.log")"
stop_agent
[[ $AGENT_STATUS == 0 ]] || fail "ota-agent run exited with $AGENT_STATUS: $(tail -30 "$T/agent.log")"

log "one full TLS handshake for both updates: every later connection resumed the session"
full=$(metric fleetota_tls_handshakes_total) resumed=$(metric fleetota_tls_resumed_total)
[[ $full == 1 ]] && ((resumed >= 3)) || fail "TLS handshakes: $full full, $resumed resumed"
s=$("$OTA_AGENT" status --json --config "$T/agent.conf")
[[ $(jq -r .version <<<"$s") == 1.2.0 && $(jq -r .security_counter <<<"$s") == 3 ]] ||
	fail "agent status: $s"

log "a server key that is not pinned: the agent refuses with OTA_ERR_PIN"
sed -i "s/^server_pins = .*/server_pins = $(printf '%064d' 7)/" "$T/agent.conf"
set +e
line=$("$OTA_AGENT" fetch art-2 --config "$T/agent.conf" 2>/dev/null)
set -e
[[ $line == "rejected: OTA_ERR_PIN: "* ]] || fail "pin mismatch: '$line'"
[[ $("$OTA_AGENT" status --json --config "$T/agent.conf" | jq -r .version) == 1.2.0 ]] ||
	fail "status changed after pin refusal"

check_server_exit
log "PASS"
