#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A private mosquitto broker on 127.0.0.1:PORT with TLS client certificates
# required, identity = certificate CN = username = client id, the CRLs of
# PKI_DIR and the per-device ACL of scripts/mosquitto.acl plus one entry per
# ota-server identity in PKI_DIR/servers/ (and per read-only observer in
# PKI_DIR/observers/, tests only). Started and stopped by PID.
#
#   scripts/mosquitto.sh start  DIR PORT PKI_DIR   (PKI_DIR made by scripts/pki.sh)
#   scripts/mosquitto.sh stop   DIR
#   scripts/mosquitto.sh status DIR
#   scripts/mosquitto.sh reload DIR   re-writes the ACL from PKI_DIR/servers/,
#                         then SIGHUP: new handshakes use the current CRL,
#                         CA bundle and broker certificate; nobody is dropped
#   scripts/mosquitto.sh kick DIR DEVICE_ID...
#                         closes the live sessions of these devices (after a
#                         revoke + reload: they cannot come back). Takes each
#                         client id over with a 5-minute certificate from
#                         PKI_DIR's device CA (pki.sh takeover-cert).
#   scripts/mosquitto.sh config DIR PORT PKI_DIR [BIND]
#                         only writes DIR/mosquitto.conf and DIR/acl (the
#                         container entrypoint runs mosquitto itself)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: mosquitto.sh start|stop|status|reload|kick|config DIR ...}
dir=${2:?DIR}

pid_of() {
	[[ -f "$dir/mosquitto.pid" ]] || return 1
	local pid
	pid=$(cat "$dir/mosquitto.pid")
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# acl_users CERT_DIR CN_PREFIX RULE...: one `user` block with RULEs for each
# certificate in CERT_DIR whose CN starts with CN_PREFIX
acl_users() {
	local certs=$1 prefix=$2 crt cn
	shift 2
	for crt in "$certs"/*.crt; do
		[[ -f "$crt" ]] || continue
		cn=$(openssl x509 -in "$crt" -noout -subject -nameopt RFC2253 |
			sed -n 's/^subject=\(.*,\)\{0,1\}CN=\([^,]*\).*/\2/p')
		[[ $cn == "$prefix"* ]] || continue
		printf '\nuser %s\n' "$cn"
		printf 'topic %s\n' "$@"
	done
}

# The ACL: the device patterns, then one block per server identity and one
# per observer (a test's read-only witness of the cmd topics: it may publish
# nowhere, not even to the status topic the device pattern would give it).
write_acl() {
	local pki=$1
	{
		cat "$here/mosquitto.acl"
		acl_users "$pki/servers" ota-server: "write fleetota/v1/+/cmd" "read fleetota/v1/+/status"
		acl_users "$pki/observers" ota-observer: "read fleetota/v1/+/cmd" "deny fleetota/v1/+/status"
	} >"$dir/acl.tmp"
	mv "$dir/acl.tmp" "$dir/acl"
}

write_config() { # PORT PKI BIND
	local port=$1 pki=$2 bind=$3
	mkdir -p "$dir"
	sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@PKI@|$pki|g" \
		-e "s|@BIND@|$bind|g" -e "s|@USER@|$(id -un)|g" \
		"$here/mosquitto.conf.in" >"$dir/mosquitto.conf"
	echo "$pki" >"$dir/pki-dir"
	write_acl "$pki"
}

reloads() { grep -c "Reloading config" "$dir/mosquitto.log" 2>/dev/null || true; }

case $cmd in
config)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	write_config "${3:?PORT}" "$(cd "${4:?PKI_DIR}" && pwd)" "${5:-127.0.0.1}"
	;;
start)
	port=${3:?PORT}
	pki=$(cd "${4:?PKI_DIR}" && pwd)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if pid_of >/dev/null; then
		echo "mosquitto.sh: already running (pid $(pid_of))" >&2
		exit 0
	fi
	write_config "$port" "$pki" 127.0.0.1
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
reload)
	pid=$(pid_of) || { echo "mosquitto.sh: not running" >&2; exit 1; }
	write_acl "$(cat "$dir/pki-dir")"
	if [[ ! -f "$dir/mosquitto.log" ]]; then # logging elsewhere (a container)
		kill -HUP "$pid"
		exit 0
	fi
	before=$(reloads)
	kill -HUP "$pid"
	for _ in $(seq 1 100); do
		(($(reloads) > before)) && exit 0
		sleep 0.05
	done
	echo "mosquitto.sh: no reload seen in $dir/mosquitto.log" >&2
	exit 1
	;;
kick)
	shift 2
	pid_of >/dev/null || { echo "mosquitto.sh: not running" >&2; exit 1; }
	pki=$(cat "$dir/pki-dir")
	port=$(sed -n 's/^listener \([0-9]*\) .*/\1/p' "$dir/mosquitto.conf")
	for id in "$@"; do
		"$here/pki.sh" takeover-cert "$pki" "$id" "$dir/takeover"
		# MQTT 5, clean start, session expiry 0: the broker closes the
		# device's connection (same client id) and drops its session when
		# we leave; -E leaves once the subscription is acknowledged.
		rc=0
		mosquitto_sub -V 5 -h 127.0.0.1 -p "$port" --cafile "$pki/server-ca.crt" \
			--cert "$dir/takeover.crt" --key "$dir/takeover.key" -i "$id" \
			-t "fleetota/v1/$id/cmd" -E -W 10 >/dev/null || rc=$?
		rm -f "$dir/takeover.crt" "$dir/takeover.key"
		((rc == 0)) || { echo "mosquitto.sh: kick $id failed ($rc)" >&2; exit 1; }
		echo "kicked $id"
	done
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
