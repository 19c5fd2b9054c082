#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Incremental planning (docs/campaigns.md, "Planning at scale"): a running
# campaign's admission queue (campaign_targets) is built once at start and
# then follows the fleet through the triggers: devices that come to match
# (an update, a new device, a report, a static group member) join it, devices
# that stop matching (a tag removed, decommissioned, a newer version reported,
# a member removed) leave it, a changed dynamic group rebuilds it. After each
# change the queue must equal the target evaluated from scratch minus the
# members (the queue keeps ids and order only, 0020), and the counts behind
# target_size must equal the rows.
source "$(dirname "$0")/lib.sh" "$1"
seed_trust
add_artifact fw-101 101
add_devices 40 dev
T="2026-01-05 10:00:00+00"
at() { echo "'$T'::timestamptz + interval '$1 s'"; }
tick() { q "SELECT count(*) FROM rollout_tick('s', $(at "$1"))" >/dev/null; }

# queue_matches CAMPAIGN: "differences|queued count right|members count right"
queue_matches() {
	q "WITH fresh AS (
	     SELECT t.device_id
	     FROM rollout_target('$1') t
	     WHERE NOT EXISTS (SELECT 1 FROM campaign_devices m WHERE m.campaign_id = '$1' AND m.device_id = t.device_id)
	   ), kept AS (
	     SELECT device_id
	     FROM campaign_targets WHERE campaign_id = '$1' AND rank = rollout_target_rank('$1', device_id)
	   )
	   SELECT (SELECT count(*) FROM ((SELECT * FROM fresh EXCEPT ALL SELECT * FROM kept)
	                                 UNION ALL (SELECT * FROM kept EXCEPT ALL SELECT * FROM fresh)) x)
	          || '|' || ((SELECT target_queued FROM campaigns WHERE campaign_id = '$1')
	                     + (SELECT coalesce(sum(queued), 0) FROM campaign_target_deltas WHERE campaign_id = '$1')
	                     = (SELECT count(*) FROM campaign_targets WHERE campaign_id = '$1'))
	          || '|' || ((SELECT target_members FROM campaigns WHERE campaign_id = '$1')
	                     + (SELECT coalesce(sum(members), 0) FROM campaign_target_deltas WHERE campaign_id = '$1')
	                     = (SELECT count(*) FROM campaign_devices WHERE campaign_id = '$1'
	                          AND state NOT IN ('superseded', 'cancelled')))"
}
queued() { q "SELECT count(*) FROM campaign_targets WHERE campaign_id = '$1'"; }
check() { # WHAT CAMPAIGN QUEUED
	expect_eq "$1: queue of $2 as evaluated from scratch" "$(queue_matches "$2")" "0|true|true"
	expect_eq "$1: $3 queued in $2" "$(queued "$2")" "$3"
}

q "UPDATE devices SET tags = '{eu}' WHERE device_id <= 'dev0000010'"
q "SELECT rollout_create('{\"id\":\"inc\",\"artifact\":\"fw-101\",\"target\":{\"tags_any\":[\"eu\"]},\"rate_per_minute\":6000,\"stages\":[{\"percent\":50},{\"percent\":100}]}', 'alice')" >/dev/null
expect_eq "a draft keeps no queue" "$(queued inc)" 0
q "SELECT rollout_start('inc', 'alice', $(at 0))" >/dev/null
check "start" inc 10
tick 1
expect_eq "half the target admitted" "$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'inc'")" 5
expect_eq "admitted in queue order" \
	"$(q "SELECT string_agg(device_id, ',' ORDER BY admit_seq) FROM campaign_devices WHERE campaign_id = 'inc'")" \
	"$(q "SELECT string_agg(device_id, ',' ORDER BY rollout_target_rank('inc', device_id), device_id)
	      FROM (SELECT device_id FROM devices WHERE device_id <= 'dev0000010'
	            ORDER BY rollout_target_rank('inc', device_id), device_id LIMIT 5) x")"
check "first admission" inc 5

