#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The engine under faults, rule by rule in simulated time (the C path is in
# test_faults.sh): lease fencing tokens (a stale holder marks nothing
# published), transient failures retried with back-off up to the campaign's
# limit, a stage that can never complete or runs past its time budget pauses
# naming devices and errors, and the progress reason of a campaign in every
# waiting state.
source "$(dirname "$0")/lib.sh" "$1"
qf "$(dirname "$0")/sim.sql" >/dev/null
seed_trust
add_artifact fw-101 101
add_devices 40 dev
T="2026-02-02 12:00:00+00"  # a Monday
at() { echo "'$T'::timestamptz + interval '$1 s'"; }
create() { q "SELECT rollout_create('$1', 'alice')" >/dev/null; }
start() { q "SELECT rollout_start('$1', 'alice', $(at "$2"))" >/dev/null; }
tick() { q "SELECT count(*) FROM rollout_tick('${3:-s}', $(at "$2"), 10)"; }
dev_state() { q "SELECT state || ':' || error || ':' || attempts FROM campaign_devices WHERE campaign_id = '$1' AND device_id = '$2'"; }
progress() { q "SELECT rollout_progress('$1', $(at "$2")) ->> 'reason'"; }
report() { # CAMPAIGN DEVICE STATE ERROR AT
	q "SELECT rollout_report('$2', '$3', 100, 1, NULL, '$4', '$1', $(at "$5"))" >/dev/null
}
fingerprint() {
	q "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
	     SELECT id || ':' || coalesce(published_at::text, '-') AS x FROM rollout_notifications
	     UNION ALL SELECT campaign_id || ':' || device_id || ':' || state FROM campaign_devices
	     UNION ALL SELECT campaign_id || ':' || state || ':' || coalesce(lease_owner, '-') || ':' || lease_token
	     FROM campaigns) f"
}

# --- fencing: every take-over is a new token; a stale one marks nothing
create '{"id":"fe","artifact":"fw-101","target":{"devices":["dev0000001","dev0000002","dev0000003"]},"rate_per_minute":600,"rate_burst":10,"device_timeout_seconds":600,"stages":[{"percent":100}]}'
start fe 0
expect_eq "first holder a: three notifications under token 1" \
	"$(q "SELECT count(*), min(fence), max(fence) FROM rollout_tick('a', $(at 1), 10)")" "3|1|1"
expect_eq "a's lease is kept while it ticks: same token" \
	"$(q "SELECT lease_owner || ':' || lease_token FROM campaigns WHERE campaign_id = 'fe'")" "a:1"
tick fe 5 a >/dev/null
expect_eq "a ticking again within its lease keeps token 1" \
	"$(q "SELECT lease_token FROM campaigns WHERE campaign_id = 'fe'")" 1
# a froze; its lease (10 s) runs out; b takes over and re-issues a's
# unacknowledged notifications under token 2
expect_eq "b takes over after the lease: a's three re-issued under token 2" \
	"$(q "SELECT count(*), min(fence) FROM rollout_tick('b', $(at 30), 10)")" "3|2"
expect_eq "the take-over is an event" \
	"$(q "SELECT count(*) FROM campaign_events WHERE campaign_id = 'fe' AND kind = 'lease' AND detail = 'b took over from a'")" 1
before=$(fingerprint)
expect_eq "a resumes: its acknowledgements under token 1 mark nothing" \
	"$(q "SELECT rollout_published(array_agg(id), array_agg(fence), 'a', $(at 31)) FROM rollout_notifications WHERE campaign_id = 'fe' AND server_id = 'a'")" 0
expect_eq "a with b's current token marks nothing either (not the holder)" \
	"$(q "SELECT rollout_published(array_agg(id), array_agg(fence), 'a', $(at 31)) FROM rollout_notifications WHERE campaign_id = 'fe' AND server_id = 'b'")" 0
