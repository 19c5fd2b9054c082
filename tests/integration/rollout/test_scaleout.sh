#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Scale-out with the real pieces (docs/scaling.md), all from Debian:
#
#   devices (ota-fleet-sim) ──> HAProxy (mode tcp) ──> ota-server × 3
#   operator (curl)         ──> HAProxy (mode tcp) ──┘   │ (device + API listeners)
#                                                        v
#         conninfo host=pgb-1,pgb-2 target_session_attrs=read-write
#                 PgBouncer (transaction) ──> PostgreSQL primary
#                 PgBouncer (transaction) ──> streaming standby (pg_basebackup)
#
# A one-stage campaign to every device; when about a third of them have
# confirmed, the primary is shut down and the standby promoted. Each replica
# follows the new primary (its PgBouncer stays up in front of the dead one:
# it accepts connections and then fails them, which libpq 15 does not skip by
# itself); the campaign completes on the promoted node with every device
# confirmed and exactly one install each, and each replica served devices.
# env: OTA_SERVER SRV_TESTTOOL TOP OTA_FLEET_SIM [SCALEOUT_DEVICES] [SCALEOUT_KEEP]
# shellcheck disable=SC2218 # sql() is redefined for the new primary after the failover
source "$TOP/tests/integration/server/lib.sh"
: "${OTA_FLEET_SIM:?}"
N=${SCALEOUT_DEVICES:-40}
REPLICAS=3
export OTA_ROLLOUT_TICK_MS=200 OTA_ROLLOUT_LEASE_S=3
NOTIFY_LOG=$T/notify.log
T0=$SECONDS
PGBIN=$STACK_PG_BINDIR

