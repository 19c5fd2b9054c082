#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A hung database (SIGSTOP, not down) under a running server (issue 12 #4,
# issue 13 #4): every database call has a deadline. The REST API, /healthz
# and the device listener answer 503 within their deadlines (the times are
# asserted), /healthz makes a real round trip (a connection that is "up" to
# a hung server does not count), requests made meanwhile change nothing, and
# after SIGCONT everything recovers. Then a statement stuck behind a row
# lock: 503 at the deadline, and the backend abandons the statement (the
# dropped connection is noticed), so the write never lands.
source "$(dirname "$0")/lib.sh"
npm_tools &
NPM_PID=$!
setup_world
# short deadlines (the test runs alone and waits each one out): what is
# asserted is that each is kept, not its length
API_DEADLINE=600
HEALTH_DEADLINE=300
DEV_DEADLINE=600
MARGIN=500 # the server's answer time on a loaded 2-core CI machine (sanitizers)
# one connection for each of the three hung calls below; no manifest cache,
# whose change-log poll would take the free connections one by one while
# the database hangs (the cache under a hung database: server_manifest_cache)
sed -i 's/^db_pool_size = .*/db_pool_size = 3/' "$T/server.conf"
cat >>"$T/server.conf" <<CONF
manifest_cache = false
admin_db_timeout_ms = $API_DEADLINE
healthz_timeout_ms = $HEALTH_DEADLINE
db_timeout_ms = $DEV_DEADLINE
CONF
start_server
for i in 1 2; do
	for _ in $(seq 1 100); do
		grep -q "db connection $i up" "$T/server.log" && break
		sleep 0.1
	done
	grep -q "db connection $i up" "$T/server.log" || fail "db connection $i did not come up"
done
ADMIN=$(new_token admin root-admin)
TOKEN=$ADMIN api GET /api/v1/devices
expect 200
TOKEN= api GET /healthz
expect 200
BEFORE=$(db_state)

# within MS LABEL [MIN]: the server answered the last call in less than
# MS + MARGIN (and, with MIN, in at least MIN ms: the deadline answered)
within() {
	local took
	took=$(<"$T/time")
	log "$2: HTTP $(status) after $took ms (deadline $1 ms)"
	((took < $1 + MARGIN)) || fail "$2 took $took ms, deadline $1 ms"
	[[ $# -lt 3 ]] || ((took >= $3)) || fail "$2 answered after $took ms, before the deadline"
}

log "the database hangs: postmaster and backends stopped"
pg_freeze

# a connection that is up but hung: only a round trip can tell
TOKEN= api GET /healthz --max-time 10
expect 503
[[ $(jbody .status) == degraded && $(jbody .database) == false ]] || fail "healthz body: $(body)"
within $HEALTH_DEADLINE "healthz" $((HEALTH_DEADLINE - 20))

TOKEN=$ADMIN api GET "/api/v1/devices?model=fx-model" --max-time 10
expect 503 timeout
jbody .error.message | grep -q "within $API_DEADLINE ms" || fail "timeout message: $(body)"
within $API_DEADLINE "GET /api/v1/devices" $((API_DEADLINE - 20))

code=$(dev_get dev-1 /v1/manifests/fw-none)
echo "$code" >"$T/status"
[[ $code == 503 ]] || fail "device manifest while the database hangs: $code"
within $DEV_DEADLINE "device GET /v1/manifests" $((DEV_DEADLINE - 20))

# every connection was dropped at its deadline and cannot reopen: fast 503s
for req in "GET /api/v1/me" "PUT /api/v1/devices/dev-1/tags" "POST /api/v1/devices/dev-2/decommission" \
	"GET /healthz"; do
	# shellcheck disable=SC2086
	TOKEN=$ADMIN api $req --max-time 10 -H 'Content-Type: application/json' $([[ $req == PUT* ]] && echo "-d {\"tags\":[\"x\"]}")
	expect 503
	within $API_DEADLINE "$req"
done
grep -q "query wa_auth timed out after $API_DEADLINE ms, connection dropped" "$T/server.log" ||
	fail "no log line names the timed-out query"
grep -q "query wa_health timed out after $HEALTH_DEADLINE ms" "$T/server.log" || fail "healthz timeout not logged"
kill -0 "$SERVER_PID" || fail "the server died"

log "SIGCONT: the server recovers on its own"
START=$(date +%s%3N)
pg_thaw
for _ in $(seq 1 150); do
	[[ $(curl -s -o /dev/null -w '%{http_code}' "$API/healthz") == 200 ]] && break
	sleep 0.1
done
END=$(date +%s%3N)
TOKEN= api GET /healthz
expect 200
log "healthy again $((END - START)) ms after SIGCONT"
TOKEN=$ADMIN api GET "/api/v1/devices?model=fx-model"
expect 200
[[ $(jbody '.items | length') == 3 ]] || fail "devices after recovery: $(body)"
[[ $(dev_get dev-1 /v1/manifests/fw-none) == 404 ]] || fail "device listener did not recover"
[[ "$(db_state)" == "$BEFORE" ]] || fail "requests made while the database hung changed it"
TOKEN=$ADMIN api GET /metrics
expect 200
timeouts=$(sed -n 's/^fleetota_db_timeouts_total \([0-9]*\)$/\1/p' "$T/body")
((timeouts >= 3)) || fail "db timeouts not counted: '$timeouts'"

log "a statement stuck behind a row lock: 503 at the deadline, and it never lands"
sql -c "BEGIN; SELECT device_id FROM devices WHERE device_id = 'dev-2' FOR UPDATE;
	SELECT pg_sleep(30); COMMIT;" >/dev/null 2>&1 &
LOCKER=$!
for _ in $(seq 1 50); do
	sql_eq 1 "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%'
		AND state = 'active' AND pid <> pg_backend_pid()" && break
	sleep 0.1
done
TOKEN=$ADMIN api PUT /api/v1/devices/dev-2/tags --max-time 10 -H 'Content-Type: application/json' -d '{"tags":["late"]}'
expect 503 timeout
within $API_DEADLINE "PUT tags behind a lock" $((API_DEADLINE - 20))
# the backend notices its client went away (client_connection_check_interval)
# while the lock is still held, and abandons the UPDATE
gone=
for _ in $(seq 1 40); do
	if sql_eq 0 "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"; then
		gone=1
		break
	fi
	sleep 0.1
done
[[ -n $gone ]] || fail "the timed-out UPDATE still waits in PostgreSQL: $(sql -c "SELECT pid, query FROM pg_stat_activity WHERE wait_event_type = 'Lock'")"
sql_eq 1 "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" ||
	fail "the lock holder ended too early for this test: $(tail -20 "$T/pg/postgres.log")"
sql -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%'
	AND pid <> pg_backend_pid()" >/dev/null
wait "$LOCKER" || true
sleep 0.5
sql_eq "{eu}" "SELECT tags FROM devices WHERE device_id = 'dev-2'" || fail "the timed-out write landed"
[[ "$(db_state)" == "$BEFORE" ]] || fail "the timed-out write changed the database"
TOKEN=$ADMIN api GET /api/v1/devices/dev-2
expect 200
check_server_exit

log "contract: every recorded response matches openapi.yaml"
wait "$NPM_PID" || fail "npm tools"
NODE_PATH=$NPM_DIR/node_modules node "$TOP/tests/integration/web-api/validate_contract.mjs" \
	"$TOP/web-api/openapi.yaml" "$RESPONSES" --cover Operations || fail "responses do not match openapi.yaml"
log "PASS"
