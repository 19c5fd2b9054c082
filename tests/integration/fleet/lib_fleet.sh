# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# The stack the ota-fleet-sim tests run against (sourced after
# tests/integration/server/lib.sh): PostgreSQL, mosquitto with TLS + ACL,
# ota-server with its REST API (rollout tick 300 ms), a RootList, a KeyList
# and fw-1.1.0 (100,000 bytes) uploaded; $K holds the signed files, api()
# calls the REST API as an admin.
fleet_stack() {
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
	log "trust anchors and firmware (ota-keys)"
	K=$T/keys
	sign_firmware "$K"
	fleet_upload /api/v1/rootlists "$K/roots/rootlist-1.signed"
	fleet_upload /api/v1/keylists "$K/kl.signed"
	fleet_upload "/api/v1/artifacts?id=fw-1.1.0" "$K/fw-1.1.0.otab"
}
api() { curl --fail-with-body -sS -H "Authorization: Bearer $TOKEN" "$@"; }
fleet_upload() { api -H 'Content-Type: application/octet-stream' --data-binary @"$2" "$API$1" >/dev/null; }

# fleet_sim LOG ARGS...: ota-fleet-sim against the stack in the background (SIM_PID)
fleet_sim() {
	local log=$1
	shift
	"$OTA_FLEET_SIM" --pki "$PKI" --state-dir "$T/fleet" \
		--server "https://127.0.0.1:$DEV_PORT" --broker "ssl://127.0.0.1:$MQ_PORT" \
		--rootlist "$K/roots/rootlist-1.signed" --keylist "$K/kl.signed" --image "$K/fw-1.0.0.otab" \
		"$@" >"$log" 2>&1 &
	SIM_PID=$!
}

# fleet_summary_ok LOG: the simulator printed its summary and no sanitizer report
fleet_summary_ok() {
	grep -q "== ota-fleet-sim summary" "$1" || fail "no summary: $(tail -5 "$1")"
	sed -n '/== ota-fleet-sim summary/,$p' "$1"
	if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$1"; then
		fail "sanitizer report in the simulator"
	fi
}
