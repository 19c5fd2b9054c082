#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Service conventions, checked on a running ota-server:
#   - sd_notify for real: a unix datagram socket stands in for systemd's
#     NOTIFY_SOCKET; READY=1 once serving, WATCHDOG=1 every half of
#     WATCHDOG_USEC from the loop, STOPPING=1 on SIGTERM;
#   - --log-format json: every stderr line one JSON object (ts, level, msg);
#     the REST access log names the token by id, never the token, and drops
#     the query string;
#   - /metrics passes `promtool check metrics`; build_info; the first
#     connects are no reconnects; a client's 404 does not move
#     db_errors_total; per-campaign state gauges;
#   - the alert rules (promtool check/test rules) and the systemd units
#     (systemd-analyze verify).
: "${OTA_AGENT:?}"
source "$(dirname "$0")/lib.sh"
PROMTOOL=${PROMTOOL:-promtool}
command -v "$PROMTOOL" >/dev/null || fail "promtool missing (Debian package prometheus, scripts/packages.txt)"
API_PORT=$(free_port)
API=http://127.0.0.1:$API_PORT

setup_pki dev-1 dev-2
start_pg
start_broker
write_config
echo "admin_listen = 127.0.0.1:$API_PORT" >>"$T/server.conf"
sed -i 's/^log_level = .*/log_level = info/' "$T/server.conf"
migrate >/dev/null 2>&1 || { migrate; fail "migrate"; }
mkdir -p "$T/fixtures"
"$SRV_TESTTOOL" fixtures "$T/fixtures" art-1:1.1.0:2:1000 >/dev/null
sql -f "$T/fixtures/trust.sql"
sql -f "$T/fixtures/art-1.sql"
sql -c "INSERT INTO devices (device_id, model, hw_revision, version, version_code, security_counter)
	VALUES ('dev-1', 'fx-model', 'rev-a', '1.0.0', 1, 1), ('dev-2', 'fx-model', 'rev-a', '1.0.0', 1, 1)"

log "sd_notify: a NOTIFY_SOCKET listener, WATCHDOG_USEC = 0.6 s"
python3 "$(dirname "$0")/notify_listener.py" "$T/notify.sock" "$T/notify.log" &
LISTENER=$!
stop_listener() { kill "$LISTENER" 2>/dev/null; wait "$LISTENER" 2>/dev/null; }
at_cleanup stop_listener
wait_for 30 test -S "$T/notify.sock" || fail "listener did not bind"
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=600000 \
	"$OTA_SERVER" --log-format json --config "$T/server.conf" >>"$T/server.log" 2>&1 &
SERVER_PID=$!
wait_for 20 grep -q "READY=1" "$T/notify.log" || fail "no READY=1: $(cat "$T/notify.log")"
wait_for 10 grep -q '"msg":"mqtt connected' "$T/server.log" || fail "mqtt did not connect"
# READY=1 only once the database is up: the pool logged its connection first
grep -q '"msg":"db connection 0 up"' "$T/server.log" || fail "READY=1 before the database was up"
pings() { (($(grep -c "WATCHDOG=1" "$T/notify.log") >= 8)); }
wait_for 30 pings || fail "fewer than 8 WATCHDOG=1"
# half of WATCHDOG_USEC: the median gap between pings is 0.3 s (a loaded CI
# machine delays single pings, not the median)
gap=$(awk '/WATCHDOG=1/ {if (t) print $1 - t; t = $1}' "$T/notify.log" | sort -n |
	awk '{g[NR] = $1} END {print g[int((NR + 1) / 2)]}')
awk -v g="$gap" 'BEGIN {exit !(g >= 0.25 && g <= 0.4)}' ||
	fail "median watchdog gap $gap s, expected 0.3: $(cat "$T/notify.log")"
log "READY=1, then WATCHDOG=1 every $gap s (median)"

TOKEN=$("$OTA_SERVER" token create --role admin --name ops-test --config "$T/server.conf" 2>/dev/null)
[[ -n "$TOKEN" ]] || fail "no token"
AUTH=(-H "Authorization: Bearer $TOKEN")
metrics() { curl -sS --fail "${AUTH[@]}" "$API/metrics"; }
value() { # METRIC-WITH-LABELS: its value in $T/metrics.txt
	awk -v m="$1" '$1 == m {print $2}' "$T/metrics.txt"
}

log "/metrics: promtool check metrics, build_info, no reconnects after the first connects"
metrics >"$T/metrics.txt"
"$PROMTOOL" check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1 ||
	fail "promtool check metrics: $(cat "$T/promtool.out")"
grep -q '^fleetota_build_info{version="[0-9][^"]*",revision="[^"]*"} 1$' "$T/metrics.txt" ||
	fail "no build_info: $(grep build_info "$T/metrics.txt")"
