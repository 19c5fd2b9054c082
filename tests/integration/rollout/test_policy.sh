#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The update policy (issue 17), rule by rule in simulated time against a
# real PostgreSQL: a security campaign passes a closed maintenance window
# while a functional one waits; a security campaign that preempts wins the
# devices of a functional one; version-range targets (a 1.4.x branch and a
# 2.0.x branch); the exposure view counts exactly the exposed devices; 30 %
# reverts halt on the build threshold while 30 % download errors count
# against the network threshold; post-install reboots after confirm halt a
# campaign; a stalled security campaign raises security_stalled events.
source "$(dirname "$0")/lib.sh" "$1"
seed_trust
T="2026-02-02 12:00:00+00"  # a Monday, 12:00 UTC
at() { echo "'$T'::timestamptz + interval '$1 s'"; }
create() { q "SELECT rollout_create('$1', 'alice')" >/dev/null; }
start() { q "SELECT rollout_start('$1', 'alice', $(at "$2"))" >/dev/null; }
tick() { q "SELECT count(*) FILTER (WHERE campaign_id = '$1') FROM rollout_tick('s', $(at "$2"), 30)"; }
state() { q "SELECT state FROM campaigns WHERE campaign_id = '$1'"; }
reason() { q "SELECT state_reason FROM campaigns WHERE campaign_id = '$1'"; }
progress() { q "SELECT rollout_progress('$1', $(at "$2")) ->> 'reason'"; }
report() { # CAMPAIGN DEVICE STATE VERSION_CODE ERROR AT
	q "SELECT rollout_report('$2', '$3', $4, 1, NULL, '$5', '$1', $(at "$6"))" >/dev/null
}
# artifact ID VERSION CODE SECURITY FIX_MIN FIX_MAX [ADVISORY] [ISSUED]
artifact() {
	q "INSERT INTO artifacts (artifact_id, digest, manifest, product, version, version_code, is_security_update,
	                          fixes_version_code_min, fixes_version_code_max, advisory, issued_at,
	                          image_sha256, image_size, signing_key_id, store_path)
	   VALUES ('$1', decode(md5('$1'), 'hex'), '\\x00', 'm1', '$2', $3, $4, $5, $6, '${7:-}',
	           ${8:-0}, decode(repeat('ab', 32), 'hex'), 1, $KEY1, 'x')"
}
# devices PREFIX N VERSION CODE [MODEL]
devices() {
	q "INSERT INTO devices (device_id, model, hw_revision, version, version_code, keylist_version, last_seen)
	   SELECT '$1' || lpad(i::text, 3, '0'), '${5:-m1}', 'r1', '$3', $4, 1, now()
	   FROM generate_series(1, $2) i"
}
ids() { q "SELECT string_agg('\"' || device_id || '\"', ',' ORDER BY device_id) FROM devices WHERE device_id LIKE '$1%'"; }

artifact fw-func 1.0.200 200 false 0 0
artifact fw-sec 1.0.201 201 true 0 0 CVE-2026-0001
devices w 6 1.0.100 100

# --- windows: a closed window (Tuesdays only; T is a Monday)
WIN='"windows":[{"days":[2],"start_minute":0,"duration_minutes":60}]'
STG='"stages":[{"percent":100}],"rate_per_minute":600,"rate_burst":10'
expect_sqlstate "a security policy needs a signed security update" FO422 \
	"SELECT rollout_create('{\"id\":\"x\",\"artifact\":\"fw-func\",$STG,\"security\":{\"override_windows\":true}}', 'alice')"
expect_sqlstate "security: unknown field named" FO422 \
	"SELECT rollout_create('{\"id\":\"x\",\"artifact\":\"fw-sec\",$STG,\"security\":{\"override\":true}}', 'alice')"