expect_eq "b's ids with a stale token mark nothing" \
	"$(q "SELECT rollout_published(array_agg(id), array_agg(1::bigint), 'b', $(at 31)) FROM rollout_notifications WHERE campaign_id = 'fe' AND server_id = 'b'")" 0
expect_sqlstate "one fencing token per id" FO422 "SELECT rollout_published('{1,2}', '{1}', 'b')"
expect_eq "the stale attempts changed nothing" "$(fingerprint)" "$before"
expect_eq "b, the holder, marks its own under token 2" \
	"$(q "SELECT rollout_published(array_agg(id), array_agg(fence), 'b', $(at 31)) FROM rollout_notifications WHERE campaign_id = 'fe' AND server_id = 'b'")" 3
expect_eq "a's resumed tick takes nothing (b holds a live lease)" "$(tick fe 32 a)" 0
expect_eq "an acknowledged notification is not re-issued" "$(tick fe 60 b)" 0
q "SELECT rollout_cancel('fe', 'alice', $(at 61))" >/dev/null

# --- transient failures are retried with back-off, then count
create '{"id":"tr","artifact":"fw-101","target":{"devices":["dev0000010","dev0000011"]},"transient_retries":2,"retry_backoff_seconds":10,"rate_per_minute":600,"rate_burst":10,"device_timeout_seconds":100,"stages":[{"percent":100,"failure_ratio":0.9}]}'
start tr 1000
expect_eq "both notified" "$(tick tr 1001)" 2
report tr dev0000010 failed OTA_ERR_TRANSPORT 1002
report tr dev0000011 reverted OTA_ERR_SELFTEST 1002
expect_eq "a transport failure goes back to pending (try 1 used)" "$(dev_state tr dev0000010)" "pending:OTA_ERR_TRANSPORT:1"
expect_eq "a self-test failure is final" "$(dev_state tr dev0000011)" "failed:OTA_ERR_SELFTEST:0"
expect_eq "progress: waiting for the retry back-off" "$(progress tr 1005)" retry_backoff
expect_eq "not notified again within the back-off (10 s)" "$(tick tr 1005)" 0
expect_eq "notified again after it" "$(tick tr 1013)" 1
report tr dev0000010 failed OTA_ERR_TRANSPORT 1014
expect_eq "second failure: back-off doubles (20 s)" "$(tick tr 1030)" 0
expect_eq "third try after 20 s" "$(tick tr 1035)" 1
report tr dev0000010 failed OTA_ERR_TRANSPORT 1036
expect_eq "tries used up: the failure counts" "$(dev_state tr dev0000010)" "failed:OTA_ERR_TRANSPORT:2"
expect_eq "three notifications in all for the retried device" \
	"$(q "SELECT count(*) FROM rollout_notifications WHERE campaign_id = 'tr' AND device_id = 'dev0000010'")" 3
q "SELECT rollout_cancel('tr', 'alice', $(at 1040))" >/dev/null

# a silent device (timeout) is retried the same way
create '{"id":"to","artifact":"fw-101","target":{"devices":["dev0000012"]},"transient_retries":1,"retry_backoff_seconds":5,"device_timeout_seconds":50,"stages":[{"percent":100}]}'
start to 2000
tick to 2001 >/dev/null
tick to 2052 >/dev/null
expect_eq "timed out once: pending again" "$(dev_state to dev0000012)" "pending:OTA_ERR_TIMEOUT:1"
expect_eq "re-notified after the back-off" "$(tick to 2058)" 1
tick to 2110 >/dev/null
expect_eq "timed out again: now final" "$(dev_state to dev0000012)" "timed_out:OTA_ERR_TIMEOUT:1"
q "SELECT rollout_cancel('to', 'alice', $(at 2111))" >/dev/null

