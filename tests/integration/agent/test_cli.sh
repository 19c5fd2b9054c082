#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ota-agent CLI end to end on the Linux port: provision, the attack matrix
# through offline bundles (exact error name AND unchanged `status --json`),
# trial boot / revert / confirm, the self-test hook.
# usage: test_cli.sh OTA_AGENT MKFIXTURES
set -euo pipefail

AGENT=$1
MKFIX=$2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ota-agent-cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

"$MKFIX" "$WORK"
FIX=$WORK

write_config() { # $1 = config path, $2 = extra line
	cat >"$1" <<EOF
# ota-agent test device
state_dir = $WORK/state
device_id = dev-cli-1
model = fx-model
hw_revision = revA
slot_size = 1048576
checkpoint_bytes = 8192
$2
EOF
}
CONF=$WORK/agent.conf
write_config "$CONF" ""

# the fields an attack must not change
SNAPSHOT='{active_slot, confirmed_slot, installed, version, version_code,
	security_counter, keylist_version, rootlist_version, phase, pending}'
snapshot() {
	"$AGENT" status --json --config "$CONF" | jq -S "$SNAPSHOT"
}
# snapshot_last: the snapshot and then, on a line of its own, last_error,
# from one `status --json` (one ota-agent run instead of two)
snapshot_last() {
	"$AGENT" status --json --config "$CONF" | jq -S "$SNAPSHOT, .last_error"
}

# --- provisioning -------------------------------------------------------
out=$("$AGENT" status --json --config "$CONF")
[ "$(jq -r .provisioned <<<"$out")" = false ] || fail "blank device claims to be provisioned"
"$AGENT" provision --config "$CONF" --rootlist "$FIX/root1.env" --keylist "$FIX/kl1.env" \
	--image "$FIX/v1.otab" >/dev/null
out=$("$AGENT" status --json --config "$CONF")
[ "$(jq -r .version <<<"$out")" = 1.0.0 ] || fail "v1 not installed: $out"
[ "$(jq -r .security_counter <<<"$out")" = 5 ] || fail "counter after v1: $out"
[ "$(jq -r .keylist_version <<<"$out")" = 2 ] || fail "bundle KeyList 2 not taken: $out"
[ "$(jq -r .rootlist_version <<<"$out")" = 1 ] || fail "rootlist: $out"
# provisioning twice is refused
if "$AGENT" provision --config "$CONF" --rootlist "$FIX/root1.env" --keylist "$FIX/kl1.env" \
	>/dev/null 2>&1; then
	fail "second provision accepted"
fi

# --- the attack matrix --------------------------------------------------
before=$(snapshot)
cases=0
while read -r bundle expected; do
	set +e
	line=$("$AGENT" install "$FIX/$bundle" --config "$CONF" 2>/dev/null)
	rc=$?
	set -e
	[ "$rc" -ne 0 ] || fail "$bundle accepted"
	[ "$(wc -l <<<"$line")" -eq 1 ] || fail "$bundle: more than one line: $line"
	case "$line" in
	"rejected: $expected: "*) ;;
	*) fail "$bundle: expected $expected, got '$line'" ;;
	esac
	after=$(snapshot)
	[ "$before" = "$after" ] || fail "$bundle changed the status: $before -> $after"
	"$AGENT" boot --config "$CONF" >/dev/null
	after=$(snapshot_last)
	last=${after##*$'\n'}
	after=${after%$'\n'*}
	[ "$before" = "$after" ] || fail "$bundle changed the status after boot"
	[ "$last" = "\"$expected\"" ] || fail "$bundle: last_error $last"
	cases=$((cases + 1))
done <"$FIX/cases.txt"
[ "$cases" -ge 20 ] || fail "only $cases attack cases ran"
echo "attack matrix: $cases cases rejected with the exact error, status unchanged"

# --- the manifest is judged before one image byte is read ---------------
# A pipe delivers prefix + header and then nothing: a rejection must come
# without waiting for the image (a reader of image bytes would block).
hdr_len=$(od -An -tu1 -j4 -N4 "$FIX/wrong-model.otab" |
	awk '{print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4}')
mkfifo "$WORK/pipe.otab"
(
	head -c $((8 + hdr_len)) "$FIX/wrong-model.otab"
	exec sleep 10
) >"$WORK/pipe.otab" 2>/dev/null &
WRITER=$!
set +e
line=$(timeout 5 "$AGENT" install "$WORK/pipe.otab" --config "$CONF" 2>/dev/null)
rc=$?
set -e
kill "$WRITER" 2>/dev/null || true
wait "$WRITER" 2>/dev/null || true
[ "$rc" -eq 1 ] || fail "header-only pipe: exit $rc (124 = waited for image bytes)"
case "$line" in
"rejected: OTA_ERR_HW_MISMATCH: "*) ;;
*) fail "header-only pipe: '$line'" ;;
esac