create "{\"id\":\"win-func\",\"artifact\":\"fw-func\",\"target\":{\"devices\":[\"w001\",\"w002\"]},$STG,$WIN}"
create "{\"id\":\"win-sec\",\"artifact\":\"fw-sec\",\"target\":{\"devices\":[\"w003\",\"w004\"]},$STG,$WIN,\"security\":{\"override_windows\":true}}"
create "{\"id\":\"win-sec-nopolicy\",\"artifact\":\"fw-sec\",\"target\":{\"devices\":[\"w005\",\"w006\"]},$STG,$WIN}"
for c in win-func win-sec win-sec-nopolicy; do start $c 0; done
expect_eq "security campaign with the override passes the closed window" "$(tick win-sec 1)" 2
expect_eq "functional campaign waits for its window" "$(tick win-func 2)" 0
expect_eq "functional campaign: progress says window" "$(progress win-func 3)" window
expect_eq "a security fix without the policy waits too (policy, not the flag)" "$(tick win-sec-nopolicy 4)" 0
expect_eq "the status shows the policy" \
	"$(q "SELECT rollout_status('win-sec') -> 'security' ->> 'override_windows'")" true
# Tuesday 00:10: the window opens for the functional campaign
expect_eq "functional campaign notifies inside its window" "$(tick win-func $((12 * 3600 + 600)))" 2
for c in win-func win-sec win-sec-nopolicy; do q "SELECT rollout_cancel('$c', 'alice')" >/dev/null; done

# --- conflicts: a preempting security campaign wins the devices of a
# functional campaign of higher priority that has not notified them yet
devices p 20 1.0.100 100
create "{\"id\":\"pf\",\"artifact\":\"fw-func\",\"priority\":10,\"target\":{\"devices\":[$(ids p)]},\"stages\":[{\"percent\":100}],\"rate_per_minute\":1,\"rate_burst\":5}"
start pf 100
expect_eq "functional campaign notifies its burst of 5" "$(tick pf 101)" 5
create "{\"id\":\"ps-low\",\"artifact\":\"fw-sec\",\"priority\":0,\"target\":{\"devices\":[$(ids p)]},$STG}"
start ps-low 102
expect_eq "without preempt, priority 0 loses to 10: nothing admitted" \
	"$(tick ps-low 103)|$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'ps-low' AND state <> 'superseded'")" "0|0"
q "SELECT rollout_cancel('ps-low', 'alice')" >/dev/null
create "{\"id\":\"ps\",\"artifact\":\"fw-sec\",\"priority\":0,\"target\":{\"devices\":[$(ids p)]},$STG,\"security\":{\"preempt\":true}}"
start ps 104
expect_eq "preempting security campaign notifies the 10 the functional one had not reached" "$(tick ps 105)" 10
expect_eq "the functional campaign lost them (superseded), its 5 in flight stay" \
	"$(q "SELECT string_agg(state || ':' || n, ',' ORDER BY state) FROM (SELECT state, count(*) n FROM campaign_devices WHERE campaign_id = 'pf' GROUP BY state) x")" \
	"notified:5,superseded:15"
expect_eq "then the other 5 it won" "$(tick ps 107)" 5
expect_eq "the 5 in flight in the functional campaign wait (one update at a time)" \
	"$(progress ps 108):$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'ps' AND state = 'pending'")" device_busy:5
expect_eq "same priority is no conflict between a preempting security and a functional campaign" \
	"$(q "SELECT rollout_check_priority('ps')")" ""
for c in pf ps; do q "SELECT rollout_cancel('$c', 'alice')" >/dev/null; done

