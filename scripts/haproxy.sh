#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A private HAProxy (Debian's haproxy) in TCP mode on loopback: each
# frontend port spreads connections round-robin over its backend ports,
# TLS passes through untouched (the servers see the devices' client
# certificates), backends are health-checked by TCP connect every 500 ms.
# Started and stopped by PID.
#
#   scripts/haproxy.sh start DIR PORT:BACKEND_PORT[,BACKEND_PORT...] ...
#                       one frontend per argument
#   scripts/haproxy.sh stop   DIR
#   scripts/haproxy.sh status DIR
set -euo pipefail
cmd=${1:?usage: haproxy.sh start|stop|status DIR ...}
dir=${2:?DIR}

pid_of() {
	[[ -f "$dir/haproxy.pid" ]] || return 1
	local pid
	pid=$(head -1 "$dir/haproxy.pid" 2>/dev/null)
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

case $cmd in
start)
	shift 2
	(($# > 0)) || {
		echo "haproxy.sh: no frontend" >&2
		exit 2
	}
	mkdir -p "$dir"
	{
		printf '%s\n' global "  pidfile $dir/haproxy.pid" "  maxconn 4000" \
			defaults "  mode tcp" "  timeout connect 2s" "  timeout client 60s" \
			"  timeout server 60s" "  timeout check 1s" "  retries 2" "  option redispatch"
		for fe in "$@"; do
			port=${fe%%:*}
			printf '%s\n' "listen fe_$port" "  bind 127.0.0.1:$port" "  balance roundrobin"
			n=0
			backends=${fe#*:}
			for b in ${backends//,/ }; do
				n=$((n + 1))
				printf '  server s%d 127.0.0.1:%s check inter 500ms fall 2 rise 1\n' "$n" "$b"
			done
		done
	} >"$dir/haproxy.cfg"
	if pid_of >/dev/null; then
		echo "haproxy.sh: already running (pid $(pid_of))" >&2
		exit 1
	fi
	haproxy -c -q -f "$dir/haproxy.cfg" || exit 1
	haproxy -D -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 || {
		cat "$dir/haproxy.log" >&2
		exit 1
	}
	for _ in $(seq 1 50); do
		pid_of && exit 0
		sleep 0.1
	done
	echo "haproxy.sh: did not come up" >&2
	exit 1
	;;
stop)
	pid=$(pid_of) || exit 0
	kill -USR1 "$pid" # soft stop: stop listening, let connections finish
	for _ in $(seq 1 30); do
		kill -0 "$pid" 2>/dev/null || exit 0
		sleep 0.1
	done
	kill -TERM "$pid" 2>/dev/null || true
	;;
status)
	pid_of >/dev/null
	;;
*)
	echo "haproxy.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