q "UPDATE devices SET tags = '{eu,x}' WHERE device_id BETWEEN 'dev0000011' AND 'dev0000014'"
check "four devices tagged" inc 9
victim=$(q "SELECT device_id FROM campaign_targets WHERE campaign_id = 'inc' ORDER BY device_id LIMIT 1")
q "UPDATE devices SET tags = '{}' WHERE device_id = '$victim'"
check "a queued device untagged" inc 8
victim=$(q "SELECT device_id FROM campaign_targets WHERE campaign_id = 'inc' ORDER BY device_id LIMIT 1")
q "UPDATE devices SET decommissioned = true WHERE device_id = '$victim'"
check "a queued device decommissioned" inc 7
q "UPDATE devices SET keylist_version = 2, keylist_key_ids = ARRAY[$KEY1, $KEY2] WHERE device_id = 'dev0000014'"
check "a queued device's key list changed (it stays queued)" inc 7
member=$(q "SELECT device_id FROM campaign_devices WHERE campaign_id = 'inc' ORDER BY device_id LIMIT 1")
q "UPDATE devices SET tags = '{}' WHERE device_id = '$member'"
check "a member that leaves the target stays a member, not queued" inc 7
q "INSERT INTO devices (device_id, model, hw_revision, version, version_code, keylist_version, tags)
   VALUES ('late1', 'm1', 'r1', '1.0.100', 100, 1, '{eu}'), ('late2', 'm2', 'r1', '1.0.100', 100, 1, '{eu}')"
check "a new matching device joins, one of another model does not" inc 8
victim=$(q "SELECT device_id FROM campaign_targets WHERE campaign_id = 'inc' ORDER BY device_id LIMIT 1")
report() { # DEVICE SEQ VERSION_CODE
	q "SELECT outcome FROM report_ingest('$1', jsonb_build_object('seq', $2, 'model', 'm1', 'hw_revision', 'r1',
	     'version', '1.0.$3', 'version_code', $3, 'security_counter', 0, 'keylist_version', 1,
	     'rootlist_version', 0, 'keylist_key_ids', '[]'::jsonb, 'pending_version', '', 'active_slot', 0,
	     'state', 'idle', 'error', '', 'error_detail', '', 'artifact', '', 'campaign_id', '',
	     'events', '[]'::jsonb), decode(md5('$1$2'), 'hex'))"
}
expect_eq "a report stored" "$(report "$victim" 1 102)" stored
check "a device that reports a newer version leaves" inc 7
expect_eq "a report with the same version stored" "$(report dev0000013 1 100)" stored
check "a report that changes nothing the target tests changes nothing" inc 7

# the counts folded by the next admission (admission_interval_s later) give
# the stage its share: half of 5 members and 7 queued is 6, one more admitted
tick 31
expect_eq "target_size = members + queue" \
	"$(q "SELECT target_size = target_members + target_queued AND target_queued = $(queued inc),
	             target_size FROM campaigns WHERE campaign_id = 'inc'")" "t|12"
check "after the next admission" inc 6

# --- static groups: members added and removed
q "INSERT INTO device_groups (group_id, kind) VALUES ('gs', 'static');
   INSERT INTO device_group_members (group_id, device_id) VALUES ('gs', 'dev0000021'), ('gs', 'dev0000022')"
q "SELECT rollout_create('{\"id\":\"grp\",\"artifact\":\"fw-101\",\"priority\":5,\"target\":{\"groups\":[\"gs\"]},\"stages\":[{\"count\":1}]}', 'alice')" >/dev/null
q "SELECT rollout_start('grp', 'alice', $(at 32))" >/dev/null
check "static group at start" grp 2
q "INSERT INTO device_group_members (group_id, device_id) VALUES ('gs', 'dev0000023'), ('gs', 'dev0000024')"
check "two members added" grp 4
q "DELETE FROM device_group_members WHERE group_id = 'gs' AND device_id = 'dev0000021'"
check "a member removed" grp 3

# --- a dynamic group's filter changes: the queue is rebuilt at the next admission
q "INSERT INTO device_groups (group_id, kind, filter) VALUES ('gd', 'dynamic',
     '{\"field\": \"hw_revision\", \"op\": \"eq\", \"value\": \"r9\"}')"