# --- version ranges: a 1.4.x branch fix and a 2.0.x fix
artifact sec-147 1.4.7 10407 true 10400 10406 CVE-2026-0147 "$(q "SELECT extract(epoch FROM $(at -86400))::bigint")"
artifact sec-202 2.0.2 20002 true 20000 20001 CVE-2026-0202 "$(q "SELECT extract(epoch FROM $(at -3600))::bigint")"
artifact fun-203 2.0.3 20003 false 0 0
devices va 3 1.4.2 10402
devices vb 2 1.4.5 10405
devices vc 2 1.3.9 10309
devices vd 3 2.0.0 20000
devices ve 2 2.0.1 20001
RANGE='"stages":[{"percent":100}]'
tgt() { q "SELECT rollout_create('{\"id\":\"$1\",\"artifact\":\"$2\",\"target\":$3,$RANGE}', 'alice');
           SELECT string_agg(device_id, ',' ORDER BY device_id) FROM rollout_target('$1') WHERE device_id ~ '^v[a-e]'" | tail -1; }
expect_eq "1.4.x campaign of 1.4.7: the 1.4 devices only (not 1.3.9, not 2.x)" \
	"$(tgt r1 sec-147 '{"version_range":"1.4.x"}')" "va001,va002,va003,vb001,vb002"
expect_eq "comparators: >=1.4.0 <1.5.0 is the same branch" \
	"$(tgt r2 sec-147 '{"version_range":">=1.4.0 <1.5.0"}')" "va001,va002,va003,vb001,vb002"
expect_eq "control: 2.0.2 without a range would take the 1.x devices to 2.0" \
	"$(tgt r3 sec-202 '{}')" "va001,va002,va003,vb001,vb002,vc001,vc002,vd001,vd002,vd003,ve001,ve002"
expect_eq "2.0.x campaign of 2.0.2 skips every 1.x device" \
	"$(tgt r4 sec-202 '{"version_range":"2.0.x"}')" "vd001,vd002,vd003,ve001,ve002"
expect_eq "affected: the signed fix range of 1.4.7 (10400..10406)" \
	"$(tgt r5 sec-147 '{"affected":true}')" "va001,va002,va003,vb001,vb002"
expect_eq "<=1.4.2 and >1.4.2" \
	"$(tgt r6 sec-147 '{"version_range":"<=1.4.2"}')|$(tgt r7 sec-147 '{"version_range":">1.4.2"}')" \
	"va001,va002,va003,vc001,vc002|vb001,vb002"
expect_sqlstate "a bad range names the field" FO422 \
	"SELECT rollout_create('{\"id\":\"r8\",\"artifact\":\"sec-147\",\"target\":{\"version_range\":\"1.4 or so\"},$RANGE}', 'alice')"
expect_sqlstate "affected needs a security artifact" FO422 \
	"SELECT rollout_create('{\"id\":\"r9\",\"artifact\":\"fun-203\",\"target\":{\"affected\":true},$RANGE}', 'alice')"
create "{\"id\":\"run14\",\"artifact\":\"sec-147\",\"target\":{\"version_range\":\"1.4.x\"},\"stages\":[{\"percent\":100}],\"rate_per_minute\":600,\"rate_burst\":50}"
start run14 200
expect_eq "the 1.4.x campaign notifies exactly its 5 devices" "$(tick run14 201)" 5
expect_eq "no 2.x or 1.3 device is a member" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'run14' AND device_id ~ '^v[cde]'")" 0
q "SELECT rollout_cancel('run14', 'alice')" >/dev/null

# --- exposure: exactly the devices on a version a fix replaces
artifact sec-148 1.4.8 10408 true 10400 10407 CVE-2026-0148 "$(q "SELECT extract(epoch FROM $(at -600))::bigint")"
devices vf 1 1.4.7 10407
devices vg 2 1.4.2 10402 m2   # another model: sec-14x does not replace its firmware
devices vh 1 1.4.2 10402
q "UPDATE devices SET decommissioned = true WHERE device_id = 'vh001'"
EXP=$(q "SELECT security_exposure($(at 0))")
fix() { jq -r --arg a "$1" ".fixes[] | select(.artifact == \$a) | $2" <<<"$EXP"; }
expect_eq "sec-147 exposes the 1.4.2 and 1.4.5 devices (5), not 1.3.9, not m2, not decommissioned" \
	"$(fix sec-147 .exposed_devices)" 5
expect_eq "sec-148 also exposes the device on 1.4.7 (6)" "$(fix sec-148 .exposed_devices)" 6
expect_eq "sec-202 exposes the 2.0.0 and 2.0.1 devices (5)" "$(fix sec-202 .exposed_devices)" 5
expect_eq "per version for sec-148" "$(fix sec-148 '[.versions[] | "\(.version):\(.devices)"] | join(",")')" \
	"1.4.2:3,1.4.5:2,1.4.7:1"
expect_eq "age since the fix was released (issued_at a day ago)" "$(fix sec-147 .age_seconds)" 86400
expect_eq "the unstated range of fw-sec (201) covers every earlier code: the w and p devices on 100" \
	"$(fix fw-sec .exposed_devices)" 26
expect_eq "a functional artifact is no fix" "$(jq '[.fixes[] | select(.artifact == "fun-203")] | length' <<<"$EXP")" 0
expect_eq "model m1: each exposed device once (26 + 6 + 5), the oldest fix's age (sec-147)" \
	"$(jq -r '.models[] | select(.model == "m1") | "\(.exposed_devices):\(.oldest_fix_age_seconds)"' <<<"$EXP")" \
	"37:86400"
expect_eq "model m2 is not exposed" "$(jq '[.models[] | select(.model == "m2")] | length' <<<"$EXP")" 0
q "UPDATE devices SET version = '1.4.8', version_code = 10408 WHERE device_id = 'va001'"
expect_eq "a device updated to 1.4.8 leaves the view" \
	"$(q "SELECT security_exposure($(at 0)) -> 'fixes'" | jq '[.[] | select(.artifact == "sec-148")][0].exposed_devices')" 5

# --- build vs network: 30 % reverts halt on the build threshold, 30 %
# download errors count against the network threshold
artifact fw-300 1.0.300 300 false 0 0
SPLIT='"stages":[{"count":10,"build_failure_ratio":0.2,"network_failure_ratio":0.5,"success_ratio":0.7},{"percent":100}],"transient_retries":0,"rate_per_minute":600,"rate_burst":50'
run_canary() { # CAMPAIGN PREFIX FAIL_STATE FAIL_ERROR
	devices "$2" 20 1.0.100 100
	create "{\"id\":\"$1\",\"artifact\":\"fw-300\",\"target\":{\"devices\":[$(ids "$2")]},${5:-$SPLIT}}"
	start "$1" 1000
	tick "$1" 1001 >/dev/null
	local n=0 d
	for d in $(q "SELECT device_id FROM campaign_devices WHERE campaign_id = '$1' AND state = 'notified' ORDER BY device_id"); do
		if ((n < 3)); then report "$1" "$d" "$3" 100 "$4" 1002; else report "$1" "$d" confirmed 300 '' 1002; fi
		n=$((n + 1))
	done
	tick "$1" 1003 >/dev/null
}
run_canary bld bb reverted OTA_ERR_SELFTEST
expect_eq "3 of 10 canaries reverted: paused" "$(state bld)" paused
expect_eq "the reason names the build signal" "$(reason bld)" \
	"stage 0: build: 3 of 10 devices failed (OTA_ERR_SELFTEST: 3), over the build failure threshold 0.2000"
run_canary net nn failed OTA_ERR_TRANSPORT
expect_eq "3 of 10 download errors: under the network threshold 0.5, still running" "$(state net)" running
expect_eq "they count against the network, not the build" \
	"$(q "SELECT rollout_status('net') -> 'stages' -> 0 -> 'signals'")" \
	'{"unhealthy": 0, "build_failed": 0, "network_failed": 3}'
expect_eq "the stage moved on (7 of 10 confirmed, success_ratio 0.7)" \
	"$(q "SELECT current_stage FROM campaigns WHERE campaign_id = 'net'")" 1
run_canary net2 n2 failed OTA_ERR_TRANSPORT \
	'"stages":[{"count":10,"build_failure_ratio":0.5,"network_failure_ratio":0.2}],"transient_retries":0,"rate_per_minute":600,"rate_burst":50'
expect_eq "with a network threshold of 0.2 the same errors halt, naming the network" "$(reason net2)" \
	"stage 0: network: 3 of 10 devices failed (OTA_ERR_TRANSPORT: 3), over the network failure threshold 0.2000"
run_canary one o1 failed OTA_ERR_TRANSPORT \
	'"stages":[{"count":10,"failure_ratio":0.2}],"transient_retries":0,"rate_per_minute":600,"rate_burst":50'
expect_eq "without the new fields: one failure_ratio over every failure, as before" "$(reason one)" \
	"stage 0: 3 of 10 devices failed (OTA_ERR_TRANSPORT: 3), over the failure threshold 0.2000"
expect_eq "the classes: timeouts (never reported, or OTA_ERR_TIMEOUT), pins and transport are the network; self-test failures, boot failures (a trial rebooted without confirm reverts with OTA_ERR_SELFTEST) and refused images the build" \
	"$(q "SELECT string_agg(rollout_failure_class(s, e), ',' ORDER BY n) FROM (VALUES
	      (1, 'timed_out', NULL), (2, 'failed', 'OTA_ERR_TIMEOUT'), (3, 'failed', 'OTA_ERR_PIN'),
	      (4, 'failed', 'OTA_ERR_TRANSPORT'), (5, 'failed', 'OTA_ERR_SELFTEST'), (6, 'failed', 'OTA_ERR_HASH'),
	      (7, 'failed', 'OTA_ERR_SIGNATURE')) v(n, s, e)")" \
	"network,network,network,network,build,build,build"
q "SELECT rollout_resume('bld', 'alice', $(at 1100))" >/dev/null
tick bld 1101 >/dev/null
expect_eq "resume acknowledges the build failures: it runs on" "$(state bld)" running

# --- health after confirm: unexpected reboots halt a security campaign
artifact sec-400 1.0.400 400 true 0 0 CVE-2026-0400
devices hh 20 1.0.100 100
create "{\"id\":\"hl\",\"artifact\":\"sec-400\",\"target\":{\"devices\":[$(ids hh)]},\"stages\":[{\"count\":10,\"health\":{\"window_seconds\":600,\"max_unexpected_reboots\":0,\"min_health\":0.5,\"max_unhealthy_ratio\":0.2}},{\"percent\":100}],\"rate_per_minute\":600,\"rate_burst\":50}"
expect_eq "a stage watching health soaks at least its window" \
	"$(q "SELECT soak_s FROM campaign_stages WHERE campaign_id = 'hl' AND stage_no = 0")" 600
start hl 2000
expect_eq "the firmware Notify carries the health window" \
	"$(q "SELECT min(health_window_s) || ':' || count(*) FROM rollout_tick('s', $(at 2001), 30) WHERE campaign_id = 'hl'")" "600:10"
for d in $(q "SELECT device_id FROM campaign_devices WHERE campaign_id = 'hl' AND state = 'notified' ORDER BY device_id"); do
	report hl "$d" confirmed 400 '' 2002
	q "UPDATE devices SET version = '1.0.400', version_code = 400 WHERE device_id = '$d'"
done
tick hl 2003 >/dev/null
expect_eq "all 10 canaries confirmed, the stage succeeded and soaks" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'hl' AND state = 'confirmed'")|$(progress hl 2004)" "10|soak"
mapfile -t HD < <(q "SELECT device_id FROM campaign_devices WHERE campaign_id = 'hl' AND state = 'confirmed' ORDER BY device_id")
health() { q "SELECT rollout_health('$1', $2, $3, $4, $(at "$5"))"; }
expect_eq "two devices reboot unexpectedly after confirm" \
	"$(health "${HD[0]}" 400 1 1000 2100)$(health "${HD[1]}" 400 2 1000 2100)" 11
expect_eq "a repeated health report changes nothing" "$(health "${HD[1]}" 400 2 1000 2101)" 0
expect_eq "health of another version does not count" "$(health "${HD[2]}" 300 5 0 2101)" 0
expect_eq "a report after the window (600 s from confirm) does not count" "$(health "${HD[3]}" 400 5 0 2700)" 0
tick hl 2200 >/dev/null
expect_eq "2 of 10 unhealthy is not over 0.2: still running" "$(state hl)" running
# the third through the ingest path, as ota-server stores a StatusReport
# (report_ingest runs on the real clock: its confirm moves to now)
q "UPDATE campaign_devices SET done_at = clock_timestamp() WHERE campaign_id = 'hl' AND device_id = '${HD[2]}'"
expect_eq "a third reboots (StatusReport health fields through report_ingest)" \
	"$(q "SELECT campaign_changes FROM report_ingest('${HD[2]}', '{\"seq\": 5, \"state\": \"idle\", \"version\": \"1.0.400\", \"version_code\": 400, \"keylist_version\": 1, \"rootlist_version\": 0, \"security_counter\": 0, \"model\": \"m1\", \"hw_revision\": \"r1\", \"active_slot\": 1, \"pending_version\": \"\", \"artifact\": \"\", \"campaign_id\": \"\", \"error\": \"\", \"error_detail\": \"\", \"events\": [], \"keylist_key_ids\": [], \"health_known\": true, \"unexpected_reboots\": 1, \"health_permille\": 900}', '\\x01')")" 1
# and through a batch (report_ingest_batch, a round of two devices): the
# first reports more reboots, the second the same values again
hrep() { # SEQ REBOOTS PERMILLE
	echo "'{\"seq\": $1, \"state\": \"idle\", \"version\": \"1.0.400\", \"version_code\": 400, \"keylist_version\": 1, \"rootlist_version\": 0, \"security_counter\": 0, \"model\": \"m1\", \"hw_revision\": \"r1\", \"active_slot\": 1, \"pending_version\": \"\", \"artifact\": \"\", \"campaign_id\": \"\", \"error\": \"\", \"error_detail\": \"\", \"events\": [], \"keylist_key_ids\": [], \"health_known\": true, \"unexpected_reboots\": $2, \"health_permille\": $3}'::jsonb"
}
q "UPDATE campaign_devices SET done_at = clock_timestamp() WHERE campaign_id = 'hl' AND device_id IN ('${HD[0]}', '${HD[1]}')"
expect_eq "health through a batch: the first device's reboots counted, the repeated report changes nothing" \
	"$(q "SELECT string_agg(campaign_changes::text, ',' ORDER BY ord) FROM report_ingest_batch(
	        ARRAY['${HD[0]}', '${HD[1]}'], ARRAY[$(hrep 5 3 1000), $(hrep 5 2 1000)], '{\\x01,\\x02}')")" "1,0"
expect_eq "the reboots stored" \
	"$(q "SELECT string_agg(health_reboots::text, ',' ORDER BY device_id) FROM campaign_devices
	      WHERE campaign_id = 'hl' AND device_id IN ('${HD[0]}', '${HD[1]}')")" "3,2"
expect_sqlstate "a batch with health out of range is refused whole" FO422 \
	"SELECT * FROM report_ingest_batch(ARRAY['${HD[3]}', '${HD[4]}'], ARRAY[$(hrep 6 0 1000), $(hrep 6 0 1001)],
	                                   '{\\x03,\\x04}')"
