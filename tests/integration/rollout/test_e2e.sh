#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The rollout engine through the real C path: two ota-server processes on one
# PostgreSQL and one mosquitto (TLS, per-device ACL); 24 devices, each a
# persistent MQTT session on its own cmd topic that answers every Notify
# with a StatusReport, like the agent would. A bad artifact: the canaries
# revert, the campaign pauses by itself and no other device receives a
# Notify. A good artifact: one server is killed with SIGKILL mid-stage, the
# other takes the lease over, the campaign completes, every device counted
# once. A build that confirms but then reboots by itself: the canaries'
# Notify carries the stage's health window, their StatusReports' health
# fields (unexpected reboots) go through ota-server, and the campaign halts
# after they confirmed, naming the health signal. (Real agents in large
# numbers: the fleet simulator, issue 8.)
source "$TOP/tests/integration/server/lib.sh"
N=24
DEVICES=()
for i in $(seq 1 $N); do DEVICES+=("dev-$i"); done
RESP_PIDS=()
SERVER2_PID=
stop_all() {
	local p
	# a responder's srv_mqttdev ends with it (the end of its stdin)
	for p in "${RESP_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	if [[ -n "$SERVER2_PID" ]]; then
		kill -TERM "$SERVER2_PID" 2>/dev/null || true
		wait "$SERVER2_PID" 2>/dev/null || true
	fi
}
at_cleanup stop_all

setup_pki "${DEVICES[@]}"
start_pg
start_broker
write_config
migrate >/dev/null 2>&1 || { migrate; fail "migrate"; }
mkdir -p "$T/fixtures"
"$SRV_TESTTOOL" fixtures "$T/fixtures" art-bad:1.1.0:2:1000 art-good:1.2.0:3:1000 art-hl:1.3.0:4:1000 >/dev/null
sql -f "$T/fixtures/trust.sql"
sql -f "$T/fixtures/art-bad.sql"
sql -f "$T/fixtures/art-good.sql"
sql -f "$T/fixtures/art-hl.sql"
sql -c "INSERT INTO devices (device_id, model, hw_revision, version, version_code, security_counter, keylist_version)
	SELECT 'dev-' || i, 'fx-model', 'rev-a', '1.0.0', 1, 1, 1 FROM generate_series(1, $N) i"

# one device: srv_mqttdev, a persistent session (queued QoS 1 while away)
# printing each Notify as hex, its reports published over the same
# connection (the broker's client id is the certificate's CN: a second
# client of the device, a mosquitto_pub per report, would take the
# session over); a responder turns each Notify into reports. A report the
# broker does not acknowledge (or a lost session) ends srv_mqttdev: the
# responder leaves $T/dev/DEVICE.failed and the test fails naming it.
mkdir -p "$T/dev"
respond() { # DEVICE: answers each Notify as it arrives (idle: blocked on a read)
	local d=$1 line seq kind artifact window status mq_pid
	trap '' PIPE # a write to an ended srv_mqttdev fails; its end is reported below
	coproc MQ { exec "$SRV_MQTTDEV" 127.0.0.1 "$MQ_PORT" "$PKI/server-ca.crt" \
		"$PKI/devices/$d.crt" "$PKI/devices/$d.key" "$d"; }
	# bash unsets MQ and MQ_PID when the coprocess ends: its own copies
	mq_pid=$MQ_PID
	exec {from_mq}<&"${MQ[0]}" {to_mq}>&"${MQ[1]}"
	while read -r line <&"$from_mq"; do
		if [[ $line == subscribed ]]; then
			: >"$T/dev/$d.ready"
			continue
		fi
		xxd -r -p <<<"$line" >"$T/dev/$d.msg"
		read -r kind artifact _ _ window < <("$SRV_TESTTOOL" notify "$T/dev/$d.msg")
		seq=$(($(cat "$T/dev/$d.seq") + 1))
		echo $((seq + 1)) >"$T/dev/$d.seq"
		echo "$artifact${window:+ window=$window}" >>"$T/dev/$d.got"
		if [[ "$artifact" == art-bad ]]; then
			dev_report "$seq" downloading 1.0.0 1 1 "$artifact"
			dev_report "$((seq + 1))" reverted 1.0.0 1 1 "$artifact"
		elif [[ "$artifact" == art-hl ]]; then
			# confirms, then a watchdog reboot inside the health window
			echo $((seq + 2)) >"$T/dev/$d.seq"
			dev_report "$seq" trial 1.2.0 3 3 "$artifact"
			dev_report "$((seq + 1))" confirmed 1.3.0 4 4 "$artifact"
			dev_report "$((seq + 2))" idle 1.3.0 4 4 health:1:1000
		else
			dev_report "$seq" trial 1.0.0 1 1 "$artifact"
			dev_report "$((seq + 1))" confirmed 1.2.0 3 3 "$artifact"
		fi
	done
	wait "$mq_pid" && status=0 || status=$?
	echo "device $d: its session ended (srv_mqttdev status $status): $(tail -20 "$T/dev/$d.err")" >"$T/dev/$d.failed"
}
dev_report() { # SEQ STATE VERSION CODE COUNTER [ARTIFACT] [EVENTS...]: one report of $d
	"$SRV_TESTTOOL" report "$T/dev/$d.$1.bin" "$d" "$@"
	echo "$T/dev/$d.$1.bin" >&"$to_mq"
}
export -f respond dev_report
export T MQ_PORT PKI SRV_TESTTOOL SRV_MQTTDEV
for d in "${DEVICES[@]}"; do
	echo 0 >"$T/dev/$d.seq"
	bash -c "respond $d" 2>>"$T/dev/$d.err" &
	RESP_PIDS+=($!)
	disown $!
