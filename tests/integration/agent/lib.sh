# SPDX-License-Identifier: Apache-2.0
# Shared by the ota-agent record tests: sourced after `set -euo pipefail`
# with AGENT and MKFIX set. agent_world NAME DEVICE_ID makes a work
# directory (removed on exit), the fixtures in $FIX, a config in $CONF for
# a state directory whose records are $REC.

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

agent_world() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/ota-agent-$1.XXXXXX")
	trap 'rm -rf "$WORK"' EXIT
	mkdir "$WORK/fix"
	"$MKFIX" "$WORK/fix" >/dev/null
	FIX=$WORK/fix
	CONF=$WORK/agent.conf
	REC=$WORK/state/records
	cat >"$CONF" <<CONF
state_dir = $WORK/state
device_id = $2
model = fx-model
hw_revision = revA
slot_size = 1048576
checkpoint_bytes = 8192
CONF
}

field() { "$AGENT" status --json --config "$CONF" | jq -r ".$1"; }

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
