#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every binary answers --version (exit 0, "NAME X.Y.Z", the same version as
# meson's project) and --help, alone and after each of its subcommands
# (exit 0, usage on stdout, naming the subcommand); a wrong argument stays
# a usage error (exit 2). Binaries come as NAME=PATH arguments; those not
# built in this tree (-Dserver=false) are simply not given.
set -euo pipefail
: "${PROJECT_VERSION:?}"
declare -A subcommands=(
	[ota-server]="migrate token"
	[ota-agent]="provision install boot confirm status run fetch"
	[ota-keys]="root-init root-new op-new keylist rootlist sign verify inspect audit-verify"
	[ota-fleet-sim]=""
	[ota-ctl]="login artifacts campaign devices tokens audit completion"
)
T=$(mktemp -d /tmp/fleetota-cli-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
checks=0
for arg in "$@"; do
	name=${arg%%=*} bin=${arg#*=}
	[[ -x "$bin" ]] || fail "$bin is not built"
	rc=0
	"$bin" --version >"$T/out" 2>"$T/err" || rc=$?
	[[ $rc == 0 ]] || fail "$name --version: exit $rc $(cat "$T/err")"
	grep -qE "^$name $PROJECT_VERSION( \(git [^)]+\))?$" "$T/out" || fail "$name --version: $(cat "$T/out")"
	for sub in "" ${subcommands[$name]}; do
		for flag in --help; do
			rc=0
			# shellcheck disable=SC2086 # an empty $sub is no argument
			"$bin" $sub $flag >"$T/out" 2>"$T/err" || rc=$?
			[[ $rc == 0 ]] || fail "$name $sub $flag: exit $rc: $(cat "$T/err")"
			grep -qi "usage" "$T/out" || fail "$name $sub $flag: no usage on stdout: $(cat "$T/out")"
			[[ -z $sub ]] || grep -q -- "$sub" "$T/out" || fail "$name $sub $flag: does not name $sub"
			checks=$((checks + 1))
		done
	done
	# help is not a catch-all: a wrong option is still a usage error
	rc=0
	"$bin" ${subcommands[$name]%% *} --no-such-option >/dev/null 2>&1 </dev/null || rc=$?
	[[ $rc == 2 ]] || fail "$name ${subcommands[$name]%% *} --no-such-option: exit $rc, expected 2"
done
echo "PASS: $# binaries, $checks help answers"