tick hl 2300 >/dev/null
expect_eq "3 of 10 unhealthy after confirm: paused" "$(state hl)" paused
expect_eq "the reason names the health signal" "$(reason hl)" \
	"stage 0: health: 3 of 10 devices unhealthy after confirm (unexpected reboots: 3, health below 0.500: 0), over the health threshold 0.2000"
expect_eq "nobody beyond the canaries was notified" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'hl' AND state <> 'pending'")" 10
expect_eq "the security campaign's halt is a security_stalled event naming it" \
	"$(q "SELECT detail FROM campaign_events WHERE campaign_id = 'hl' AND kind = 'security_stalled'")" \
	"security update paused by the engine: $(reason hl)"
q "SELECT rollout_resume('hl', 'alice', $(at 2400))" >/dev/null
expect_eq "a low health value counts too (0.4 < 0.5), after the resume acknowledged the reboots" \
	"$(health "${HD[4]}" 400 0 400 2401)$(health "${HD[5]}" 400 0 300 2401)$(health "${HD[6]}" 400 0 100 2401)" 111
tick hl 2402 >/dev/null
expect_eq "health below the floor halts it again" "$(reason hl)" \
	"stage 0: health: 6 of 10 devices unhealthy after confirm (unexpected reboots: 3, health below 0.500: 3), over the health threshold 0.2000"