q "UPDATE devices SET hw_revision = 'r9' WHERE device_id IN ('dev0000031', 'dev0000032')"
q "SELECT rollout_create('{\"id\":\"dyn\",\"artifact\":\"fw-101\",\"priority\":7,\"target\":{\"groups\":[\"gd\"]},\"stages\":[{\"count\":1}]}', 'alice')" >/dev/null
q "SELECT rollout_start('dyn', 'alice', $(at 33))" >/dev/null
check "dynamic group at start" dyn 2
q "UPDATE devices SET hw_revision = 'r9' WHERE device_id = 'dev0000033'"
check "a device comes to match the dynamic group" dyn 3
q "UPDATE device_groups SET filter = '{\"field\": \"hw_revision\", \"op\": \"in\", \"value\": [\"r9\", \"r8\"]}' WHERE group_id = 'gd'"
expect_eq "the filter change asks for a rebuild" "$(q "SELECT targets_at IS NULL FROM campaigns WHERE campaign_id = 'dyn'")" t
q "UPDATE devices SET hw_revision = 'r8' WHERE device_id = 'dev0000034'"
tick 34
check "rebuilt with the new filter (one admitted)" dyn 3
expect_eq "a filter on device state or last contact is rebuilt every interval" \
	"$(q "INSERT INTO device_groups (group_id, kind, filter) VALUES ('gv', 'dynamic',
	        '{\"all\": [{\"field\": \"last_seen\", \"op\": \"within\", \"value\": 3600}]}');
	      INSERT INTO campaign_groups VALUES ('dyn', 'gv');
	      SELECT rollout_target_volatile('dyn'), rollout_target_volatile('grp');
	      DELETE FROM campaign_groups WHERE group_id = 'gv'")" "t|f"

# --- a queue whose head a higher-priority campaign holds: each tick examines
# at most admission_batch rows, from where the last one stopped (a cursor),
# not the whole queue again; a pass goes on at the next tick
q "INSERT INTO devices (device_id, model, hw_revision, version, version_code, keylist_version, tags)
   SELECT 'hold' || lpad(i::text, 2, '0'), 'm1', 'r1', '1.0.100', 100, 1, '{hold}'::text[] FROM generate_series(1, 30) i
   UNION ALL
   SELECT 'free' || lpad(i::text, 2, '0'), 'm1', 'r1', '1.0.100', 100, 1, '{free}'::text[] FROM generate_series(1, 20) i"
q "UPDATE rollout_settings SET value = '10' WHERE name = 'admission_batch'"
q "SELECT rollout_create('{\"id\":\"hi\",\"artifact\":\"fw-101\",\"rate_per_minute\":6000,\"rate_burst\":1000,\"priority\":20,\"target\":{\"tags_any\":[\"hold\"]},\"stages\":[{\"percent\":100}]}', 'alice')" >/dev/null
q "SELECT rollout_start('hi', 'alice', $(at 3000))" >/dev/null
# (rows are written lazily, at most admission_batch per tick: the rate burst
# notifies each tick's rows, so three ticks write all 30)
for i in 1 2 3; do tick "$((3000 + i))"; done
expect_eq "the higher campaign holds its 30 devices" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'hi' AND state IN ('pending', 'notified')")" 30
q "SELECT rollout_create('{\"id\":\"lo\",\"artifact\":\"fw-101\",\"rate_per_minute\":6000,\"rate_burst\":1000,\"priority\":19,\"target\":{\"tags_any\":[\"hold\",\"free\"]},\"stages\":[{\"percent\":100}]}', 'alice')" >/dev/null
q "SELECT rollout_start('lo', 'alice', $(at 3010))" >/dev/null
# window K of lo's queue (rows 10K+1 .. 10K+10 in rank order): its free devices
window_free() {
	q "SELECT coalesce(string_agg(device_id, ',' ORDER BY device_id), '') FROM (
	     SELECT device_id FROM devices WHERE tags && '{hold,free}'
	     ORDER BY rollout_target_rank('lo', device_id), device_id OFFSET $((10 * $1)) LIMIT 10) x
	   WHERE device_id LIKE 'free%'"
}
lo_members() {
	q "SELECT coalesce(string_agg(device_id, ',' ORDER BY device_id), '') FROM campaign_devices WHERE campaign_id = 'lo'"
}
tick 3011
expect_eq "first tick: only the free devices among the first 10 queue rows" "$(lo_members)" "$(window_free 0)"
expect_eq "the cursor stands at the 10th row" \
	"$(q "SELECT admit_cursor_device FROM campaigns WHERE campaign_id = 'lo'")" \
	"$(q "SELECT device_id FROM devices WHERE tags && '{hold,free}'
	      ORDER BY rollout_target_rank('lo', device_id), device_id OFFSET 9 LIMIT 1")"
