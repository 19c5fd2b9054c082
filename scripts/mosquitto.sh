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
#   scripts/mosquitto.sh reload DIR   applies PKI_DIR as it is now: re-writes
#                         the ACL (server identities from PKI_DIR/servers/,
#                         a deny of its status topic for every device whose
#                         certificate is revoked), then SIGHUP: new handshakes
#                         use the current CRL, CA bundle and broker
#                         certificate, and the ACL applies to live sessions
#                         at once (a revoked device's next report is refused);
#                         then the live sessions of the devices revoked since
#                         the last reload are closed (kick). Nobody else is
#                         dropped.
#   scripts/mosquitto.sh watch DIR [SEC]
#                         revocation on a timer: every SEC seconds (60)
#                         compares inode, size and mtime (ns) of what reload
#                         applies (the CRL, the CA bundle, the broker
#                         certificate and key, the device CA's revocation
#                         index, PKI_DIR/servers/) and runs reload when one
#                         changed, once they are the same for one period
#                         (ota-server's device_reload_sec does the
#                         same for the device listener). Runs in the
#                         foreground while the broker runs; one line per
#                         reload.
#   scripts/mosquitto.sh decommissioned DIR < IDS
#                         the decommissioned devices, one id a line on stdin
#                         (ota-server's database or REST API: docs/operator.md),
#                         into DIR/decommissioned; the next reload (watch runs
#                         it when the file changes) writes an ACL that denies
#                         each its status and cmd topics, which mosquitto
#                         applies to live sessions: no device CA key needed.
#                         Prints the number of ids kept (a line that is no
#                         device id is dropped, named on stderr).
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
cmd=${1:?usage: mosquitto.sh start|stop|status|reload|watch|decommissioned|kick|config DIR ...}
dir=${2:?DIR}