declare -A PID=()
SIM_PID=
# On failure, for each device not confirmed (the first 3): its rows, its last
# events and every log's lines that name it (bounded), while the database
# still runs. sql() is the promoted node's after the failover.
explain_unconfirmed() {
	local d n devs
	devs=$(sql -c "SELECT device_id FROM campaign_devices WHERE campaign_id = 'so' AND state <> 'confirmed' ORDER BY device_id" 2>/dev/null) || return 0
	[[ -n "$devs" ]] || return 0
	echo "---- devices not confirmed: $(echo "$devs" | wc -l) (the first 3 explained)"
	for d in $(echo "$devs" | head -3); do
		echo "==== $d"
		echo "-- campaign_devices"
		sql -c "SELECT to_jsonb(m) - 'campaign_id' FROM campaign_devices m WHERE campaign_id = 'so' AND device_id = '$d'" 2>&1 | head -3
		echo "-- assignments"
		sql -c "SELECT to_jsonb(a) FROM assignments a WHERE device_id = '$d'" 2>&1 | head -3
		echo "-- rollout_notifications"
		sql -c "SELECT id, server_id, created_at, published_at, fence FROM rollout_notifications WHERE device_id = '$d' ORDER BY id" 2>&1 | tail -6
		echo "-- device_events (last 10)"
		sql -c "SELECT seq, kind, error, version, campaign_id, received_at FROM device_events WHERE device_id = '$d' ORDER BY seq DESC LIMIT 10" 2>&1
		for n in $(seq 1 $REPLICAS); do
			echo "-- srv-$n (last 15 lines naming it)"
			grep -F -- "$d" "$T/srv-$n.log" 2>/dev/null | tail -15 | cut -c1-300
		done
		echo "-- fleet (last 10 lines naming it)"
		grep -F -- "$d" "$T/fleet.log" 2>/dev/null | tail -10 | cut -c1-300
		echo "-- notify log"
		grep -F -- " $d " "$NOTIFY_LOG" 2>/dev/null | tail -10
	done
}
stop_all() {
	local n
	if [[ $FAILED != 0 ]]; then
		explain_unconfirmed
	fi
	if [[ -n "$SIM_PID" ]]; then
		kill -TERM "$SIM_PID" 2>/dev/null || true
		wait "$SIM_PID" 2>/dev/null || true
	fi
	for n in "${!PID[@]}"; do
		[[ -n "${PID[$n]}" ]] || continue
		kill -TERM "${PID[$n]}" 2>/dev/null || true
		wait "${PID[$n]}" 2>/dev/null || true
	done
	"$TOP/scripts/haproxy.sh" stop "$T/lb" 2>/dev/null || true
	"$TOP/scripts/pgbouncer.sh" stop "$T/pgb1" 2>/dev/null || true
	"$TOP/scripts/pgbouncer.sh" stop "$T/pgb2" 2>/dev/null || true
	"$TOP/scripts/pg.sh" stop "$T/pg2" >/dev/null 2>&1 || true
	if [[ -n "${SCALEOUT_KEEP:-}" ]]; then
		mkdir -p "$SCALEOUT_KEEP"
		cp "$T"/*.log "$T/pgb1/pgbouncer.log" "$SCALEOUT_KEEP/" 2>/dev/null || true
		cp "$T/pgb2/pgbouncer.log" "$SCALEOUT_KEEP/pgbouncer2.log" 2>/dev/null || true
		cp "$T/pg2/postgres.log" "$SCALEOUT_KEEP/postgres2.log" 2>/dev/null || true
		cp "$T/pg/postgres.log" "$SCALEOUT_KEEP/postgres1.log" 2>/dev/null || true
	fi
	if [[ $FAILED != 0 ]]; then
		for n in $(seq 1 $REPLICAS); do
			echo "---- srv-$n log (tail)"
			tail -20 "$T/srv-$n.log" 2>/dev/null
		done
		echo "---- pgbouncer 1 (tail)"
		tail -8 "$T/pgb1/pgbouncer.log" 2>/dev/null
		echo "---- fleet (tail)"
		tail -10 "$T/fleet.log" 2>/dev/null
	fi
}
at_cleanup stop_all

setup_pki
"$TOP/scripts/pki.sh" server "$PKI" 3 >/dev/null
log "setup"
start_pg # the primary: $T/pg on PG_PORT
start_broker
write_config
migrate >/dev/null 2>&1 || { migrate; fail "migrate"; }
mkdir -p "$T/fixtures"
"$SRV_TESTTOOL" fixtures "$T/fixtures" art-1:1.1.0:2:20000 >/dev/null
sql -f "$T/fixtures/trust.sql"
sql -f "$T/fixtures/art-1.sql"

log "standby"
# ---- the standby: a base backup streaming from the primary ---------------
PG2_PORT=$(free_port)
mkdir -p "$T/pg2"
chown postgres: "$T/pg2" 2>/dev/null || true
chmod 700 "$T/pg2"
runuser -u postgres -- "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres \
	-D "$T/pg2/data" -R -X stream -c fast >"$T/basebackup.log" 2>&1 ||
	fail "pg_basebackup: $(cat "$T/basebackup.log")"
"$TOP/scripts/pg.sh" start "$T/pg2" "$PG2_PORT" fleetota >/dev/null
sql2() { psql "host=$T/pg2 port=$PG2_PORT dbname=fleetota user=postgres" -v ON_ERROR_STOP=1 -Atq "$@"; }
[[ $(sql2 -c "SELECT pg_is_in_recovery()") == t ]] || fail "the standby is not in recovery"
wait_for 10 sql_eq 1 "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" ||
	fail "the standby does not stream"
echo "ok - standby streaming from the primary"

# ---- one PgBouncer per PostgreSQL node, transaction pooling ---------------
PGB1=$(free_port)
PGB2=$(free_port)
"$TOP/scripts/pgbouncer.sh" start "$T/pgb1" "$PGB1" "$PG_PORT" transaction 4 >/dev/null
"$TOP/scripts/pgbouncer.sh" start "$T/pgb2" "$PGB2" "$PG2_PORT" transaction 4 >/dev/null
CONNINFO="host=127.0.0.1,127.0.0.1 port=$PGB1,$PGB2 dbname=fleetota user=postgres target_session_attrs=read-write"

# ---- three replicas behind HAProxy (device listener and REST API) ---------
DEV_PORTS=() API_PORTS=()
for n in $(seq 1 $REPLICAS); do
	DEV_PORTS+=("$(free_port)")
	API_PORTS+=("$(free_port)")
	# debug: the lines that name a device (reports, downloads, publishes)
	# for explain_unconfirmed
	sed -e "s|^db_conninfo = .*|db_conninfo = $CONNINFO|" \
		-e "s/^device_listen = .*/device_listen = 127.0.0.1:${DEV_PORTS[n - 1]}/" \
		-e "s|/servers/1\.|/servers/$n.|" \
		-e "s/^rate_per_sec = .*/rate_per_sec = 2000/" -e "s/^rate_burst = .*/rate_burst = 4000/" \
		-e "s/^log_level = .*/log_level = debug/" "$T/server.conf" >"$T/srv-$n.conf"
	printf '%s\n' "admin_listen = 127.0.0.1:${API_PORTS[n - 1]}" "db_prepared_statements = false" \
		"db_pool_size = 2" >>"$T/srv-$n.conf"
done
LB_DEV=$(free_port)
LB_API=$(free_port)
"$TOP/scripts/haproxy.sh" start "$T/lb" "$LB_DEV:$(
	IFS=,
	echo "${DEV_PORTS[*]}"
)" "$LB_API:$(
	IFS=,
	echo "${API_PORTS[*]}"
)" >/dev/null || fail "haproxy"