tick 3012
expect_eq "second tick: and those of the next 10" "$(lo_members)" \
	"$(q "SELECT string_agg(x, ',' ORDER BY x) FROM unnest(string_to_array('$(window_free 0),$(window_free 1)', ',')) x WHERE x <> ''")"
for i in 3 4 5 6; do tick "$((3010 + i))"; done
expect_eq "after a pass: every free device admitted, the held ones still queued" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'lo'") $(queued lo)" "20 30"
check "after a pass behind a held head" lo 30
q "UPDATE rollout_settings SET value = '100000' WHERE name = 'admission_batch'"
q "SELECT rollout_cancel('hi', 'alice'), rollout_cancel('lo', 'alice')" >/dev/null

# --- lazy admission: a stage's share is admitted as a whole (the status
# counts it), its rows are written only as notification needs them (twice
# max_in_flight plus the rate burst of due pending rows), and a lower-priority
# campaign leaves alone what a higher one admitted without a row yet
q "INSERT INTO devices (device_id, model, hw_revision, version, version_code, keylist_version, tags)
   SELECT 'lz' || lpad(i::text, 2, '0'), 'm1', 'r1', '1.0.100', 100, 1, '{lz}'::text[] FROM generate_series(1, 60) i
   UNION ALL
   SELECT 'lf' || lpad(i::text, 2, '0'), 'm1', 'r1', '1.0.100', 100, 1, '{lzf}'::text[] FROM generate_series(1, 10) i"
# admitted / pending / rows written
lz() {
	q "SELECT (SELECT sum((x -> 'devices' ->> 'admitted')::bigint) || '/' || sum((x -> 'devices' ->> 'pending')::bigint)
	           FROM jsonb_array_elements(rollout_status('$1') -> 'stages') x)
	          || '/' || (SELECT count(*) FROM campaign_devices WHERE campaign_id = '$1' AND state <> 'superseded')"
}
q "SELECT rollout_create('{\"id\":\"lzlo\",\"artifact\":\"fw-101\",\"priority\":30,\"rate_per_minute\":1,\"rate_burst\":5,\"target\":{\"tags_any\":[\"lz\",\"lzf\"]},\"stages\":[{\"percent\":100,\"max_in_flight\":20}]}', 'alice')" >/dev/null
q "SELECT rollout_start('lzlo', 'alice', $(at 4000))" >/dev/null
tick 4001
expect_eq "the whole share admitted, 45 rows written (2 x 20 + 5), 5 notified" "$(lz lzlo)" "70/65/45"
tick 4002
expect_eq "topped up to 45 pending rows" "$(lz lzlo)" "70/65/50"
tick 4003
expect_eq "and no further" "$(lz lzlo)" "70/65/50"
q "SELECT rollout_create('{\"id\":\"lzhi\",\"artifact\":\"fw-101\",\"priority\":31,\"rate_per_minute\":60,\"rate_burst\":1,\"target\":{\"tags_any\":[\"lz\"]},\"stages\":[{\"percent\":100,\"max_in_flight\":1}]}', 'alice')" >/dev/null
q "SELECT rollout_start('lzhi', 'alice', $(at 4010))" >/dev/null
tick 4011
expect_eq "the higher campaign: its whole target admitted, 3 rows written (2 x 1 + 1), 1 notified" "$(lz lzhi)" "60/59/3"
expect_eq "the lower one's pending rows it reserved do not fill the lower one's lookahead: its 10 other devices written" \
	"$(q "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'lzlo' AND device_id LIKE 'lf%'")" 10
