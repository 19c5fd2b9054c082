#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The rollout engine's rules one by one, in simulated time: specification
# errors, four-eyes approval, start time, priorities, maintenance windows,
# timeouts and late reports, a growing dynamic target, the key-list step,
# pause/resume, retention.
source "$(dirname "$0")/lib.sh" "$1"
qf "$(dirname "$0")/sim.sql" >/dev/null
seed_trust
add_artifact fw-101 101
add_artifact fw-102 102
add_artifact fw-k2 103 "$KEY2"
add_devices 50 dev
T="2026-01-05 10:00:00+00"  # a Monday
at() { echo "'$T'::timestamptz + interval '$1 s'"; }
create() { q "SELECT rollout_create('$1', '${2:-alice}')" >/dev/null; }
# published CAMPAIGN AT: server s marks all of the campaign's notifications
# published, each under the fencing token it was issued with
published() {
	q "SELECT rollout_published(array_agg(id ORDER BY id), array_agg(fence ORDER BY id), 's', $2)
	   FROM rollout_notifications WHERE campaign_id = '$1'" >/dev/null
}

# --- specification errors name the field; nothing is created
expect_sqlstate "unknown field" FO422 "SELECT rollout_create('{\"id\":\"x\",\"artifact\":\"fw-101\",\"stages\":[{\"count\":1}],\"colour\":1}', 'a')"
expect_sqlstate "no stages" FO422 "SELECT rollout_create('{\"id\":\"x\",\"artifact\":\"fw-101\",\"stages\":[]}', 'a')"
expect_sqlstate "count and percent" FO422 "SELECT rollout_create('{\"id\":\"x\",\"artifact\":\"fw-101\",\"stages\":[{\"count\":1,\"percent\":5}]}', 'a')"
expect_sqlstate "shrinking stages" FO422 "SELECT rollout_create('{\"id\":\"x\",\"artifact\":\"fw-101\",\"stages\":[{\"percent\":50},{\"percent\":10}]}', 'a')"
expect_sqlstate "ratio out of range" FO422 "SELECT rollout_create('{\"id\":\"x\",\"artifact\":\"fw-101\",\"stages\":[{\"count\":1,\"failure_ratio\":2}]}', 'a')"
expect_sqlstate "bad target field" FO422 "SELECT rollout_create('{\"id\":\"x\",\"artifact\":\"fw-101\",\"target\":{\"model\":[1]},\"stages\":[{\"count\":1}]}', 'a')"
expect_sqlstate "injection in the id" FO422 "SELECT rollout_create('{\"id\":\"x''; DROP TABLE devices; --\",\"artifact\":\"fw-101\",\"stages\":[{\"count\":1}]}', 'a')"
expect_sqlstate "bad window" FO422 "SELECT rollout_create('{\"id\":\"x\",\"artifact\":\"fw-101\",\"stages\":[{\"count\":1}],\"windows\":[{\"days\":[9],\"start_minute\":0,\"duration_minutes\":5}]}', 'a')"
expect_sqlstate "unknown artifact" FO404 "SELECT rollout_create('{\"id\":\"x\",\"artifact\":\"nope\",\"stages\":[{\"count\":1}]}', 'a')"
expect_sqlstate "unknown campaign" FO404 "SELECT rollout_start('nope', 'a')"
expect_eq "nothing created by refused specifications" "$(q "SELECT count(*) FROM campaigns")" 0