done
# devices_ok: no device lost its session or a report
devices_ok() {
	local f
	for f in "$T"/dev/*.failed; do
		[[ -e $f ]] && fail "$(cat "$f")"
	done
	return 0
}
# dev_sql_eq EXPECTED SQL: sql_eq, but first every device still answering
dev_sql_eq() {
	devices_ok
	sql_eq "$@"
}
all_ready() { devices_ok && [[ $(ls "$T"/dev/*.ready 2>/dev/null | wc -l) == "$N" ]]; }
wait_for 60 all_ready || fail "devices not subscribed: $(ls "$T"/dev/*.ready 2>/dev/null | wc -l) of $N"

export OTA_ROLLOUT_TICK_MS=200 OTA_ROLLOUT_LEASE_S=2
OTA_ROLLOUT_SERVER_ID=srv-a start_server
DEV_PORT2=$(free_port)
second_server_config "$DEV_PORT2" "$T/server2.conf"
OTA_ROLLOUT_SERVER_ID=srv-b "$OTA_SERVER" --config "$T/server2.conf" >>"$T/server2.log" 2>&1 &
SERVER2_PID=$!
wait_for 60 grep -q "mqtt connected" "$T/server2.log" || fail "server 2 did not come up"

# run_to_pause ID ARTIFACT STAGES: a campaign (600 a minute, bursts of 5)
# that must pause by itself
run_to_pause() {
	sql -c "SELECT rollout_create('{\"id\":\"$1\",\"artifact\":\"$2\",\"rate_per_minute\":600,\"rate_burst\":5,\"device_timeout_seconds\":300,\"stages\":$3}', 'alice')" >/dev/null
	sql -c "SELECT rollout_start('$1', 'alice')" >/dev/null
	wait_for 120 dev_sql_eq paused "SELECT state FROM campaigns WHERE campaign_id = '$1'" ||
		fail "campaign $1: $(sql -c "SELECT rollout_status('$1')")"
}

log "bad artifact: the canaries revert, the campaign pauses, nobody else is notified"
STAGES='[{"count":2,"failure_ratio":0.4},{"percent":50,"soak_seconds":1},{"percent":100}]'
run_to_pause bad art-bad "$STAGES"
log "paused: $(sql -c "SELECT state_reason FROM campaigns WHERE campaign_id = 'bad'")"
# One canary's revert is enough to pause (failure_ratio 0.4 of 2); the other
# canary's responder may still be on its way on a loaded machine: wait for
# both reverts, then make sure nobody else was notified meanwhile.
wait_for 60 dev_sql_eq "2|2" "SELECT count(*), count(*) FILTER (WHERE state = 'failed' AND error = 'OTA_ERR_SELFTEST') FROM campaign_devices WHERE campaign_id = 'bad'" ||
	fail "bad campaign devices: $(sql -c "SELECT string_agg(device_id || ':' || state || ':' || error, ',') FROM campaign_devices")"
sleep 2
got=$(cat "$T"/dev/*.got 2>/dev/null | grep -c art-bad || true)
[[ "$got" == 2 ]] || fail "devices that received the bad artifact's Notify: $got (expected the 2 canaries)"
sql -c "SELECT rollout_cancel('bad', 'alice')" >/dev/null

log "good artifact: a server is killed with SIGKILL mid-stage, the campaign completes"
sql -c "SELECT rollout_create('{\"id\":\"good\",\"artifact\":\"art-good\",\"rate_per_minute\":300,\"rate_burst\":2,\"device_timeout_seconds\":300,\"stages\":$STAGES}', 'alice')" >/dev/null
sql -c "SELECT rollout_start('good', 'alice')" >/dev/null
wait_for 120 dev_sql_eq 1 "SELECT current_stage FROM campaigns WHERE campaign_id = 'good'" || fail "good campaign never reached stage 1"
owner=$(sql -c "SELECT lease_owner FROM campaigns WHERE campaign_id = 'good'")
log "stage 1 running, lease held by $owner: killing it"
if [[ "$owner" == srv-a ]]; then
	kill -KILL "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	survivor=srv-b
else
	kill -KILL "$SERVER2_PID"
	wait "$SERVER2_PID" 2>/dev/null || true
	SERVER2_PID=
	survivor=srv-a
fi
wait_for 60 dev_sql_eq "$survivor" "SELECT lease_owner FROM campaigns WHERE campaign_id = 'good'" ||
	fail "$survivor did not take the lease over"
# The killed process comes back (as a supervisor restarts it): its MQTT
# session hands it the reports the broker queued for it meanwhile.
if [[ "$owner" == srv-a ]]; then
	OTA_ROLLOUT_SERVER_ID=srv-a2 start_server
else
	OTA_ROLLOUT_SERVER_ID=srv-b2 "$OTA_SERVER" --config "$T/server2.conf" >>"$T/server2.log" 2>&1 &
	SERVER2_PID=$!
fi
wait_for 240 dev_sql_eq completed "SELECT state FROM campaigns WHERE campaign_id = 'good'" ||
	fail "good campaign: $(sql -c "SELECT rollout_status('good')")"
sql_eq t "SELECT count(*) > 0 FROM campaign_events WHERE campaign_id = 'good' AND kind = 'lease' AND detail LIKE '$survivor took over from $owner'" ||
	fail "no take-over: $(sql -c "SELECT string_agg(detail, ' | ') FROM campaign_events WHERE kind = 'lease'")"
sql_eq "$N|$N|$N" "SELECT count(*), count(DISTINCT device_id), count(*) FILTER (WHERE state = 'confirmed') FROM campaign_devices WHERE campaign_id = 'good'" ||
	fail "counts: $(sql -c "SELECT rollout_status('good')")"
sql_eq "$N" "SELECT count(*) FROM devices WHERE version_code = 3" || fail "devices not on 1.2.0"
for d in "${DEVICES[@]}"; do
	grep -q art-good "$T/dev/$d.got" || fail "$d never received the good Notify"
done
# rate: for any two notifications a <= b, count in [a, b] <= burst + rate * (b - a)
sql_eq 0 "WITH n AS (SELECT row_number() OVER (ORDER BY created_at, id) AS rn, extract(epoch FROM created_at) AS t
	FROM rollout_notifications WHERE campaign_id = 'good')
	SELECT count(*) FROM n a JOIN n b ON b.rn >= a.rn WHERE (b.rn - a.rn + 1) > 2 + 300 * (b.t - a.t) / 60.0 + 1e-6" ||
	fail "rate limit exceeded"
sql_eq "$N" "SELECT count(*) FROM assignments WHERE artifact_id = 'art-good' AND campaign_id = 'good'" || fail "assignments"
log "rollout completed: $(sql -c "SELECT string_agg(admitted || '/' || confirmed, ' ') FROM rollout_stage_counts('good')") (admitted/confirmed per stage)"

log "health after confirm: the canaries confirm, then report an unexpected reboot; the campaign halts"
HSTAGES='[{"count":2,"failure_ratio":0.4,"health":{"window_seconds":600,"max_unexpected_reboots":0,"min_health":0.5,"max_unhealthy_ratio":0.4}},{"percent":100}]'
run_to_pause hl art-hl "$HSTAGES"
reason=$(sql -c "SELECT state_reason FROM campaigns WHERE campaign_id = 'hl'")
log "paused: $reason"
[[ $reason == "stage 0: health: "*" devices unhealthy after confirm (unexpected reboots: "*"over the health threshold 0.4000" ]] ||
	fail "the reason does not name the health signal: $reason"
wait_for 60 dev_sql_eq "2|2" "SELECT count(*), count(*) FILTER (WHERE state = 'confirmed' AND health_reboots = 1)
	FROM campaign_devices WHERE campaign_id = 'hl' AND state <> 'pending'" ||
	fail "health campaign devices: $(sql -c "SELECT string_agg(device_id || ':' || state || ':' || coalesce(health_reboots::text, '-'), ',') FROM campaign_devices WHERE campaign_id = 'hl' AND state <> 'pending'")"
got=$(cat "$T"/dev/*.got 2>/dev/null | grep -c '^art-hl window=600$' || true)
[[ "$got" == 2 ]] || fail "Notify with the health window 600: $got (expected the 2 canaries): $(cat "$T"/dev/*.got | grep art-hl)"
sql -c "SELECT rollout_cancel('hl', 'alice')" >/dev/null
devices_ok
# each device one session all through: no client of a device took another's
# over (the broker logs "Client dev-N already connected, closing old
# connection")
takeovers=$(grep -c "Client dev-[0-9]* already connected" "$T/mq/mosquitto.log" || true)
[[ $takeovers == 0 ]] || fail "device sessions taken over: $(grep "Client dev-[0-9]* already connected" "$T/mq/mosquitto.log" | head -5)"
if [[ -n "$SERVER_PID" ]]; then check_server_exit; fi
log "PASS"
