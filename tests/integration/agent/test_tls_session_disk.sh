#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent's TLS session outlives its process (agent/port/linux/https.c):
# two `ota-agent fetch` processes, each a whole update (manifest, image),
# make one full mutual-TLS handshake between them, counted by the real
# ota-server (/metrics: fleetota_tls_handshakes_total, _resumed_total).
# The session file (STATE_DIR/tls_session) is 0600 and bounded; a changed
# pin list drops it (full handshake), a file that is garbage or too large
# is ignored and replaced (full handshake, the update path unaffected),
# and the next process resumes again.
# env: OTA_SERVER SRV_TESTTOOL TOP OTA_AGENT
set -euo pipefail
: "${OTA_AGENT:?}"
source "$TOP/tests/integration/server/lib.sh"

API_PORT=$(free_port)
standard_setup
TOKEN=$("$OTA_SERVER" token create --role viewer --name sess --config "$T/server.conf")
PIN=$(cat "$PKI/server.pin")
SESSION=$T/agent-state/tls_session

conf() { # PINS
	cat >"$T/agent.conf" <<EOF
state_dir = $T/agent-state
device_id = dev-1
model = fx-model
hw_revision = rev-a
slot_size = 4194304
checkpoint_bytes = 65536
server_url = https://127.0.0.1:$DEV_PORT
ca_file = $PKI/server-ca.crt
device_cert = $PKI/devices/dev-1.crt
device_key = $PKI/devices/dev-1.key
server_pins = $1
stall_timeout = 5
EOF
}
handshakes() { echo "$(metric fleetota_tls_handshakes_total) $(metric fleetota_tls_resumed_total)"; }
fetch() { timeout 60 "$OTA_AGENT" fetch "$1" --config "$T/agent.conf" 2>>"$T/agent.log" || true; }

conf "$PIN"
"$OTA_AGENT" provision --config "$T/agent.conf" --rootlist "$T/fixtures/rootlist.bin" \
	--keylist "$T/fixtures/keylist.bin" >/dev/null

log "first process: art-1, one full handshake, the rest resumed in memory"
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-1', 'art-1')"
line=$(fetch art-1)
[[ $line == "confirmed: 1.1.0"* ]] || fail "fetch art-1: '$line' $(tail -5 "$T/agent.log")"
read -r full resumed <<<"$(handshakes)"
[[ $full == 1 ]] && ((resumed >= 1)) || fail "after art-1: $full full, $resumed resumed"
[[ -f $SESSION ]] || fail "no session file"
[[ $(stat -c %a "$SESSION") == 600 ]] || fail "session file mode $(stat -c %a "$SESSION")"
size=$(stat -c %s "$SESSION")
((size > 100 && size <= 16384)) || fail "session file of $size bytes"

log "second process: art-2, no full handshake (the session came from the file)"
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-1', 'art-2')"
line=$(fetch art-2)
[[ $line == "confirmed: 1.2.0"* ]] || fail "fetch art-2: '$line' $(tail -5 "$T/agent.log")"
read -r full2 resumed2 <<<"$(handshakes)"
[[ $full2 == 1 ]] && ((resumed2 >= resumed + 2)) ||
	fail "after a restart: $full2 full (want 1), $resumed -> $resumed2 resumed"

# what a fetch of the installed artifact answers, with any session or none
ref=$(fetch art-2)
[[ $ref == rejected:* ]] || fail "fetch of the installed art-2: '$ref'"
read -r full3 _ <<<"$(handshakes)"
[[ $full3 == 1 ]] || fail "the reference fetch made a full handshake ($full3)"

log "a changed pin list: the kept session is not offered (one full handshake), then resumes"
conf "$PIN,$(printf '%064d' 7)"
[[ $(fetch art-2) == "$ref" ]] || fail "fetch with two pins"
read -r full4 _ <<<"$(handshakes)"
[[ $full4 == 2 ]] || fail "after a pin change: $full4 full handshakes (want 2)"
[[ $(fetch art-2) == "$ref" ]] || fail "fetch with two pins, again"
read -r full5 _ <<<"$(handshakes)"
[[ $full5 == 2 ]] || fail "the session of the new pin list did not resume ($full5 full)"

log "a session file that is garbage, then one too large: ignored (full handshake) and replaced"
head -c 3000 /dev/urandom >"$SESSION"
[[ $(fetch art-2) == "$ref" ]] || fail "fetch with a garbage session file"
read -r full6 _ <<<"$(handshakes)"
[[ $full6 == 3 ]] || fail "garbage session file: $full6 full handshakes (want 3)"
head -c 20000 /dev/zero >"$SESSION"
[[ $(fetch art-2) == "$ref" ]] || fail "fetch with an oversized session file"
read -r full7 _ <<<"$(handshakes)"
[[ $full7 == 4 ]] || fail "oversized session file: $full7 full handshakes (want 4)"
size=$(stat -c %s "$SESSION")
((size <= 16384)) || fail "the oversized file was not replaced ($size bytes)"
[[ $(fetch art-2) == "$ref" ]] || fail "fetch after the replacement"
read -r full8 _ <<<"$(handshakes)"
[[ $full8 == 4 ]] || fail "the replaced session did not resume ($full8 full)"

check_server_exit
log "PASS"
