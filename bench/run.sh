#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark (not a test). Every number is printed next to an anchor measured
# in the same run on the same machine, and the ratio: the ratios are what
# compares across machines (docs/bench.md).
#
#   server   ota-server's device listener against nginx serving the same
#            files with the same certificates (mutual TLS, same device CA),
#            loopback: MB/s for image delivery, requests/s for manifests,
#            connections/s for a new connection per request, TLS 1.3 and
#            1.2, with a full handshake and resuming the previous
#            connection's session (a device reconnecting), each row in two
#            halves, ota-server, nginx, nginx, ota-server; ota-server reads
#            its tickets' keys from a ticket key file, as replicas do
#   device   `ota-agent install` of a bundle with a 256 MiB image (MB/s)
#            against `openssl speed -evp sha256` (16 KiB blocks) and against
#            dd of the same bundle to a new file on the same filesystem with
#            fsync (the I/O floor; twice per round, around the installs;
#            every timed step starts after a `sync`, so none pays for the
#            writeback of another); the same image encrypted (AES-256-GCM,
#            product-line key) against the plain install; `ota-keys sign`
#            of the image into a bundle (one read: hashed as it is written;
#            the image in the page cache, median of three signs a round)
#            against sha256
#   verify   manifest verifications/s through libotaproto (bench/verify.c:
#            envelope decode + ota_manifest_verify against a KeyList),
#            Ed25519 and ECDSA P-256, against `openssl speed` verify/s
#   delta    delta updates against bsdiff and xdelta3 on two real pairs
#            (bench/delta.sh: size %, make time, apply rate against a full
#            install, apply peak memory)
#   rollout  campaign planning rate (tests/integration/rollout/test_scale.sh
#            with BENCH_ROLLOUT_DEVICES rows) against `pgbench -S` tps on a
#            private cluster started by the same scripts/pg.sh
#   fleet    a simulated fleet (bench/fleet.sh: BENCH_FLEET_DEVICES
#            ota-fleet-sim devices against one ota-server, PostgreSQL and
#            mosquitto): registration time and a 1 MiB campaign's time
#            against the goals of issue 19 (60 s and 3 min at 10,000
#            devices), and CPU per install of each process
#
#   bench/run.sh [BUILD_DIR]      (default and make bench: build-bench, a
#                                  release build; run.sh builds what it runs)
# Knobs: BENCH_PARTS ("server device verify delta rollout fleet"; delta's
#        and fleet's own knobs are in bench/delta.sh and bench/fleet.sh;
#        BENCH_FLEET_DEVICES=10000 for the 10k row, default 300), BENCH_IMAGE_MB (32,
#        the served image), BENCH_SECONDS (8), BENCH_CONNS (4),
#        BENCH_SMALL_CONNS (8), BENCH_TLS_SECONDS (5), BENCH_TLS_CONNS (4),
#        BENCH_INSTALL_MB (256), BENCH_DEVICE_ROUNDS (3), BENCH_SPEED_SECONDS
#        (3), BENCH_ROLLOUT_DEVICES (1000000; at least 120000, 0 skips it),
#        BENCH_PGBENCH_SECONDS (5)
#
# Both servers run one process/worker (ota-server is one event loop; nginx
# gets worker_processes 1) and the same load client (a C client with the
# device certificate; wrk cannot present client certificates). Throughput
# rates are wall clock (openssl speed with -elapsed), so a busy machine slows
# the anchors as it slows us; signature verification, pure CPU, is counted
# per CPU second on both sides (openssl's default), which a busy machine
# does not move. The load average is printed.
set -euo pipefail
export LC_ALL=C # decimal points in awk and printf
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-bench}
[[ $build = /* ]] || build=$top/$build
parts=" ${BENCH_PARTS:-server device verify delta rollout fleet} "
want() { [[ $parts == *" $1 "* ]]; }
server=$build/server/ota-server
tool=$build/tests/integration/server/srv_testtool
load=$build/tests/integration/server/srv_loadclient
agent=$build/agent/ota-agent
keys=$build/keyrotate/ota-keys
verify=$build/bench/ota-bench-verify
image_mb=${BENCH_IMAGE_MB:-32}
seconds=${BENCH_SECONDS:-8}
conns=${BENCH_CONNS:-4}
small_conns=${BENCH_SMALL_CONNS:-8}
tls_seconds=${BENCH_TLS_SECONDS:-5}
tls_conns=${BENCH_TLS_CONNS:-4}
install_mb=${BENCH_INSTALL_MB:-256}
device_rounds=${BENCH_DEVICE_ROUNDS:-3}
speed_seconds=${BENCH_SPEED_SECONDS:-3}
rollout_devices=${BENCH_ROLLOUT_DEVICES:-1000000}
pgbench_seconds=${BENCH_PGBENCH_SECONDS:-5}
if ((rollout_devices > 0 && rollout_devices < 120000)); then
	# test_scale.sh expects its 1 % canary stage to exceed the 1000 in flight
	echo "bench: BENCH_ROLLOUT_DEVICES must be 0 or at least 120000" >&2
	exit 2
fi

# Only the programs the bench runs (a release build of every test and fuzz
# target would take longer than the bench).
targets=()
want server && targets+=(server/ota-server tests/integration/server/srv_testtool
	tests/integration/server/srv_loadclient)
want device && targets+=(agent/ota-agent keyrotate/ota-keys)
want verify && targets+=(keyrotate/ota-keys bench/ota-bench-verify)
want delta && targets+=(agent/ota-agent keyrotate/ota-keys)
want fleet && targets+=(server/ota-server keyrotate/ota-keys agent/ota-fleet-sim)
if [[ -f $build/build.ninja && ${#targets[@]} -gt 0 ]]; then
	ninja_out=$(ninja -C "$build" "${targets[@]}" 2>&1) || {
		tail -30 <<<"$ninja_out" >&2
		echo "bench: build failed (ninja -C $build ${targets[*]})" >&2
		exit 1
	}
fi
for t in "${targets[@]}"; do
	[[ -x $build/$t ]] || { echo "bench: $build/$t missing (ninja -C $build)" >&2; exit 1; }
done

# the stack's pieces: scripts/stack.sh, shared with the tests and the demo
source "$top/scripts/stack.sh"
stack_init fleetota-bench
T=$STACK
OTA_SERVER=$server
child_pid=
cleanup() {
	set +e
	[[ -n $child_pid ]] && kill -TERM "$child_pid" 2>/dev/null && wait "$child_pid"
	stack_server_stop
	[[ -f $T/nginx/nginx.pid ]] && kill -QUIT "$(cat "$T/nginx/nginx.pid")" 2>/dev/null
	sleep 0.3
	stack_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { stack_free_port; }
now() { echo "$EPOCHREALTIME"; }
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The summary: one row per measurement (what|ours|anchor name|anchor|ratio).
rows=()
report() { # WHAT OURS ANCHOR_NAME ANCHOR [DIGITS]
	local ratio
	ratio=$(calc "$2 / $4")
	rows+=("$1|$2|$3|$4|$ratio|${5:-1}")
	printf 'bench: %s: %.*f; anchor %s: %.*f; ratio %.3f\n' "$1" "${5:-1}" "$2" "$3" \
		"${5:-1}" "$4" "$ratio"
}

echo "bench: $(nproc) cores, load average $(loadavg) at start; parts:$parts"
if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
	echo "bench: note: the load average is above the core count; wall-clock numbers will be low and noisy"
fi
pg_port=
if want server || want rollout; then
	pg_port=$(free_port)
	stack_pg_start "$T/pg" "$pg_port"
fi

bench_server() {
local tls_rows=()
srv_port=$(free_port)
ngx_port=$(free_port)
pki=$T/pki

echo "bench: server: setting up (PKI, ${image_mb} MB image)"
stack_pki "$pki" bench-dev
mkdir -p "$T/fx"
"$tool" fixtures "$T/fx" "img:1.0.0:2:$((image_mb * 1024 * 1024))" >/dev/null
chmod -R a+rX "$T/fx"
(umask 077 && for _ in 1 2 3; do openssl rand -hex 80; done >"$T/tickets.keys")
stack_server_conf "$T/server.conf" "$pki" "$T/pg" "$pg_port" "$srv_port" "$T/fx/store" \
	rate_per_sec=1000000 \
	rate_burst=1000000 \
	"device_ticket_keys=$T/tickets.keys" \
	device_max_conns=7000 \
	device_max_conns_per_peer=7000 \
	log_level=warn
"$server" migrate --config "$T/server.conf" >/dev/null 2>&1
psql_() { psql "host=$T/pg port=$pg_port dbname=fleetota user=postgres" -qAt "$@"; }
psql_ -f "$T/fx/trust.sql"
psql_ -f "$T/fx/img.sql"
psql_ -c "INSERT INTO devices (device_id) VALUES ('bench-dev');
	INSERT INTO assignments (device_id, artifact_id, notified_at) VALUES ('bench-dev', 'img', now())"
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$srv_port") 2>/dev/null; }
# ota-server in a session of its own, as nginx (a daemon) and a service
# are: with the kernel's autogroup scheduling (sched_autogroup_enabled) a
# session is a scheduling group, and an ota-server in the bench's session
# shared one with the load client, whose threads, woken by its writes,
# preempted it ~15,000 times per GB served (nginx: 350-900; docs/bench.md
# "Image delivery: the bench's scheduling groups"); setsid execs in place
# here (not a group leader), so the PID stays the server's.
STACK_SERVER_ENV=(setsid)
STACK_SERVER_READY=listening stack_server_start "$T/server.conf" "$T/server.log"
server_pid=$STACK_SERVER_PID
[[ $(cat "/proc/$server_pid/comm") == ota-server ]] || { echo "bench: $server_pid is not ota-server" >&2; exit 1; }

# nginx: same files under the same paths, same certificates, client certs required.
store_file=$(ls "$T/fx/store")
mkdir -p "$T/nginx/www/v1/images" "$T/nginx/www/v1/manifests" "$T/nginx/tmp"
ln "$T/fx/store/$store_file" "$T/nginx/www/v1/images/img"
cp "$T/fx/img.manifest" "$T/nginx/www/v1/manifests/img"
chmod -R a+rX "$T/nginx"
cat >"$T/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
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
nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" 2>"$T/nginx/start.err" || {
	cat "$T/nginx/start.err" >&2
	exit 1
}
sleep 0.5
ngx_pid=$(pgrep -P "$(cat "$T/nginx/nginx.pid")" | head -1) # the one worker
[[ -n $ngx_pid ]] || { echo "bench: no nginx worker" >&2; exit 1; }

run() { # PORT PATH CONNS [SECONDS MODE TLS]
	"$load" 127.0.0.1 "$1" "$pki/server-ca.crt" "$pki/devices/bench-dev.crt" \
		"$pki/devices/bench-dev.key" "$2" "$3" 100000000 "${4:-$seconds}" "${5:-keepalive}" \
		"${6:-any}"
}
field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$2"; }
# runcpu PID ARGS...: run ARGS, the server PID's CPU seconds (user + system)
# meanwhile appended as cpu=: what each side spent, which other processes
# on a busy machine do not move as they move wall-clock rates
clk=$(getconf CLK_TCK)
cpu_s() { awk -v t="$clk" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }
runcpu() {
	local pid=$1 c0 out
	shift
	c0=$(cpu_s "$pid")
	out=$(run "$@")
	echo "$out cpu=$(calc "$(cpu_s "$pid") - $c0")"
}
per_cpu() { calc "$(field "$1" "$2") * $(field seconds "$2") / $(field cpu "$2")"; }
# pg_cpu_s: CPU seconds of the PostgreSQL backends alive now (the servers'
# pooled connections), for what the manifest path costs the database
pg_cpu_s() {
	local pid t=0
	for pid in $(pgrep -P "$(head -1 "$T/pg/data/postmaster.pid")"); do
		t=$(calc "$t + $(cpu_s "$pid" 2>/dev/null || echo 0)")
	done
	echo "$t"
}
# runcpu_pg PID ARGS...: runcpu, and the PostgreSQL backends' CPU as pgcpu=
runcpu_pg() {
	local p0 out
	p0=$(pg_cpu_s)
	out=$(runcpu "$@")
	echo "$out pgcpu=$(calc "$(pg_cpu_s) - $p0")"
}
# per_cpu_pg RATE OUTPUT: RATE per CPU second of the server and PostgreSQL
per_cpu_pg() { calc "$(field "$1" "$2") * $(field seconds "$2") / ($(field cpu "$2") + $(field pgcpu "$2"))"; }
check() { # NAME OUTPUT
	local ok errors
	ok=$(field ok2xx "$2")
	errors=$(field errors "$2")
	if [[ $ok == 0 || $(field s4xx "$2") != 0 || $(field s5xx "$2") != 0 ]]; then
		echo "bench: $1 failed: $2" >&2
		exit 1
	fi
	[[ $errors == 0 ]] || echo "bench: note: $1 had $errors connection errors" >&2
}

# Same file through both (a sanity check that they serve identical bytes).
for port in $srv_port $ngx_port; do
	curl -s --cacert "$pki/server-ca.crt" --cert "$pki/devices/bench-dev.crt" \
		--key "$pki/devices/bench-dev.key" "https://127.0.0.1:$port/v1/images/img" |
		cmp -s - "$T/fx/img.image" || { echo "bench: port $port serves other bytes" >&2; exit 1; }
done

echo "bench: image delivery, $conns connections, ${seconds}s each"
srv_img=$(runcpu "$server_pid" "$srv_port" /v1/images/img "$conns"); check ota-server-image "$srv_img"
ngx_img=$(runcpu "$ngx_pid" "$ngx_port" /v1/images/img "$conns"); check nginx-image "$ngx_img"
echo "bench: manifest requests, $small_conns connections, ${seconds}s each"
srv_man=$(runcpu_pg "$server_pid" "$srv_port" /v1/manifests/img "$small_conns"); check ota-server-manifest "$srv_man"
ngx_man=$(runcpu "$ngx_pid" "$ngx_port" /v1/manifests/img "$small_conns"); check nginx-manifest "$ngx_man"
# the same from a second ota-server with manifest_cache = false: one
# PostgreSQL round trip per manifest, the path before the manifest cache
nc_port=$(free_port)
sed "s/^device_listen = .*/device_listen = 127.0.0.1:$nc_port/" "$T/server.conf" >"$T/server-nc.conf"
echo "manifest_cache = false" >>"$T/server-nc.conf"
listening_nc() { (exec 3<>"/dev/tcp/127.0.0.1/$nc_port") 2>/dev/null; }
STACK_SERVER_READY=listening_nc stack_server_start "$T/server-nc.conf" "$T/server-nc.log"
nc_pid=$STACK_SERVER_PID
STACK_SERVER_PID=$server_pid
srv_man_nc=$(runcpu_pg "$nc_pid" "$nc_port" /v1/manifests/img "$small_conns"); check ota-server-manifest-nocache "$srv_man_nc"
STACK_STOP_PID=$nc_pid stack_server_stop

# The TLS rows in two halves, ota-server, nginx, nginx, ota-server (ABBA):
# a load that drifts during a row (one 5 s run scattered by +-15 % even on
# a quiet machine, docs/bench.md) moves both sides alike, and neither
# always runs first after the other's run.
tls_half=$(calc "$tls_seconds / 2")
# merge OUT1 OUT2: the two halves' counts as one line (cps over both)
merge() {
	local k line=""
	for k in conns resumed dirty_closes; do
		line+=" $k=$(($(field "$k" "$1") + $(field "$k" "$2")))"
	done
	line+=" seconds=$(calc "$(field seconds "$1") + $(field seconds "$2")")"
	line+=" cpu=$(calc "$(field cpu "$1") + $(field cpu "$2")")"
	echo "halves$line cps=$(calc "($(field conns "$1") + $(field conns "$2")) / ($(field seconds "$1") + $(field seconds "$2"))")"
}
local v mode out out1 out2 name ours_c anchor_c resumed ours_cpu anchor_cpu h
for v in 1.3 1.2; do
	for mode in full resume; do
		echo "bench: TLS $v, a new connection per request ($mode), $tls_conns clients, ${tls_seconds}s each (two halves, ABBA)"
		out1=$(runcpu "$server_pid" "$srv_port" /v1/manifests/img "$tls_conns" "$tls_half" "$mode" "$v")
		check "ota-server-tls$v-$mode" "$out1"
		for h in 1 2; do
			out=$(runcpu "$ngx_pid" "$ngx_port" /v1/manifests/img "$tls_conns" "$tls_half" "$mode" "$v")
			check "nginx-tls$v-$mode" "$out"
			[[ $h == 2 ]] || out2=$out
		done
		out=$(merge "$out2" "$out")
		anchor_c=$(field cps "$out")
		anchor_cpu=$(per_cpu cps "$out")
		echo "bench:   nginx: $(field conns "$out") connections, $(field resumed "$out") resumed, $(field dirty_closes "$out") closed without close_notify"
		out2=$(runcpu "$server_pid" "$srv_port" /v1/manifests/img "$tls_conns" "$tls_half" "$mode" "$v")
		check "ota-server-tls$v-$mode" "$out2"
		out=$(merge "$out1" "$out2")
		ours_c=$(field cps "$out")
		ours_cpu=$(per_cpu cps "$out")
		resumed=$(field resumed "$out")
		echo "bench:   ota-server: $(field conns "$out") connections, $resumed resumed, $(field dirty_closes "$out") closed without close_notify"
		if [[ $mode == full ]]; then
			name="mTLS new connection, full handshake, TLS $v (conn/s)"
		else
			name="mTLS reconnect with a session, TLS $v (conn/s)"
		fi
		tls_rows+=("$name|$ours_c|$anchor_c" "${name/(conn\/s)/(conn per server CPU s)}|$ours_cpu|$anchor_cpu")
	done
done

report "image delivery, ${conns} conns (MB/s)" "$(field MBps "$srv_img")" \
	"nginx, same files and certificates" "$(field MBps "$ngx_img")"
report "manifest requests, ${small_conns} conns (req/s)" "$(field rps "$srv_man")" \
	"nginx, same files and certificates" "$(field rps "$ngx_man")" 0
report "manifest requests, ${small_conns} conns, no manifest cache (req/s)" "$(field rps "$srv_man_nc")" \
	"nginx, same files and certificates" "$(field rps "$ngx_man")" 0
report "image delivery (MB per server CPU s)" "$(per_cpu MBps "$srv_img")" \
	"nginx, same files and certificates" "$(per_cpu MBps "$ngx_img")"
report "manifest requests (req per server CPU s)" "$(per_cpu rps "$srv_man")" \
	"nginx, same files and certificates" "$(per_cpu rps "$ngx_man")" 0
report "manifest requests (req per server + PostgreSQL CPU s)" "$(per_cpu_pg rps "$srv_man")" \
	"nginx, same files and certificates" "$(per_cpu rps "$ngx_man")" 0
report "manifest requests, no manifest cache (req per server + PostgreSQL CPU s)" \
	"$(per_cpu_pg rps "$srv_man_nc")" "nginx, same files and certificates" "$(per_cpu rps "$ngx_man")" 0
local row
for row in "${tls_rows[@]}"; do
	IFS='|' read -r name ours_c anchor_c <<<"$row"
	report "$name" "$ours_c" "nginx, same files and certificates" "$anchor_c" 0
done
echo "bench: (ota-server checks device, assignment and rate limit for every request, manifests from its manifest cache, images in PostgreSQL; nginx serves static files)"
stack_server_stop
stop_nginx
}

stop_nginx() {
	local pid
	[[ -f $T/nginx/nginx.pid ]] || return 0
	pid=$(cat "$T/nginx/nginx.pid")
	kill -QUIT "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$T/nginx/nginx.pid"
}

# openssl speed, machine-readable; prints the +F line. speed: wall clock
# (-elapsed); speed_cpu: per CPU second of the process (openssl's default).
speed() {
	openssl speed -elapsed -mr -seconds "$speed_seconds" "$@" 2>/dev/null | grep '^+F'
}
speed_cpu() {
	openssl speed -mr -seconds "$speed_seconds" "$@" 2>/dev/null | grep '^+F'
}

# Keys, KeyList and signed manifests for the device and verify parts.
keys_ready=
make_keys() {
	[[ -z $keys_ready ]] || return 0
	mkdir -p "$T/keys"
	(
		cd "$T/keys"
		export OTA_KEYS_AUDIT_LOG=$T/keys/audit.log USER=bench
		"$keys" root-init --out-dir roots -n 1 -k 1 &&
			"$keys" op-new --out op-ed25519 --not-before -1d &&
			"$keys" op-new --out op-p256 --alg p256 --not-before -1d &&
			"$keys" keylist new --out kl.signed --add op-ed25519.pub --add op-p256.pub \
				--key roots/root-1.key --rootlist roots/rootlist-1.signed --finalize
	) >"$T/keys.log" 2>&1 || { cat "$T/keys.log" >&2; exit 1; }
	keys_ready=1
}

sign() { # KEY IMAGE MANIFEST_OUT [BUNDLE_OUT]
	local out=(--manifest-out "$3")
	[[ -z ${4:-} ]] || out=(--bundle-out "$4")
	OTA_KEYS_AUDIT_LOG=$T/keys/audit.log USER=bench timeout 120 "$keys" sign \
		--key "$T/keys/$1.key" --keylist "$T/keys/kl.signed" \
		--rootlist "$T/keys/roots/rootlist-1.signed" --image "$2" --product bench \
		--hw-rev A --version 1.0.0 --version-code 1 "${out[@]}" \
		${ENCRYPT_TO:+--encrypt-to "$ENCRYPT_TO"} >>"$T/keys.log" 2>&1 ||
		{ cat "$T/keys.log" >&2; exit 1; }
}

# CPU seconds (user + system) of this shell's finished children so far
# (`times` runs in this shell, not in a subshell that has no children)
children_cpu() {
	times >"$T/times"
	tail -1 "$T/times" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }'
}