# --- a stage that can never complete pauses at once, naming devices and errors
create '{"id":"st","artifact":"fw-101","target":{"devices":["dev0000020","dev0000021","dev0000022","dev0000023"]},"transient_retries":0,"rate_per_minute":600,"rate_burst":10,"device_timeout_seconds":600,"stages":[{"percent":100,"failure_ratio":0.5}]}'
start st 3000
tick st 3001 >/dev/null
expect_eq "progress: devices in flight" "$(progress st 3001)" devices
report st dev0000020 rejected OTA_ERR_HASH 3002
for d in dev0000021 dev0000022 dev0000023; do
	q "UPDATE devices SET version_code = 101 WHERE device_id = '$d'"
	q "SELECT rollout_report('$d', 'confirmed', 101, 1, NULL, '', 'st', $(at 3002))" >/dev/null
done
tick st 3003 >/dev/null
expect_eq "1 failure of 4 is under the failure threshold, but the stage cannot complete: paused" \
	"$(q "SELECT state FROM campaigns WHERE campaign_id = 'st'")" paused
reason=$(q "SELECT state_reason FROM campaigns WHERE campaign_id = 'st'")
[[ $reason == "stalled: stage 0 cannot complete: 3 of 4 devices confirmed"*"errors: OTA_ERR_HASH: 1; not confirmed: dev0000020 (failed OTA_ERR_HASH)" ]] ||
	fail "stall reason: $reason"
echo "ok - the reason names the device and its error: $reason"
expect_eq "progress says stalled" "$(progress st 3004)" stalled
expect_eq "resume accepts the failure: the stage completes" \
	"$(q "SELECT rollout_resume('st', 'bob', $(at 3010))")|$(tick st 3011 >/dev/null; q "SELECT state FROM campaigns WHERE campaign_id = 'st'")" "running|completed"

# --- a stage over its time budget pauses; window time does not count
create '{"id":"bu","artifact":"fw-101","target":{"devices":["dev0000030","dev0000031"]},"rate_per_minute":600,"rate_burst":10,"device_timeout_seconds":600,"stages":[{"percent":100,"budget_seconds":100}]}'
start bu 4000
tick bu 4001 >/dev/null
q "UPDATE devices SET version_code = 101 WHERE device_id = 'dev0000030'"
q "SELECT rollout_report('dev0000030', 'confirmed', 101, 1, NULL, '', 'bu', $(at 4010))" >/dev/null
for t in 4040 4080; do
	report bu dev0000031 downloading '' "$t"
	tick bu "$((t + 1))" >/dev/null
done
expect_eq "within the budget: running" "$(q "SELECT state FROM campaigns WHERE campaign_id = 'bu'")" running
report bu dev0000031 downloading '' 4099
tick bu 4101 >/dev/null
reason=$(q "SELECT state_reason FROM campaigns WHERE campaign_id = 'bu'")
[[ $reason == "stalled: stage 0 not done within its budget of 100 s: 1 of 2 devices confirmed"*"not confirmed: dev0000031 (downloading)" ]] ||
	fail "budget reason: $reason ($(q "SELECT state FROM campaigns WHERE campaign_id = 'bu'"))"
echo "ok - over its budget, paused: $reason"
expect_eq "the stall is a progress event" \
	"$(q "SELECT count(*) FROM campaign_events WHERE campaign_id = 'bu' AND kind = 'paused' AND detail LIKE 'stalled:%'")" 1
q "SELECT rollout_cancel('bu', 'alice', $(at 4102))" >/dev/null

