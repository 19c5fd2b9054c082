#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# background.sh COMMAND [ARGS...]: runs COMMAND at the lowest CPU priority,
# so that it takes only the CPU other work leaves idle (make test builds
# beside the meson tests with it).
#
# nice alone is not enough where the kernel groups tasks by session
# (CONFIG_SCHED_AUTOGROUP, on in Debian): CPU is shared between sessions
# first, whatever their tasks' nice values, and meson starts every test in
# a session of its own. So the caller starts this in a new session (setsid)
# and it lowers that session's group weight as well as its nice value.
set -eu
if [ -w /proc/self/autogroup ]; then
	echo 19 >/proc/self/autogroup 2>/dev/null || true
fi
exec nice -n 19 "$@"
