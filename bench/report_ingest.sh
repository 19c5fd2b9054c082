#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Report ingest, end to end (issue 19): DEVICES devices publish REPORTS QoS 1
# reports each as fast as they can into a private stack (the server tests'
# fixtures: tests/integration/server/lib.sh; PostgreSQL with fsync off, as
# in the tests); prints one line per run: reports/s from the first publish
# to the last event stored, CPU seconds of ota-server, of the ingest's
# PostgreSQL backend and of the whole cluster, and per report.
#
#   OTA_SERVER=... SRV_TESTTOOL=... SRV_MQTTPUB=... TOP=... \
#     bench/report_ingest.sh LABEL [DEVICES] [REPORTS] [KEY=VALUE...]
#
# KEY=VALUE lines go to the server's config (report_journal_dir=...,
# report_journal_sync=false; an older server that does not know them must
# not get them).
label=${1:?LABEL}
DEVICES=${2:-4}
REPORTS=${3:-2500}
shift 3 || shift $#
REPORT_RATE=1000000
REPORT_BURST=1000000
SERVER_CONF_EXTRA=$(printf '%s\n' "$@" | sed 's/=/ = /')
source "${TOP:?}/tests/integration/server/lib.sh"
devs=()
for ((i = 1; i <= DEVICES; i++)); do devs+=("bd-$i"); done
setup_pki "${devs[@]}"
write_config
start_pg_migrated
start_broker
start_server

ticks() { # PID: utime + stime + cutime + cstime in clock ticks
	awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
cluster_ticks() { # the postmaster with its reaped children, and the live ones
	local pm t=0 p
	pm=$(head -1 "$T/pg/data/postmaster.pid")
	t=$(ticks "$pm")
	for p in $(pgrep -P "$pm"); do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done
	echo "$t"
}
hz=$(getconf CLK_TCK)
# the ingest connection exists once the first report came: one report first
report bd-1 bd-1 1 idle 1.0.0 1 1 >/dev/null
wait_for 30 sql_eq 1 "SELECT count(*) FROM devices WHERE device_id = 'bd-1'" || fail "first report"
ingest_pid=$(sql -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'ota-server-ingest'")
[[ -n $ingest_pid ]] || fail "no ingest backend"
base_events=$(sql -c "SELECT count(*) FROM device_events")
s0=$(ticks "$SERVER_PID") i0=$(ticks "$ingest_pid") c0=$(cluster_ticks)
start=$(date +%s.%N)
PUBS=()
for d in "${devs[@]}"; do
	pub "$d" 2 "$REPORTS" >"$T/pub.$d" 2>&1 &
	PUBS+=($!)
done
for p in "${PUBS[@]}"; do wait "$p" || fail "publisher: $(cat "$T"/pub.*)"; done
want=$((base_events + DEVICES * REPORTS))
until sql_eq "$want" "SELECT count(*) FROM device_events"; do
	(($(date +%s) - ${start%.*} < 600)) || fail "not all stored"
	sleep 0.05
done
end=$(date +%s.%N)
s1=$(ticks "$SERVER_PID") i1=$(ticks "$ingest_pid") c1=$(cluster_ticks)
n=$((DEVICES * REPORTS))
# the writer's batches (debug lines; none from a server without the journal)
batches=$({ grep -Eo 'ingest: batch of [0-9]+' "$T/server.log" || true; } | awk '{ r += $4; b++ } END { if (b) printf "%d batches of %.1f", b, r / b; else printf "no batches" }')
awk -v l="$label" -v n="$n" -v w="$(echo "$end - $start" | bc)" -v hz="$hz" \
	-v s=$((s1 - s0)) -v i=$((i1 - i0)) -v c=$((c1 - c0)) -v load="$(cut -d' ' -f1 /proc/loadavg)" -v batches="$batches" \
	'BEGIN { printf "%s: %d reports in %.2f s = %.0f/s; CPU s: server %.2f, ingest backend %.2f, cluster %.2f; per report: ingest backend %.0f us, cluster %.0f us, server %.0f us; %s; load %s\n",
		l, n, w, n / w, s / hz, i / hz, c / hz, i / hz / n * 1e6, c / hz / n * 1e6, s / hz / n * 1e6, batches, load }'
check_server_exit
