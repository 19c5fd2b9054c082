#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every binary answers --version (exit 0, "NAME X.Y.Z", the same version as
# meson's project) and --help, alone and after each of its subcommands
# (exit 0, usage on stdout, naming the subcommand); a wrong argument stays
# a usage error (exit 2). Binaries come as NAME=PATH arguments; those not
# built in this tree (-Dserver=false) are simply not given.
#
# The subcommands are read from each binary's own --help (a command added
# later is checked without editing this file); the list below is what the
# help must at least name, so a parse that finds nothing cannot pass.
set -euo pipefail
: "${PROJECT_VERSION:?}"
declare -A known=(
	[ota-server]="migrate token"
	[ota-agent]="provision install boot confirm status run fetch freshness"
	[ota-keys]="root-init root-new op-new timestamp-new keylist rootlist sign timestamp verify inspect
	audit-verify enc-key-new rewrap decrypt"
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
	# the subcommands the top-level help names: the word after "NAME " on a
	# usage line, or the first word of a line indented by two spaces
	"$bin" --help >"$T/help" 2>/dev/null || fail "$name --help: exit $?"
	subcommands=$({
		sed -nE "s/^(usage:|Usage:)? *$name ([a-z][a-z0-9-]*)( .*)?$/\2/p" "$T/help"
		sed -nE 's/^  ([a-z][a-z0-9-]*)( .*)?$/\1/p' "$T/help"
	} | sort -u | tr '\n' ' ')
	for sub in ${known[$name]}; do
		[[ " $subcommands" == *" $sub "* ]] || fail "$name --help does not name $sub (parsed: $subcommands)"
	done
	for sub in "" $subcommands; do
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
	"$bin" ${known[$name]%% *} --no-such-option >/dev/null 2>&1 </dev/null || rc=$?
	[[ $rc == 2 ]] || fail "$name ${known[$name]%% *} --no-such-option: exit $rc, expected 2"
	echo "$name: --version, --help and --help after: ${subcommands:-(no subcommands)}"
done
echo "PASS: $# binaries, $checks help answers"
