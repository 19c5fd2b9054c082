#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Image delivery A/B of device_write_gather (not a test): one ota-server
# binary started twice on one stack (the bench's PKI, fixtures and config:
# bench/run.sh), A with the knob off and B with it on, each serving the
# same image for a fixed number of downloads (keep-alive), alternately
# (A B, B A, ...). Per run: the server's user and system CPU per GB served
# (/proc/PID/stat), voluntary context switches per MB, and the MB/s of the
# run (wall clock: noise on a busy machine). At the end the median of the
# per-round ratios A / B of CPU per GB (above 1: B, gathering, is cheaper).
#
#   bench/gather_ab.sh [BUILD_DIR]
#       BUILD_DIR (build-bench) has ota-server, srv_loadclient and srv_testtool
# Knobs: AB_ROUNDS (6), AB_CONNS (4 clients), AB_PER_CLIENT (8 downloads
#        each), AB_IMAGE_MB (32)
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-bench}
[[ $build = /* ]] || build=$top/$build
server=$build/server/ota-server
tool=$build/tests/integration/server/srv_testtool
load=$build/tests/integration/server/srv_loadclient
rounds=${AB_ROUNDS:-6}
clients=${AB_CONNS:-4}
per_client=${AB_PER_CLIENT:-8}
image_mb=${AB_IMAGE_MB:-32}

source "$top/scripts/stack.sh"
stack_init fleetota-gatherab
T=$STACK
pids=()
cleanup() {
	set +e
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null && wait "$p"
	done
	stack_cleanup
}
trap cleanup EXIT
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
vcsw() { awk '$1 == "voluntary_ctxt_switches:" { print $2 }' "/proc/$1/status"; }

pg_port=$(stack_free_port)
stack_pg_start "$T/pg" "$pg_port"
pki=$T/pki
stack_pki "$pki" bench-dev
mkdir -p "$T/fx"
"$tool" fixtures "$T/fx" "img:1.0.0:2:$((image_mb * 1024 * 1024))" >/dev/null
chmod -R a+rX "$T/fx"
ports=()
for name in a b; do
	gather=false
	[[ $name == a ]] || gather=true
	port=$(stack_free_port)
	ports+=("$port")
	stack_server_conf "$T/$name.conf" "$pki" "$T/pg" "$pg_port" "$port" "$T/fx/store" \
		rate_per_sec=1000000 rate_burst=1000000 log_level=info "device_write_gather=$gather"
done
OTA_SERVER=$server
"$OTA_SERVER" migrate --config "$T/a.conf" >/dev/null 2>&1
psql_() { psql "host=$T/pg port=$pg_port dbname=fleetota user=postgres" -qAt "$@"; }
psql_ -f "$T/fx/trust.sql"
psql_ -f "$T/fx/img.sql"
psql_ -c "INSERT INTO devices (device_id) VALUES ('bench-dev');
	INSERT INTO assignments (device_id, artifact_id, notified_at) VALUES ('bench-dev', 'img', now())"
STACK_SERVER_ENV=(setsid) # a session of its own, as in bench/run.sh
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$ready_port") 2>/dev/null; }
for i in 0 1; do
	name=a
	[[ $i == 0 ]] || name=b
	ready_port=${ports[i]}
	STACK_SERVER_READY=listening stack_server_start "$T/$name.conf" "$T/$name.log"
	pids+=("$STACK_SERVER_PID")
	# both serve the same bytes
	curl -s --cacert "$pki/server-ca.crt" --cert "$pki/devices/bench-dev.crt" \
		--key "$pki/devices/bench-dev.key" "https://127.0.0.1:${ports[i]}/v1/images/img" |
		cmp -s - "$T/fx/img.image" || { echo "gather_ab: $name serves other bytes" >&2; exit 1; }
done
STACK_SERVER_PID=
grep -q "TLS records gathered per write" "$T/b.log" || { echo "gather_ab: B does not gather" >&2; exit 1; }
! grep -q "TLS records gathered per write" "$T/a.log" || { echo "gather_ab: A gathers" >&2; exit 1; }
names=(A B)

# measure I: one run of server I; prints "user_s/GB sys_s/GB total_s/GB MB/s wake-ups/MB"
measure() {
	local i=$1 u0 s0 u1 s1 out v0 v1 mb
	v0=$(vcsw "${pids[i]}")
	read -r u0 s0 < <(cpu_ticks "${pids[i]}")
	out=$("$load" 127.0.0.1 "${ports[i]}" "$pki/server-ca.crt" "$pki/devices/bench-dev.crt" \
		"$pki/devices/bench-dev.key" /v1/images/img "$clients" "$per_client" 0 keepalive)
	read -r u1 s1 < <(cpu_ticks "${pids[i]}")
	v1=$(vcsw "${pids[i]}")
	[[ $out == *" s4xx=0 "* && $out == *" s5xx=0 "* && $out == *" errors=0 "* ]] ||
		{ echo "gather_ab: ${names[i]} failed: $out" >&2; exit 1; }
	mb=$(sed -E 's/.* bytes=([0-9]+).*/\1/' <<<"$out")
	mb=$(calc "$mb / 1e6")
	echo "$(calc "($u1 - $u0) / $clk * 1000 / $mb") $(calc "($s1 - $s0) / $clk * 1000 / $mb")" \
		"$(calc "($u1 - $u0 + $s1 - $s0) / $clk * 1000 / $mb")" \
		"$(sed -E 's/.* MBps=([0-9.]+).*/\1/' <<<"$out")" "$(calc "($v1 - $v0) / $mb")"
}
echo "gather_ab: image ${image_mb} MiB, $clients clients x $per_client downloads; A: device_write_gather=false, B: true ($server); load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in 0 1; do # warm-up: the image in the page cache, the servers' first handshakes
	"$load" 127.0.0.1 "${ports[i]}" "$pki/server-ca.crt" "$pki/devices/bench-dev.crt" \
		"$pki/devices/bench-dev.key" /v1/images/img "$clients" 1 0 keepalive >/dev/null
done
r_ab=() r_sys=()
for ((r = 0; r < rounds; r++)); do
	declare -A tot=() sys=()
	for k in 0 1; do
		i=$(((r + k) % 2))
		read -r us ss ts mbps vc < <(measure "$i")
		tot[$i]=$ts sys[$i]=$ss
		printf 'round %d %s: user %6.3f sys %6.3f total %6.3f CPU s/GB, %7.1f MB/s, %s wake-ups/MB, load %s\n' \
			"$r" "${names[i]}" "$us" "$ss" "$ts" "$mbps" "$vc" "$(cut -d' ' -f1 /proc/loadavg)"
	done
	r_ab+=("$(calc "${tot[0]} / ${tot[1]}")")
	r_sys+=("$(calc "${sys[0]} / ${sys[1]}")")
	unset tot sys
done
echo "gather_ab: CPU per GB, A / B (above 1: gathering is cheaper): median $(median "${r_ab[@]}") of ${r_ab[*]}"
echo "gather_ab: system CPU per GB, A / B: median $(median "${r_sys[@]}") of ${r_sys[*]}"
