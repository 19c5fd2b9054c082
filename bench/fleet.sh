#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The fleet bench (bench/run.sh's "fleet" part; runs alone too):
#   bench/fleet.sh BUILD_DIR
# A simulated fleet of BENCH_FLEET_DEVICES devices (ota-fleet-sim, every
# device with its own certificate, slot files, MQTT session over TLS and
# HTTPS client with mutual TLS) against one ota-server, one PostgreSQL and
# one mosquitto on loopback. Measured:
#   - registration: from the simulators' first MQTT connect (once every
#     process printed "provisioned", the bench creates their --start-file
#     and they all start the ramp) until the server stored every device on
#     1.0.0 (PostgreSQL polled every 0.25 s);
#   - the campaign: one stage to every device, a BENCH_FLEET_IMAGE_KB image
#     (1 MiB), from its start until every device is confirmed;
#   - CPU per install during the campaign, of the simulator, PostgreSQL (all
#     the cluster's processes), ota-server and mosquitto (/proc/PID/stat).
# Knobs: BENCH_FLEET_DEVICES (300), BENCH_FLEET_PER_SIM (devices per
# simulator process, 6000: about 3 descriptors a device, 20,000 allowed), BENCH_FLEET_CONNECT_RATE (500 sessions/s per
# process), BENCH_FLEET_WORKERS (16 per process), BENCH_FLEET_IMAGE_KB
# (1024), BENCH_FLEET_SLOW (share of devices on a slow link, 0),
# BENCH_FLEET_SERVER_CONF (extra ota-server config, space-separated
# key=value pairs, e.g. report_batch_linger_ms=50), BENCH_FLEET_TIMEOUT
# (seconds for registration and for the campaign, each:
# 120 + devices / 10). Diagnostics: BENCH_FLEET_PERF=DIR records each
# simulator with `perf record -g` into DIR (setup-N.data from its start to
# its provisioning, campaign-N.data during the campaign), or with
# BENCH_FLEET_PERF_STAT=EVENTS `perf stat -e EVENTS` (setup-N.stat, ...);
# BENCH_FLEET_SIM=PATH runs another ota-fleet-sim (an A/B of two builds);
# BENCH_FLEET_DIR=DIR puts the devices' files (certificates and keys,
# state directories: about 1.2 MB a device after the campaign) in a temp
# dir under DIR, e.g. /dev/shm (docs/bench.md: what this machine's ext4
# charges per file created);
# BENCH_FLEET_PG_PERF=FILE records the ingest's PostgreSQL backend
# during the campaign with `perf record -g` into FILE;
# BENCH_FLEET_PGSS=1 loads pg_stat_statements and prints the campaign's
# statements by execution time per install, and PostgreSQL's CPU per
# install by process kind (backends of ota-server, walwriter, autovacuum...),
# the BENCH_FLEET_PGSS_ROWS (15) statements of most execution time and the
# functions of most self time (track_functions = all), and the indexes of
# the tables reports write by the index tuples read (the whole run);
# with BENCH_FLEET_PG_EXPLAIN=FILE also auto_explain (nested statements,
# plans of those slower than BENCH_FLEET_PG_EXPLAIN_MS, 1) into FILE (the
# server log; large).
# Also printed for the campaign: the delivery's assignment view (manifests
# and images answered without PostgreSQL, answers prefilled, delivery
# marks written), reports per install and the ingest's
# database calls by reports per call (ota-server's
# fleetota_report_batch_size), and per install for the tables reports
# write: rows inserted, updated, updated HOT, deleted, sequential scans and
# the rows they read, index scans (pg_stat_user_tables).
# Prints "fleet: key=value ..." lines for run.sh, and the simulator's and
# the server's logs on failure. Everything under one temp dir, stopped by
# PID.
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?BUILD_DIR}
[[ $build = /* ]] || build=$top/$build
devices=${BENCH_FLEET_DEVICES:-300}
per_sim=${BENCH_FLEET_PER_SIM:-6000}
rate=${BENCH_FLEET_CONNECT_RATE:-500}
workers=${BENCH_FLEET_WORKERS:-16}
image_kb=${BENCH_FLEET_IMAGE_KB:-1024}
slow=${BENCH_FLEET_SLOW:-0}
perf_dir=${BENCH_FLEET_PERF:-}
fleet_base=${BENCH_FLEET_DIR:-}
pgss=${BENCH_FLEET_PGSS:-0}
pgss_rows=${BENCH_FLEET_PGSS_ROWS:-15}
limit=${BENCH_FLEET_TIMEOUT:-$((120 + devices / 10))}
[[ $devices =~ ^[0-9]+$ ]] && ((devices >= 10 && devices <= 20000)) ||
	{ echo "fleet: BENCH_FLEET_DEVICES must be 10..20000" >&2; exit 2; }
[[ $pgss_rows =~ ^[0-9]+$ ]] && ((pgss_rows >= 1 && pgss_rows <= 500)) ||
	{ echo "fleet: BENCH_FLEET_PGSS_ROWS must be 1..500" >&2; exit 2; }
[[ $per_sim =~ ^[0-9]+$ ]] && ((per_sim >= 100)) ||
	{ echo "fleet: BENCH_FLEET_PER_SIM must be at least 100" >&2; exit 2; }
server=$build/server/ota-server
keys=$build/keyrotate/ota-keys
sim=${BENCH_FLEET_SIM:-$build/agent/ota-fleet-sim}
for b in "$server" "$keys" "$sim"; do
	[[ -x $b ]] || { echo "fleet: $b missing (ninja -C $build)" >&2; exit 1; }
done

source "$top/scripts/stack.sh"
stack_init fleetota-bench-fleet
T=$STACK
OTA_SERVER=$server
sim_pids=()
fleet_dir=
perf_pids=()
ok=0
perf_stop() {
	local p
	for p in "${perf_pids[@]}"; do kill -INT "$p" 2>/dev/null; done
	for p in "${perf_pids[@]}"; do wait "$p" 2>/dev/null || :; done
	perf_pids=()
}
# perf_start NAME: perf record -g of every simulator into perf_dir/NAME-N.data
perf_start() {
	[[ -n $perf_dir ]] || return 0
	local i
	mkdir -p "$perf_dir"
	for i in "${!sim_pids[@]}"; do
		if [[ -n ${BENCH_FLEET_PERF_STAT:-} ]]; then
			perf stat -e "$BENCH_FLEET_PERF_STAT" -p "${sim_pids[$i]}" -o "$perf_dir/$1-$i.stat" \
				>/dev/null 2>&1 &
		else
			perf record -q -g -F 499 -p "${sim_pids[$i]}" -o "$perf_dir/$1-$i.data" \
				>/dev/null 2>&1 &
		fi
		perf_pids+=($!)
	done
}
cleanup() {
	set +e
	local p
	perf_stop
	for p in "${sim_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${sim_pids[@]}"; do wait "$p" 2>/dev/null; done
	if ((ok == 0)); then
		echo "---- simulator (tail)" >&2
		tail -15 "$T"/fleet-*.log >&2 2>/dev/null
		echo "---- ota-server (tail)" >&2
		tail -15 "$T/server.log" >&2 2>/dev/null
	fi
	stack_server_stop TERM 10
	[[ -z ${BENCH_FLEET_PG_EXPLAIN:-} ]] || cp "$T/pg/postgres.log" "$BENCH_FLEET_PG_EXPLAIN"
	stack_cleanup
	[[ -z $fleet_dir ]] || rm -rf "$fleet_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
	echo "fleet: $*" >&2
	exit 1
}
now() { echo "$EPOCHREALTIME"; }
calc() { awk "BEGIN { printf \"%.12g\", $1 }"; }
clk=$(getconf CLK_TCK)
cpu_s() { awk -v t="$clk" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# cpu_sum PID...: their CPU seconds
cpu_sum() {
	local p t=0
	for p in "$@"; do t=$(calc "$t + $(cpu_s "$p")"); done
	echo "$t"
}
# pg_kinds: "PID KIND CPU_S" for every process of the cluster; KIND is the
# backend type, for client backends with their application_name
pg_kinds() {
	local pid kind
	sql "SELECT pid, CASE WHEN backend_type = 'client backend'
		THEN 'backend:' || coalesce(nullif(application_name, ''), '-')
		ELSE replace(backend_type, ' ', '_') END FROM pg_stat_activity" |
		while IFS='|' read -r pid kind; do echo "$pid $kind $(cpu_s "$pid")"; done
	echo "$(head -1 "$T/pg/data/postmaster.pid") postmaster $(cpu_s "$(head -1 "$T/pg/data/postmaster.pid")")"
}
# server_metrics: "NAME VALUE" of ota-server's report counters
server_metrics() {
	api "$api/metrics" |
		awk '/^fleetota_(reports_received_total|report_batch_size|manifest_cache_|image_cache_|delivery_marks_)/ { print $1, $2 }'
}
# table_stats: "TABLE INS UPD HOT_UPD DEL SEQ_SCANS SEQ_ROWS IDX_SCANS" of
# the tables reports write
# (the statistics collector's counters, flushed by the backends within ~1 s)
table_stats() {
	sql "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, seq_scan, seq_tup_read,
		coalesce(idx_scan, 0) FROM pg_stat_user_tables
		WHERE relname IN ('devices', 'device_events', 'assignments', 'campaign_devices',
		                  'delivery_changes', 'delivery_version', 'security_events',
		                  'rollout_notifications', 'campaigns', 'campaign_stages')
		ORDER BY relname" | tr '|' ' '
}
pg_pids() {
	local pm
	pm=$(head -1 "$T/pg/data/postmaster.pid")
	echo "$pm" $(pgrep -P "$pm")
}

pg_port=$(stack_free_port)
mq_port=$(stack_free_port)
dev_port=$(stack_free_port)
api_port=$(stack_free_port)
api=http://127.0.0.1:$api_port
pki=$T/pki
k=$T/keys
mkdir -p "$k" "$T/store"
stack_pki "$pki"
F=$T
if [[ -n $fleet_base ]]; then
	fleet_dir=$(mktemp -d "$fleet_base/fleetota-bench-fleet-files.XXXXXX")
	F=$fleet_dir
	mkdir -p "$F/devices"
	rm -rf "$pki/devices"
	ln -s "$F/devices" "$pki/devices"
fi
stack_pg_start "$T/pg" "$pg_port"
if ((pgss)); then
	psql "host=$T/pg port=$pg_port dbname=fleetota user=postgres" -qAt \
		-c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'${BENCH_FLEET_PG_EXPLAIN:+, 'auto_explain'}" >/dev/null
	"$top/scripts/pg.sh" stop "$T/pg" >/dev/null
	stack_pg_start "$T/pg" "$pg_port"
	psql "host=$T/pg port=$pg_port dbname=fleetota user=postgres" -qAt \
		-c "CREATE EXTENSION pg_stat_statements" \
		-c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c "ALTER SYSTEM SET track_functions = 'all'" \
		-c "SELECT pg_reload_conf()" >/dev/null
	if [[ -n ${BENCH_FLEET_PG_EXPLAIN:-} ]]; then
		psql "host=$T/pg port=$pg_port dbname=fleetota user=postgres" -qAt \
			-c "ALTER SYSTEM SET auto_explain.log_min_duration = '${BENCH_FLEET_PG_EXPLAIN_MS:-1}ms'" \
			-c "ALTER SYSTEM SET auto_explain.log_nested_statements = on" \
			-c "SELECT pg_reload_conf()" >/dev/null
	fi
fi
stack_broker_start "$T/mq" "$mq_port" "$pki"
stack_server_conf "$T/server.conf" "$pki" "$T/pg" "$pg_port" "$dev_port" "$T/store" \
	"mqtt=$mq_port" "admin_listen=127.0.0.1:$api_port" log_level=info ${BENCH_FLEET_SERVER_CONF:-}
"$server" migrate --config "$T/server.conf" >"$T/migrate.log" 2>&1 || fail "migrate: $(tail -3 "$T/migrate.log")"
export OTA_ROLLOUT_TICK_MS=500
stack_server_start "$T/server.conf" "$T/server.log"
server_pid=$STACK_SERVER_PID
mq_pid=$(cat "$T/mq/mosquitto.pid")
token=$("$server" token create --role admin --name bench --config "$T/server.conf" 2>>"$T/server.log")
api() { curl --fail-with-body -sS -H "Authorization: Bearer $token" "$@"; }
upload() { api -H 'Content-Type: application/octet-stream' --data-binary @"$2" "$api$1" >/dev/null; }
sql() { psql "host=$T/pg port=$pg_port dbname=fleetota user=postgres" -qAt -c "$1"; }

export OTA_KEYS_AUDIT_LOG=$k/audit.log
(
	cd "$k"
	"$keys" root-init --out-dir roots -n 1 -k 1 >/dev/null
	"$keys" op-new --out op >/dev/null
	"$keys" keylist new --out kl.signed --add op.pub --rootlist roots/rootlist-1.signed \
		--key roots/root-1.key --finalize >/dev/null
	# the factory image is small (provisioning writes it to every device)
	for v in 1.0.0:100:1:16 1.1.0:110:2:$image_kb; do
		IFS=: read -r ver code counter kb <<<"$v"
		head -c $((kb * 1024)) /dev/urandom >"fw-$ver.img"
		"$keys" sign --key op.key --keylist kl.signed --rootlist roots/rootlist-1.signed \
			--image "fw-$ver.img" --product fx-model --version "$ver" --version-code "$code" \
			--security-counter "$counter" --min-installed 0 --security-update \
			--bundle-out "fw-$ver.otab" >/dev/null
	done
) || fail "ota-keys"
upload /api/v1/rootlists "$k/roots/rootlist-1.signed"
upload /api/v1/keylists "$k/kl.signed"
upload "/api/v1/artifacts?id=fw-1.1.0" "$k/fw-1.1.0.otab"

nsim=$(((devices + per_sim - 1) / per_sim))
slot=$(((image_kb * 1024 + 65536 + 4095) / 4096 * 4096))
t_sim=$(now)
for ((i = 0; i < nsim; i++)); do
	first=$((i * per_sim))
	count=$((devices - first < per_sim ? devices - first : per_sim))
	"$sim" --devices "$count" --first "$first" --prefix dev- --pki "$pki" --state-dir "$F/fleet" \
		--server "https://127.0.0.1:$dev_port" --broker "ssl://127.0.0.1:$mq_port" \
		--rootlist "$k/roots/rootlist-1.signed" --keylist "$k/kl.signed" \
		--image "$k/fw-1.0.0.otab" --slot-size "$slot" --workers "$workers" \
		--connect-rate "$rate" --progress 10 --seed $((i + 1)) --slow "$slow" --slow-rate 65536 \
		--summary-json "$T/summary-$i.json" --start-file "$T/start" >"$T/fleet-$i.log" 2>&1 &
	sim_pids+=($!)
done
perf_start setup
alive() {
	local p
	for p in "${sim_pids[@]}"; do kill -0 "$p" 2>/dev/null || fail "ota-fleet-sim $p exited"; done
}

# registration: every process provisioned, then all start their sessions
# at once (--start-file) until every device is stored
deadline=$(calc "$(now) + $limit + 300")
until (($(cat "$T"/fleet-*.log | grep -c "devices provisioned in") == nsim)); do
	alive
	awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }' && fail "provisioning took too long"
	sleep 0.25
done
perf_stop
touch "$T/start"
t_ramp=$(now)
deadline=$(calc "$t_ramp + $limit")
while (($(sql "SELECT count(*) FROM devices WHERE version = '1.0.0'") < devices)); do
	alive
	awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }' &&
		fail "registration: $(sql "SELECT count(*) FROM devices") of $devices after ${limit} s"
	sleep 0.25
done
t_reg=$(now)
registration_s=$(calc "$t_reg - $t_ramp")
ids_s=$(grep -h "identities ready in" "$T"/fleet-*.log | sed -E 's/.* in ([0-9.]+) s/\1/' | sort -g | tail -1)
prov_s=$(grep -h "devices provisioned in" "$T"/fleet-*.log | sed -E 's/.* in ([0-9.]+) s.*/\1/' | sort -g | tail -1)
echo "fleet: devices=$devices processes=$nsim identities_s=$ids_s provisioned_s=$prov_s registration_s=$registration_s"

# the campaign: CPU of every side from its start to the last confirmation
sim_cpu0=$(cpu_sum "${sim_pids[@]}")
pg_cpu0=$(cpu_sum $(pg_pids))
srv_cpu0=$(cpu_s "$server_pid")
mq_cpu0=$(cpu_s "$mq_pid")
pg_kinds >"$T/pg-kinds-0"
((pgss == 0)) || sql "SELECT pg_stat_statements_reset(), pg_stat_reset()" >/dev/null
server_metrics >"$T/metrics-0"
table_stats >"$T/tables-0"
perf_start campaign
# BENCH_FLEET_PG_PERF=FILE: perf record -g of the ingest's PostgreSQL backend
if [[ -n ${BENCH_FLEET_PG_PERF:-} ]]; then
	ingest_pid=$(sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'ota-server-ingest' LIMIT 1")
	if [[ -n $ingest_pid ]]; then
		perf record -q -g -F 999 -p "$ingest_pid" -o "$BENCH_FLEET_PG_PERF" >/dev/null 2>&1 &
		perf_pids+=($!)
	fi
fi
api -H 'Content-Type: application/json' -d "{\"id\": \"bench\", \"artifact\": \"fw-1.1.0\",
	\"stages\": [{\"percent\": 100, \"failure_ratio\": 0.5}],
	\"rate_per_minute\": $((devices * 60 > 6000 ? devices * 60 : 6000)),
	\"device_timeout_seconds\": $limit}" "$api/api/v1/campaigns" >/dev/null
t_start=$(now)
api -X POST "$api/api/v1/campaigns/bench/start" >/dev/null
deadline=$(calc "$t_start + $limit")
while :; do
	done_n=$(sql "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'bench' AND state = 'confirmed'")
	((done_n < devices)) || break
	alive
	awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }' &&
		fail "campaign: $done_n of $devices confirmed after ${limit} s: $(sql "SELECT state, count(*) FROM campaign_devices GROUP BY 1" | tr '\n' ' ')"
	sleep 0.25
done
t_end=$(now)
perf_stop
campaign_s=$(calc "$t_end - $t_start")
pg_kinds >"$T/pg-kinds-1"
server_metrics >"$T/metrics-1"
table_stats >"$T/tables-1"
per() { calc "($1 - $2) * 1000 / $devices"; }
sim_ms=$(per "$(cpu_sum "${sim_pids[@]}")" "$sim_cpu0")
pg_ms=$(per "$(cpu_sum $(pg_pids))" "$pg_cpu0")
srv_ms=$(per "$(cpu_s "$server_pid")" "$srv_cpu0")
mq_ms=$(per "$(cpu_s "$mq_pid")" "$mq_cpu0")
rss_kb=0
for p in "${sim_pids[@]}"; do
	rss_kb=$((rss_kb + $(awk '/^VmHWM/ { print $2 }' "/proc/$p/status")))
done
mq_rss_kb=$(awk '/^VmHWM/ { print $2 }' "/proc/$mq_pid/status")
echo "fleet: campaign_s=$campaign_s installs_per_s=$(calc "$devices / $campaign_s") image_kb=$image_kb"
echo "fleet: cpu_ms_per_install sim=$sim_ms pg=$pg_ms server=$srv_ms mosquitto=$mq_ms"
echo "fleet: peak_rss_mb sim=$((rss_kb / 1024)) mosquitto=$((mq_rss_kb / 1024)) load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
grep -h "all .* sessions connected in" "$T"/fleet-*.log | sed 's/^/fleet: /'
# deadlocks PostgreSQL detected (the whole run) and ingest batches retried
# for one (each stores its batch again)
echo "fleet: deadlocks pg=$(sql "SELECT deadlocks FROM pg_stat_database WHERE datname = 'fleetota'") ingest_retried=$(grep -c 'ingest: batch.*deadlock' "$T/server.log")"
# PostgreSQL's CPU per install by process kind (processes alive at the end;
# one that started during the campaign counts from 0)
awk -v n="$devices" 'NR == FNR { c0[$1] = $3; next }
	{ k[$2] += $3 - ($1 in c0 ? c0[$1] : 0) }
	END { printf "fleet: pg_cpu_ms_per_install_by_kind"
		for (x in k) printf " %s=%.2f", x, k[x] * 1000 / n; print "" }' \
	"$T/pg-kinds-0" "$T/pg-kinds-1"
# the reports of the campaign and the database calls that stored them
# (fleetota_report_batch_size: calls by reports per call)
awk -v n="$devices" 'NR == FNR { a[$1] = $2; next } { d[$1] = $2 - a[$1] }
	END { r = d["fleetota_reports_received_total"]; c = d["fleetota_report_batch_size_count"]
		printf "fleet: reports_per_install=%.2f report_calls=%d reports_per_call=%.2f calls_by_size:",
			r / n, c, (c > 0 ? d["fleetota_report_batch_size_sum"] / c : 0)
		prev = 0
		for (i = 1; i <= 256; i *= 2) {
			b = d["fleetota_report_batch_size_bucket{le=\"" i "\"}"]
			printf " <=%d:%d", i, b - prev; prev = b
		}
		print "" }' "$T/metrics-0" "$T/metrics-1"
# the delivery's assignment view during the campaign (docs/scaling.md "The
# manifest cache"): manifests and images answered without PostgreSQL
awk 'NR == FNR { a[$1] = $2; next } { d[$1] = $2 - a[$1] }
	END { printf "fleet: delivery_view manifest_hits=%d manifest_misses=%d prefilled=%d image_hits=%d marks_written=%d marks_dropped=%d flushes=%d\n",
		d["fleetota_manifest_cache_hits_total"], d["fleetota_manifest_cache_misses_total"],
		d["fleetota_manifest_cache_prefilled_total"], d["fleetota_image_cache_hits_total"],
		d["fleetota_delivery_marks_written_total"], d["fleetota_delivery_marks_dropped_total"],
		d["fleetota_manifest_cache_flushes_total"] }' "$T/metrics-0" "$T/metrics-1"
# rows written and scans per install by table (HOT: updates that changed no index)
awk -v n="$devices" 'NR == FNR { for (i = 2; i <= NF; i++) a[$1, i] = $i; next }
	{ printf "fleet: table %s per install: ins=%.2f upd=%.2f hot_upd=%.2f del=%.2f seq_scans=%.2f seq_rows=%.1f idx_scans=%.2f\n", $1,
		($2 - a[$1, 2]) / n, ($3 - a[$1, 3]) / n, ($4 - a[$1, 4]) / n, ($5 - a[$1, 5]) / n,
		($6 - a[$1, 6]) / n, ($7 - a[$1, 7]) / n, ($8 - a[$1, 8]) / n }' \
	"$T/tables-0" "$T/tables-1"
if ((pgss)); then
	echo "fleet: pg_stat_statements during the campaign (ms per install: execution, planning; calls per install):"
	sql "SELECT round((total_exec_time / $devices)::numeric, 3), round((total_plan_time / $devices)::numeric, 3),
		round(calls::numeric / $devices, 2), left(regexp_replace(query, '\\s+', ' ', 'g'), 90)
		FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $pgss_rows" | sed 's/^/fleet:   /'
	echo "fleet: indexes of the tables reports write, the whole run (scans, tuples read per install):"
	sql "SELECT relname, indexrelname, round(idx_scan::numeric / $devices, 2), round(idx_tup_read::numeric / $devices, 1)
		FROM pg_stat_user_indexes
		WHERE relname IN ('devices', 'device_events', 'assignments', 'campaign_devices', 'campaigns')
		  AND idx_scan > 0 ORDER BY idx_tup_read DESC LIMIT 12" | sed 's/^/fleet:   /'
	echo "fleet: functions during the campaign (ms per install: total, self; calls per install):"
	sql "SELECT round((total_time / $devices)::numeric, 3), round((self_time / $devices)::numeric, 3),
		round(calls::numeric / $devices, 2), funcname
		FROM pg_stat_user_functions ORDER BY self_time DESC LIMIT $pgss_rows" | sed 's/^/fleet:   /'
fi
ok=1
