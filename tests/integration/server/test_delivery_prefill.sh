#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The assignment view filled ahead of the requests
# (device/assign_cache-internal.h, srv_assign_cache_prefill; docs/scaling.md
# "The manifest cache"): the replica that publishes a campaign's Notifies
# asks once what those devices will be served, so that a notified device's
# first manifest and its image need no query; the delivery mark ('full')
# is written in a batch afterwards; a withdrawal (assignment deleted,
# device decommissioned) stops the manifest and the image within
# manifest_cache_stale_ms, as for any cached answer.
export OTA_ROLLOUT_TICK_MS=200
source "$(dirname "$0")/lib.sh"
STALE_MS=1000
API_PORT=$(free_port)
standard_setup
TOKEN=$("$OTA_SERVER" token create --role admin --name prefill-test --config "$T/server.conf" 2>/dev/null)
[[ -n "$TOKEN" ]] || fail "no token"
AUTH=(-H "Authorization: Bearer $TOKEN")
API=http://127.0.0.1:$API_PORT
now_ms() { date +%s%3N; }
m() { metric "$1"; }

log "a campaign's Notifies fill the view"
# the devices hold the KeyList that signed art-2: the firmware step at once
sql -c "UPDATE devices SET keylist_version = (SELECT max(version) FROM keylists)"
prefilled0=$(m fleetota_manifest_cache_prefilled_total)
code=$(curl -sS -o "$T/create.json" -w '%{http_code}' -X POST "${AUTH[@]}" \
	-H 'Content-Type: application/json' "$API/api/v1/campaigns" \
	-d '{"id":"c-1","artifact":"art-2","target":{"model":["fx-model"]},"stages":[{"percent":100}],"rate_per_minute":6000}')
[[ $code == 201 || $code == 200 ]] || fail "campaign create: $code $(cat "$T/create.json")"
curl -sS --fail -X POST "${AUTH[@]}" "$API/api/v1/campaigns/c-1/start" >/dev/null || fail "start c-1"
wait_for 20 sql_eq 3 "SELECT count(*) FROM assignments WHERE artifact_id = 'art-2' AND state = 'notified'" ||
	fail "not notified: $(sql -c "SELECT device_id, state FROM assignments")"
prefilled() { (($(m fleetota_manifest_cache_prefilled_total) - prefilled0 == 3)); }
wait_for 10 prefilled || fail "prefilled: $(($(m fleetota_manifest_cache_prefilled_total) - prefilled0)), expected 3"
echo "ok - 3 devices notified, 3 answers kept ahead of their requests"
[[ $(sql -c "SELECT string_agg(delivery, ',') FROM assignments WHERE artifact_id = 'art-2'") == ",," ]] ||
	fail "a delivery mark before any request"

log "the first manifest and the image need no query"
hits0=$(m fleetota_manifest_cache_hits_total)
misses0=$(m fleetota_manifest_cache_misses_total)
images0=$(m fleetota_image_cache_hits_total)
dev_curl dev-1 /v1/manifests/art-2
[[ $(status) == 200 ]] || fail "dev-1 manifest: $(status)"
[[ $(xxd -p "$T/body" | tr -d '\n') == $(sql -c "SELECT encode(manifest, 'hex') FROM artifacts WHERE artifact_id = 'art-2'") ]] ||
	fail "the prefilled manifest differs from the database's"
dev_curl dev-1 /v1/images/art-2
[[ $(status) == 200 ]] || fail "dev-1 image: $(status)"
[[ $(sha256sum <"$T/body" | cut -c1-64) == $(sql -c "SELECT encode(image_sha256, 'hex') FROM artifacts WHERE artifact_id = 'art-2'") ]] ||
	fail "the image served from the view is not the artifact's"
dev_curl dev-1 /v1/images/art-2 -H 'Range: bytes=10-19'
[[ $(status) == 206 && $(stat -c %s "$T/body") == 10 ]] || fail "dev-1 image range: $(status)"
hits=$(m fleetota_manifest_cache_hits_total)
misses=$(m fleetota_manifest_cache_misses_total)
images=$(m fleetota_image_cache_hits_total)
((hits - hits0 == 1 && misses == misses0 && images - images0 == 2)) ||
	fail "manifest hits $((hits - hits0)), misses $((misses - misses0)), image hits $((images - images0)); expected 1, 0, 2"
echo "ok - dev-1: manifest and image (whole and a range) from the view, the same bytes as the database's"

log "the delivery mark is written in a batch"
wait_for 10 sql_eq "full" "SELECT delivery FROM assignments WHERE device_id = 'dev-1' AND artifact_id = 'art-2'" ||
	fail "dev-1's mark: '$(sql -c "SELECT delivery FROM assignments WHERE device_id = 'dev-1' AND artifact_id = 'art-2'")'"
[[ $(sql -c "SELECT delivery FROM assignments WHERE device_id = 'dev-2' AND artifact_id = 'art-2'") == "" ]] ||
	fail "dev-2 marked without a request"
(($(m fleetota_delivery_marks_written_total) == 1)) || fail "marks written: $(m fleetota_delivery_marks_written_total)"
[[ $(sql -c "SELECT delivery_campaign_stats('c-1', 'art-2')->>'full'") == 1 ]] || fail "campaign stats: full"
echo "ok - dev-1 recorded as delivered in full (one mark), dev-2 (no request) not"

# withdraw WHAT DEVICE COMMAND...: COMMAND withdraws DEVICE's art-2; every
# manifest and image request sent more than STALE_MS after it must be refused
withdraw() {
	local what=$1 dev=$2 t_done t_send st first=
	shift 2
	"$@" || fail "$what: the withdrawal failed"
	t_done=$(now_ms)
	for _ in $(seq 1 100); do
		for path in /v1/images/art-2 /v1/manifests/art-2; do
			t_send=$(now_ms)
			dev_curl "$dev" "$path"
			st=$(status)
			if [[ $st == 403 ]]; then
				first=${first:-$((t_send - t_done))}
			elif [[ $st == 200 ]]; then
				((t_send - t_done <= STALE_MS)) ||
					fail "$what: $path served $((t_send - t_done)) ms after (bound $STALE_MS ms)"
				[[ -z "$first" ]] || fail "$what: $path served again after a refusal"
			else
				fail "$what: $path: status $st"
			fi
		done
		[[ -n "$first" ]] && ((t_send - t_done > STALE_MS + 200)) && break
	done
	[[ -n "$first" ]] || fail "$what: never refused"
	echo "ok - $what: $dev's image and manifest refused from ${first} ms after (bound $STALE_MS ms)"
}
withdraw "assignment deleted in SQL" dev-2 \
	sql -c "DELETE FROM assignments WHERE device_id = 'dev-2' AND artifact_id = 'art-2'"
withdraw "device decommissioned in SQL" dev-3 \
	sql -c "UPDATE devices SET decommissioned = true WHERE device_id = 'dev-3'"
(($(m fleetota_delivery_marks_dropped_total) == 0)) || fail "marks dropped"

check_server_exit
log "PASS"