# --- trial boot: reboot without confirm reverts -------------------------
"$AGENT" install "$FIX/good.otab" --config "$CONF" >/dev/null
s=$(snapshot)
[ "$(jq -r .phase <<<"$s")" = pending ] || fail "good bundle not pending"
[ "$(jq -r .security_counter <<<"$s")" = 5 ] || fail "counter moved before confirm"
"$AGENT" boot --config "$CONF" | grep -q "(trial)" || fail "no trial boot"
[ "$(snapshot | jq -r .security_counter)" = 5 ] || fail "counter moved on trial"
"$AGENT" boot --config "$CONF" >/dev/null # the watchdog reboot, no confirm
s=$("$AGENT" status --json --config "$CONF")
[ "$(jq -r .version <<<"$s")" = 1.0.0 ] || fail "no revert: $s"
[ "$(jq -r .phase <<<"$s")" = idle ] || fail "phase after revert: $s"
[ "$(jq -r .last_error <<<"$s")" = OTA_ERR_SELFTEST ] || fail "revert reason"

# --- downgrade allowed with an equal counter ----------------------------
"$AGENT" install "$FIX/downgrade-equal-counter.otab" --config "$CONF" >/dev/null
"$AGENT" boot --config "$CONF" >/dev/null
"$AGENT" confirm --config "$CONF" >/dev/null
s=$(snapshot)
[ "$(jq -r .version_code <<<"$s")" = 9 ] || fail "allowed downgrade not installed: $s"
[ "$(jq -r .security_counter <<<"$s")" = 5 ] || fail "counter after downgrade: $s"

# --- self-test hook: failing reverts, passing confirms ------------------
write_config "$CONF" "selftest_cmd = test \"\$OTA_SLOT\" = 7"
"$AGENT" install "$FIX/good.otab" --config "$CONF" >/dev/null
set +e
line=$("$AGENT" boot --config "$CONF" | tail -n 1)
rc=$?
set -e
case "$line" in
"rejected: OTA_ERR_SELFTEST: "*) ;;
*) fail "failing self-test: '$line' rc=$rc" ;;
esac
s=$(snapshot)
[ "$(jq -r .version_code <<<"$s")" = 9 ] || fail "self-test failure did not revert"
[ "$(jq -r .security_counter <<<"$s")" = 5 ] || fail "counter moved on failed self-test"

write_config "$CONF" "selftest_cmd = test -s \"\$OTA_SLOT_PATH\""
"$AGENT" install "$FIX/good.otab" --config "$CONF" >/dev/null
"$AGENT" boot --config "$CONF" | grep -q "confirmed: 2.0.0" || fail "self-test did not confirm"
s=$(snapshot)
[ "$(jq -r .version <<<"$s")" = 2.0.0 ] || fail "v2 not running: $s"
[ "$(jq -r .security_counter <<<"$s")" = 7 ] || fail "counter not advanced: $s"
"$AGENT" boot --config "$CONF" | grep -q "booted slot" || fail "plain boot of v2"

# --- config errors are clear --------------------------------------------
printf 'state_dir = %s\nbogus = 1\n' "$WORK/state" >"$WORK/bad.conf"
set +e
err=$("$AGENT" status --config "$WORK/bad.conf" 2>&1)
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "bad config exit $rc"
grep -q "line 2: unknown key 'bogus'" <<<"$err" || fail "bad config message: $err"

echo "ota-agent CLI: all checks passed"