# settle: what earlier steps wrote reaches the disk before the next timed
# step (sync; the removed copies' blocks are discarded at their unlink on
# this ext4), so no step pays for another's writeback: the lead's quiet run
# of 2 Dec 18:58 had dd + fsync at 231-297 MB/s right after the sign and
# the installs, against 650-1 700 MB/s for the same dd typed by hand after.
settle() { sync; }

# dd_rate BUNDLE [BS]: dd of the bundle to a new file on the same
# filesystem with fsync, in BS writes (1M; MB/s; the file is removed
# after, outside the timing)
dd_rate() {
	local t0 t1 bytes
	bytes=$(stat -c %s "$1")
	rm -f "$T/dev/copy"
	settle
	t0=$(now)
	dd if="$1" of="$T/dev/copy" bs="${2:-1M}" conv=fsync status=none
	t1=$(now)
	rm -f "$T/dev/copy"
	calc "$bytes / ($t1 - $t0) / 1e6"
}

# install_rate BUNDLE BYTES: one `ota-agent install` on a fresh device:
# "MB/s MB/CPU-s" (wall clock, and per CPU second: a busy machine does not move the latter)
install_rate() {
	local t0 t1 out
	rm -rf "$T/dev/state"
	"$agent" provision --config "$T/dev/agent.conf" --rootlist "$T/keys/roots/rootlist-1.signed" \
		--keylist "$T/keys/kl.signed" >/dev/null
	local cpu0 cpu1
	settle
	children_cpu >"$T/cpu0"
	t0=$(now)
	out=$(timeout 120 "$agent" install "$1" --config "$T/dev/agent.conf") || {
		echo "bench: ota-agent install failed: $out" >&2
		exit 1
	}
	t1=$(now)
	children_cpu >"$T/cpu1"
	cpu0=$(cat "$T/cpu0")
	cpu1=$(cat "$T/cpu1")
	[[ $out == pending:* ]] || { echo "bench: ota-agent install: $out" >&2; exit 1; }
	rm -rf "$T/dev/state"
	echo "$(calc "$2 / ($t1 - $t0) / 1e6") $(calc "$2 / ($cpu1 - $cpu0 + 0.001) / 1e6")"
}