grep -q '_duration_ms' "$T/metrics.txt" && fail "a _duration_ms metric is left"
grep -q '^fleetota_request_duration_seconds_bucket{le="0.001"}' "$T/metrics.txt" ||
	fail "device latency histogram not in seconds"
[[ $(value fleetota_db_reconnects_total) == 0 ]] ||
	fail "first connects counted as reconnects: db $(value fleetota_db_reconnects_total)"
[[ $(value fleetota_mqtt_reconnects_total) == 0 ]] ||
	fail "first connect counted as a reconnect: mqtt $(value fleetota_mqtt_reconnects_total)"

log "a client's 404s (engine refusal FO404, unknown group) do not move db_errors_total"
errors_before=$(value fleetota_db_errors_total)
for path in /api/v1/campaigns/no-such-campaign /api/v1/groups/no-such-group \
	/api/v1/campaigns/no-such-campaign/start; do
	method=GET
	[[ $path != */start ]] || method=POST
	code=$(curl -sS -o /dev/null -w '%{http_code}' -X "$method" "${AUTH[@]}" "$API$path")
	[[ $code == 404 ]] || fail "$method $path: $code, expected 404"
done
code=$(curl -sS -o "$T/conflict.json" -w '%{http_code}' -X POST "${AUTH[@]}" \
	-H 'Content-Type: application/json' "$API/api/v1/campaigns" \
	-d '{"id":"c-1","artifact":"art-1","target":{"model":["fx-model"]},"stages":[{"percent":100}]}')
[[ $code == 201 || $code == 200 ]] || fail "campaign create: $code $(cat "$T/conflict.json")"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "${AUTH[@]}" \
	-H 'Content-Type: application/json' "$API/api/v1/campaigns" \
	-d '{"id":"c-1","artifact":"art-1","target":{"model":["fx-model"]},"stages":[{"percent":100}]}')
[[ $code == 409 ]] || fail "duplicate campaign: $code, expected 409"
metrics >"$T/metrics.txt"
[[ $(value fleetota_db_errors_total) == "$errors_before" ]] ||
	fail "db_errors_total moved on client errors: $errors_before -> $(value fleetota_db_errors_total)"

log "per-campaign gauges"
grep -q '^fleetota_campaign_state{campaign="c-1",state="draft"} 1$' "$T/metrics.txt" ||
	fail "campaign state gauge: $(grep campaign_state "$T/metrics.txt")"
grep -q '^fleetota_campaign_state{campaign="c-1",state="running"} 0$' "$T/metrics.txt" ||
	fail "campaign state gauge is not one-hot"
grep -q '^fleetota_campaign_auto_paused{campaign="c-1"} 0$' "$T/metrics.txt" || fail "auto_paused gauge"
curl -sS --fail -X POST "${AUTH[@]}" "$API/api/v1/campaigns/c-1/start" >/dev/null || fail "start c-1"
wait_for 10 bash -c "curl -sS ${AUTH[*]@Q} $API/metrics | grep -q '^fleetota_campaign_devices{campaign=\"c-1\",state=\"[a-z_]*\"} [1-9]'" ||
	fail "campaign device gauges: $(metrics | grep campaign_devices)"
metrics >"$T/metrics.txt"
grep -q '^fleetota_campaign_state{campaign="c-1",state="running"} 1$' "$T/metrics.txt" || fail "running c-1"
grep -q '^fleetota_campaign_target_devices{campaign="c-1"} 2$' "$T/metrics.txt" || fail "target gauge"
"$PROMTOOL" check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1 ||
	fail "promtool check metrics (with campaigns): $(cat "$T/promtool.out")"

log "real reconnects count: the database drops the server's sessions, the broker restarts"
sql -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
	WHERE datname = 'fleetota' AND pid <> pg_backend_pid()" >/dev/null
stop_broker >/dev/null 2>&1
start_broker
reconnected() {
	metrics >"$T/metrics.txt" 2>/dev/null || return 1
	(($(value fleetota_db_reconnects_total) >= 1 && $(value fleetota_mqtt_reconnects_total) == 1))
}
wait_for 30 reconnected || fail "reconnects not counted: db $(value fleetota_db_reconnects_total)" \
	"mqtt $(value fleetota_mqtt_reconnects_total)"
log "  db_reconnects_total $(value fleetota_db_reconnects_total), mqtt_reconnects_total 1"

