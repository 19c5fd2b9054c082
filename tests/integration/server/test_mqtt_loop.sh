#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The event loop never waits on Paho's lock. A report is stored inside
# Paho's messageArrived, with Paho's client mutex held (ingest-internal.h);
# when the database makes that call wait (here: dev-3's row is locked by
# another transaction, as a hung or slow database would), Paho's mutex stays
# taken. The loop must keep serving meanwhile, even while it has a Notify
# to publish (an assignment for dev-2 is claimed during the wait): /healthz
# answers within a bound all along. When the database lets go, dev-3's
# report is stored and dev-2 gets its Notify.
source "$(dirname "$0")/lib.sh"
API_PORT=$(free_port)
standard_setup

HOLD_S=10
mq_sub_bg dev-2 dev-2 "$T/dev2.msgs"
wait_for 10 grep -q "as dev-2 (p5" "$T/mq/mosquitto.log" || fail "dev-2 did not subscribe"

log "another transaction holds dev-3's row for $HOLD_S s"
sql -c "BEGIN; SELECT 1 FROM devices WHERE device_id = 'dev-3' FOR UPDATE; SELECT pg_sleep($HOLD_S); COMMIT;" \
	>/dev/null &
locker=$!
stop_locker() { stop_bg locker; }
at_cleanup stop_locker
wait_for 10 sql_eq 1 "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep($HOLD_S)%'
	AND state = 'active' AND pid <> pg_backend_pid()" || fail "the lock is not held"
t_lock=$SECONDS
row3=$(sql -c "SELECT last_report_seq FROM devices WHERE device_id = 'dev-3'")

log "dev-3 reports: the ingest call waits for the row inside Paho's callback"
report dev-3 dev-3 5 idle 1.0.0 1 1 || fail "dev-3 could not publish"
wait_for 5 sql_eq 1 "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ota-server-ingest'
	AND wait_event_type = 'Lock'" || fail "the report is not waiting for the row"

log "an assignment for dev-2 is claimed: the loop has a Notify to publish"
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-2', 'art-1')"
wait_for 5 sql_eq 1 "SELECT count(*) FROM assignments WHERE device_id = 'dev-2' AND notified_at IS NOT NULL" ||
	fail "the notifier did not claim dev-2's assignment"

log "/healthz while Paho's lock is held"
worst=0
n=0
while ((SECONDS - t_lock < HOLD_S - 2)); do
	t=$(curl -sS -o /dev/null -m 5 -w '%{http_code} %{time_total}' "http://127.0.0.1:$API_PORT/healthz" || echo "000 5")
	read -r code secs <<<"$t"
	ms=$(awk -v s="$secs" 'BEGIN { printf "%d", s * 1000 }')
	((ms > worst)) && worst=$ms
	[[ $code == 200 ]] || fail "/healthz answered $code after $ms ms while the report waited"
	n=$((n + 1))
	sleep 0.1
done
log "/healthz: $n answers, the slowest $worst ms"
((worst < 1000)) || fail "/healthz took $worst ms while the report waited (the loop was blocked)"
((n >= 3)) || fail "only $n /healthz answers while the report waited"
sql_eq "$row3" "SELECT last_report_seq FROM devices WHERE device_id = 'dev-3'" ||
	fail "dev-3's report was stored before the row was free (the test did not hold Paho's lock)"

log "the row is free: dev-3's report is stored and dev-2 gets its Notify"
wait "$locker" || true
locker=
wait_for 15 sql_eq 5 "SELECT last_report_seq FROM devices WHERE device_id = 'dev-3'" ||
	fail "dev-3's report was not stored after the wait"
wait_for 10 test -s "$T/dev2.msgs" || fail "dev-2 got no Notify"
grep -q "notified dev-2 of art-1" "$T/server.log" || fail "no 'notified dev-2' line"
check_server_exit
log "PASS"
