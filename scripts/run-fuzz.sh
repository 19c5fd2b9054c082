#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every libFuzzer target of a -Dfuzz=true build for a bounded time
# (the envelope + manifest target, the device's first line of defence, for
# the full time; every other target for a sixth of it, at least
# FUZZ_MIN_SECONDS, 5 by default), two at a time (one per core), each from a
# scratch copy of its committed corpus (the committed corpus stays as it is).
# The envelope starts first: while it runs, the second core works through
# the others. make test runs it with 18 s (FUZZ_TEST_SECONDS) and a 3 s
# minimum: 18 s for the envelope and 3 s for each other target; make fuzz
# with 60 s. Every corpus is
# also replayed by the sanitizer build's meson tests (fuzz_*_replay). Fails on any crash, leak or
# sanitizer report, keeping the failing inputs in BUILD/fuzz-crashes/.
set -euo pipefail
build=${1:?build dir}
seconds=${2:-60}
jobs=${FUZZ_JOBS:-2}
min_budget=${FUZZ_MIN_SECONDS:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run_one() { # BIN
	local bin=$1 name budget corpus scratch
	name=$(basename "$bin"); name=${name#fuzz_}
	corpus="$top/tests/fuzz/corpus/$name"
	scratch="$work/$name"
	mkdir -p "$scratch"
	[[ -d "$corpus" ]] && cp -r "$corpus/." "$scratch/"
	budget=$seconds
	if [[ $name != envelope ]]; then
		budget=$((seconds / 6)); ((budget >= min_budget)) || budget=$min_budget
	fi
	if "$bin" -max_total_time="$budget" -rss_limit_mb=2048 -timeout=10 \
		-artifact_prefix="$work/crash-$name-" "$scratch" >"$work/$name.log" 2>&1; then
		echo "fuzz: $name ${budget}s: $(grep -E '^Done ' "$work/$name.log" | tail -1)"
		return 0
	fi
	tail -40 "$work/$name.log"
	mkdir -p "$build/fuzz-crashes"
	cp "$work"/crash-"$name"-* "$build/fuzz-crashes/" 2>/dev/null || true
	echo "fuzz: $name FAILED (inputs kept in $build/fuzz-crashes)"
	return 1
}

status=0
running=0
# the longest run first (the envelope), then by name
for bin in $(find "$build" -maxdepth 3 -type f -name 'fuzz_*' -perm -u+x ! -name '*_replay' |
	awk '{ print (/\/fuzz_envelope$/ ? 0 : 1), $0 }' | sort | cut -d' ' -f2-); do
	# at capacity: wait for whichever run ends first, so that the second
	# core does not wait idle behind the envelope's long run
	if ((running >= jobs)); then
		wait -n || status=1
		running=$((running - 1))
	fi
	run_one "$bin" &
	running=$((running + 1))
done
while ((running > 0)); do
	wait -n || status=1
	running=$((running - 1))
done
exit $status
