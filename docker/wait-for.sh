#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Waits until every WHAT is there, then runs COMMAND. WHAT is a file (a
# one-shot service's "ready" marker) or an http:// URL that must answer 2xx
# (another service's health endpoint). Compose engines differ on
# depends_on conditions (podman-compose 1.0 ignores them), so a service
# that needs another's output waits for it itself; it gives up after
# WAIT_FOR_SECONDS (default 300) in total.
#   wait-for.sh WHAT... -- COMMAND [ARG...]
set -eu
what=
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	what="$what $1"
	shift
done
[ $# -gt 1 ] || { echo "usage: wait-for.sh WHAT... -- COMMAND [ARG...]" >&2; exit 2; }
shift
limit=${WAIT_FOR_SECONDS:-300}
waited=0
there() {
	case $1 in
	http://*) curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null ;;
	*) [ -e "$1" ] ;;
	esac
}
for w in $what; do
	said=
	while ! there "$w"; do
		if [ "$waited" -ge "$limit" ]; then
			echo "wait-for: $w not there within ${limit}s" >&2
			exit 1
		fi
		[ -n "$said" ] || echo "wait-for: waiting for $w" >&2
		said=1
		sleep 1
		waited=$((waited + 1))
	done
done
exec "$@"