# --- a stalled security campaign is reported (events), once per period
devices st 2 1.0.100 100
create "{\"id\":\"stall\",\"artifact\":\"sec-400\",\"target\":{\"devices\":[$(ids st)]},$STG,$WIN,\"security\":{\"stall_alert_seconds\":600}}"
start stall 3000
tick stall 3001 >/dev/null
tick stall 3500 >/dev/null
expect_eq "no event before stall_alert_seconds" \
	"$(q "SELECT count(*) FROM campaign_events WHERE campaign_id = 'stall' AND kind = 'security_stalled'")" 0
tick stall 3601 >/dev/null
tick stall 3700 >/dev/null
expect_eq "one event after 600 s without a confirmed device, naming why" \
	"$(q "SELECT count(*) || ':' || min(detail) FROM campaign_events WHERE campaign_id = 'stall' AND kind = 'security_stalled'")" \
	"1:security update: no device confirmed for 601 s, 2 devices wait (window: 2 devices wait for a maintenance window)"
tick stall 4202 >/dev/null
expect_eq "again after another period" \
	"$(q "SELECT count(*) FROM campaign_events WHERE campaign_id = 'stall' AND kind = 'security_stalled'")" 2
expect_eq "a functional campaign never raises it" \
	"$(q "SELECT count(*) FROM campaign_events e JOIN campaigns k USING (campaign_id) WHERE e.kind = 'security_stalled' AND k.security_stall_alert_s IS NULL")" 0
expect_counts_kept "at the end"
echo "all update-policy checks passed"