# --- progress says why a running campaign does not move
create '{"id":"ra","artifact":"fw-101","target":{"devices":["dev0000032","dev0000033","dev0000034"]},"rate_per_minute":1,"rate_burst":1,"device_timeout_seconds":600,"stages":[{"percent":100}]}'
start ra 5000
expect_eq "progress: before the first tick admits" "$(progress ra 5000)" evaluating
tick ra 5001 >/dev/null
expect_eq "progress: the rate cap" "$(progress ra 5002)" rate_limit
expect_eq "progress: notifying once the bucket refilled" "$(progress ra 5070)" notifying
q "SELECT rollout_cancel('ra', 'alice', $(at 5003))" >/dev/null
# waits_for WHAT SPEC AT REASON: started at AT and ticked once, the campaign
# waits for REASON; then cancelled
waits_for() {
	local id
	id=$(jq -r .id <<<"$2")
	create "$2"
	start "$id" "$3"
	tick "$id" $(($3 + 1)) >/dev/null
	expect_eq "progress: $1" "$(progress "$id" $(($3 + 2)))" "$4"
	q "SELECT rollout_cancel('$id', 'alice', $(at $(($3 + 3))))" >/dev/null
}
waits_for "the in-flight limit" '{"id":"mf","artifact":"fw-101","target":{"devices":["dev0000035","dev0000036"]},"rate_per_minute":600,"rate_burst":10,"device_timeout_seconds":600,"stages":[{"percent":100,"max_in_flight":1}]}' 5100 in_flight_limit
create '{"id":"so","artifact":"fw-101","target":{"devices":["dev0000037"]},"rate_per_minute":600,"device_timeout_seconds":600,"stages":[{"count":1,"soak_seconds":300},{"percent":100}]}'
start so 5200
tick so 5201 >/dev/null
q "UPDATE devices SET version_code = 101 WHERE device_id = 'dev0000037'"
q "SELECT rollout_report('dev0000037', 'confirmed', 101, 1, NULL, '', 'so', $(at 5202))" >/dev/null
tick so 5203 >/dev/null
expect_eq "progress: the soak" "$(progress so 5210)" soak
q "SELECT rollout_cancel('so', 'alice', $(at 5211))" >/dev/null
waits_for "a maintenance window" '{"id":"wi","artifact":"fw-101","target":{"devices":["dev0000038"]},"windows":[{"days":[3],"start_minute":0,"duration_minutes":60}],"stages":[{"percent":100}]}' 5300 window
create '{"id":"aa","artifact":"fw-101","requires_approval":true,"target":{"devices":["dev0000039"]},"stages":[{"percent":100}]}'
start aa 5400
expect_eq "progress: approval" "$(progress aa 5401)" approval
create '{"id":"dr","artifact":"fw-101","target":{"devices":["dev0000039"]},"stages":[{"percent":100}]}'
expect_eq "progress: a draft" "$(progress dr 5401)" not_started
# a campaign whose devices a higher-priority campaign holds: waiting, and
# says for whom; past its budget it pauses naming them (it was "evaluating"
# for the whole budget, then stalled with "0 of 0 devices confirmed")
add_devices 2 hp
create '{"id":"hp-hi","artifact":"fw-101","priority":5,"target":{"devices":["hp0000001","hp0000002"]},"device_timeout_seconds":6000,"stages":[{"percent":100}]}'
start hp-hi 6000
tick hp-hi 6001 >/dev/null
create '{"id":"hp-lo","artifact":"fw-101","priority":1,"target":{"devices":["hp0000001","hp0000002"]},"device_timeout_seconds":600,"stages":[{"percent":100,"budget_seconds":300}]}'
start hp-lo 6002
tick hp-lo 6003 >/dev/null
expect_eq "progress: held by a higher-priority campaign" \
	"$(q "SELECT (p ->> 'state') || ':' || (p ->> 'reason') || ':' || (p ->> 'detail') FROM rollout_progress('hp-lo', $(at 6004)) p")" \
	"waiting:higher_priority:2 devices are held by a higher-priority campaign: hp-hi"
tick hp-lo 6400 >/dev/null
reason=$(q "SELECT state_reason FROM campaigns WHERE campaign_id = 'hp-lo'")
# the stage's share is admitted as a whole (lazy admission: 2 devices, no
# row yet), the held ones are named
[[ $reason == "stalled: stage 0 not done within its budget of 300 s: 0 of 2 devices confirmed"*"; not admitted: hp0000001, hp0000002 (held by a higher-priority campaign: hp-hi)" ]] ||
	fail "held stall reason: $reason ($(q "SELECT state FROM campaigns WHERE campaign_id = 'hp-lo'"))"