# shellcheck source=bench/delta.sh
source "$top/bench/delta.sh"


bench_device() {
	local img=$T/dev/image bundle=$T/dev/image.otab bytes t0 t1
	make_keys
	mkdir -p "$T/dev"
	bytes=$((install_mb * 1024 * 1024))
	echo "bench: device: ${install_mb} MiB image (random bytes), sign, install, anchors;" \
		"$device_rounds interleaved rounds, medians (load $(loadavg))"
	openssl rand -out "$img" "$bytes"
	"$keys" enc-key-new --out "$T/dev/product" >/dev/null
	ENCRYPT_TO=$T/dev/product.pub sign op-ed25519 "$img" "" "$T/dev/image-enc.otab"
	cat >"$T/dev/agent.conf" <<CONF
state_dir = $T/dev/state
device_id = bench-dev
model = bench
hw_revision = A
slot_size = $bytes
decrypt_key = $T/dev/product.key
CONF
	# Each round: both anchors, sign, the plain and the encrypted install,
	# one after the other, so that a busy machine hits all of them alike;
	# the medians over the rounds are reported.
	local sha=() dd=() signs=() plain=() plain_cpu=() enc=() enc_cpu=() r c dd64
	for ((round = 1; round <= device_rounds; round++)); do
		r=$(speed -evp sha256 -bytes 16384 | cut -d: -f4)
		sha+=("$(calc "$r / 1e6")")
		# sign: the image in the page cache, as on a build host that signs
		# what it just built (the anchor hashes memory too), read once
		# here so that no round depends on what the installs evicted;
		# three signs, the round's median (one sign is ~0.3 s quiet)
		cat "$img" >/dev/null
		local one=()
		for _ in 1 2 3; do
			rm -f "$bundle"
			settle
			t0=$(now)
			sign op-ed25519 "$img" "" "$bundle"
			t1=$(now)
			one+=("$(calc "$bytes / ($t1 - $t0) / 1e6")")
		done
		signs+=("$(median "${one[@]}")")
		# the I/O floor: the same bundle copied to a new file on the same
		# filesystem, fsync'd, under the installs' conditions (everything
		# earlier on the disk first, the bundle in the page cache), once
		# before and once after the installs: median of 2 per round
		dd+=("$(dd_rate "$bundle")")
		# plain and encrypted in ABBA order over the rounds: the first of
		# a pair pays for the page cache the other left behind
		for kind in $( ((round % 2)) && echo plain enc || echo enc plain); do
			if [[ $kind == plain ]]; then
				read -r r c <<<"$(install_rate "$bundle" "$bytes")"
				plain+=("$r") plain_cpu+=("$c")
			else
				read -r r c <<<"$(install_rate "$T/dev/image-enc.otab" "$bytes")"
				enc+=("$r") enc_cpu+=("$c")
			fi
		done
		dd+=("$(dd_rate "$bundle")")
		# for information: the same in the slot writer's 64 KiB writes (on
		# the development VM 1 MiB writes take large folios, whose kernel
		# time moves between runs: docs/bench.md, "Device side, fifth round")
		dd64=$(dd_rate "$bundle" 64K)
		echo "bench: device round $round (load $(loadavg)): sha256 ${sha[-1]}, dd+fsync ${dd[-2]} ${dd[-1]} (bs=64K $dd64)," \
			"install ${plain[-1]} (${plain_cpu[-1]}/CPU s), encrypted ${enc[-1]}, sign ${signs[-1]} MB/s" \
			"(${one[*]})"
	done
	rm -f "$T/dev/image-enc.otab" "$img" "$bundle"

	local sha_mbps dd_mbps install_mbps install_cpu enc_mbps enc_cpu sign_mbps slower
	sha_mbps=$(median "${sha[@]}") dd_mbps=$(median "${dd[@]}")
	install_mbps=$(median "${plain[@]}") install_cpu=$(median "${plain_cpu[@]}")
	enc_mbps=$(median "${enc[@]}") enc_cpu=$(median "${enc_cpu[@]}")
	sign_mbps=$(median "${signs[@]}")
	slower=$(calc "($sha_mbps < $dd_mbps) ? $sha_mbps : $dd_mbps")
	report "ota-agent install ${install_mb} MiB (MB/s)" "$install_mbps" \
		"openssl sha256, 16 KiB blocks" "$sha_mbps"
	report "ota-agent install ${install_mb} MiB (MB/s)" "$install_mbps" \
		"dd of the bundle + fsync" "$dd_mbps"
	report "ota-agent install ${install_mb} MiB (MB/s), goal 0.9" "$install_mbps" \
		"the slower of sha256 and dd" "$slower"
	report "ota-agent install ${install_mb} MiB encrypted (MB/s)" "$enc_mbps" \
		"the same install, plain" "$install_mbps"
	report "ota-agent install ${install_mb} MiB encrypted (MB/CPU s)" "$enc_cpu" \
		"the same install, plain" "$install_cpu"
	report "ota-keys sign ${install_mb} MiB (MB/s), goal 0.45" "$sign_mbps" \
		"openssl sha256, 16 KiB blocks" "$sha_mbps"
}

