# SPDX-License-Identifier: Apache-2.0
# Shared by the ota-keys integration tests: a private temp dir removed on
# exit (also on failure), an audit log inside it, and assertions.
set -euo pipefail
KEYS=$(realpath "${1:?path to ota-keys}")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/ota-keys-test.XXXXXX)
cleanup_hooks=()
cleanup() {
	local rc=$?
	for hook in "${cleanup_hooks[@]+"${cleanup_hooks[@]}"}"; do
		$hook || true
	done
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
# a test runner's timeout (TERM) or Ctrl-C must still stop what we started
trap 'exit 143' TERM
trap 'exit 130' INT
cd "$WORK"
export OTA_KEYS_AUDIT_LOG="$WORK/audit.log"
export USER=ci-signer
unset OTA_PKCS11_MODULE OTA_PKCS11_ENGINE

die() {
	echo "FAIL: $*" >&2
	exit 1
}

# ok CMD...: must succeed
ok() {
	if ! "$@" >"$WORK/out" 2>"$WORK/err"; then
		cat "$WORK/out" "$WORK/err" >&2
		die "expected success: $*"
	fi
}

# refused ERRNAME CMD...: must exit non-zero with "ERRNAME: detail" on stderr
refused() {
	local name=$1
	shift
	if "$@" >"$WORK/out" 2>"$WORK/err"; then
		die "expected $name, but it succeeded: $*"
	fi
	if grep -q "Sanitizer" "$WORK/err"; then
		cat "$WORK/err" >&2
		die "sanitizer report: $*"
	fi
	if ! grep -q "^$name: " "$WORK/err"; then
		cat "$WORK/err" >&2
		die "expected $name: $*"
	fi
}

# json FILE JQ: a field of `ota-keys inspect --json`. The inspection is
# kept (in $WORK/.inspect) until FILE changes: a test reads several fields
# of one file, and every ota-keys run costs a sanitizer process's start.
json() {
	local f=$1 c
	[[ $f == /* ]] || f=$PWD/$f
	c=$WORK/.inspect/${f//\//%}
	if [[ ! -s $c || $f -nt $c ]]; then
		mkdir -p "$WORK/.inspect"
		"$KEYS" inspect --json "$f" >"$c" || { rm -f "$c"; return 1; }
	fi
	jq -r "$2" "$c"
}

lines() {
	wc -l <"$1" | tr -d ' '
}

# hex on stdin -> bytes on stdout
unhex() {
	python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))'
}

# maxrss CMD...: runs CMD (must succeed), prints its max RSS in KiB
maxrss() {
	python3 - "$@" <<'PY'
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
if r.returncode != 0:
    sys.stderr.write(r.stderr.decode(errors="replace"))
    sys.exit(1)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
}

# softhsm_init: a SoftHSM2 token store private to this test ($WORK/tokens,
# $SOFTHSM2_CONF); sets MODULE to the SoftHSM2 PKCS#11 module
softhsm_init() {
	MODULE=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
	[[ -r $MODULE ]] || die "SoftHSM2 module $MODULE missing (apt-get install softhsm2)"
	mkdir -p "$WORK/tokens"
	cat >"$WORK/softhsm2.conf" <<CONF
directories.tokendir = $WORK/tokens
objectstore.backend = file
log.level = ERROR
CONF
	export SOFTHSM2_CONF=$WORK/softhsm2.conf
}

# agent_update AGENT CONF BUNDLE CODE: the device installs BUNDLE, boots it,
# confirms it and runs version_code CODE (its status is left in $WORK/out)
agent_update() {
	ok "$1" install "$3" --config "$2"
	ok "$1" boot --config "$2"
	ok "$1" confirm --config "$2"
	ok "$1" status --json --config "$2"
	[[ $(jq -r .installed.version_code "$WORK/out") == "$4" ]] ||
		die "device of $2 did not confirm $4: $(cat "$WORK/out")"
}
