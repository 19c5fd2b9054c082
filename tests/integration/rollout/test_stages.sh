#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A 3-stage campaign on 300 devices in simulated time: the canary's self-test
# fails on purpose -> the campaign pauses by itself and nobody beyond the
# canary is notified; then a good artifact completes every stage, with the
# notify rate (from recorded timestamps) and max-in-flight never exceeded,
# and the reverted canaries are targeted again.
source "$(dirname "$0")/lib.sh" "$1"
qf "$(dirname "$0")/sim.sql" >/dev/null
seed_trust
add_artifact fw-bad 101
add_artifact fw-good 102
add_devices 300 dev
# 20 devices of another model and 5 already on the good version
add_devices 20 other m2
q "UPDATE devices SET version_code = 102, version = '1.0.102' WHERE device_id IN ('dev0000001','dev0000002','dev0000003','dev0000004','dev0000005')"
q "INSERT INTO sim_bad_artifacts VALUES ('fw-bad')"
T0="2026-01-05 10:00:00+00"
STAGES='[{"count":10,"failure_ratio":0.2,"soak_seconds":30},{"percent":40,"failure_ratio":0.1,"soak_seconds":10,"max_in_flight":20},{"percent":100,"max_in_flight":50}]'

q "SELECT rollout_create('{\"id\":\"bad\",\"artifact\":\"fw-bad\",\"rate_per_minute\":600,\"rate_burst\":10,\"device_timeout_seconds\":120,\"stages\":$STAGES}', 'alice')" >/dev/null
expect_eq "start" "$(q "SELECT rollout_start('bad', 'alice', '$T0')")" running
expect_eq "start again is a no-op" "$(q "SELECT rollout_start('bad', 'alice', '$T0')")" running
secs=$(q "SELECT sim_run('bad', '$T0', 300)")
expect_eq "bad canary pauses the campaign by itself" "$(q "SELECT state FROM campaigns WHERE campaign_id='bad'")" paused
reason=$(q "SELECT state_reason FROM campaigns WHERE campaign_id='bad'")
echo "   reason: $reason (after ${secs} simulated s)"
grep -q "OTA_ERR_SELFTEST" <<<"$reason" || fail "pause reason names the error: $reason"
expect_eq "only the canary stage was admitted" \
	"$(q "SELECT count(*), max(stage_no) FROM campaign_devices WHERE campaign_id='bad'")" "10|0"
expect_eq "nobody beyond the canary notified" \
	"$(q "SELECT count(DISTINCT device_id) FROM rollout_notifications WHERE campaign_id='bad'")" 10
expect_eq "reverted devices recorded on the version they run" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id='bad' AND state='failed' AND error='OTA_ERR_SELFTEST' AND reported_version_code=100")" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id='bad' AND state='failed'")"
# more ticks while paused notify nobody
q "SELECT sim_step('sim', '$T0'::timestamptz + interval '400 s')" >/dev/null
expect_eq "paused: still nobody beyond the canary" \
	"$(q "SELECT count(DISTINCT device_id) FROM rollout_notifications WHERE campaign_id='bad'")" 10
expect_eq "only devices of the manifest's model" \
	"$(q "SELECT count(*) FROM campaign_devices m JOIN devices d USING (device_id) WHERE d.model <> 'm1'")" 0
expect_eq "cancel" "$(q "SELECT rollout_cancel('bad', 'alice', '$T0'::timestamptz + interval '401 s')")" cancelled
expect_sqlstate "resume a cancelled campaign" FO409 "SELECT rollout_resume('bad', 'alice')"

T1="2026-01-05 11:00:00+00"
q "SELECT rollout_create('{\"id\":\"good\",\"artifact\":\"fw-good\",\"rate_per_minute\":600,\"rate_burst\":10,\"device_timeout_seconds\":120,\"stages\":$STAGES}', 'alice')" >/dev/null
q "SELECT rollout_start('good', 'alice', '$T1')" >/dev/null
t_start=$(date +%s.%N)
secs=$(q "SELECT sim_run('good', '$T1', 900)")
t_end=$(date +%s.%N)
expect_eq "good artifact completes" "$(q "SELECT state FROM campaigns WHERE campaign_id='good'")" completed
echo "   completed in $secs simulated s ($(echo "$t_end - $t_start" | bc) s wall)"
expect_eq "every target device confirmed, counted once" \
	"$(q "SELECT count(*), count(DISTINCT device_id), count(*) FILTER (WHERE state='confirmed') FROM campaign_devices WHERE campaign_id='good'")" \
	"300|300|300"
expect_eq "devices on the version already are done without a notification" \
	"$(q "SELECT count(*) FROM campaign_devices m WHERE campaign_id='good' AND already AND NOT EXISTS (SELECT 1 FROM rollout_notifications n WHERE n.campaign_id='good' AND n.device_id=m.device_id)")" 5
expect_eq "the reverted canaries were targeted again and confirmed" \
	"$(q "SELECT count(*) FROM campaign_devices g JOIN campaign_devices b ON b.device_id = g.device_id AND b.campaign_id='bad' AND b.state='failed' WHERE g.campaign_id='good' AND g.state='confirmed'")" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id='bad' AND state='failed'")"
expect_eq "stage sizes 10 / 40 % / 100 %" \
	"$(q "SELECT string_agg(admitted::text, ',' ORDER BY stage_no) FROM rollout_stage_counts('good')")" "10,110,180"
expect_eq "rate limit never exceeded (600/min, burst 10)" "$(q "SELECT sim_rate_violations('good')")" 0
# the check can fail: with a burst of 1 the same timestamps violate it
expect_eq "rate check detects a violation (control)" \
	"$(q "BEGIN; UPDATE campaigns SET rate_burst = 1 WHERE campaign_id = 'good'; SELECT sim_rate_violations('good') > 0; ROLLBACK")" t
expect_eq "max in flight never exceeded in stage 1 (20)" \
	"$(q "SELECT coalesce(max(in_flight), 0) <= 20 FROM sim_flight WHERE campaign_id='good' AND stage_no = 1")" t
expect_eq "stage 1 waited for stage 0's soak (30 s)" \
	"$(q "SELECT (SELECT started_at FROM campaign_stages WHERE campaign_id='good' AND stage_no=1) >= succeeded_at + interval '30 s' FROM campaign_stages WHERE campaign_id='good' AND stage_no=0")" t
expect_eq "progress events recorded" \
	"$(q "SELECT string_agg(kind, ',' ORDER BY id) FROM campaign_events WHERE campaign_id='good' AND kind IN ('started','stage_started','completed')")" \
	"started,stage_started,stage_started,completed"
# idempotency: a repeated report and a repeated tick change nothing
before=$(q "SELECT md5(string_agg(device_id||state||error||notify_count, ',' ORDER BY device_id)) FROM campaign_devices")
q "SELECT rollout_report(device_id, 'confirmed', 102, 1, NULL, '', 'good', '$T1'::timestamptz + interval '2000 s') FROM campaign_devices WHERE campaign_id='good'" >/dev/null
q "SELECT rollout_report(device_id, 'reverted', 100, 1, NULL, 'OTA_ERR_SELFTEST', 'bad', '$T1'::timestamptz + interval '2000 s') FROM campaign_devices WHERE campaign_id='bad'" >/dev/null
q "SELECT sim_step('sim', '$T1'::timestamptz + interval '2001 s')" >/dev/null
expect_eq "repeated reports and ticks change nothing" \
	"$(q "SELECT md5(string_agg(device_id||state||error||notify_count, ',' ORDER BY device_id)) FROM campaign_devices")" "$before"
expect_counts_kept "at the end"
echo "PASS"