bench_verify() {
	local alg line ours anchor openssl_alg col
	make_keys
	mkdir -p "$T/ver"
	head -c 4096 /dev/urandom >"$T/ver/image"
	for alg in ed25519 p256; do
		sign "op-$alg" "$T/ver/image" "$T/ver/$alg.manifest"
		line=$("$verify" "$T/keys/roots/rootlist-1.signed" "$T/keys/kl.signed" \
			"$T/ver/$alg.manifest" "$speed_seconds") || exit 1
		[[ $line == "alg=$alg "* ]] || { echo "bench: verify: $line" >&2; exit 1; }
		ours=$(sed -E 's/.* cpu_rate=([0-9.]+).*/\1/' <<<"$line")
		if [[ $alg == ed25519 ]]; then
			openssl_alg=ed25519 col=6 # +F6:n:bits:Ed25519:sign/s:verify/s
		else
			openssl_alg=ecdsap256 col=5 # +F4:n:bits:sign/s:verify/s
		fi
		anchor=$(speed_cpu "$openssl_alg" | cut -d: -f$col)
		report "manifest verify, $alg (/CPU s)" "$ours" "openssl speed $openssl_alg verify" \
			"$anchor" 0
	done
}

bench_rollout() {
	local out planned ms tps
	echo "bench: rollout: planning over $rollout_devices devices (test_scale.sh), pgbench -S"
	ROLLOUT_SCALE_DEVICES=$rollout_devices ROLLOUT_SCALE_FULL=1 timeout 900 \
		bash "$top/tests/integration/rollout/test_scale.sh" "$top" >"$T/rollout.log" 2>&1 &
	child_pid=$!
	wait "$child_pid" || {
		child_pid=
		tail -20 "$T/rollout.log" >&2
		echo "bench: rollout scale test failed" >&2
		exit 1
	}
	child_pid=
	out=$(grep -E '^ +planning [0-9]+ devices: [0-9]+ ms' "$T/rollout.log") || {
		cat "$T/rollout.log" >&2
		exit 1
	}
	planned=$(sed -E 's/ +planning ([0-9]+) devices.*/\1/' <<<"$out")
	ms=$(sed -E 's/.*devices: ([0-9]+) ms.*/\1/' <<<"$out")

	psql "host=$T/pg port=$pg_port dbname=fleetota user=postgres" -qAt \
		-c "CREATE DATABASE pgbench"
	local pgb=(-h 127.0.0.1 -p "$pg_port" -U postgres)
	pgbench "${pgb[@]}" -i -q -s 1 pgbench >"$T/pgbench.log" 2>&1 ||
		{ cat "$T/pgbench.log" >&2; exit 1; }
	tps=$(pgbench "${pgb[@]}" -n -S -c 2 -j 2 -T "$pgbench_seconds" pgbench 2>&1 |
		sed -nE 's/^tps = ([0-9.]+) .*/\1/p')
	[[ -n $tps ]] || { echo "bench: pgbench gave no tps" >&2; exit 1; }
	report "rollout planning, $planned devices (devices/s)" "$(calc "$planned * 1000 / $ms")" \
		"pgbench -S, 2 clients (tps)" "$tps" 0
}

