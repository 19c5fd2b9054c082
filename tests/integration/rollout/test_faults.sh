#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The campaign engine under an operator's bad day, through the real pieces:
# two ota-server instances running the rollout (srv-a, srv-b) on one
# PostgreSQL and one mosquitto, a third serving delivery only, and a
# simulated fleet (ota-fleet-sim, 400 devices by default) that logs every
# Notify it receives. Timings are random (ROLLOUT_FAULT_SEED repeats a run).
#
#   1. 10 % of the devices fail their first download (OTA_ERR_TRANSPORT):
#      retried with back-off, the campaign completes.
#   2. the broker stalls (SIGSTOP ~2 s) and the lease holder is killed with
#      SIGKILL meanwhile: what it published but the broker never
#      acknowledged is issued again by the other instance, and a witness at
#      the broker (a read-only identity, nobody's session) sees each of those
#      devices' re-sent Notify on its cmd topic; every device notified and
#      confirmed, exactly one install each.
#   3. the lease holder freezes (SIGSTOP at a test failpoint) right after
#      sending its tick (the tick commits while it is frozen), after its tick
#      committed, and between two publishes; the other instance takes over;
#      the resumed instance publishes nothing (its log, the devices' Notify
#      log, the database's marks) and the campaign completes, one install
#      per device.
#   4. a stage whose devices cannot finish pauses within its time budget,
#      naming the devices; progress says stalled.
# env: OTA_SERVER SRV_TESTTOOL TOP OTA_FLEET_SIM [ROLLOUT_FAULT_DEVICES]
#      [ROLLOUT_FAULT_SEED]
source "$TOP/tests/integration/server/lib.sh"
: "${OTA_FLEET_SIM:?}"
N=${ROLLOUT_FAULT_DEVICES:-400}
SEED=${ROLLOUT_FAULT_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED
LEASE=3
export OTA_ROLLOUT_TICK_MS=200 OTA_ROLLOUT_LEASE_S=$LEASE
NOTIFY_LOG=$T/notify.log
T0=$SECONDS
log "seed $SEED ($N devices; ROLLOUT_FAULT_SEED=$SEED repeats these timings)"

FLEET_STATE=$T/fleet # the simulated devices' flash (below)
declare -A PID=()
SIM_PID=
WITNESS_PID=
ISSUE_PID=
stop_all() {
	local n
	if [[ -n "$ISSUE_PID" ]]; then
		kill -TERM "$ISSUE_PID" 2>/dev/null || true
		wait "$ISSUE_PID" 2>/dev/null || true
	fi
	if [[ -n "$WITNESS_PID" ]]; then
		kill -TERM "$WITNESS_PID" 2>/dev/null || true
		wait "$WITNESS_PID" 2>/dev/null || true
	fi
	if [[ -n "$SIM_PID" ]]; then
		kill -TERM "$SIM_PID" 2>/dev/null || true
		wait "$SIM_PID" 2>/dev/null || true
	fi
	for n in "${!PID[@]}"; do
		[[ -n "${PID[$n]}" ]] || continue
		kill -CONT "${PID[$n]}" 2>/dev/null || true
		kill -TERM "${PID[$n]}" 2>/dev/null || true
		wait "${PID[$n]}" 2>/dev/null || true
	done
	local mq
	mq=$(cat "$T/mq/mosquitto.pid" 2>/dev/null) && kill -CONT "$mq" 2>/dev/null
	[[ $FLEET_STATE == "$T"/* ]] || rm -rf "$FLEET_STATE"
	if [[ -n "${ROLLOUT_FAULT_KEEP:-}" ]]; then
		mkdir -p "$ROLLOUT_FAULT_KEEP"
		cp "$T"/*.log "$T/mq/mosquitto.log" "$ROLLOUT_FAULT_KEEP/" 2>/dev/null || true
	fi
	if [[ $FAILED != 0 ]]; then
		for n in a b; do
			echo "---- srv-$n log (tail)"
			tail -25 "$T/srv-$n.log" 2>/dev/null
		done
		echo "---- fleet (tail)"
		tail -15 "$T/fleet.log" 2>/dev/null
	fi
}
at_cleanup stop_all
# The simulated devices' flash on tmpfs when there is one: some 2,000 installs
# fsync their slots and state copies, on a busy disk, and the 400 devices'
# files are removed at the end; no fault here is about the devices' storage
# (power cuts are fleet-faults' and the agent tests')
if [[ -d /dev/shm && -w /dev/shm ]]; then
	FLEET_STATE=$(mktemp -d /dev/shm/fleetota-faults-fleet.XXXXXX)
fi

setup_pki
"$TOP/scripts/pki.sh" observer "$PKI" witness # CN ota-observer:witness, read-only
# the devices' identities (400 keys and certificates, made by the simulator
# in one process: some 20 s on a loaded machine) while the stack starts
"$OTA_FLEET_SIM" --devices "$N" --prefix sim- --pki "$PKI" --issue-certs >"$T/issue.log" 2>&1 &
ISSUE_PID=$!
start_pg
start_broker
write_config
migrate >/dev/null 2>&1 || { migrate; fail "migrate"; }
mkdir -p "$T/fixtures"
ARTS=(art-1:1.1.0:2 art-2:1.2.0:3 art-3:1.3.0:4 art-4:1.4.0:5 art-5:1.5.0:6 art-6:1.6.0:7)
"$SRV_TESTTOOL" fixtures "$T/fixtures" "${ARTS[@]/%/:20000}" >/dev/null
sql -f "$T/fixtures/trust.sql"
for a in "${ARTS[@]}"; do sql -f "$T/fixtures/${a%%:*}.sql"; done

# srv-a, srv-b: rollout (MQTT); srv-d: delivery only (no MQTT, no rollout),
# so that killing or freezing a rollout instance never cuts the downloads
DEV_PORT_B=$(free_port)
sed -e "s/^device_listen = .*/device_listen = 127.0.0.1:$DEV_PORT_B/" \
	-e "s|/servers/1\.|/servers/2.|" "$T/server.conf" >"$T/srv-b.conf" # its own MQTT identity
DEV_PORT_D=$(free_port)
sed -e "s/^device_listen = .*/device_listen = 127.0.0.1:$DEV_PORT_D/" \
	-e "/^mqtt_/d" -e "s/^rate_per_sec = .*/rate_per_sec = 2000/" \
	-e "s/^rate_burst = .*/rate_burst = 4000/" "$T/server.conf" >"$T/srv-d.conf"
sed -i -e "s/^rate_per_sec = .*/rate_per_sec = 2000/" -e "s/^rate_burst = .*/rate_burst = 4000/" "$T/server.conf"
cp "$T/server.conf" "$T/srv-a.conf"

# launch NAME [ENV=VALUE...]: starts (or restarts) an instance; up NAME
# waits until it is up (instances started together come up side by side)
declare -A MARK=()
launch() {
	local name=$1 conf=$T/srv-$1.conf logf=$T/srv-$1.log
	shift
	: >>"$logf"
	MARK[$name]=$(wc -l <"$logf")
	env "$@" OTA_ROLLOUT_SERVER_ID="srv-$name" "$OTA_SERVER" --config "$conf" >>"$logf" 2>&1 &
	PID[$name]=$!
}
up() {
	local name=$1 logf=$T/srv-$1.log mark=${MARK[$1]}
	wait_for 60 bash -c "tail -n +$((mark + 1)) '$logf' | grep -q 'db connection 0 up' &&
		{ [[ $name == d ]] || tail -n +$((mark + 1)) '$logf' | grep -q 'mqtt connected'; }" ||
		fail "srv-$name did not come up"
}
# run NAME [ENV=VALUE...]: starts (or restarts) an instance, waits until it is up
run() {
	launch "$@"
	up "$1"
}
# halt NAME...: SIGTERM to each, expects clean exits (sanitizers)
halt() {
	local n rc
	for n in "$@"; do kill -TERM "${PID[$n]}"; done
	for n in "$@"; do
		rc=0
		wait "${PID[$n]}" || rc=$?
		PID[$n]=
		((rc == 0)) || fail "srv-$n exited with $rc"
	done
}
frozen() { [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == T ]]; }
owner() { sql -c "SELECT coalesce(lease_owner, '') FROM campaigns WHERE campaign_id = '$1'"; }
now_ms() { date +%s%3N; }

launch d
launch a
launch b
up d
up a
up b

wait "$ISSUE_PID" || fail "ota-fleet-sim --issue-certs: $(cat "$T/issue.log")"
ISSUE_PID=
log "$N simulated devices"
"$OTA_FLEET_SIM" --devices "$N" --prefix sim- --pki "$PKI" --state-dir "$FLEET_STATE" \
	--server "https://127.0.0.1:$DEV_PORT_D" --broker "ssl://127.0.0.1:$MQ_PORT" \
	--rootlist "$T/fixtures/rootlist.bin" --keylist "$T/fixtures/keylist.bin" \
	--slot-size 65536 --workers 16 --connect-rate 20 --progress 10 \
	--transient-fail 0.1 --seed "$SEED" --notify-log "$NOTIFY_LOG" \
	--summary-json "$T/summary.json" >"$T/fleet.log" 2>&1 &
SIM_PID=$!
wait_for 360 sql_eq "$N" "SELECT count(*) FROM devices WHERE device_id LIKE 'sim-%' AND keylist_version = 1" ||
	fail "devices registered: $(sql -c "SELECT count(*) FROM devices")"
log "fleet online after $((SECONDS - T0)) s"

# campaign ID ARTIFACT [EXTRA JSON FIELDS]: every simulated device, one
# stage, notified over about ten seconds
campaign() {
	sql -c "SELECT rollout_create('{\"id\":\"$1\",\"artifact\":\"$2\",\"target\":{\"model\":[\"fx-model\"]},\"rate_per_minute\":$((N * 6)),\"rate_burst\":$((N / 20 + 1)),\"device_timeout_seconds\":120,\"transient_retries\":2,\"retry_backoff_seconds\":1,\"stages\":[{\"percent\":100}]${3:+,$3}}', 'alice')" >/dev/null
	sql -c "SELECT rollout_start('$1', 'alice')" >/dev/null
}
# completes ID VERSION: the campaign completes, every device confirmed on
# VERSION, and each device acted on exactly one Notify of the campaign
completes() {
	wait_for 300 sql_eq completed "SELECT state FROM campaigns WHERE campaign_id = '$1'" ||
		fail "$1: $(sql -c "SELECT rollout_status('$1') - 'stages' - 'target'")"
	sql_eq "$N|$N" "SELECT count(*), count(*) FILTER (WHERE state = 'confirmed') FROM campaign_devices WHERE campaign_id = '$1'" ||
		fail "$1 devices: $(sql -c "SELECT state, count(*) FROM campaign_devices WHERE campaign_id = '$1' GROUP BY 1")"
	sql_eq "$N" "SELECT count(*) FROM devices WHERE device_id LIKE 'sim-%' AND version = '$2'" ||
		fail "$1: devices not on $2"
	local acts
	acts=$(awk -v c="$1" '$4 == c && $6 == "act" { n[$2]++ } END { for (d in n) print n[d] }' "$NOTIFY_LOG" | sort | uniq -c | tr '\n' ' ')
	echo "   $1: installs per device (count x installs): $acts"
}
# A device acts on a second Notify of a campaign only when its first attempt
# failed in transit (a real one on this loaded machine: a manifest GET that
# got no answer in time, OTA_ERR_TRANSPORT) and the engine retried it: each
# act beyond the first must match an attempt the engine recorded and retried.
# A device whose install succeeded ignores every later Notify of the campaign
# (the simulator's count of confirmed installs is checked at the end).
installs_once() {
	local bad retried
	bad=$(awk -v c="$1" 'NR == FNR { tries[$1] = $2; next }
		$4 == c && $6 == "act" { n[$2]++ }
		END { for (d in n) if (n[d] > 1 + tries[d]) print d " (" n[d] " acts, " tries[d] " retries)" }' \
		<(sql -F ' ' -c "SELECT device_id, attempts FROM campaign_devices WHERE campaign_id = '$1'") "$NOTIFY_LOG" |
		paste -sd' ' -)
	[[ -z "$bad" ]] || fail "$1: devices that acted on a Notify more often than the engine retried them: $bad"
	[[ $(awk -v c="$1" '$4 == c && $6 == "act" { print $2 }' "$NOTIFY_LOG" | sort -u | wc -l) == "$N" ]] ||
		fail "$1: not every device received the campaign's Notify"
	retried=$(awk -v c="$1" '$4 == c && $6 == "act" { n[$2]++ } END { for (d in n) if (n[d] > 1) print d }' "$NOTIFY_LOG" | paste -sd, -)
	if [[ -n "$retried" ]]; then
		echo "   $1: retried after a failed attempt: $(sql -F ' ' -c "SELECT string_agg(e.device_id || ' ' || e.error || ' (' || e.detail || ')', '; ' ORDER BY e.device_id)
			FROM device_events e WHERE e.campaign_id = '$1' AND e.error <> '' AND e.device_id = ANY ('{$retried}'::text[])")"
	fi
	echo "ok - $1: every device notified and confirmed; no device acted on a Notify it was not retried for"
}

# ---- 1. transient download failures --------------------------------------
log "1. 10 % transient download failures"
campaign tr art-1
completes tr 1.1.0
# the devices that installed twice are those whose first download failed
# (a device still installing when its timeout re-notifies it ignores that)
twice=$(awk '$4 == "tr" && $6 == "act" { n[$2]++ } END { for (d in n) if (n[d] == 2) print d }' "$NOTIFY_LOG" | paste -sd, -)
transient=$(tr ',' '\n' <<<"$twice" | grep -c . || true)
((transient >= N / 20 && transient <= N / 5)) || fail "devices that installed twice: $transient (expected about 10 %)"
sql_eq "$transient" "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'tr' AND attempts >= 1
	AND state = 'confirmed' AND device_id = ANY ('{$twice}'::text[])" ||
	fail "devices that installed twice were not all retried and confirmed"
echo "ok - $transient devices failed their first download (OTA_ERR_TRANSPORT), were retried and confirmed"
installs_once_except_transient() {
	local bad
	bad=$(awk -v c="$1" '$4 == c && $6 == "act" { n[$2]++ } END { for (d in n) if (n[d] > 2) print d }' "$NOTIFY_LOG")
	[[ -z "$bad" ]] || fail "$1: installed more than twice: $bad"
}
installs_once_except_transient tr
echo "ok - a Notify delivered again (same campaign and seq) is ignored by the device"

# ---- 2. broker stall + SIGKILL of the lease holder -------------------------
log "2. kill -9 of the lease holder during a broker stall"
# the witness: every cmd topic, one line per message ("TOPIC HEX-PAYLOAD")
mosquitto_sub -V 5 -q 1 -h 127.0.0.1 -p "$MQ_PORT" --cafile "$PKI/server-ca.crt" \
	--cert "$PKI/observers/witness.crt" --key "$PKI/observers/witness.key" \
	-t 'fleetota/v1/+/cmd' -F '%t %x' >"$T/witness.log" 2>"$T/witness.err" &
WITNESS_PID=$!
wait_for 10 grep -q "ota-observer:witness 1 fleetota/v1/+/cmd" "$T/mq/mosquitto.log" ||
	fail "the witness did not subscribe: $(cat "$T/witness.err")"
campaign ks art-2
wait_for 30 sql_eq t "SELECT count(*) >= $((N / 5)) FROM rollout_notifications WHERE campaign_id = 'ks' AND published_at IS NOT NULL" ||
	fail "ks did not start"
holder=$(owner ks)
victim=${holder#srv-}
MQ_PID=$(cat "$T/mq/mosquitto.pid")
kill -STOP "$MQ_PID"
stall_ms=$((1800 + RANDOM % 400))
kill_at_ms=$((200 + RANDOM % 1200))
# the kill must find publishes held back: wait (bounded) until the holder has
# issued one into the stopped broker (with lazy admission a tick may have
# nothing due for a moment; seen once on a fast machine), then the random part
waited_ms=$(date +%s%3N)
wait_for 10 sql_eq t "SELECT count(*) > 0 FROM rollout_notifications WHERE campaign_id = 'ks' AND server_id = '$holder' AND published_at IS NULL" ||
	fail "the holder issued no notification into the stopped broker within 10 s"
waited_ms=$(($(date +%s%3N) - waited_ms))
sleep "$(printf '0.%03d' "$kill_at_ms")"
kill_at_ms=$((kill_at_ms + waited_ms))
stall_ms=$((stall_ms + waited_ms))
unacked=$(sql -c "SELECT count(*) FROM rollout_notifications WHERE campaign_id = 'ks' AND server_id = '$holder' AND published_at IS NULL")
kill -KILL "${PID[$victim]}"
wait "${PID[$victim]}" 2>/dev/null || true
PID[$victim]=
sleep "$(printf '%d.%03d' $(((stall_ms - kill_at_ms) / 1000)) $(((stall_ms - kill_at_ms) % 1000)))"
kill -CONT "$MQ_PID"
log "   broker stopped ${stall_ms} ms, $holder killed after ${kill_at_ms} ms with $unacked notifications unacknowledged"
((unacked > 0)) || fail "nothing was unacknowledged at the kill: the stall did not hold publishes back"
other=$([[ $victim == a ]] && echo b || echo a)
wait_for 30 sql_eq "srv-$other" "SELECT lease_owner FROM campaigns WHERE campaign_id = 'ks'" ||
	fail "srv-$other did not take the lease over"
run "$victim" # a supervisor restarts it; its MQTT session holds reports queued for it
completes ks 1.2.0
installs_once ks
sql_eq t "SELECT count(*) > 0 FROM rollout_notifications WHERE campaign_id = 'ks' AND server_id = '$holder' AND published_at IS NULL AND reissued" ||
	fail "nothing of $holder's was re-issued"
kill -TERM "$WITNESS_PID"
wait "$WITNESS_PID" 2>/dev/null || true
WITNESS_PID=
# seq DEVICE: the seq (field 1, a varint) of each Notify the witness saw on
# DEVICE's cmd topic
seqs_seen() {
	local topic hex i b shift seq
	while read -r topic hex; do
		[[ $topic == "fleetota/v1/$1/cmd" && ${hex:0:2} == 08 ]] || continue
		i=2 shift=0 seq=0
		while ((i < ${#hex})); do
			b=$((16#${hex:i:2}))
			seq=$((seq | (b & 127) << shift))
			((b < 128)) && break
			((i += 2, shift += 7))
		done
		echo "$seq"
	done <"$T/witness.log"
}
# each notification of the killed holder that the broker never acknowledged:
# the device's later, acknowledged one (the re-issue) went through the broker
resent=0
while read -r dev lost_id again_id; do
	[[ -n "$again_id" ]] || fail "$dev: notification $lost_id of $holder was never issued again"
	# captured first: under pipefail, grep -q closing the pipe early would
	# fail the check through SIGPIPE in seqs_seen (it did: "seen: 890,...")
	seen=$(seqs_seen "$dev")
	grep -qx "$again_id" <<<"$seen" ||
		fail "$dev: the re-sent Notify $again_id (for $holder's $lost_id) did not pass the broker; seen: $(paste -sd, <<<"$seen")"
	resent=$((resent + 1))
done < <(sql -F ' ' -c "SELECT n.device_id, n.id, (SELECT min(r.id) FROM rollout_notifications r WHERE r.campaign_id = 'ks'
	AND r.device_id = n.device_id AND r.id > n.id AND r.published_at IS NOT NULL) FROM rollout_notifications n
	WHERE n.campaign_id = 'ks' AND n.server_id = '$holder' AND n.published_at IS NULL AND n.reissued")
((resent > 0)) || fail "no re-sent Notify to check"
# every device has an acknowledged Notify, or acted on one of the killed
# holder's that the broker took before the kill and delivered after the stall
# (its PUBACK reached nobody, so it is not marked): such a device reported
# before the lease ran out, so the engine rightly issued nothing again (it
# re-issues only to devices still 'notified'); the device's Notify log and
# the witness must both show that very notification (seed 223782149 failed
# the old check, which demanded an acknowledged one of every device)
delivered=0
while read -r dev ids; do
	[[ -n "$dev" ]] || continue
	acted=$(awk -v d="$dev" '$2 == d && $4 == "ks" && $6 == "act" { print $3 }' "$NOTIFY_LOG")
	seen=$(seqs_seen "$dev")
	hit=
	for id in ${ids//,/ }; do
		if grep -qx "$id" <<<"$acted" && grep -qx "$id" <<<"$seen"; then hit=$id; fi
	done
	[[ -n "$hit" ]] || fail "a device has no acknowledged notification: $dev (unacknowledged of $holder: ${ids:-none}; acted on: $(paste -sd, <<<"$acted"); the witness saw: $(paste -sd, <<<"$seen"))"
	delivered=$((delivered + 1))
done < <(sql -F ' ' -c "SELECT m.device_id, coalesce(string_agg(n.id::text, ',' ORDER BY n.id), '')
	FROM campaign_devices m LEFT JOIN rollout_notifications n ON n.campaign_id = m.campaign_id
	AND n.device_id = m.device_id AND n.server_id = '$holder' AND n.published_at IS NULL
	WHERE m.campaign_id = 'ks' AND NOT EXISTS (SELECT 1 FROM rollout_notifications a
	WHERE a.campaign_id = 'ks' AND a.device_id = m.device_id AND a.published_at IS NOT NULL) GROUP BY 1")
echo "ok - what the broker never acknowledged was re-issued by srv-$other; every device has an acknowledged Notify or acted on $holder's unacknowledged one that the broker delivered ($delivered devices)"
echo "ok - the witness at the broker saw the re-sent Notify of each of the $resent devices $holder left unacknowledged"

# ---- 3. freezing the lease holder at each step of its tick --------------
# freeze CAMPAIGN ARTIFACT VERSION FAILPOINT
freeze() {
	local c=$1 art=$2 version=$3 fp=$4 arm=$T/arm-$1 resume_ms resumed_line
	log "3. $c: srv-a frozen at failpoint $fp"
	if [[ -n "${PID[b]}" ]]; then halt a b; else halt a; fi
	run a OTA_ROLLOUT_FAILPOINT="$fp" OTA_ROLLOUT_FAILPOINT_ARM="$arm"
	campaign "$c" "$art"
	wait_for 30 sql_eq t "SELECT lease_owner = 'srv-a' AND (SELECT count(*) FROM rollout_notifications WHERE campaign_id = '$c' AND published_at IS NOT NULL) >= $((N / 10 + RANDOM % (N / 5))) FROM campaigns WHERE campaign_id = '$c'" ||
		fail "$c: srv-a did not get going"
	run b
	touch "$arm"
	wait_for 20 frozen "${PID[a]}" || fail "$c: srv-a did not stop at $fp"
	grep -q "failpoint $fp: stopping" "$T/srv-a.log" || fail "$c: no failpoint log line"
	wait_for 30 sql_eq srv-b "SELECT lease_owner FROM campaigns WHERE campaign_id = '$c'" ||
		fail "$c: srv-b did not take over"
	sleep "0.$((RANDOM % 10))"
	resume_ms=$(now_ms)
	kill -CONT "${PID[a]}"
	wait_for 10 grep -q "failpoint $fp: resumed" "$T/srv-a.log" || fail "$c: srv-a did not resume"
	resumed_line=$(grep -n "failpoint $fp: resumed" "$T/srv-a.log" | tail -1 | cut -d: -f1)
	completes "$c" "$version"
	installs_once "$c"
	if tail -n +"$resumed_line" "$T/srv-a.log" | grep "rollout: publish "; then
		fail "$c: srv-a published after it resumed"
	fi
	local late ids
	ids=$(awk -v t="$resume_ms" -v c="$c" '$4 == c && $1 > t { print $3 }' "$NOTIFY_LOG" | sort -u | paste -sd, -)
	late=$(sql -c "SELECT count(*) FROM rollout_notifications WHERE server_id = 'srv-a' AND id = ANY ('{$ids}'::bigint[])")
	[[ $late == 0 ]] || fail "$c: devices received $late of srv-a's notifications after it resumed"
	sql_eq 0 "SELECT count(*) FROM rollout_notifications WHERE campaign_id = '$c' AND server_id = 'srv-a'
		AND published_at > to_timestamp($resume_ms / 1000.0)" || fail "$c: srv-a marked notifications after it resumed"
	local fenced
	fenced=$(tail -n +"$resumed_line" "$T/srv-a.log" | grep -o '[0-9]* notifications not published (fenced)' | head -1 || true)
	echo "ok - $c ($fp): srv-a published and marked nothing after it resumed${fenced:+ ($fenced)}"
}
freeze fs art-3 1.3.0 tick-sent
freeze fr art-4 1.4.0 tick-result
freeze fp art-5 1.5.0 "publish-$((1 + RANDOM % 4))"
halt a
run a

# ---- 4. a stage that cannot progress pauses within its budget ------------
log "4. a stage whose devices cannot finish pauses within its budget"
sql -c "INSERT INTO devices (device_id, model, hw_revision, version, version_code, keylist_version)
	VALUES ('ghost-1', 'fx-model', 'rev-a', '1.0.0', 1, 1), ('ghost-2', 'fx-model', 'rev-a', '1.0.0', 1, 1)"
BUDGET=8
sql -c "SELECT rollout_create('{\"id\":\"bg\",\"artifact\":\"art-6\",\"target\":{\"devices\":[\"sim-00001\",\"sim-00002\",\"sim-00003\",\"ghost-1\",\"ghost-2\"]},\"rate_per_minute\":3000,\"device_timeout_seconds\":600,\"stages\":[{\"percent\":100,\"budget_seconds\":$BUDGET}]}', 'alice')" >/dev/null
started=$SECONDS
sql -c "SELECT rollout_start('bg', 'alice')" >/dev/null
wait_for $((BUDGET + 10)) sql_eq paused "SELECT state FROM campaigns WHERE campaign_id = 'bg'" ||
	fail "bg: $(sql -c "SELECT rollout_status('bg') ->> 'progress'")"
took=$((SECONDS - started))
reason=$(sql -c "SELECT state_reason FROM campaigns WHERE campaign_id = 'bg'")
[[ $reason == "stalled: stage 0 not done within its budget of $BUDGET s: 3 of 5 devices confirmed"*"not confirmed: ghost-1 (notified), ghost-2 (notified)" ]] ||
	fail "bg reason: $reason"
sql_eq stalled "SELECT rollout_status('bg') -> 'progress' ->> 'reason'" || fail "bg progress"
echo "ok - paused ${took} s after the start (budget $BUDGET s): $reason"

kill -TERM "$SIM_PID"
wait "$SIM_PID" || fail "ota-fleet-sim exited with $?"
SIM_PID=
if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T/fleet.log"; then
	fail "sanitizer report in the simulator"
fi
log "simulator: $(jq -c '{transient_failures, duplicates_ignored, artifacts}' "$T/summary.json")"
# exactly one install each: every device installed (and confirmed) each
# campaign's firmware once; the bg stage, three devices
for a in art-1 art-2 art-3 art-4 art-5; do
	[[ $(jq ".artifacts[\"$a\"].confirmed" "$T/summary.json") == "$N" ]] ||
		fail "$a: the simulator confirmed $(jq -c ".artifacts[\"$a\"]" "$T/summary.json") installs, not $N"
done
[[ $(jq '.artifacts["art-6"].confirmed' "$T/summary.json") == 3 ]] || fail "art-6: $(jq -c '.artifacts["art-6"]' "$T/summary.json")"
# a Notify arrives twice only when a re-issue overtakes the original's late
# delivery (timing; none on a quiet machine): the count is reported, the rule
# itself is asserted above and in test_agent_online (test_notify_duplicates)
echo "ok - the simulator installed each campaign's firmware exactly once per device (and ignored $(jq '.duplicates_ignored' "$T/summary.json") Notify delivered again)"
halt a b d
log "PASS in $((SECONDS - T0)) s"