echo "ok - over its budget, paused naming the held devices: $reason"
q "SELECT rollout_cancel('hp-lo', 'alice', $(at 6401)), rollout_cancel('hp-hi', 'alice', $(at 6401))" >/dev/null
# lazy admission: a lower-priority campaign's pending rows whose devices a
# higher one admitted without writing their rows yet (it writes 3 rows a
# tick: 2 x max_in_flight 1 + a burst of 1) wait for it, and say so
add_devices 5 rv
create '{"id":"rv-lo","artifact":"fw-101","priority":1,"target":{"tags_any":["rv"]},"rate_per_minute":600,"rate_burst":1,"device_timeout_seconds":6000,"stages":[{"percent":100}]}'
q "UPDATE devices SET tags = '{rv}' WHERE device_id LIKE 'rv%'"
start rv-lo 6500
tick rv-lo 6501 >/dev/null
create '{"id":"rv-hi","artifact":"fw-101","priority":5,"target":{"tags_any":["rv"]},"rate_per_minute":600,"rate_burst":1,"device_timeout_seconds":6000,"stages":[{"percent":100,"max_in_flight":1}]}'
start rv-hi 6502
tick rv-hi 6503 >/dev/null
expect_eq "rows: the lower one's 5 (1 notified), the higher one's 3 with 2 reserved" \
	"$(q "SELECT (SELECT count(*) FROM campaign_devices WHERE campaign_id = 'rv-lo') || '/' ||
	             (SELECT count(*) FROM campaign_devices WHERE campaign_id = 'rv-hi') || '/' ||
	             (SELECT admit_rest FROM campaigns WHERE campaign_id = 'rv-hi')")" "5/3/2"
progress_rv=$(q "SELECT (p ->> 'state') || ':' || (p ->> 'reason') || ':' || (p ->> 'detail') FROM rollout_progress('rv-lo', $(at 6504)) p")
[[ $progress_rv == "waiting:higher_priority:"[12]" devices are held by a higher-priority campaign: rv-hi" ]] ||
	fail "progress: reserved by a higher-priority campaign: $progress_rv"
