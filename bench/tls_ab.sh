#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# TLS handshake A/B (not a test): CPU per connection of two ota-server
# binaries and nginx, measured alternately on one stack (the bench's PKI,
# fixtures, config and nginx.conf: bench/run.sh), for a fixed number of
# connections each, which a busy machine does not move the way it moves
# wall-clock rates. Each round runs the three in a rotated order (A B N,
# B N A, N A B, ...), so none is always first after another's run.
#
#   bench/tls_ab.sh OLD_SERVER NEW_SERVER [BUILD_DIR]
#       BUILD_DIR (build-bench) has srv_loadclient and srv_testtool
# Knobs: AB_ROUNDS (6), AB_CONNS (4 clients), AB_PER_CLIENT (250
#        connections each), AB_MODE (resume; full), AB_TLS (1.2; 1.3)
# Prints one line per run (server CPU µs per connection: user, system,
# total; conn/s; voluntary context switches) and the medians of the
# per-round ratios at the end. AB_CALLGRIND=1 instead runs A and B under
# callgrind and prints user-space instructions per connection of each (one
# run of AB_CONNS x AB_PER_CLIENT connections after the warm-up; nginx as
# one process, master_process off; AB_CG_DIR=DIR keeps the profiles there
# as A.callgrind, B.callgrind and N.callgrind).
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/.." && pwd)
old=$(realpath "${1:?OLD_SERVER}")
new=$(realpath "${2:?NEW_SERVER}")
build=${3:-build-bench}
[[ $build = /* ]] || build=$top/$build
tool=$build/tests/integration/server/srv_testtool
load=$build/tests/integration/server/srv_loadclient
rounds=${AB_ROUNDS:-6}
clients=${AB_CONNS:-4}
per_client=${AB_PER_CLIENT:-250}
mode=${AB_MODE:-resume}
tls=${AB_TLS:-1.2}

source "$top/scripts/stack.sh"
stack_init fleetota-tlsab
T=$STACK
pids=()
cleanup() {
	set +e
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null && wait "$p"
	done
	[[ -f $T/nginx/nginx.pid ]] && kill -QUIT "$(cat "$T/nginx/nginx.pid")" 2>/dev/null
	sleep 0.3
	stack_cleanup
}
trap cleanup EXIT
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
# voluntary context switches: the server's waits for the socket (wake-ups)
vcsw() { awk '$1 == "voluntary_ctxt_switches:" { print $2 }' "/proc/$1/status"; }

pg_port=$(stack_free_port)
stack_pg_start "$T/pg" "$pg_port"
pki=$T/pki
stack_pki "$pki" bench-dev
mkdir -p "$T/fx"
"$tool" fixtures "$T/fx" "img:1.0.0:2:65536" >/dev/null
chmod -R a+rX "$T/fx"
(umask 077 && for _ in 1 2 3; do openssl rand -hex 80; done >"$T/tickets.keys")
ports=()
for name in a b; do
	port=$(stack_free_port)
	ports+=("$port")
	stack_server_conf "$T/$name.conf" "$pki" "$T/pg" "$pg_port" "$port" "$T/fx/store" \
		rate_per_sec=1000000 rate_burst=1000000 "device_ticket_keys=$T/tickets.keys" \
		device_max_conns=7000 device_max_conns_per_peer=7000 log_level=warn
done
OTA_SERVER=$old
"$OTA_SERVER" migrate --config "$T/a.conf" >/dev/null 2>&1
psql_() { psql "host=$T/pg port=$pg_port dbname=fleetota user=postgres" -qAt "$@"; }
psql_ -f "$T/fx/trust.sql"
psql_ -f "$T/fx/img.sql"
psql_ -c "INSERT INTO devices (device_id) VALUES ('bench-dev');
	INSERT INTO assignments (device_id, artifact_id, notified_at) VALUES ('bench-dev', 'img', now())"
STACK_SERVER_ENV=(setsid) # a session of its own, as in bench/run.sh
if [[ ${AB_CALLGRIND:-0} == 1 ]]; then
	for name in a b; do
		bin=$old
		[[ $name == a ]] || bin=$new
		printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s "%s" "$@"\n' \
			"$T/$name.cg" "$bin" >"$T/$name.sh"
		chmod +x "$T/$name.sh"
	done
	old=$T/a.sh new=$T/b.sh
fi
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$ready_port") 2>/dev/null; }
ready_port=${ports[0]}
OTA_SERVER=$old STACK_SERVER_READY=listening stack_server_start "$T/a.conf" "$T/a.log"
pids+=("$STACK_SERVER_PID")
ready_port=${ports[1]}
OTA_SERVER=$new STACK_SERVER_READY=listening stack_server_start "$T/b.conf" "$T/b.log"
pids+=("$STACK_SERVER_PID")
STACK_SERVER_PID=

ngx_port=$(stack_free_port)
mkdir -p "$T/nginx/www/v1/manifests" "$T/nginx/tmp"
cp "$T/fx/img.manifest" "$T/nginx/www/v1/manifests/img"
chmod -R a+rX "$T/nginx"
cat >"$T/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 1000000;
	client_body_temp_path $T/nginx/tmp;
	proxy_temp_path $T/nginx/tmp;
	fastcgi_temp_path $T/nginx/tmp;
	uwsgi_temp_path $T/nginx/tmp;
	scgi_temp_path $T/nginx/tmp;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$ngx_port ssl;
		ssl_certificate $pki/server.crt;
		ssl_certificate_key $pki/server.key;
		ssl_client_certificate $pki/device-ca.crt;
		ssl_verify_client on;
		ssl_protocols TLSv1.2 TLSv1.3;
		root $T/nginx/www;
	}
}
CONF
if [[ ${AB_CALLGRIND:-0} == 1 ]]; then
	# one process, in the foreground, under callgrind
	valgrind --tool=callgrind --callgrind-out-file="$T/n.cg" nginx -p "$T/nginx" \
		-c "$T/nginx/nginx.conf" -g "daemon off; master_process off;" 2>"$T/nginx/vg.log" &
	ngx_pid=$!
	pids+=("$ngx_pid")
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$ngx_port") 2>/dev/null && break
		sleep 0.1
	done
else
	nginx -p "$T/nginx" -c "$T/nginx/nginx.conf"
	sleep 0.5
	ngx_pid=$(pgrep -P "$(cat "$T/nginx/nginx.pid")" | head -1)
fi
names=(A B N)
srv_pids=("${pids[0]}" "${pids[1]}" "$ngx_pid")
srv_ports=("${ports[0]}" "${ports[1]}" "$ngx_port")

# measure I: one run of server I; prints "µs_user µs_sys µs_total cps"
measure() {
	local i=$1 u0 s0 u1 s1 out conns v0 v1
	v0=$(vcsw "${srv_pids[i]}")
	read -r u0 s0 < <(cpu_ticks "${srv_pids[i]}")
	out=$("$load" 127.0.0.1 "${srv_ports[i]}" "$pki/server-ca.crt" "$pki/devices/bench-dev.crt" \
		"$pki/devices/bench-dev.key" /v1/manifests/img "$clients" "$per_client" 0 "$mode" "$tls")
	read -r u1 s1 < <(cpu_ticks "${srv_pids[i]}")
	v1=$(vcsw "${srv_pids[i]}")
	conns=$(sed -E 's/.* conns=([0-9]+).*/\1/' <<<"$out")
	[[ $out == *" s4xx=0 "* && $out == *" s5xx=0 "* && $conns -gt 0 ]] ||
		{ echo "tls_ab: ${names[i]} failed: $out" >&2; exit 1; }
	echo "$(calc "($u1 - $u0) / $clk * 1e6 / $conns") $(calc "($s1 - $s0) / $clk * 1e6 / $conns")" \
		"$(calc "($u1 - $u0 + $s1 - $s0) / $clk * 1e6 / $conns")" \
		"$(sed -E 's/.* cps=([0-9.]+).*/\1/' <<<"$out")" \
		"$(sed -E 's/.* resumed=([0-9]+).*/\1/' <<<"$out")/$conns" "$(calc "($v1 - $v0) / $conns")"
}
if [[ ${AB_CALLGRIND:-0} == 1 ]]; then
	for i in 0 1 2; do
		"$load" 127.0.0.1 "${srv_ports[i]}" "$pki/server-ca.crt" "$pki/devices/bench-dev.crt" \
			"$pki/devices/bench-dev.key" /v1/manifests/img "$clients" 20 0 "$mode" "$tls" >/dev/null
		callgrind_control -z "${srv_pids[i]}" >/dev/null
		out=$("$load" 127.0.0.1 "${srv_ports[i]}" "$pki/server-ca.crt" "$pki/devices/bench-dev.crt" \
			"$pki/devices/bench-dev.key" /v1/manifests/img "$clients" "$per_client" 0 "$mode" "$tls")
		callgrind_control -d "${srv_pids[i]}" >/dev/null
		conns=$(sed -E 's/.* conns=([0-9]+).*/\1/' <<<"$out")
		f=$(ls -t "$T/${names[i],,}.cg"* | grep -v '\.cg$' | head -1)
		ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$f")
		[[ -z ${AB_CG_DIR:-} ]] || cp "$f" "$AB_CG_DIR/${names[i]}.callgrind" # for callgrind_annotate
		echo "tls_ab: ${names[i]} TLS $tls $mode: $(calc "$ir / $conns / 1000") thousand instructions per connection ($conns connections, $(sed -E 's/.* resumed=([0-9]+).*/\1/' <<<"$out") resumed)"
	done
	exit 0
fi
echo "tls_ab: TLS $tls $mode, $clients clients x $per_client connections; A=$old B=$new N=nginx; load $(cut -d' ' -f1-3 /proc/loadavg)"
# warm-up: every server's first handshakes (key decoders, caches)
for i in 0 1 2; do
	"$load" 127.0.0.1 "${srv_ports[i]}" "$pki/server-ca.crt" "$pki/devices/bench-dev.crt" \
		"$pki/devices/bench-dev.key" /v1/manifests/img "$clients" 20 0 "$mode" "$tls" >/dev/null
done
r_ab=() r_nb=() w_ab=() w_nb=()
for ((r = 0; r < rounds; r++)); do
	declare -A tot=() cps=()
	for k in 0 1 2; do
		i=$(((r + k) % 3))
		read -r us ss ts c res vc < <(measure "$i")
		tot[$i]=$ts cps[$i]=$c
		printf 'round %d %s: user %7.1f sys %7.1f total %7.1f us/conn, %7.1f conn/s, resumed %s, %s wake-ups/conn, RSS %s kB, load %s\n' \
			"$r" "${names[i]}" "$us" "$ss" "$ts" "$c" "$res" "$vc" \
			"$(awk '$1 == "VmRSS:" { print $2 }' "/proc/${srv_pids[i]}/status")" "$(cut -d' ' -f1 /proc/loadavg)"
	done
	r_ab+=("$(calc "${tot[0]} / ${tot[1]}")")
	r_nb+=("$(calc "${tot[2]} / ${tot[1]}")")
	w_ab+=("$(calc "${cps[1]} / ${cps[0]}")")
	w_nb+=("$(calc "${cps[1]} / ${cps[2]}")")
	unset tot cps
done
echo "tls_ab: CPU per connection, A / B (above 1: B is cheaper): median $(median "${r_ab[@]}") of ${r_ab[*]}"
echo "tls_ab: CPU per connection, nginx / B (above 1: B is cheaper): median $(median "${r_nb[@]}") of ${r_nb[*]}"
echo "tls_ab: conn/s, B / A: median $(median "${w_ab[@]}"); B / nginx: median $(median "${w_nb[@]}") of ${w_nb[*]}"
