#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ota-server started before its database (a container engine starts the
# services of a compose file at once): it waits with back-off, bounded by
# db_wait_sec, migrates and serves once PostgreSQL is up; when the database
# never comes it exits within the bound, naming the cause.
source "$(dirname "$0")/lib.sh"

setup_pki >/dev/null
start_broker
write_config
printf '%s\n' "migrate_on_start = true" "db_wait_sec = 60" >>"$T/server.conf"

log "ota-server starts while PostgreSQL is down: it waits"
"$OTA_SERVER" --config "$T/server.conf" >>"$T/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do
	grep -q "waiting for the database" "$T/server.log" && break
	kill -0 "$SERVER_PID" 2>/dev/null || fail "ota-server exited instead of waiting for the database"
	sleep 0.1
done
grep -q "waiting for the database" "$T/server.log" || fail "no 'waiting for the database' line"
sleep 2
kill -0 "$SERVER_PID" 2>/dev/null || fail "ota-server exited while waiting"

log "PostgreSQL comes up: the server migrates and serves"
start_pg
for _ in $(seq 1 150); do
	grep -q "mqtt connected" "$T/server.log" && grep -q "db connection 0 up" "$T/server.log" && break
	kill -0 "$SERVER_PID" 2>/dev/null || fail "ota-server exited"
	sleep 0.1
done
grep -q "migrations: .* applied" "$T/server.log" || fail "no migration after the wait"
grep -q "db connection 0 up" "$T/server.log" || fail "pool did not connect after the wait"
[[ $(sql -c "SELECT count(*) > 0 FROM schema_migrations") == t ]] || fail "schema not migrated"
check_server_exit

log "the wait is bounded: db_wait_sec = 2 and no database -> exit 1 within the bound"
stop_pg
sed -i 's/^db_wait_sec = .*/db_wait_sec = 2/' "$T/server.conf"
: >"$T/server.log"
t0=$SECONDS
set +e
timeout 30 "$OTA_SERVER" --config "$T/server.conf" >>"$T/server.log" 2>&1
rc=$?
set -e
((rc == 1)) || fail "exit status $rc, expected 1"
((SECONDS - t0 <= 10)) || fail "took $((SECONDS - t0)) s with db_wait_sec = 2"
grep -q "database not reachable after 2 s" "$T/server.log" || fail "no message naming the cause"
log "PASS"
