#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ota-agent on the Linux port: a device upgraded from the agent before
# two-copy records (issue 12) keeps its trust records, counter and state.
# The old layout is one file per record, records/NAME, holding the record's
# payload unframed (agent/port/linux/linux_port.c at 7f0c437; the payload
# encodings of agent/src/record.c are unchanged since), and no boot record.
# The fixture is made by provisioning a device with this agent and
# rewriting its records in the old layout: each copy's payload (the bytes
# between the 20-byte copy header and the CRC-32) as records/NAME.
#  - status --json is the same device, byte for byte;
#  - provisioning other roots is refused (exact line), nothing written;
#  - a refused install changes nothing; an install, boot and confirm work;
#  - afterwards every record the agent wrote is in the new layout and no
#    old-layout file of a written record is left.
# usage: test_legacy_records.sh OTA_AGENT MKFIXTURES
set -euo pipefail

AGENT=$1
MKFIX=$2
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
agent_world legacy dev-legacy-1

# Rewrites every record in the old layout: copy 0's payload as records/NAME.
to_old_layout() {
	local f name size
	for f in "$REC"/*.0; do
		name=$(basename "$f" .0)
		size=$(stat -c %s "$f")
		tail -c +21 "$f" | head -c $((size - 24)) >"$REC/$name"
		cmp -s <(tail -c +21 "$REC/${name}.1" | head -c $((size - 24))) "$REC/$name" ||
			fail "$name: the two copies hold different payloads"
	done
	rm -f "$REC"/*.0 "$REC"/*.1 "$REC/boot"
}

# --- a device on v1 (counter 5, KeyList 2), then an update to v2 --------
"$AGENT" provision --config "$CONF" --rootlist "$FIX/root1.env" --keylist "$FIX/kl1.env" \
	--image "$FIX/v1.otab" >/dev/null
before=$("$AGENT" status --json --config "$CONF")
to_old_layout
[ "$(head -c 4 "$REC/state")" = OTAS ] || fail "old-layout state does not start with OTAS"
[ "$(head -c 4 "$REC/counter")" = OTAC ] || fail "old-layout counter does not start with OTAC"
[ ! -e "$REC/state.0" ] && [ ! -e "$REC/boot.0" ] || fail "new-layout files left"
n_old=$(find "$REC" -type f | wc -l)

after=$("$AGENT" status --json --config "$CONF")
[ "$after" = "$before" ] || fail "old layout: status differs: $before -> $after"
[ "$(field provisioned)" = true ] || fail "old layout: device looks blank"
[ "$(field security_counter)" = 5 ] || fail "old layout: counter"
[ "$(field keylist_version)" = 2 ] || fail "old layout: keylist"
echo "old layout: status --json is the same device"

expect_line "rejected: OTA_ERR_BUSY: device already provisioned (trust records exist)" \
	provision --rootlist "$FIX/other-root.env" --keylist "$FIX/other-kl.env"
[ "$(find "$REC" -type f | wc -l)" = "$n_old" ] || fail "the refused provision wrote records"
[ "$("$AGENT" status --json --config "$CONF")" = "$before" ] || fail "refused provision changed status"
echo "old layout: provisioning other roots refused, nothing written"

expect_line "rejected: OTA_ERR_ROLLBACK: security counter 4 < 5" install "$FIX/lower-counter.otab"
[ "$(field security_counter)" = 5 ] || fail "counter moved after the refused install"

"$AGENT" install "$FIX/good.otab" --config "$CONF" >/dev/null || fail "install on the old layout"
"$AGENT" boot --config "$CONF" | grep -q "(trial)" || fail "no trial boot"
"$AGENT" confirm --config "$CONF" >/dev/null || fail "confirm"
[ "$(field security_counter)" = 7 ] || fail "counter after update: $(field security_counter)"
[ "$(field version)" = 2.0.0 ] || fail "version after update"
[ "$(field rootlist_version)" = 1 ] || fail "rootlist after update"
[ "$(field keylist_version)" = 2 ] || fail "keylist after update"
echo "old layout: install, boot, confirm: 2.0.0, counter 7"

# the written records moved; the boot step's scrub rewrote the trust lists
for rec in state counter rootlist keylist manifest0 boot; do
	[ -s "$REC/$rec.0" ] && [ -s "$REC/$rec.1" ] || fail "$rec not in the new layout"
	[ ! -e "$REC/$rec" ] || fail "old-layout $rec left behind"
	cmp -s "$REC/$rec.0" "$REC/$rec.1" || fail "$rec copies differ"
done
# the previous slot's manifest was not written: still the old file, still read
[ -s "$REC/manifest1" ] && [ ! -e "$REC/manifest1.0" ] || fail "manifest1 moved unwritten"
# and the old layout's events are still read (the events of the v1 install)
[ "$(field next_event_seq)" -gt 10 ] || fail "event numbering restarted"
echo "ota-agent legacy records: all checks passed"
