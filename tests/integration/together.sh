#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# together.sh LANE [LANE...]: integration tests that measure time (and so run
# alone in `make test`) but use a fraction of a core each, run at the same
# time instead of one after the other, each against its own stack.
#
# A LANE is "NAME=SCRIPT[,NAME=SCRIPT...]" (SCRIPT relative to TOP): the lanes
# run at once, the tests of a lane one after the other. Each test's output
# goes to its own file and is printed, under its name, when it ends; then one
# line per test: PASS/FAIL, its exit status, its CPU and wall time
# (scripts/cputime.py). If any failed: each failed test's last lines on
# stderr, then a FAIL line naming them all; the exit status is 1.
# With TOGETHER_ONLY=NAME[,NAME...] only those run. Each script still runs
# alone as before (bash SCRIPT with the same env).
set -uo pipefail
: "${TOP:?}"
(($# > 0)) || {
	echo "usage: together.sh NAME=SCRIPT[,NAME=SCRIPT...] ..." >&2
	exit 2
}
OUT=$(mktemp -d /tmp/fleetota-together.XXXXXX)
NAMES=()
LANE_PIDS=()
STOPPED=
# a test runner's timeout (TERM) or Ctrl-C signals the whole process group:
# every test's own trap stops what it started; this waits for them and
# still reports which test was running
# shellcheck disable=SC2317 # called by the traps
stop() {
	STOPPED=$1
	kill -TERM "${LANE_PIDS[@]}" 2>/dev/null # no lane starts its next test
}
trap 'stop 143' TERM
trap 'stop 130' INT

# run_lane NAME=SCRIPT...: one after the other; NAME's status in $OUT/NAME.rc
run_lane() {
	local t name script rc stopped=
	trap 'stopped=1' TERM INT
	for t in "$@"; do
		[[ -z $stopped ]] || break
		name=${t%%=*}
		script=${t#*=}
		rc=0
		/usr/bin/python3 "$TOP/scripts/cputime.py" bash "$TOP/$script" >"$OUT/$name.log" 2>&1 || rc=$?
		echo "$rc" >"$OUT/$name.rc"
		echo "[$(date +%T)] $name ended (exit $rc)"
	done
}

for lane in "$@"; do
	[[ -z $STOPPED ]] || break
	IFS=, read -ra all <<<"$lane"
	tests=()
	for t in "${all[@]}"; do
		[[ $t == *=* && -f $TOP/${t#*=} ]] || {
			echo "together.sh: not NAME=SCRIPT under TOP: $t" >&2
			exit 2
		}
		[[ -z ${TOGETHER_ONLY:-} || ,$TOGETHER_ONLY, == *",${t%%=*},"* ]] || continue
		NAMES+=("${t%%=*}")
		tests+=("$t")
	done
	((${#tests[@]} > 0)) || continue
	echo "[$(date +%T)] lane: ${tests[*]}"
	run_lane "${tests[@]}" &
	LANE_PIDS+=($!)
done
((${#NAMES[@]} > 0)) || {
	echo "together.sh: no test named in TOGETHER_ONLY=$TOGETHER_ONLY" >&2
	exit 2
}
# wait returns early when a trapped signal arrives: wait again
for pid in "${LANE_PIDS[@]}"; do
	while kill -0 "$pid" 2>/dev/null; do
		wait "$pid"
	done
done

failed=()
summary=()
for name in "${NAMES[@]}"; do
	[[ -f $OUT/$name.log ]] || echo "not run: stopped before its turn" >"$OUT/$name.log"
	rc=$(cat "$OUT/$name.rc" 2>/dev/null || echo "none")
	times=$(sed -n 's/^cputime: user .* cpu \([0-9.]*\) s wall \([0-9.]*\) s$/cpu \1 s, wall \2 s/p' \
		"$OUT/$name.log" | tail -1)
	echo "==== $name (exit $rc)"
	grep -v '^cputime: ' "$OUT/$name.log"
	if [[ $rc == 0 ]]; then
		summary+=("PASS $name ($times)")
	else
		summary+=("FAIL $name: exit $rc ($times)")
		failed+=("$name")
	fi
done
echo "==== together: one line per test"
printf '%s\n' "${summary[@]}"
for name in "${failed[@]+"${failed[@]}"}"; do
	{
		echo "---- $name failed: the end of its output"
		grep -v '^cputime: ' "$OUT/$name.log" | tail -25
	} >&2
done
rm -rf "$OUT"
if ((${#failed[@]} > 0)); then
	echo "FAIL: ${failed[*]}" >&2
	exit 1
fi
exit "${STOPPED:-0}"
