# SPDX-License-Identifier: Apache-2.0
# Campaign, key-rotation and retention endpoints over real HTTP. Sourced by
# a test that already has the REST API's helpers (tests/integration/web-api/
# lib.sh: api, expect, jbody, sql, sql_eq, fail, log), tokens $ADMIN, $OPER,
# $VIEW and the firmware artifact $CAMPAIGN_ARTIFACT (default fw-1.1.0) for
# model fx-model; every response is recorded for the contract check.
ART=${CAMPAIGN_ARTIFACT:-fw-1.1.0}
JSON=(-H 'Content-Type: application/json')

log "campaigns: create, approve (four eyes), start, show, devices, pause, resume, cancel"
TOKEN=$OPER api POST /api/v1/campaigns "${JSON[@]}" -d "{\"id\":\"api-c1\",\"artifact\":\"$ART\",
	\"requires_approval\":true,\"rate_per_minute\":60,\"target\":{\"model\":\"fx-model\",\"version_code_max\":1},
	\"stages\":[{\"count\":1,\"failure_ratio\":0.5,\"soak_seconds\":60},{\"percent\":100}],
	\"windows\":[{\"days\":[0,1,2,3,4,5,6],\"start_minute\":0,\"duration_minutes\":1440}]}"
expect 201
[[ $(jbody .state) == draft && $(jbody '.stages | length') == 2 && $(jbody .created_by) == token:* ]] ||
	fail "created campaign: $(body)"
TOKEN=$OPER api POST /api/v1/campaigns "${JSON[@]}" -d "{\"id\":\"api-c1\",\"artifact\":\"$ART\",\"stages\":[{\"count\":1}]}"
expect 409 conflict
TOKEN=$OPER api POST /api/v1/campaigns "${JSON[@]}" -d "{\"id\":\"api-c2\",\"artifact\":\"$ART\",\"stages\":[{\"percent\":150}]}"
expect 422 invalid_campaign
[[ $(jbody .error.field) == "stages[0].percent" ]] || fail "422 names the field: $(body)"
TOKEN=$OPER api POST /api/v1/campaigns "${JSON[@]}" -d "{\"id\":\"api-c2\",\"artifact\":\"nope\",\"stages\":[{\"count\":1}]}"
expect 404 not_found
TOKEN=$OPER api POST /api/v1/campaigns "${JSON[@]}" -d "{\"id\":\"x'; DROP TABLE campaigns; --\",\"artifact\":\"$ART\",\"stages\":[{\"count\":1}]}"
expect 422 invalid_campaign
TOKEN=$VIEW api POST /api/v1/campaigns "${JSON[@]}" -d "{\"id\":\"api-c3\",\"artifact\":\"$ART\",\"stages\":[{\"count\":1}]}"
expect 403 forbidden
sql_eq 1 "SELECT count(*) FROM campaigns WHERE campaign_id LIKE 'api-%' OR campaign_id LIKE 'x%'" ||
	fail "a refused campaign was stored"
TOKEN=$OPER api POST /api/v1/campaigns/api-c1/start
expect 200
[[ $(jbody .state) == awaiting_approval ]] || fail "start with approval: $(body)"
TOKEN=$OPER api POST /api/v1/campaigns/api-c1/approve
expect 403 forbidden
TOKEN=$ADMIN api POST /api/v1/campaigns/api-c1/approve
expect 200
[[ $(jbody .state) == running && $(jbody .approved_by) == token:* ]] || fail "approved: $(body)"
TOKEN=$VIEW api GET /api/v1/campaigns/api-c1
expect 200
[[ $(jbody .id) == api-c1 ]] || fail "show"
# the server's rollout driver ticks only with MQTT; drive one tick here
sql -c "SELECT count(*) FROM rollout_tick('api-test')" >/dev/null
TOKEN=$VIEW api GET /api/v1/campaigns/api-c1
expect 200
[[ $(jbody '.stages[0].devices.admitted') == 1 && $(jbody '.stages[0].devices.in_flight') == 1 ]] ||
	fail "per-stage counts: $(body)"
TOKEN=$VIEW api GET "/api/v1/campaigns/api-c1/devices?state=notified&limit=10"
expect 200
[[ $(jbody '.items | length') == 1 && $(jbody '.items[0].state') == notified ]] || fail "devices: $(body)"
TOKEN=$VIEW api GET "/api/v1/campaigns/api-c1/devices?state=bogus"
expect 400 bad_request
TOKEN=$VIEW api GET /api/v1/campaigns/nope/devices
expect 404 not_found
TOKEN=$VIEW api GET "/api/v1/campaigns?state=running"
expect 200
[[ $(jbody '[.items[].id] | join(",")') == api-c1 ]] || fail "list: $(body)"
TOKEN=$OPER api POST /api/v1/campaigns/api-c1/pause
expect 200
[[ $(jbody .state) == paused ]] || fail "pause"
TOKEN=$OPER api POST /api/v1/campaigns/api-c1/pause
expect 200
TOKEN=$OPER api POST /api/v1/campaigns/api-c1/resume
expect 200
[[ $(jbody .state) == running ]] || fail "resume"
TOKEN=$OPER api POST /api/v1/campaigns/api-c1/cancel
expect 200
[[ $(jbody .state) == cancelled ]] || fail "cancel"
TOKEN=$OPER api POST /api/v1/campaigns/api-c1/resume
expect 409 conflict
TOKEN=$OPER api POST /api/v1/campaigns/nope/start
expect 404 not_found
sql_eq "campaign.create,campaign.start,campaign.approve,campaign.pause,campaign.resume,campaign.cancel" \
	"SELECT string_agg(action, ',' ORDER BY id) FROM audit WHERE object = 'api-c1'" ||
	fail "campaign audit: $(sql -c "SELECT string_agg(action, ',' ORDER BY id) FROM audit WHERE object = 'api-c1'")"

