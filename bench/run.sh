#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark (not a test): ota-server's device listener against nginx serving
# the same files with the same certificates (mutual TLS, same device CA),
# on this machine, loopback. Prints MB/s for image delivery and requests/s
# for small manifest requests, and the ratios ota-server / nginx.
#
#   bench/run.sh [BUILD_DIR]      (make bench: BUILD_DIR=build)
# Knobs: BENCH_IMAGE_MB (32), BENCH_SECONDS (8), BENCH_CONNS (4),
#        BENCH_SMALL_CONNS (8)
#
# Both servers run one process/worker (ota-server is one event loop; nginx
# gets worker_processes 1) and the same load client (a C client with the
# device certificate; wrk cannot present client certificates).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
[[ $build = /* ]] || build=$top/$build
server=$build/server/ota-server
tool=$build/tests/integration/server/srv_testtool
load=$build/tests/integration/server/srv_loadclient
for f in "$server" "$tool" "$load"; do
	[[ -x $f ]] || { echo "bench: $f missing (ninja -C $build)" >&2; exit 1; }
done
image_mb=${BENCH_IMAGE_MB:-32}
seconds=${BENCH_SECONDS:-8}
conns=${BENCH_CONNS:-4}
small_conns=${BENCH_SMALL_CONNS:-8}

T=$(mktemp -d /tmp/fleetota-bench.XXXXXX)
chmod 711 "$T"
server_pid=
cleanup() {
	set +e
	[[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid"
	[[ -f $T/nginx/nginx.pid ]] && kill -QUIT "$(cat "$T/nginx/nginx.pid")" 2>/dev/null
	sleep 0.3
	"$top/scripts/pg.sh" stop "$T/pg" >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		(exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return; }
	done
}
pg_port=$(free_port)
srv_port=$(free_port)
ngx_port=$(free_port)
pki=$T/pki

echo "bench: setting up (PKI, PostgreSQL, ${image_mb} MB image)"
"$top/scripts/pki.sh" "$pki" bench-dev >/dev/null
"$top/scripts/pg.sh" start "$T/pg" "$pg_port" fleetota >/dev/null
mkdir -p "$T/fx"
"$tool" fixtures "$T/fx" "img:1.0.0:2:$((image_mb * 1024 * 1024))" >/dev/null
chmod -R a+rX "$T/fx"
cat >"$T/server.conf" <<CONF
db_conninfo = host=$T/pg port=$pg_port dbname=fleetota user=postgres
migrations_dir = $top/migrations
device_listen = 127.0.0.1:$srv_port
tls_cert = $pki/server.crt
tls_key = $pki/server.key
device_ca = $pki/device-ca.crt
store_dir = $T/fx/store
rate_per_sec = 1000000
rate_burst = 1000000
log_level = warn
CONF
"$server" migrate --config "$T/server.conf" >/dev/null 2>&1
psql_() { psql "host=$T/pg port=$pg_port dbname=fleetota user=postgres" -qAt "$@"; }
psql_ -f "$T/fx/trust.sql"
psql_ -f "$T/fx/img.sql"
psql_ -c "INSERT INTO devices (device_id) VALUES ('bench-dev');
	INSERT INTO assignments (device_id, artifact_id, notified_at) VALUES ('bench-dev', 'img', now())"
"$server" --config "$T/server.conf" 2>"$T/server.log" &
server_pid=$!

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

run() { # PORT PATH CONNS
	"$load" 127.0.0.1 "$1" "$pki/server-ca.crt" "$pki/devices/bench-dev.crt" \
		"$pki/devices/bench-dev.key" "$2" "$3" 100000000 "$seconds"
}
field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$2"; }
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
srv_img=$(run "$srv_port" /v1/images/img "$conns"); check ota-server-image "$srv_img"
ngx_img=$(run "$ngx_port" /v1/images/img "$conns"); check nginx-image "$ngx_img"
echo "bench: manifest requests, $small_conns connections, ${seconds}s each"
srv_man=$(run "$srv_port" /v1/manifests/img "$small_conns"); check ota-server-manifest "$srv_man"
ngx_man=$(run "$ngx_port" /v1/manifests/img "$small_conns"); check nginx-manifest "$ngx_man"

printf '\n%-28s %12s %12s %8s\n' "" ota-server nginx ratio
printf '%-28s %12.1f %12.1f %8.2f\n' "image delivery (MB/s)" "$(field MBps "$srv_img")" \
	"$(field MBps "$ngx_img")" "$(awk "BEGIN{print $(field MBps "$srv_img")/$(field MBps "$ngx_img")}")"
printf '%-28s %12.0f %12.0f %8.2f\n' "manifest requests (req/s)" "$(field rps "$srv_man")" \
	"$(field rps "$ngx_man")" "$(awk "BEGIN{print $(field rps "$srv_man")/$(field rps "$ngx_man")}")"
echo "(ota-server checks device, assignment and rate limit in PostgreSQL for every request; nginx serves static files)"