echo "ok - progress: reserved by a higher-priority campaign: $progress_rv"
q "SELECT rollout_cancel('rv-lo', 'alice', $(at 6505)), rollout_cancel('rv-hi', 'alice', $(at 6505))" >/dev/null
# many held devices: the progress reads a bounded number of candidates
# (rollout_held, fleetota.held_scan), exact below the bound, "at least N"
# past it, and the rows it reads do not grow with the held devices
add_devices 300 bh
q "UPDATE devices SET tags = '{bh}' WHERE device_id LIKE 'bh%'"
create '{"id":"bh-hi","artifact":"fw-101","priority":5,"target":{"tags_any":["bh"]},"rate_per_minute":600,"rate_burst":1,"device_timeout_seconds":6000,"stages":[{"percent":100,"max_in_flight":1}]}'
start bh-hi 6600
tick bh-hi 6601 >/dev/null
create '{"id":"bh-lo","artifact":"fw-101","priority":1,"target":{"tags_any":["bh"]},"rate_per_minute":600,"device_timeout_seconds":6000,"stages":[{"percent":100}]}'
start bh-lo 6602
tick bh-lo 6603 >/dev/null
# held_progress SCAN: bh-lo's progress with that bound in $HELD, the index
# entries it read (campaign_targets, campaign_devices) in $HELD_READ
held_progress() {
	local before after
	before=$(q "SELECT sum(idx_tup_read) FROM pg_stat_user_indexes WHERE relname IN ('campaign_targets', 'campaign_devices')")
	HELD=$(q "SET fleetota.held_scan = $1; SELECT pg_stat_force_next_flush();
	          SELECT (p ->> 'state') || ':' || (p ->> 'reason') || ':' || (p ->> 'detail') FROM rollout_progress('bh-lo', $(at 6604)) p" | tail -1)
	after=$(q "SELECT sum(idx_tup_read) FROM pg_stat_user_indexes WHERE relname IN ('campaign_targets', 'campaign_devices')")
	HELD_READ=$((after - before))
}
held_progress 10000
expect_eq "progress: 300 held, below the bound: exact" "$HELD" \
	"waiting:higher_priority:300 devices are held by a higher-priority campaign: bh-hi"
read_all=$HELD_READ
held_progress 100
expect_eq "progress: 300 held, bound 100: a lower bound" "$HELD" \
	"waiting:higher_priority:at least 100 devices are held by a higher-priority campaign: bh-hi"
# 101 candidates and 100 probes, plus the campaign's own rows
((HELD_READ <= 250 && read_all >= 600)) || fail "index entries read: $HELD_READ with the bound 100, $read_all without"
echo "ok - index entries read: $HELD_READ with the bound 100, $read_all with 300 held and the bound 10000"
expect_eq "rollout_held: exact below the bound, the devices and holders named" \
	"$(q "SELECT held || ':' || complete || ':' || devices || ':' || holders FROM rollout_held('bh-lo', 300)")" \
	"300:true:$(q "SELECT string_agg(device_id, ', ' ORDER BY device_id) FROM (SELECT device_id FROM devices WHERE device_id LIKE 'bh%' ORDER BY 1 LIMIT 10) d"):bh-hi"
expect_eq "rollout_held: past the bound, a lower bound" \
	"$(q "SELECT held || ':' || complete FROM rollout_held('bh-lo', 299)")" "299:false"
q "SELECT rollout_cancel('bh-lo', 'alice', $(at 6605)), rollout_cancel('bh-hi', 'alice', $(at 6605))" >/dev/null
expect_eq "status carries the progress and the retry settings" \
	"$(q "SELECT (rollout_status('aa') -> 'progress' ->> 'reason') || ':' || (rollout_status('aa') ->> 'transient_retries') || ':' || (rollout_status('aa') ->> 'retry_backoff_seconds') || ':' || (rollout_status('aa') -> 'stages' -> 0 ->> 'budget_seconds')")" \
	"approval:2:30:$(q "SELECT round(60.0 / 60 + (1 + 2) * 3600 + 120 * 2)")"
# --- reports reordered across servers (0022): each member of the shared
# subscription stores what it received, so a transient failure held by a
# server whose database connection was down (a failover) is stored after
# the device's next report, a periodic idle one another server stored
# first: it is 'stale', and still counts, one by one and in a batch. A
# report older than the failure changes nothing after it, and the reports
# a device sent before a notification are not about that notification.
add_devices 3 ro
create '{"id":"ro","artifact":"fw-101","target":{"devices":["ro0000001","ro0000002","ro0000003"]},"transient_retries":2,"retry_backoff_seconds":10,"rate_per_minute":600,"rate_burst":10,"device_timeout_seconds":600,"stages":[{"percent":100}]}'
# in real time: report_ingest's rollout_report runs at clock_timestamp()
q "SELECT rollout_start('ro', 'alice', clock_timestamp())" >/dev/null
tick_now() { # SECONDS: ro's notifications of a tick that many seconds from now
	q "SELECT count(*) FILTER (WHERE campaign_id = 'ro') FROM rollout_tick('s', clock_timestamp() + interval '$1 s', 10)"
}
expect_eq "the three notified" "$(tick_now 1)" 3
rep() { # SEQ STATE ERROR: ro0000001's report, as ota-server passes it
	echo "jsonb_build_object('seq', $1, 'model', 'm1', 'hw_revision', 'r1', 'version', '1.0.100',
	  'version_code', 100, 'security_counter', 0, 'keylist_version', 1, 'rootlist_version', 0,
	  'keylist_key_ids', '[]'::jsonb, 'pending_version', '', 'active_slot', 0, 'state', '$2',
	  'error', '$3', 'error_detail', '', 'artifact', 'fw-101', 'campaign_id', 'ro', 'events', '[]'::jsonb)"
}
one() { # DEVICE SEQ STATE ERROR TAG: report_ingest's outcome
	q "SELECT outcome FROM report_ingest('$1', $(rep "$2" "$3" "$4"), decode(md5('$1 $2 $5'), 'hex'))"
}
two() { # SEQ STATE ERROR TAG: one batch for ro0000002 and ro0000003; their outcomes
	q "SELECT string_agg(outcome, ',' ORDER BY ord) FROM report_ingest_batch(
	     ARRAY['ro0000002', 'ro0000003'], ARRAY[$(rep "$1" "$2" "$3"), $(rep "$1" "$2" "$3")],
	     ARRAY[decode(md5('2 $1 $4'), 'hex'), decode(md5('3 $1 $4'), 'hex')])"
}
# the devices' stored seq before the notification was 0: 1 is the install's first
expect_eq "downloading, one by one" "$(one ro0000001 1 downloading '' a)" stored
expect_eq "downloading, in a batch" "$(two 1 downloading '' a)" stored,stored
# seq 2 (failed) is held by a server without its database; 3 (idle) stored
expect_eq "the newer idle report first, one by one" "$(one ro0000001 3 idle '' a)" stored
expect_eq "the newer idle report first, in a batch" "$(two 3 idle '' a)" stored,stored
expect_eq "the held failure is stale, one by one" "$(one ro0000001 2 failed OTA_ERR_TRANSPORT a)" stale
expect_eq "the held failure is stale, in a batch" "$(two 2 failed OTA_ERR_TRANSPORT a)" stale,stale
for d in ro0000001 ro0000002 ro0000003; do
	expect_eq "the stale transient failure counts ($d): pending, try 1 used" "$(dev_state ro "$d")" \
		"pending:OTA_ERR_TRANSPORT:1"
