#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Reports are made durable before they are acknowledged (issue 12; since
# issue 19 in the local report journal, stored in PostgreSQL in batches):
# three devices publish QoS 1 reports while ota-server is killed with
# SIGKILL at random moments and restarted; in the end every report's effect
# is in the database (each event once, each device's newest state) and the
# journal is empty. Each kill logs how many acknowledged reports the journal
# held, not yet marked stored (the next server stores them first; those the
# database had already are duplicates).
REPORT_RATE=1000 # within budget: nothing is held in memory
REPORT_BURST=1000
source "$(dirname "$0")/lib.sh"
standard_setup
N=500

restart_server() {
	mv "$T/server.log" "$T/server.log.$1"
	start_server
}

PUBS=()
stop_pubs() { for p in "${PUBS[@]+"${PUBS[@]}"}"; do kill "$p" 2>/dev/null || true; done; }
at_cleanup stop_pubs
log "dev-1..3 publish $N reports each (40 a second) while the server is killed up to 4 times"
for d in dev-1 dev-2 dev-3; do
	pub "$d" 1 "$N" 40 >"$T/pub.$d" 2>&1 &
	PUBS+=($!)
done
stored=0
kills=0
events() { sql -c "SELECT count(*) FROM device_events"; }
JOURNAL=$STORE/report-journal/ota-server_1
journal_rows() {
	python3 -c 'import sqlite3, sys; print(sqlite3.connect("file:%s?mode=ro" % sys.argv[1],
		uri=True).execute("SELECT count(*) FROM reports").fetchone()[0])' "$JOURNAL/reports.db"
}
journal_is() { [[ "$(journal_rows)" == "$1" ]]; }
for i in 1 2 3 4; do
	# kill while reports are being stored: after progress, at a random moment
	since=$SECONDS
	until (($(events) > stored + 10)); do
		(($(events) < 3 * N)) || break 2 # all stored: the publishers are done
		((SECONDS - since < 60)) || fail "no progress after restart $((i - 1))"
		sleep 0.1
	done
	sleep "0.$((RANDOM % 5))$((RANDOM % 10))"
	kill -KILL "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	kills=$i
	stored=$(events)
	log "kill $i: $stored events stored so far, $(journal_rows) reports left in the journal"
	restart_server "$i"
done
((kills >= 2)) || fail "only $kills kills while the devices published (machine too slow?)"
for p in "${PUBS[@]}"; do
	wait "$p" || fail "a publisher failed: $(cat "$T"/pub.*)"
done
log "every report acknowledged by the broker: $(cat "$T"/pub.* | tr '\n' ' ')"
wait_for 60 sql_eq "3|$((3 * N))" "SELECT count(DISTINCT device_id), count(*) FROM device_events" ||
	fail "lost: $(sql -c "SELECT device_id, count(*), max(seq) FROM device_events GROUP BY 1")"
sql_eq "dev-1|$N|1.0.$N dev-2|$N|1.0.$N dev-3|$N|1.0.$N" "SELECT string_agg(device_id || '|' ||
	last_report_seq || '|' || version, ' ' ORDER BY device_id) FROM devices" ||
	fail "rows: $(sql -c "SELECT device_id, last_report_seq, version FROM devices")"
# seq 1..N of each device, each once
sql_eq 0 "SELECT count(*) FROM (SELECT device_id, generate_series(1, $N) AS seq FROM devices) want
	LEFT JOIN device_events e USING (device_id, seq) WHERE e.id IS NULL" || fail "an event is missing"
sql_eq 0 "SELECT count(*) FROM audit WHERE action LIKE 'security.%'" ||
	fail "redeliveries taken for replays: $(sql -c "SELECT action, after FROM audit")"
wait_for 10 journal_is 0 || fail "the journal still holds $(journal_rows) reports"
check_server_exit
log "PASS"
