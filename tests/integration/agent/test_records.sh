#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ota-agent on the Linux port: records survive one bad copy (issue 12).
#  - both copies of the state deleted: still provisioned, provisioning with
#    other roots refused (exact line), counter unchanged, install refused
#    with a clear error, boot boots the last good slot and rebuilds;
#  - each record file zeroed, truncated or deleted, one copy at a time:
#    status, a refused install, boot, install + boot + confirm all work and
#    the boot step rewrites the damaged copy;
#  - both copies of a trust list bad: a clear error, boot still boots.
# usage: test_records.sh OTA_AGENT MKFIXTURES
set -euo pipefail

AGENT=$1
MKFIX=$2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ota-agent-records.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

mkdir "$WORK/fix"
"$MKFIX" "$WORK/fix" >/dev/null
FIX=$WORK/fix
CONF=$WORK/agent.conf
REC=$WORK/state/records
cat >"$CONF" <<EOF
state_dir = $WORK/state
device_id = dev-records-1
model = fx-model
hw_revision = revA
slot_size = 1048576
checkpoint_bytes = 8192
EOF

snapshot() {
	"$AGENT" status --json --config "$CONF" |
		jq -S '{provisioned, active_slot, confirmed_slot, installed, version_code,
		        security_counter, keylist_version, rootlist_version, phase}'
}
field() { "$AGENT" status --json --config "$CONF" | jq -r ".$1"; }

# A device on v1 (counter 5, KeyList 2), in a fresh state directory.
fresh_device() {
	rm -rf "$WORK/state"
	"$AGENT" provision --config "$CONF" --rootlist "$FIX/root1.env" --keylist "$FIX/kl1.env" \
		--image "$FIX/v1.otab" >/dev/null
}

# Runs the agent, expects exit 1 and exactly the line $1.
expect_line() {
	local want=$1
	shift
	set +e
	local line
	line=$("$AGENT" "$@" --config "$CONF" 2>/dev/null)
	local rc=$?
	set -e
	[ "$rc" -eq 1 ] || fail "$*: exit $rc, line '$line'"
	[ "$line" = "$want" ] || fail "$*: expected '$want', got '$line'"
}

# The update to v2 works: install, boot (trial), confirm.
update_works() {
	"$AGENT" install "$FIX/good.otab" --config "$CONF" >/dev/null || fail "install after $1"
	"$AGENT" boot --config "$CONF" | grep -q "(trial)" || fail "no trial boot after $1"
	"$AGENT" confirm --config "$CONF" >/dev/null || fail "confirm after $1"
	[ "$(field security_counter)" = 7 ] || fail "counter after update ($1)"
	[ "$(field version)" = 2.0.0 ] || fail "version after update ($1)"
}

# --- the report: the state record deleted ------------------------------
fresh_device
before=$(snapshot)
slot=$(field active_slot)
rm -f "$REC/state.0" "$REC/state.1"
[ "$(field provisioned)" = true ] || fail "deleted state: device looks blank"
[ "$(field last_error)" = OTA_ERR_STORAGE ] || fail "deleted state: no clear error"
[ "$(field security_counter)" = 5 ] || fail "deleted state: counter $(field security_counter)"
expect_line "rejected: OTA_ERR_BUSY: device already provisioned (trust records exist)" \
	provision --rootlist "$FIX/other-root.env" --keylist "$FIX/other-kl.env"
[ "$(field security_counter)" = 5 ] || fail "counter moved after the refused provision"
[ "$(field rootlist_version)" = 1 ] || fail "roots changed after the refused provision"
[ ! -e "$REC/state.0" ] || fail "the refused provision wrote a state"
expect_line "rejected: OTA_ERR_STORAGE: state record unreadable (both copies); the boot step rebuilds it" \
	install "$FIX/good.otab"
expect_line "rejected: OTA_ERR_STORAGE: state record unreadable (both copies); the boot step rebuilds it" \
	confirm
"$AGENT" boot --config "$CONF" | grep -q "^booted slot $slot: 1.0.0$" || fail "deleted state: boot"
[ "$(snapshot)" = "$before" ] || fail "rebuilt state differs: $before -> $(snapshot)"
[ "$(field last_error_detail)" = "state record lost; rebuilt from the boot record" ] ||
	fail "rebuild detail: $(field last_error_detail)"
cmp -s "$REC/state.0" "$REC/state.1" || fail "rebuilt state copies differ"
update_works "a rebuilt state"
echo "deleted state: still provisioned, other roots refused, counter 5, boot rebuilt the state"

# --- one bad copy of each record ----------------------------------------
# (the full matrix, every damage on every copy followed by an update, is
# tests/unit/agent/test_agent_records.c; here each record file once per copy)
fresh_device
before=$(snapshot)
cases=0
for rec in state counter rootlist keylist boot; do
	for copy in 0 1; do
		f=$REC/$rec.$copy
		[ -s "$f" ] || fail "$f missing"
		case $((cases % 3)) in
		0) dd if=/dev/zero of="$f" bs="$(stat -c %s "$f")" count=1 status=none ;;
		1) truncate -s $(($(stat -c %s "$f") / 2)) "$f" ;;
		2) rm -f "$f" ;;
		esac
		[ "$(snapshot)" = "$before" ] || fail "$rec.$copy damaged: status changed"
		expect_line "rejected: OTA_ERR_DOWNGRADE: version 9 <= installed 10" \
			install "$FIX/older.otab"
		"$AGENT" boot --config "$CONF" | grep -q "^booted slot" || fail "$rec.$copy: boot"
		[ "$(snapshot)" = "$before" ] || fail "$rec.$copy damaged: changed by boot"
		cmp -s "$REC/$rec.0" "$REC/$rec.1" || fail "$rec.$copy damaged: not repaired"
		cases=$((cases + 1))
	done
done
# a damaged copy while installing, booting and confirming
dd if=/dev/zero of="$REC/keylist.1" bs=16 count=1 status=none
rm -f "$REC/counter.0"
update_works "keylist.1 zeroed, counter.0 deleted"
echo "one bad copy: $cases record copies damaged, nothing changed, each repaired by boot"

# --- both copies of a trust list bad ------------------------------------
for rec in rootlist keylist; do
	fresh_device
	slot=$(field active_slot)
	dd if=/dev/zero of="$REC/$rec.0" bs=64 count=1 status=none
	rm -f "$REC/$rec.1"
	expect_line "rejected: OTA_ERR_STORAGE: stored trust anchors unreadable" \
		install "$FIX/good.otab"
	expect_line "rejected: OTA_ERR_BUSY: device already provisioned (trust records exist)" \
		provision --rootlist "$FIX/other-root.env" --keylist "$FIX/other-kl.env"
	"$AGENT" boot --config "$CONF" | grep -q "^booted slot $slot: 1.0.0$" ||
		fail "$rec lost: boot"
	[ "$(field security_counter)" = 5 ] || fail "$rec lost: counter"
done
echo "both copies of a trust list bad: clear error, the last good slot boots"
echo "ota-agent records: all checks passed"