# --- group targets: the REST API's static and dynamic groups
q "INSERT INTO device_groups (group_id, kind) VALUES ('g1', 'static');
   INSERT INTO device_group_members (group_id, device_id) VALUES ('g1', 'dev0000045'), ('g1', 'dev0000046');
   INSERT INTO device_groups (group_id, kind, filter) VALUES ('g2', 'dynamic',
     '{\"all\": [{\"field\": \"tags\", \"op\": \"has\", \"value\": \"x''); DROP TABLE devices; --\"},
                  {\"any\": [{\"field\": \"version_code\", \"op\": \"lt\", \"value\": 200},
                             {\"field\": \"model\", \"op\": \"in\", \"value\": [\"m9\"]}]}]}');
   UPDATE devices SET tags = ARRAY['x''); DROP TABLE devices; --'] WHERE device_id IN ('dev0000047', 'dev0000048')"
create '{"id":"grp","artifact":"fw-101","target":{"groups":["g1","g2"]},"stages":[{"percent":100}]}'
expect_eq "static and dynamic group members targeted (hostile tag quoted)" \
	"$(q "SELECT string_agg(device_id, ',' ORDER BY device_id) FROM rollout_target('grp')")" \
	"dev0000045,dev0000046,dev0000047,dev0000048"
expect_sqlstate "unknown group" FO404 "SELECT rollout_create('{\"id\":\"x\",\"artifact\":\"fw-101\",\"target\":{\"groups\":[\"nope\"]},\"stages\":[{\"count\":1}]}', 'a')"
expect_sqlstate "a group a campaign uses cannot be deleted" 23503 "DELETE FROM device_groups WHERE group_id = 'g1'"
q "UPDATE devices SET tags = '{}' WHERE device_id IN ('dev0000047', 'dev0000048')"

# --- four-eyes approval and start time
create '{"id":"ap","transient_retries":0,"artifact":"fw-101","requires_approval":true,"start_at":"2026-01-05T10:10:00Z","target":{"devices":["dev0000001","dev0000002"]},"stages":[{"percent":100}]}'
expect_eq "start asks for approval" "$(q "SELECT rollout_start('ap', 'alice', $(at 0))")" awaiting_approval
expect_sqlstate "creator cannot approve" FO403 "SELECT rollout_approve('ap', 'alice')"
expect_eq "still awaiting approval" "$(q "SELECT state FROM campaigns WHERE campaign_id='ap'")" awaiting_approval
expect_eq "tick ignores an unapproved campaign" "$(q "SELECT count(*) FROM rollout_tick('s', $(at 1))")" 0
expect_eq "another operator approves" "$(q "SELECT rollout_approve('ap', 'bob', $(at 2))")" running
expect_eq "approve again is a no-op" "$(q "SELECT rollout_approve('ap', 'bob', $(at 3))")" running
expect_eq "nothing before the start time" "$(q "SELECT count(*) FROM rollout_tick('s', $(at 300))")" 0
expect_eq "notified once the start time passed" "$(q "SELECT count(*) FROM rollout_tick('s', $(at 600))")" 2
expect_eq "assignments registered for delivery" \
	"$(q "SELECT count(*) FROM assignments WHERE campaign_id='ap' AND artifact_id='fw-101'")" 2
expect_eq "audit has create, start, approve" \
	"$(q "SELECT string_agg(action || ':' || actor, ',' ORDER BY id) FROM audit WHERE object='ap'")" \
	"campaign.create:alice,campaign.start:alice,campaign.approve:bob"

# --- timeouts and a late report
published ap "$(at 600)"
q "SELECT rollout_report('dev0000001', 'downloading', 100, 1, NULL, '', 'ap', $(at 601))" >/dev/null
expect_eq "reported progress" "$(q "SELECT state FROM campaign_devices WHERE campaign_id='ap' AND device_id='dev0000001'")" downloading
q "SELECT count(*) FROM rollout_tick('s', $(at 4300))" >/dev/null
expect_eq "silent devices time out" \
	"$(q "SELECT string_agg(state || ':' || error, ',') FROM campaign_devices WHERE campaign_id='ap'")" \
	"timed_out:OTA_ERR_TIMEOUT,timed_out:OTA_ERR_TIMEOUT"
expect_eq "time-outs count as failures: paused" "$(q "SELECT state FROM campaigns WHERE campaign_id='ap'")" paused
q "UPDATE devices SET version_code = 101 WHERE device_id = 'dev0000001'"
expect_eq "a late report is reconciled" \
	"$(q "SELECT rollout_report('dev0000001', 'confirmed', 101, 1, NULL, '', 'ap', $(at 4400))")" 1
expect_eq "and counted once" "$(q "SELECT confirmed, timed_out FROM rollout_stage_counts('ap')")" "1|1"
expect_eq "the same late report again changes nothing" \
	"$(q "SELECT rollout_report('dev0000001', 'confirmed', 101, 1, NULL, '', 'ap', $(at 4401))")" 0
expect_eq "reconciled flag" "$(q "SELECT reconciled FROM campaign_devices WHERE campaign_id='ap' AND device_id='dev0000001'")" t
expect_eq "resume acknowledges the failures" "$(q "SELECT rollout_resume('ap', 'bob', $(at 4500))")" running
q "SELECT count(*) FROM rollout_tick('s', $(at 4501))" >/dev/null
expect_eq "the acknowledged failure neither pauses it again nor holds the stage back" \
	"$(q "SELECT state FROM campaigns WHERE campaign_id='ap'")" completed

# --- priorities
create '{"id":"lo","artifact":"fw-102","priority":1,"target":{"tags_any":["lab"]},"rate_per_minute":60,"rate_burst":1,"stages":[{"percent":100}]}'
create '{"id":"eq","artifact":"fw-102","priority":1,"target":{"devices":["dev0000010"]},"stages":[{"percent":100}]}'
create '{"id":"hi","artifact":"fw-102","priority":5,"target":{"devices":["dev0000010","dev0000011"]},"rate_per_minute":60,"rate_burst":10,"stages":[{"percent":100}]}'
q "UPDATE devices SET tags = '{lab}' WHERE device_id IN ('dev0000010','dev0000011','dev0000012','dev0000013')"
q "SELECT rollout_start('lo', 'alice', $(at 5000))" >/dev/null
expect_sqlstate "equal priority on a shared device refused" FO409 "SELECT rollout_start('eq', 'alice')"
expect_eq "refused start left it a draft" "$(q "SELECT state FROM campaigns WHERE campaign_id='eq'")" draft
q "SELECT count(*) FROM rollout_tick('s', $(at 5001))" >/dev/null   # lo admits 4, notifies 1
first=$(q "SELECT device_id FROM campaign_devices WHERE campaign_id='lo' AND state='notified'")
q "SELECT rollout_start('hi', 'alice', $(at 5002))" >/dev/null
q "SELECT count(*) FROM rollout_tick('s', $(at 5003))" >/dev/null
expect_eq "the higher priority takes the devices the lower one has not notified" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id='lo' AND state='superseded' AND device_id IN ('dev0000010','dev0000011') AND device_id <> '$first'")" \
	"$(q "SELECT count(*) FROM unnest(ARRAY['dev0000010','dev0000011']) x WHERE x <> '$first'")"
expect_eq "a device in flight elsewhere is not notified twice" \
	"$(q "SELECT count(*) FROM rollout_notifications WHERE campaign_id='hi' AND device_id='$first'")" 0
q "SELECT rollout_cancel('lo', 'alice', $(at 5004))" >/dev/null
q "SELECT rollout_cancel('hi', 'alice', $(at 5004))" >/dev/null

# --- maintenance windows (Mondays 02:00-03:00 UTC; T is Monday 10:00)
create '{"id":"win","artifact":"fw-102","target":{"devices":["dev0000020"]},"windows":[{"days":[1],"start_minute":120,"duration_minutes":60}],"stages":[{"percent":100}]}'
q "SELECT rollout_start('win', 'alice', $(at 6000))" >/dev/null
expect_eq "outside the window: no notification" "$(q "SELECT count(*) FROM rollout_tick('s', $(at 6001))")" 0
expect_eq "next Monday 02:30: notified" \
	"$(q "SELECT count(*) FROM rollout_tick('s', '2026-01-12 02:30:00+00')")" 1
q "SELECT rollout_cancel('win', 'alice', '2026-01-12 02:31:00+00')" >/dev/null

# --- dynamic target grows; the key-list step comes first for a device that
# does not trust the signing key (KeyList v1 lacks KEY2, v2 has it)
T2="2026-01-13 00:00:00+00"
create '{"id":"dyn","artifact":"fw-k2","keep_open":true,"target":{"tags_all":["beta"]},"device_timeout_seconds":600,"rate_per_minute":600,"stages":[{"count":2},{"percent":100}]}'
q "UPDATE devices SET tags = '{beta}' WHERE device_id IN ('dev0000030','dev0000031','dev0000032')"
q "UPDATE devices SET keylist_version = 2, keylist_key_ids = ARRAY[$KEY1, $KEY2] WHERE device_id = 'dev0000031'"
q "SELECT rollout_start('dyn', 'alice', '$T2')" >/dev/null
out=$(q "SELECT device_id || ':' || kind || ':' || coalesce(keylist_version::text, '-') FROM rollout_tick('s', '$T2') ORDER BY device_id")
echo "   first notifications: $(tr '\n' ' ' <<<"$out")"
expect_eq "devices on KeyList v1 get the key-list step" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id='dyn' AND step='keylist' AND needed_keylist=2 AND device_id <> 'dev0000031'")" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id='dyn' AND device_id <> 'dev0000031'")"
published dyn "'$T2'"
q "SELECT sim_fleet('$T2')" >/dev/null
expect_eq "after the KeyList the firmware step follows" \
	"$(q "SELECT string_agg(DISTINCT kind, ',') FROM rollout_tick('s', '$T2'::timestamptz + interval '1 s')")" firmware
published dyn "'$T2'::timestamptz + interval '1 s'"
q "SELECT sim_fleet('$T2'::timestamptz + interval '1 s')" >/dev/null
for i in 2 3 4 5 6 7 8; do q "SELECT sim_step('s', '$T2'::timestamptz + interval '$i s')" >/dev/null; done
expect_eq "the three beta devices confirmed" "$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id='dyn' AND state='confirmed'")" 3
q "UPDATE rollout_settings SET value = '5' WHERE name = 'admission_interval_s'"
q "UPDATE devices SET tags = '{beta}' WHERE device_id IN ('dev0000040','dev0000041')"
q "INSERT INTO devices (device_id, model, hw_revision, version_code, keylist_version, keylist_key_ids, tags) VALUES ('new0000001', 'm1', 'r1', 100, 2, ARRAY[$KEY1, $KEY2], '{beta}')"
for i in $(seq 10 30); do q "SELECT sim_step('s', '$T2'::timestamptz + interval '$i s')" >/dev/null; done
expect_eq "devices that came to match, or registered, joined and confirmed" \
	"$(q "SELECT string_agg(device_id, ',' ORDER BY device_id) FROM campaign_devices WHERE campaign_id='dyn' AND state='confirmed' AND device_id IN ('dev0000040','dev0000041','new0000001')")" \
	"dev0000040,dev0000041,new0000001"
expect_eq "a standing (keep_open) campaign stays running" "$(q "SELECT state FROM campaigns WHERE campaign_id='dyn'")" running
q "SELECT rollout_cancel('dyn', 'alice', '$T2'::timestamptz + interval '40 s')" >/dev/null

# --- retention
q "INSERT INTO device_events (device_id, seq, kind, received_at) SELECT 'dev0000001', i, 'booted', now() - interval '200 days' + make_interval(secs => i) FROM generate_series(1, 30) i"
q "INSERT INTO device_events (device_id, seq, kind) SELECT 'dev0000002', i, 'booted' FROM generate_series(1, 20) i"
q "INSERT INTO rollout_settings VALUES ('events_per_device', '5') ON CONFLICT (name) DO UPDATE SET value = '5'"
out=$(q "SELECT rollout_purge(now() - interval '90 days', 10, 'alice')")
echo "   purge: $out"
expect_eq "purge is bounded per call (10 old + 10 over the cap of 50)" "$(q "SELECT count(*) FROM device_events")" 30
for _ in 1 2 3 4 5; do q "SELECT rollout_purge(now() - interval '90 days', 10, 'alice')" >/dev/null; done
expect_eq "old events gone, newest per device kept" \
	"$(q "SELECT count(*) FILTER (WHERE device_id='dev0000001'), count(*) FILTER (WHERE device_id='dev0000002'), min(seq) FILTER (WHERE device_id='dev0000002') FROM device_events")" \
	"0|5|16"
q "SELECT rollout_purge(now() + interval '1 day', 100000, 'alice')" >/dev/null
expect_eq "history of finished campaigns purged, campaigns kept" \
	"$(q "SELECT (SELECT count(*) FROM campaign_devices WHERE campaign_id IN ('ap','dyn')), (SELECT count(*) FROM campaigns WHERE campaign_id IN ('ap','dyn'))")" "0|2"
expect_eq "purges are audited" "$(q "SELECT count(*) > 0 FROM audit WHERE action='retention.purge'")" t
expect_sqlstate "an artifact in use by a campaign cannot be deleted" 23503 "DELETE FROM artifacts WHERE artifact_id='fw-101'"
expect_counts_kept "at the end"
echo "PASS"