run() { # N
	local n=$1 logf=$T/srv-$1.log
	: >>"$logf"
	OTA_ROLLOUT_SERVER_ID="srv-$n" "$OTA_SERVER" --config "$T/srv-$n.conf" >>"$logf" 2>&1 &
	PID[$n]=$!
}
log "replicas"
for n in $(seq 1 $REPLICAS); do run "$n"; done
for n in $(seq 1 $REPLICAS); do
	wait_for 60 bash -c "grep -q 'db connection 0 up' '$T/srv-$n.log' && grep -q 'mqtt connected' '$T/srv-$n.log'" ||
		fail "srv-$n did not come up"
done
echo "ok - $REPLICAS replicas up through PgBouncer (transaction pooling)"

# an operator token, minted through PgBouncer like everything else
TOKEN=$("$OTA_SERVER" token create --role operator --name scaleout --config "$T/srv-1.conf" 2>"$T/token.err") ||
	fail "token create: $(cat "$T/token.err")"
api() { # METHOD PATH [JSON]: through HAProxy; body in $T/api.body, status printed
	curl -sS -o "$T/api.body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
		${3:+-H 'Content-Type: application/json' -d "$3"} "http://127.0.0.1:$LB_API$2"
}

log "$N simulated devices through HAProxy"
# a periodic report every 2 s: around the failover a device's reports reach
# the database out of order (a replica holds what it received while its
# connection is down), and a transient failure stored after the device's
# next idle report must still be retried (0022; without it 3 runs in 11
# failed: a device 'downloading' until its timeout)
"$OTA_FLEET_SIM" --devices "$N" --prefix sim- --pki "$PKI" --state-dir "$T/fleet" \
	--server "https://127.0.0.1:$LB_DEV" --broker "ssl://127.0.0.1:$MQ_PORT" \
	--rootlist "$T/fixtures/rootlist.bin" --keylist "$T/fixtures/keylist.bin" \
	--slot-size 65536 --workers 8 --connect-rate 40 --progress 10 --report-interval 2 \
	--notify-log "$NOTIFY_LOG" --summary-json "$T/summary.json" >"$T/fleet.log" 2>&1 &
SIM_PID=$!
wait_for 120 sql_eq "$N" "SELECT count(*) FROM devices WHERE device_id LIKE 'sim-%' AND keylist_version = 1" ||
	fail "devices registered: $(sql -c "SELECT count(*) FROM devices")"
log "fleet online after $((SECONDS - T0)) s"

# ---- the campaign, through the API behind HAProxy -------------------------
# about 4 devices a second: the failover lands in the middle of it
status=$(api POST /api/v1/campaigns "{\"id\":\"so\",\"artifact\":\"art-1\",\"target\":{\"model\":[\"fx-model\"]},\"rate_per_minute\":240,\"rate_burst\":2,\"device_timeout_seconds\":120,\"transient_retries\":2,\"retry_backoff_seconds\":1,\"stages\":[{\"percent\":100}]}")
[[ $status == 201 ]] || fail "create campaign: $status $(cat "$T/api.body")"
status=$(api POST /api/v1/campaigns/so/start)
[[ $status == 200 ]] || fail "start campaign: $status $(cat "$T/api.body")"
wait_for 60 sql_eq t "SELECT count(*) >= $((N / 3)) FROM campaign_devices WHERE campaign_id = 'so' AND state = 'confirmed'" ||
	fail "campaign did not get going: $(sql -c "SELECT state, count(*) FROM campaign_devices GROUP BY 1")"

# ---- failover: the primary stops, the standby is promoted -----------------
before=$(sql -c "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'so' AND state = 'confirmed'")
marks=()
for n in $(seq 1 $REPLICAS); do marks+=("$(wc -l <"$T/srv-$n.log")"); done
t_fail=$(date +%s%3N)
stop_pg # fast shutdown: the walsender ships the rest of the WAL first
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg2/data" -w -t 30 promote >/dev/null ||
	fail "promote"