log "key rotation: coverage per KeyList version and stragglers"
TOKEN=$VIEW api GET "/api/v1/keyrotation?min_version=2&limit=10"
expect 200
[[ $(jbody '.coverage | length') -ge 1 && $(jbody '.stragglers | length') -ge 1 && $(jbody .min_share) == 0.98 ]] ||
	fail "keyrotation: $(body)"
TOKEN=$VIEW api GET "/api/v1/keyrotation?min_version=x"
expect 400 bad_request

log "retention: bounded purge, admin only, audited"
TOKEN=$OPER api POST /api/v1/retention/purge "${JSON[@]}" -d '{"max_rows":10}'
expect 403 forbidden
TOKEN=$ADMIN api POST /api/v1/retention/purge "${JSON[@]}" -d '{"before":"not a time"}'
expect 400 bad_request
TOKEN=$ADMIN api POST /api/v1/retention/purge "${JSON[@]}" -d '{"max_rows":10,"colour":1}'
expect 400 bad_request
TOKEN=$ADMIN api POST /api/v1/retention/purge "${JSON[@]}" -d "{\"before\":\"$(date -u -d '+1 day' +%FT%TZ)\",\"max_rows\":1000}"
expect 200
[[ $(jbody .campaign_devices) -ge 1 ]] || fail "purge: $(body)"
sql_eq 0 "SELECT count(*) FROM campaign_devices WHERE campaign_id = 'api-c1'" || fail "purged rows remain"

log "update policy: security policy, version range, build/network thresholds, health; exposure view"
sql -c "INSERT INTO artifacts (artifact_id, digest, manifest, product, version, version_code, is_security_update,
	fixes_version_code_min, fixes_version_code_max, advisory, issued_at, image_sha256, image_size,
	signing_key_id, store_path)
	VALUES ('api-sec', decode(md5('api-sec'), 'hex'), '\\x00', 'fx-model', '9.0.1', 900001, true, 1, 1,
	        'CVE-2026-9999', floor(extract(epoch FROM now()))::bigint - 3600, decode(repeat('ab', 32), 'hex'), 1,
	        decode(repeat('cd', 32), 'hex'), 'x')" >/dev/null
TOKEN=$OPER api POST /api/v1/campaigns "${JSON[@]}" -d '{"id":"api-s1","artifact":"api-sec",
	"security":{"override_windows":true,"preempt":true,"stall_alert_seconds":600},
	"target":{"version_range":">=1.0.0 <1.1.0","affected":true},
	"stages":[{"count":1,"build_failure_ratio":0.2,"network_failure_ratio":0.5,
	           "health":{"window_seconds":600,"max_unexpected_reboots":1,"min_health":0.5,"max_unhealthy_ratio":0.1}}]}'
expect 201
[[ $(jbody .security.preempt) == true && $(jbody '.stages[0].health.window_seconds') == 600 &&
	$(jbody '.stages[0].build_failure_ratio') == 0.2 && $(jbody '.stages[0].signals.unhealthy') == 0 &&
	$(jbody '.stages[0].soak_seconds') == 600 ]] || fail "security campaign: $(body)"
TOKEN=$OPER api POST /api/v1/campaigns "${JSON[@]}" -d "{\"id\":\"api-s2\",\"artifact\":\"$ART\",
	\"security\":{\"override_windows\":true},\"stages\":[{\"count\":1}]}"
expect 422 invalid_campaign
[[ $(jbody .error.field) == security ]] || fail "a functional artifact refuses the security policy: $(body)"
TOKEN=$OPER api POST /api/v1/campaigns "${JSON[@]}" -d '{"id":"api-s3","artifact":"api-sec",
	"target":{"version_range":"one point four"},"stages":[{"count":1}]}'
expect 422 invalid_campaign
TOKEN=$VIEW api GET /api/v1/security/exposure
expect 200
# the fix replaces version_code 1: exactly the fx-model devices on it
want=$(sql -c "SELECT count(*) FROM devices WHERE model = 'fx-model' AND version_code = 1 AND NOT decommissioned")
[[ $(jbody '.fixes[] | select(.artifact == "api-sec") | .exposed_devices') == "$want" && $want -ge 1 &&
	$(jbody '.fixes[] | select(.artifact == "api-sec") | .advisory') == CVE-2026-9999 &&
	$(jbody '.fixes[] | select(.artifact == "api-sec") | .age_seconds') -ge 3600 ]] ||
	fail "exposure ($want expected): $(body)"
TOKEN=$VIEW api GET "/api/v1/security/exposure?model=no-such-model"
expect 200
[[ $(jbody '.fixes | length') == 0 && $(jbody '.models | length') == 0 ]] || fail "exposure by model: $(body)"
TOKEN=$VIEW api GET "/api/v1/security/exposure?colour=red"
expect 400 bad_request
TOKEN= api GET /api/v1/security/exposure
expect 401