pid_of() {
	[[ -f "$dir/mosquitto.pid" ]] || return 1
	local pid=
	read -r pid <"$dir/mosquitto.pid" || true
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# a device id (pki.sh): what DIR/decommissioned may list
device_id_re='[A-Za-z0-9][A-Za-z0-9._-]{0,63}'

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

# revoked_devices PKI: the device ids whose certificate the device CA's
# revocation index (pki.sh revoke) lists, one a line; an id whose
# PKI/devices/ID.crt is a newer certificate (another serial) is not.
revoked_devices() {
	local pki=$1 status serial subject id crt
	[[ -f "$pki/device-ca.index" ]] || return 0
	while IFS=$'\t' read -r status _ _ serial _ subject; do
		[[ $status == R && $subject == */CN=* ]] || continue
		id=${subject##*/CN=}
		crt="$pki/devices/$id.crt"
		if [[ -f "$crt" ]] &&
			[[ $(openssl x509 -in "$crt" -noout -serial | cut -d= -f2) != "$serial" ]]; then
			continue
		fi
		echo "$id"
	done <"$pki/device-ca.index" | sort -u
}

# The ACL: the device patterns, then one block per server identity, one per
# observer (a test's read-only witness of the cmd topics: it may publish
# nowhere, not even to the status topic the device pattern would give it)
# one per revoked device (a deny of its status topic: mosquitto applies
# the ACL to live sessions on SIGHUP, so its next report is refused even
# before its session is closed) and one per decommissioned device of
# DIR/decommissioned (a deny of both its topics: it can neither report nor
# be told anything, connected or not).
write_acl() {
	local pki=$1 id
	{
		cat "$here/mosquitto.acl"
		acl_users "$pki/servers" ota-server: "write fleetota/v1/+/cmd" "read fleetota/v1/+/status"
		acl_users "$pki/observers" ota-observer: "read fleetota/v1/+/cmd" "deny fleetota/v1/+/status"
		for id in $(revoked_devices "$pki"); do
			printf '\n# revoked (%s)\nuser %s\ntopic deny fleetota/v1/%s/status\n' \
				"$pki/device-ca.index" "$id" "$id"
		done
		if [[ -f "$dir/decommissioned" ]]; then
			for id in $(grep -xE "$device_id_re" "$dir/decommissioned" || true); do
				printf '\n# decommissioned (%s)\nuser %s\ntopic deny fleetota/v1/%s/status\ntopic deny fleetota/v1/%s/cmd\n' \
					"$dir/decommissioned" "$id" "$id" "$id"
			done
		fi
	} >"$dir/acl.tmp"
	mv "$dir/acl.tmp" "$dir/acl"
}

# kick_devices PKI PORT ID...: closes the live sessions of these devices
kick_devices() {
	local pki=$1 port=$2 id rc
	shift 2
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
		((rc == 0)) || { echo "mosquitto.sh: kick $id failed ($rc)" >&2; return 1; }
		echo "kicked $id"
	done
}

listen_port() { sed -n 's/^listener \([0-9]*\) .*/\1/p' "$dir/mosquitto.conf"; }

write_config() { # PORT PKI BIND
	local port=$1 pki=$2 bind=$3
	mkdir -p "$dir"
	sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@PKI@|$pki|g" \
		-e "s|@BIND@|$bind|g" -e "s|@USER@|$(id -un)|g" \
		"$here/mosquitto.conf.in" >"$dir/mosquitto.conf"
	echo "$pki" >"$dir/pki-dir"
	write_acl "$pki"
	# a device revoked before the start has no session to close
	revoked_devices "$pki" >"$dir/revoked"
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
	# polled with no process per round (each test starts a broker): the
	# log read by mapfile, the wait a read -t on a FIFO nobody writes to,
	# opened after the broker started (it does not inherit it)
	[[ -p "$dir/.tick" ]] || mkfifo "$dir/.tick"
	exec {tick}<>"$dir/.tick"
	for ((i = 0; i < 100; i++)); do
		log=()
		[[ ! -f "$dir/mosquitto.log" ]] || mapfile -t log <"$dir/mosquitto.log"
		if [[ "${log[*]}" == *"Opening ipv4 listen socket on port $port"* ]] && pid_of >/dev/null; then
			pid_of
			exit 0
		fi
		read -r -t 0.05 -u "$tick" _ || true
	done
	echo "mosquitto.sh: broker did not start" >&2
	tail -20 "$dir/mosquitto.log" >&2 || true
	if pid=$(pid_of); then kill -TERM "$pid"; fi
	exit 1
	;;
reload)
	pid=$(pid_of) || { echo "mosquitto.sh: not running" >&2; exit 1; }
	write_acl "$(cat "$dir/pki-dir")"
	if [[ -f "$dir/mosquitto.log" ]]; then
		before=$(reloads)
		kill -HUP "$pid"
		reloaded=0
		for _ in $(seq 1 100); do
			(($(reloads) > before)) && { reloaded=1; break; }
			sleep 0.05
		done
		((reloaded)) || { echo "mosquitto.sh: no reload seen in $dir/mosquitto.log" >&2; exit 1; }
	else # logging elsewhere (a container): give it a moment
		kill -HUP "$pid"
		sleep 1
	fi
	# The devices revoked since the last reload: their live sessions end now
	# (the CRL keeps them from coming back). DIR/revoked holds the ones done.
	pki=$(cat "$dir/pki-dir")
	touch "$dir/revoked"
	mapfile -t fresh < <(comm -13 "$dir/revoked" <(revoked_devices "$pki"))
	((${#fresh[@]} > 0)) || exit 0
	kick_devices "$pki" "$(listen_port)" "${fresh[@]}" || exit 1
	sort -u "$dir/revoked" <(printf '%s\n' "${fresh[@]}") >"$dir/revoked.tmp"
	mv "$dir/revoked.tmp" "$dir/revoked"
	;;
watch)
	period=${3:-60}
	[[ $period =~ ^[1-9][0-9]*$ ]] || { echo "mosquitto.sh: watch period '$period' is not a number of seconds" >&2; exit 2; }
	pid_of >/dev/null || { echo "mosquitto.sh: not running" >&2; exit 1; }
	pki=$(cat "$dir/pki-dir")
	# what reload applies, as inode size mtime lines (a missing file is a line too)
	applied() {
		local f
		for f in "$pki/mqtt-client-ca.crl" "$pki/mqtt-client-ca.crt" "$pki/broker.crt" \
			"$pki/broker.key" "$pki/device-ca.index" "$pki/servers" "$pki"/servers/*.crt \
			"$dir/decommissioned"; do
			stat -c '%n %i %s %.9Y' "$f" 2>/dev/null || echo "$f -"
		done
	}
	last=$(applied)
	echo "watching $pki every $period s"
	while pid_of >/dev/null; do
		sleep "$period"
		now=$(applied)
		[[ $now != "$last" ]] || continue
		# until the files settle (pki.sh revoke writes the index, then the
		# CRLs): one reload per change, with the CRL that goes with the index
		while sleep "$period"; do
			settled=$(applied)
			[[ $settled != "$now" ]] || break
			now=$settled
		done
		echo "$(date -u +%FT%TZ) files changed: reload"
		# once per change: a failed reload (say, no device CA key to kick
		# with) says why on stderr and is not repeated every period
		"$here/mosquitto.sh" reload "$dir" || echo "$(date -u +%FT%TZ) reload failed" >&2
		last=$now
	done
	;;
decommissioned)
	mkdir -p "$dir"
	# at most a million ids; the file changes only when the list does (a
	# cron job that writes the same list does not make watch reload)
	head -n 1000001 >"$dir/decommissioned.in"
	(($(wc -l <"$dir/decommissioned.in") <= 1000000)) ||
		{ rm -f "$dir/decommissioned.in"; echo "mosquitto.sh: more than 1000000 ids" >&2; exit 2; }
	{ grep -vxE "$device_id_re" "$dir/decommissioned.in" || true; } | grep -v '^$' |
		sed 's/^/mosquitto.sh: not a device id, dropped: /' >&2 || true
	{ grep -xE "$device_id_re" "$dir/decommissioned.in" || true; } | sort -u >"$dir/decommissioned.tmp"
	rm -f "$dir/decommissioned.in"
	if cmp -s "$dir/decommissioned.tmp" "$dir/decommissioned"; then
		rm -f "$dir/decommissioned.tmp"
	else
		mv "$dir/decommissioned.tmp" "$dir/decommissioned"
	fi
	wc -l <"$dir/decommissioned"
	;;
kick)
	shift 2
	pid_of >/dev/null || { echo "mosquitto.sh: not running" >&2; exit 1; }
	kick_devices "$(cat "$dir/pki-dir")" "$(listen_port)" "$@"
	;;
stop)
	pid=$(pid_of) || exit 0
	kill -TERM "$pid"
	[[ -p "$dir/.tick" ]] || mkfifo "$dir/.tick"
	exec {tick}<>"$dir/.tick"
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || exit 0
		read -r -t 0.05 -u "$tick" _ || true
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
