#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every libFuzzer target of a -Dfuzz=true build for a bounded time
# (the envelope + manifest target, the device's first line of defence, for
# the full time; every other target for a quarter of it, at least 10 s),
# starting from a scratch copy of its committed corpus (the committed corpus
# stays as it is). Fails on the first crash, leak or sanitizer report.
set -euo pipefail
build=${1:?build dir}
seconds=${2:-60}
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for bin in $(find "$build" -maxdepth 3 -type f -name 'fuzz_*' -perm -u+x ! -name '*_replay' | sort); do
	name=$(basename "$bin"); name=${name#fuzz_}
	corpus="$top/tests/fuzz/corpus/$name"
	scratch="$work/$name"
	mkdir -p "$scratch"
	[[ -d "$corpus" ]] && cp -r "$corpus/." "$scratch/"
	budget=$seconds
	if [[ $name != envelope ]]; then
		budget=$((seconds / 4)); ((budget >= 10)) || budget=10
	fi
	echo "fuzz: $name for ${budget}s"
	if ! "$bin" -max_total_time="$budget" -rss_limit_mb=2048 -timeout=10 \
		-artifact_prefix="$work/crash-$name-" "$scratch" >"$work/$name.log" 2>&1; then
		tail -40 "$work/$name.log"
		mkdir -p "$top/$build/fuzz-crashes"
		cp "$work"/crash-"$name"-* "$top/$build/fuzz-crashes/" 2>/dev/null || true
		echo "fuzz: $name FAILED (inputs kept in $build/fuzz-crashes)"
		status=1
	else
		grep -E '^(#[0-9]+\s+DONE|Done )' "$work/$name.log" | tail -1 || true
	fi
done
exit $status