done
# an older report (seq 1, another copy) after the failure changed the row
expect_eq "an older report after the failure, one by one" "$(one ro0000001 1 downloading '' b)" stale
expect_eq "an older report after the failure, in a batch" "$(two 1 downloading '' b)" stale,stale
for d in ro0000001 ro0000002 ro0000003; do
	expect_eq "a report older than the failure changes nothing ($d)" "$(dev_state ro "$d")" \
		"pending:OTA_ERR_TRANSPORT:1"
done
expect_eq "notified again after the back-off" "$(tick_now 11)" 3
expect_eq "the notification is as of each device's stored seq" \
	"$(q "SELECT string_agg(report_seq::text, ',' ORDER BY device_id) FROM campaign_devices WHERE campaign_id = 'ro'")" "3,3,3"
# the old failure again (a redelivery held even longer): not about the new try
expect_eq "the first try's failure once more, one by one" "$(one ro0000001 2 failed OTA_ERR_TRANSPORT c)" stale
expect_eq "the first try's failure once more, in a batch" "$(two 2 failed OTA_ERR_TRANSPORT c)" stale,stale
for d in ro0000001 ro0000002 ro0000003; do
	expect_eq "a report from before the notification does not touch the new try ($d)" "$(dev_state ro "$d")" \
		"notified:OTA_ERR_TRANSPORT:1"
done
q "SELECT rollout_cancel('ro', 'alice', clock_timestamp() + interval '12 s')" >/dev/null

expect_sqlstate "transient_retries out of range" FO422 "SELECT rollout_create('{\"id\":\"bad\",\"artifact\":\"fw-101\",\"transient_retries\":500,\"stages\":[{\"count\":1}]}', 'a')"
expect_sqlstate "budget_seconds must be positive" FO422 "SELECT rollout_create('{\"id\":\"bad\",\"artifact\":\"fw-101\",\"stages\":[{\"count\":1,\"budget_seconds\":0}]}', 'a')"
expect_counts_kept "at the end"
echo "PASS"