log "real database errors still count: a statement on a dropped table"
errors_before=$(value fleetota_db_errors_total)
sql -c "DROP TABLE audit CASCADE"
code=$(curl -sS -o /dev/null -w '%{http_code}' "${AUTH[@]}" "$API/api/v1/audit")
[[ $code == 500 ]] || fail "audit on a missing table: $code, expected 500"
metrics >"$T/metrics.txt"
(($(value fleetota_db_errors_total) > errors_before)) || fail "a real database error was not counted"

log "access log: token by id, never the token, no query string"
curl -sS -o /dev/null "${AUTH[@]}" "$API/api/v1/devices?limit=5&model=secret-query-value"
wait_for 5 grep -q '"path":"/api/v1/devices"' "$T/server.log" || fail "no access line"
line=$(grep '"path":"/api/v1/devices"' "$T/server.log" | tail -1)
jq -e '.msg == "access" and .method == "GET" and .status == 200 and (.bytes > 0)
	and (.duration_ms >= 0) and (.actor | test("^token:[0-9]+:ops-test$")) and .level == "info"' \
	<<<"$line" >/dev/null || fail "access line: $line"
grep -q '"path":"/api/v1/campaigns/no-such-campaign","status":404' "$T/server.log" || fail "404 not logged"
grep -qF "$TOKEN" "$T/server.log" && fail "the token is in the log"
grep -q "secret-query-value" "$T/server.log" && fail "the query string is in the log"

log "stop: STOPPING=1; every log line was one JSON object with ts, level, msg"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || fail "ota-server exited with $? (sanitizer report?)"
SERVER_PID=
wait_for 5 grep -q "STOPPING=1" "$T/notify.log" || fail "no STOPPING=1"
grep -v '^\(==\|$\)' "$T/server.log" | jq -e -c 'select((.ts | test("^[0-9-]+T[0-9:.]+Z$")) and
	(.level | IN("error","warn","info","debug")) and (.msg | type == "string") | not)' >"$T/bad.jsonl" &&
	fail "log lines without ts/level/msg: $(head -3 "$T/bad.jsonl")"
grep -v '^\(==\|$\)' "$T/server.log" | jq -e . >/dev/null 2>&1 || fail "a log line is not JSON: $(grep -v '^{' "$T/server.log" | head -3)"

log "alert rules: promtool check rules, promtool test rules"
"$PROMTOOL" check rules "$TOP/deploy/monitoring/fleetota-alerts.yml" >"$T/rules.out" 2>&1 ||
	fail "promtool check rules: $(cat "$T/rules.out")"
(cd "$TOP/deploy/monitoring" && "$PROMTOOL" test rules fleetota-alerts.test.yml) >"$T/rules.out" 2>&1 ||
	fail "promtool test rules: $(cat "$T/rules.out")"
log "Grafana dashboard: valid JSON, every panel query parses as PromQL (promtool)"
DASH=$TOP/deploy/monitoring/fleetota-dashboard.json
jq -e '.panels | length > 5' "$DASH" >/dev/null || fail "Grafana dashboard JSON"
jq -r '"groups:\n  - name: dashboard\n    rules:",
	([.panels[].targets[].expr] | to_entries[] |
	"      - record: dashboard:q\(.key)\n        expr: \(.value | @json)")' "$DASH" >"$T/dash-rules.yml"
"$PROMTOOL" check rules "$T/dash-rules.yml" >"$T/rules.out" 2>&1 ||
	fail "a dashboard query does not parse: $(cat "$T/rules.out")"
log "systemd units: systemd-analyze verify (no warning) and security --offline (exposure <= 2.0)"
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (Debian package systemd)"
mkdir -p "$T/units"
for unit in "$TOP"/deploy/systemd/*.service; do
	# verify wants the ExecStart programs where the unit says: use this tree's
	sed -e "s|/usr/bin/ota-server|$OTA_SERVER|g" -e "s|/usr/bin/ota-agent|$OTA_AGENT|g" \
		"$unit" >"$T/units/$(basename "$unit")"
done
(cd "$T/units" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./*.service) >"$T/verify.out" 2>&1 ||
	fail "systemd-analyze verify: $(cat "$T/verify.out")"
[[ ! -s "$T/verify.out" ]] || fail "systemd-analyze verify warns: $(cat "$T/verify.out")"
grep -q '^Type=notify$' "$T/units/ota-server.service" && grep -q '^WatchdogSec=' "$T/units/ota-server.service" ||
	fail "ota-server.service is not Type=notify with a watchdog"
for unit in "$T"/units/*.service; do
	systemd-analyze security --offline=yes --threshold=20 "$unit" >"$T/security.out" 2>&1 ||
		fail "$(basename "$unit"): exposure above 2.0: $(tail -1 "$T/security.out")"
	log "  $(basename "$unit"): $(grep -o 'Overall exposure level.*' "$T/security.out")"
done
log "PASS"