# published: nothing is issued again, the lower one's tokens are free for new devices
q "SELECT rollout_published(array_agg(id), array_agg(fence), 's') FROM rollout_notifications" >/dev/null
for i in 1 2 3; do tick "$((4100 + i * 100))"; done
expect_eq "the lower one notified none of the higher one's devices" \
	"$(q "SELECT count(*) FROM rollout_notifications n WHERE n.campaign_id = 'lzlo' AND n.created_at > $(at 4010)
	      AND n.device_id LIKE 'lz%'
	      -- (the unpublished ones of before are issued again)
	      AND n.device_id NOT IN (SELECT o.device_id FROM rollout_notifications o
	                              WHERE o.campaign_id = 'lzlo' AND o.created_at <= $(at 4010))")" 0
expect_eq "and went on with its own" \
	"$(q "SELECT count(*) > 0 FROM rollout_notifications n WHERE n.campaign_id = 'lzlo' AND n.created_at > $(at 4010)
	      AND n.device_id LIKE 'lf%'")" t
expect_eq "those the higher one wrote are superseded in the lower one" \
	"$(q "SELECT count(*) FROM campaign_devices l JOIN campaign_devices h ON h.device_id = l.device_id AND h.campaign_id = 'lzhi'
	      WHERE l.campaign_id = 'lzlo' AND l.state <> 'superseded' AND l.notified_at IS NULL")" 0
expect_eq "the higher one writes rows as it notifies" \
	"$(q "SELECT count(*) FILTER (WHERE state = 'pending') || '/' || count(*) FROM campaign_devices WHERE campaign_id = 'lzhi'")" "3/4"
q "SELECT rollout_cancel('lzhi', 'alice'), rollout_cancel('lzlo', 'alice')" >/dev/null
# devices already on the version are confirmed when their rows are written,
# so they do not fill the lookahead: one tick writes on to the end of the share
q "INSERT INTO devices (device_id, model, hw_revision, version, version_code, keylist_version, tags)
   SELECT 'al' || lpad(i::text, 2, '0'), 'm1', 'r1', CASE WHEN i <= 36 THEN '1.0.101' ELSE '1.0.100' END,
          CASE WHEN i <= 36 THEN 101 ELSE 100 END, 1, '{al}'::text[] FROM generate_series(1, 40) i"
q "SELECT rollout_create('{\"id\":\"lzal\",\"artifact\":\"fw-101\",\"rate_per_minute\":1,\"rate_burst\":1,\"target\":{\"tags_any\":[\"al\"]},\"stages\":[{\"percent\":100,\"max_in_flight\":2}]}', 'alice')" >/dev/null
q "SELECT rollout_start('lzal', 'alice', $(at 5000))" >/dev/null
tick 5001
expect_eq "a lookahead of 5, 36 of 40 already on the version: all 40 rows written at once" \
	"$(q "SELECT count(*) || '|' || count(*) FILTER (WHERE already) FROM campaign_devices WHERE campaign_id = 'lzal'")" "40|36"
q "SELECT rollout_cancel('lzal', 'alice')" >/dev/null

# --- exactly once, and the queue goes with the campaign
for i in $(seq 6 40); do tick "$((i * 60))"; done
expect_eq "no device admitted twice" \
	"$(q "SELECT count(*) = count(DISTINCT (campaign_id, device_id)) FROM campaign_devices")" t
expect_eq "no queued device is a member" \
	"$(q "SELECT count(*) FROM campaign_targets t JOIN campaign_devices m USING (campaign_id, device_id)")" 0
q "SELECT rollout_cancel('grp', 'alice')" >/dev/null
expect_eq "a cancelled campaign keeps no queue" "$(queued grp)" 0
q "UPDATE devices SET tags = '{eu}' WHERE device_id = 'dev0000030'"
expect_eq "nor gets one back when devices change" "$(queued grp)" 0
expect_counts_kept "at the end"
echo "PASS"
