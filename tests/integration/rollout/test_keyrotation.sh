#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Key rotation across a fleet of 1,000 devices: operational key k1 in KeyList
# v1; a new key k2 -> KeyList v2 {k1, k2} rolled out by a key-list campaign;
# retiring k1 (a KeyList {k2}) is refused while coverage is below 98 % and
# accepted after; a forced retire is audited; stragglers listed by last seen;
# then an artifact signed by k2 rolls out, the stragglers getting the KeyList
# first.
source "$(dirname "$0")/lib.sh" "$1"
qf "$(dirname "$0")/sim.sql" >/dev/null
seed_trust
add_artifact fw-k2 103 "$KEY2"
add_devices 1000 dev
q "UPDATE devices SET keylist_key_ids = ARRAY[$KEY1]"
q "UPDATE devices SET last_seen = now() - make_interval(days => 30 + i::integer) FROM (SELECT device_id, row_number() OVER (ORDER BY device_id) i FROM devices WHERE device_id > 'dev0000990') s WHERE s.device_id = devices.device_id"
q "INSERT INTO sim_offline SELECT device_id FROM devices WHERE device_id > 'dev0000990'"   # 10 stragglers
T="2026-02-02 09:00:00+00"
RETIRE="SELECT rollout_keylist_check(ARRAY[$KEY2], false, 'alice', 3)"

expect_eq "retire refused before the rotation" "$(q "SELECT ($RETIRE)->>'allowed', ($RETIRE)->>'coverage'")" "false|0.000000"
q "SELECT rollout_create('{\"id\":\"kl2\",\"kind\":\"keylist\",\"keylist_version\":2,\"rate_per_minute\":6000,\"stages\":[{\"percent\":10},{\"percent\":100,\"success_ratio\":0.98}]}', 'alice')" >/dev/null
q "SELECT rollout_start('kl2', 'alice', '$T')" >/dev/null
q "SELECT sim_step('s', '$T')" >/dev/null
expect_eq "key-list notifications carry the version" \
	"$(q "SELECT count(*) FROM rollout_notifications n JOIN campaign_devices m USING (campaign_id, device_id) WHERE campaign_id='kl2' AND m.step='keylist'")" 100
expect_eq "coverage after the first stage: still refused" \
	"$(q "SELECT ($RETIRE)->>'allowed', ($RETIRE)->>'coverage'")" "false|0.100000"
q "SELECT sim_run('kl2', '$T'::timestamptz + interval '1 s', 120)" >/dev/null
expect_eq "key-list campaign completed with 98 % success" "$(q "SELECT state FROM campaigns WHERE campaign_id='kl2'")" completed
expect_eq "coverage per KeyList version" \
	"$(q "SELECT string_agg(keylist_version || ':' || devices || ':' || share, ',' ORDER BY keylist_version) FROM rollout_keylist_coverage()")" \
	"1:10:0.010000,2:990:0.990000"
expect_eq "stragglers, least recently seen first" \
	"$(q "SELECT string_agg(device_id, ',') FROM rollout_keylist_stragglers(2, 3)")" \
	"dev0001000,dev0000999,dev0000998"
expect_eq "retire accepted at 99 % coverage" "$(q "SELECT ($RETIRE)->>'allowed', ($RETIRE)->>'coverage'")" "true|0.990000"
q "UPDATE rollout_settings SET value = '0.995' WHERE name = 'keyrotation_min_share'"
expect_eq "refused again with a 99.5 % requirement" "$(q "SELECT ($RETIRE)->>'allowed'")" false
expect_eq "no audit for a refusal" "$(q "SELECT count(*) FROM audit WHERE action='keylist.force_retire'")" 0
expect_eq "forced by an admin" "$(q "SELECT rollout_keylist_check(ARRAY[$KEY2], true, 'root-admin', 3)->>'forced'")" true
expect_eq "the forced retire is audited" "$(q "SELECT actor || ':' || object FROM audit WHERE action='keylist.force_retire'")" "root-admin:3"
expect_eq "a KeyList that drops nothing is always allowed" \
	"$(q "SELECT rollout_keylist_check(ARRAY[$KEY1, $KEY2])->>'allowed'")" true

# an artifact signed by the new key; the stragglers come online
q "DELETE FROM sim_offline"
q "SELECT rollout_create('{\"id\":\"fw\",\"artifact\":\"fw-k2\",\"rate_per_minute\":60000,\"rate_burst\":1000,\"stages\":[{\"percent\":100}]}', 'alice')" >/dev/null
q "SELECT rollout_start('fw', 'alice', '$T'::timestamptz + interval '1 h')" >/dev/null
q "SELECT sim_run('fw', '$T'::timestamptz + interval '1 h', 120)" >/dev/null
expect_eq "k2-signed firmware on every device" \
	"$(q "SELECT count(*) FILTER (WHERE state='confirmed'), count(*) FROM campaign_devices WHERE campaign_id='fw'")" "1000|1000"
expect_eq "only the stragglers needed the key-list step" \
	"$(q "SELECT count(DISTINCT device_id) FROM rollout_notifications WHERE campaign_id='fw' AND step='keylist'")" 10
expect_eq "each straggler got the KeyList before the firmware" \
	"$(q "SELECT count(*) FROM (SELECT device_id FROM rollout_notifications WHERE campaign_id='fw' GROUP BY device_id HAVING min(created_at) FILTER (WHERE step='keylist') < min(created_at) FILTER (WHERE step='firmware')) x")" 10
expect_counts_kept "at the end"
echo "PASS"
