#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Report flood (issue 12, finding 5): one device publishes 10,000 QoS 1
# reports, FLOOD_RATE a second (default 600: the flood lasts about 17 s);
# another device's reports, one after the other while the flood runs, are
# each stored within 500 ms; the flooder costs a bounded number of
# database transactions (its reports over budget are coalesced), its last
# state is stored in the end, and the flood is a security event. The
# server's and the broker's CPU time during the flood is reported (the
# cost of a report over budget).
source "$(dirname "$0")/lib.sh"
API_PORT=$(free_port)
standard_setup
TOKEN=$("$OTA_SERVER" token create --role viewer --name flood --config "$T/server.conf")
commits() { sql -c "SELECT xact_commit FROM pg_stat_database WHERE datname = 'fleetota'"; }

RATE=${FLOOD_RATE:-600}
# CPU seconds (user + sys) of a process so far
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
MQ_PID=$(cat "$T/mq/mosquitto.pid")

# dev2_report SEQ: dev-2 publishes report SEQ, waits until it is stored and
# sets MS: publish (connected client) -> stored, the publish's wall clock
# against the database's last_seen (now() of the ingest transaction)
dev2_report() {
	local out at
	out=$(pub dev-2 "$1" 1) || fail "dev-2 publish: $out"
	at=$(sed -E 's/.*first_at=([0-9.]+).*/\1/' <<<"$out")
	wait_for 10 sql_eq "$1" "SELECT last_report_seq FROM devices WHERE device_id = 'dev-2'" ||
		fail "dev-2 seq $1 not stored"
	MS=$(sql -c "SELECT round((extract(epoch FROM last_seen) - $at) * 1000) FROM devices
		WHERE device_id = 'dev-2'")
}
# last_seen at every report (its default grain of 30 s would keep dev-2's
# first; report_seen_at, migrations/code/report.sql), for the sessions
# that start now: the server's report path connects at its first report
sql -c "ALTER DATABASE fleetota SET fleetota.last_seen_grain_s = 0"
# The server's report path is opened by the first report it stores (its
# database connection is made then: about a second on a loaded machine):
# dev-2's first report, before the flood, so that the flood is measured
# and not the server's first report.
dev2_report 1
log "dev-2 seq 1, before the flood (the server's first report), stored $MS ms after its publish"

commits_before=$(commits)
srv_cpu0=$(cpu_s "$SERVER_PID")
mq_cpu0=$(cpu_s "$MQ_PID")
log "dev-1 publishes 10,000 QoS 1 reports, $RATE a second"
pub dev-1 1 10000 "$RATE" >"$T/flood.out" 2>&1 &
FLOOD=$!
stop_flood() { kill "$FLOOD" 2>/dev/null || true; }
at_cleanup stop_flood
# wait until the server sees the flood
wait_for 20 bash -c "[[ \$(grep -c 'report dev-1 seq' '$T/server.log') -ge 30 ]]" || fail "flood not seen"

log "dev-2 reports while the flood runs (at least 3, at most 20): each stored within 500 ms"
worst=0
during=0
all_ms=()
for seq in $(seq 2 21); do
	kill -0 "$FLOOD" 2>/dev/null && running=yes || running=no
	[[ $running == yes || ${#all_ms[@]} -lt 3 ]] || break
	dev2_report "$seq"
	log "dev-2 seq $seq stored $MS ms after its publish (flood running: $running)"
	((MS > worst)) && worst=$MS
	all_ms+=("$MS")
	[[ $running == yes ]] && during=$((during + 1))
	sleep 0.3
done
dev2_last=$((1 + ${#all_ms[@]}))
wait "$FLOOD" || fail "publisher: $(cat "$T/flood.out")"
srv_cpu=$(awk -v a="$srv_cpu0" -v b="$(cpu_s "$SERVER_PID")" 'BEGIN { printf "%.2f", b - a }')
mq_cpu=$(awk -v a="$mq_cpu0" -v b="$(cpu_s "$MQ_PID")" 'BEGIN { printf "%.2f", b - a }')
log "flood: $(cat "$T/flood.out")"
log "CPU during the flood: ota-server $srv_cpu s, mosquitto $mq_cpu s" \
	"($(awk -v c="$srv_cpu" 'BEGIN { printf "%.0f", c * 1e6 / 10000 }') us of ota-server a report)"
log "dev-2: ${#all_ms[@]} reports, $during during the flood, stored after (ms): ${all_ms[*]}"
((worst < 500)) || fail "dev-2 waited $worst ms"
((during > 0)) || fail "the flood was over before dev-2 reported"

log "the flooder's last state is stored (coalesced), the flood is audited and counted"
wait_for 20 sql_eq "10000|1.0.10000" "SELECT last_report_seq, version FROM devices WHERE device_id = 'dev-1'" ||
	fail "dev-1 row: $(sql -c "SELECT last_report_seq, version FROM devices WHERE device_id = 'dev-1'")"
sql_eq "device:dev-1" "SELECT DISTINCT actor FROM audit WHERE action = 'security.flood'" ||
	fail "no flood audit row: $(sql -c "SELECT action, object FROM audit")"
flood_events=$(metric 'fleetota_security_events_total{kind="flood"}')
coalesced=$(metric fleetota_reports_coalesced_total)
stored=$(metric fleetota_reports_stored_total)
received=$(metric fleetota_reports_received_total)
transactions=$(($(commits) - commits_before))
events=$(sql -c "SELECT count(*) FROM device_events WHERE device_id = 'dev-1'")
log "received $received, stored $stored (calls), coalesced $coalesced, flood events $flood_events," \
	"database transactions $transactions, dev-1 events kept $events, dev-2 worst $worst ms"
((received == 10000 + dev2_last)) || fail "received $received"
((flood_events >= 1 && coalesced > 9000)) || fail "flood not counted"
# 10,000 reports used to be 20,029 queries; now: the burst, the budget's rate
# and the server's own background work
((transactions < 1000)) || fail "$transactions transactions for the flood"
sql_eq "$dev2_last" "SELECT last_report_seq FROM devices WHERE device_id = 'dev-2'" || fail "dev-2"

check_server_exit
log "PASS"