# The fleet's own stack (bench/fleet.sh): registration and the campaign
# against issue 19's goals for 10,000 devices, CPU per install as lines.
fleet_lines=()
bench_fleet() {
	local n=${BENCH_FLEET_DEVICES:-300} out
	echo "bench: fleet: $n simulated devices (bench/fleet.sh)"
	bash "$top/bench/fleet.sh" "$build" >"$T/fleet.log" 2>&1 &
	child_pid=$!
	wait "$child_pid" || {
		child_pid=
		tail -40 "$T/fleet.log" >&2
		echo "bench: fleet failed" >&2
		exit 1
	}
	child_pid=
	out=$(grep '^fleet: ' "$T/fleet.log")
	echo "$out" | sed 's/^/bench: /'
	fv() { sed -nE "s/.* $1=([0-9.]+).*/\1/p" <<<"$out" | head -1; }
	report "fleet of $n: registration, first connect to all stored (s)" "$(fv registration_s)" \
		"goal at 10,000 devices (s)" 60
	report "fleet of $n: campaign, $(fv image_kb) KiB image, to all confirmed (s)" \
		"$(fv campaign_s)" "goal at 10,000 devices (s)" 180
	fleet_lines+=("fleet of $n: CPU ms per install: simulator $(fv sim), PostgreSQL $(fv pg), ota-server $(fv server), mosquitto $(fv mosquitto); $(fv installs_per_s) installs/s")
}

want server && bench_server
want device && bench_device
want verify && bench_verify
want delta && bench_delta
((rollout_devices == 0)) || ! want rollout || bench_rollout
want fleet && bench_fleet

echo
echo "fleetota bench summary ($(nproc) cores, load average $(loadavg) at end; loopback)"
printf '%-66s %10s   %-34s %10s %7s\n' "measurement" "fleetota" "anchor" "anchor" "ratio"
for row in "${rows[@]}"; do
	IFS='|' read -r what ours anchor_name anchor ratio digits <<<"$row"
	printf '%-66s %10.*f   %-34s %10.*f %7.3f\n' "$what" "$digits" "$ours" "$anchor_name" \
		"$digits" "$anchor" "$ratio"
done
for line in ${fleet_lines[@]+"${fleet_lines[@]}"}; do echo "$line"; done