# PgBouncer 1.18 would go on telling clients in_hot_standby=on (scripts/pgbouncer.sh)
"$TOP/scripts/pgbouncer.sh" reconnect "$T/pgb2" || fail "pgbouncer reconnect"
t_promoted=$(date +%s%3N)
((before < N)) || fail "the campaign was done before the failover"
log "primary stopped at $before of $N confirmed; standby promoted in $((t_promoted - t_fail)) ms"
[[ $(sql2 -c "SELECT pg_is_in_recovery()") == f ]] || fail "the standby was not promoted"
sql() { sql2 "$@"; } # from here on, the new primary

wait_for 120 sql_eq completed "SELECT state FROM campaigns WHERE campaign_id = 'so'" ||
	fail "so: $(sql -c "SELECT rollout_status('so') - 'stages' - 'target'")"
t_done=$(date +%s%3N)
sql_eq "$N|$N" "SELECT count(*), count(*) FILTER (WHERE state = 'confirmed') FROM campaign_devices WHERE campaign_id = 'so'" ||
	fail "so devices: $(sql -c "SELECT state, count(*) FROM campaign_devices WHERE campaign_id = 'so' GROUP BY 1")"
sql_eq "$N" "SELECT count(*) FROM devices WHERE device_id LIKE 'sim-%' AND version = '1.1.0'" ||
	fail "devices not on 1.1.0: $(sql -c "SELECT version, count(*) FROM devices GROUP BY 1")"
[[ $(awk '$4 == "so" && $6 == "act" { print $2 }' "$NOTIFY_LOG" | sort -u | wc -l) == "$N" ]] ||
	fail "not every device acted on the campaign's Notify"
echo "ok - campaign completed on the promoted node $(((t_done - t_promoted) / 1000)) s after the promotion: $N devices confirmed"

# every replica followed the new primary (a connection up after the failover)
for n in $(seq 1 $REPLICAS); do
	# (awk reads the whole log: grep -q would leave tail a SIGPIPE, a
	# failure under pipefail once the log outgrows the pipe's buffer)
	awk -v m="${marks[n - 1]}" 'NR > m && /db connection [0-9]* up/ { up = 1 } END { exit !up }' \
		"$T/srv-$n.log" || fail "srv-$n did not reconnect after the failover"
done
echo "ok - all $REPLICAS replicas reconnected to the promoted primary"
status=$(api GET /api/v1/campaigns/so)
[[ $status == 200 && $(jq -r .state "$T/api.body") == completed ]] ||
	fail "campaign through the API after the failover: $status $(cat "$T/api.body")"
echo "ok - the API behind HAProxy answers from the new primary"

# the balancer spread the devices: each replica served manifests
for n in $(seq 1 $REPLICAS); do
	served=$(curl -sS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:${API_PORTS[n - 1]}/metrics" |
		awk '$1 == "fleetota_manifests_served_total" { print $2 }')
	((served > 0)) || fail "srv-$n served no manifest"
	echo "   srv-$n: $served manifests"
done

kill -TERM "$SIM_PID"
wait "$SIM_PID" || fail "ota-fleet-sim exited with $?"
SIM_PID=
# exactly one install per device: each device confirmed once (a second
# install would count twice), and every Notify a device acted on beyond
# its first is one of its failed attempts (a download cut by the failover,
# retried by the campaign)
acts=$(awk '$4 == "so" && $6 == "act"' "$NOTIFY_LOG" | wc -l)
read -r confirmed reverted failed < <(jq -r '.artifacts["art-1"] | "\(.confirmed) \(.reverted) \([.failed[], .rejected[]] | add // 0)"' "$T/summary.json")
[[ $confirmed == "$N" && $reverted == 0 ]] || fail "installs: $confirmed confirmed, $reverted reverted (of $N)"
((acts == N + failed)) || fail "$acts acts on Notify for $N devices and $failed failed attempts"
echo "ok - exactly one install per device ($confirmed confirmed; $failed attempts failed during the failover and were retried)"
for n in $(seq 1 $REPLICAS); do
	kill -TERM "${PID[$n]}"
	rc=0
	wait "${PID[$n]}" || rc=$?
	PID[$n]=
	((rc == 0)) || fail "srv-$n exited with $rc"
done
log "PASS in $((SECONDS - T0)) s"
