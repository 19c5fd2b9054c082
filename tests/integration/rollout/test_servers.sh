#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two "servers" (loops calling rollout_tick / rollout_published through their
# own psql sessions, in real time) share one campaign; the lease holder is
# killed with SIGKILL mid-stage, between taking notifications and publishing
# them. The other server takes the campaign over when the lease expires,
# re-issues the lost notifications, and the campaign completes: every device
# notified at least once and counted exactly once.
source "$(dirname "$0")/lib.sh" "$1"
qf "$(dirname "$0")/sim.sql" >/dev/null
seed_trust
add_artifact fw-102 102
add_devices 400 dev
LEASE=2
q "SELECT rollout_create('{\"id\":\"cc\",\"artifact\":\"fw-102\",\"rate_per_minute\":6000,\"rate_burst\":100,\"device_timeout_seconds\":300,\"stages\":[{\"count\":20,\"soak_seconds\":1},{\"percent\":50,\"soak_seconds\":1},{\"percent\":100}]}', 'alice')" >/dev/null
q "SELECT rollout_start('cc', 'alice')" >/dev/null
MARK=$PGDIR_PARENT/s1-took

# server NAME PUBLISH_DELAY: tick, wait, publish, forever
server() {
	local name=$1 delay=$2 out ids fences stage
	while true; do
		out=$(q "SELECT coalesce(string_agg(notification_id::text, ','), '') || '|' || coalesce(string_agg(fence::text, ','), '')
		         FROM rollout_tick('$name', NULL, $LEASE);
		         SELECT current_stage FROM campaigns WHERE campaign_id = 'cc'") || true
		ids=$(head -1 <<<"$out")
		fences=${ids#*|}
		ids=${ids%%|*}
		stage=$(tail -1 <<<"$out")
		if [[ -n "$ids" ]]; then
			if [[ "$name" == s1 && "$stage" -ge 1 ]]; then
				touch "$MARK"
			fi
			sleep "$delay"
			q "SELECT rollout_published('{$ids}', '{$fences}', '$name')" >/dev/null || true
		fi
		sleep 0.05
	done
}
fleet() {
	while true; do
		q "SELECT sim_fleet()" >/dev/null || true
		sleep 0.1
	done
}
export -f server fleet q
export MARK LEASE PGPORT
PSQL_STR="${PSQL[*]}"

spawn() {
	setsid bash -c "PSQL=($PSQL_STR); $*" >/dev/null 2>&1 &
	local pid=$!
	disown "$pid"
	CHILD_PIDS+=("-$pid")
	SPAWNED=$pid
}
spawn server s1 0.5
s1=$SPAWNED
for _ in $(seq 1 400); do
	[[ "$(q "SELECT lease_owner FROM campaigns WHERE campaign_id='cc'")" == s1 ]] && break
	sleep 0.05
done
expect_eq "s1 holds the lease" "$(q "SELECT lease_owner FROM campaigns WHERE campaign_id='cc'")" s1
spawn server s2 0.05
spawn fleet
for _ in $(seq 1 1500); do
	[[ -f "$MARK" ]] && break
	sleep 0.02
done
[[ -f "$MARK" ]] || fail "s1 never reached stage 1"
kill -KILL -- "-$s1"
echo "   killed s1 (pid group $s1) in stage $(q "SELECT current_stage FROM campaigns WHERE campaign_id='cc'") with $(q "SELECT count(*) FROM rollout_notifications WHERE server_id='s1' AND published_at IS NULL") unpublished notifications"

for _ in $(seq 1 1800); do
	[[ "$(q "SELECT state FROM campaigns WHERE campaign_id='cc'")" == completed ]] && break
	sleep 0.1
done
expect_eq "campaign completes after the kill" "$(q "SELECT state FROM campaigns WHERE campaign_id='cc'")" completed
expect_eq "s2 took the lease over" \
	"$(q "SELECT count(*) > 0 FROM campaign_events WHERE campaign_id='cc' AND kind='lease' AND detail = 's2 took over from s1'")" t
expect_eq "s1's lost notifications were re-issued" \
	"$(q "SELECT count(*) > 0 FROM rollout_notifications WHERE campaign_id='cc' AND server_id='s1' AND published_at IS NULL AND reissued")" t
expect_eq "every device notified (published) at least once" \
	"$(q "SELECT count(*) FROM devices d WHERE NOT EXISTS (SELECT 1 FROM rollout_notifications n WHERE n.device_id = d.device_id AND n.published_at IS NOT NULL)")" 0
expect_eq "every device counted exactly once" \
	"$(q "SELECT count(*), count(DISTINCT device_id), count(*) FILTER (WHERE state='confirmed') FROM campaign_devices WHERE campaign_id='cc'")" "400|400|400"
expect_eq "stage counts add up to the fleet" \
	"$(q "SELECT sum(admitted), sum(confirmed) FROM rollout_stage_counts('cc')")" "400|400"
expect_eq "a device is notified again only when its notification was lost" \
	"$(q "SELECT count(*) FROM (SELECT device_id FROM rollout_notifications WHERE campaign_id='cc' AND NOT reissued GROUP BY device_id HAVING count(*) > 1) x")" 0
expect_eq "rate limit held across both servers" "$(q "SELECT sim_rate_violations('cc')")" 0
expect_counts_kept "at the end"
echo "PASS"
