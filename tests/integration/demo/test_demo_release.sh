#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo's story with 50 devices on the binaries `make demo` runs
# (build/, gcc -O2), with every assertion of demo-story (test_demo.sh,
# which runs it on the sanitizer tree). make test names that tree in
# DEMO_RELEASE_BUILD, so the check runs as one of the meson tests, next to
# the others, instead of as a phase of its own after them (it mostly waits:
# soak times, polls); without DEMO_RELEASE_BUILD it is skipped, and
# `make demo-check` runs it alone. make test builds build/ beside the meson
# tests and names in DEMO_RELEASE_READY the file it writes when that build
# ends ("ok" or "failed"): this waits for it.
set -euo pipefail
: "${TOP:?}"
if [[ -z ${DEMO_RELEASE_BUILD:-} ]]; then
	echo "skipped: no DEMO_RELEASE_BUILD (make test sets it to build/; make demo-check runs this alone)"
	exit 77
fi
if [[ -n ${DEMO_RELEASE_READY:-} ]]; then
	# built at the lowest priority: on a busy machine this can take a
	# while, and meson's timeout for this test bounds the wait
	waited=0
	until [[ -s $DEMO_RELEASE_READY && $(<"$DEMO_RELEASE_READY") != building ]]; do
		((waited % 30 == 0)) && echo "waiting for $DEMO_RELEASE_BUILD (built beside the tests): ${waited} s"
		sleep 1
		waited=$((waited + 1))
	done
	[[ $(<"$DEMO_RELEASE_READY") == ok ]] || {
		echo "FAIL: building $DEMO_RELEASE_BUILD failed (see the beside phase's output after the tests)" >&2
		exit 1
	}
	echo "$DEMO_RELEASE_BUILD built (waited ${waited} s)"
fi
for bin in server/ota-server keyrotate/ota-keys agent/ota-fleet-sim; do
	[[ -x $DEMO_RELEASE_BUILD/$bin ]] || {
		echo "FAIL: $DEMO_RELEASE_BUILD/$bin is missing (make build)" >&2
		exit 1
	}
done
DEMO_BUILD=$DEMO_RELEASE_BUILD exec bash "$TOP/tests/integration/demo/test_demo.sh"
