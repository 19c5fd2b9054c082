#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A private mosquitto broker on 127.0.0.1:PORT with TLS client certificates
# required, the certificate CN as username and the per-device ACL of
# scripts/mosquitto.acl. Started and stopped by PID.
#
#   scripts/mosquitto.sh start  DIR PORT PKI_DIR   (PKI_DIR made by scripts/pki.sh)
#   scripts/mosquitto.sh stop   DIR
#   scripts/mosquitto.sh status DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: mosquitto.sh start|stop|status DIR [PORT PKI_DIR]}
dir=${2:?DIR}

pid_of() {
	[[ -f "$dir/mosquitto.pid" ]] || return 1
	local pid
	pid=$(cat "$dir/mosquitto.pid")
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

case $cmd in
start)
	port=${3:?PORT}
	pki=$(cd "${4:?PKI_DIR}" && pwd)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if pid_of >/dev/null; then
		echo "mosquitto.sh: already running (pid $(pid_of))" >&2
		exit 0
	fi
	sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@PKI@|$pki|g" \
		-e "s|@USER@|$(id -un)|g" "$here/mosquitto.conf.in" >"$dir/mosquitto.conf"
	cp "$here/mosquitto.acl" "$dir/acl"
	rm -f "$dir/mosquitto.pid"
	mosquitto -d -c "$dir/mosquitto.conf" 2>>"$dir/mosquitto.stderr"
	for _ in $(seq 1 100); do
		if pid_of >/dev/null && grep -q "Opening ipv4 listen socket on port $port" \
			"$dir/mosquitto.log" 2>/dev/null; then
			pid_of
			exit 0
		fi
		sleep 0.05
	done
	echo "mosquitto.sh: broker did not start" >&2
	tail -20 "$dir/mosquitto.log" >&2 || true
	if pid=$(pid_of); then kill -TERM "$pid"; fi
	exit 1
	;;
stop)
	pid=$(pid_of) || exit 0
	kill -TERM "$pid"
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || exit 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	;;
status)
	pid_of >/dev/null
	;;
*)
	echo "mosquitto.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
