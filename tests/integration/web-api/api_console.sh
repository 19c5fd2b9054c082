# SPDX-License-Identifier: Apache-2.0
# What the operator console reads (server/src/api/observe.c) and serves
# (console.c), over real HTTP. Sourced by test_console_api.sh (the helpers
# of lib.sh: api, expect, jbody, sql, sql_eq, fail, log; tokens $ADMIN,
# $OPER, $VIEW; artifact fw-1.1.0 for fx-model; the server's console_dir is
# web-api/console); every response is recorded for the contract check.
JSON=(-H 'Content-Type: application/json')

log "console: campaign events (the timeline) and failures by error name"
TOKEN=$OPER api POST /api/v1/campaigns "${JSON[@]}" -d '{"id":"con-1","artifact":"fw-1.1.0",
	"target":{"model":"fx-model"},"stages":[{"count":1,"failure_ratio":0.9},{"percent":100}]}'
expect 201
TOKEN=$OPER api POST /api/v1/campaigns/con-1/start
expect 200
sql -c "SELECT count(*) FROM rollout_tick('api-test')" >/dev/null
TOKEN=$OPER api POST /api/v1/campaigns/con-1/pause
expect 200
TOKEN=$VIEW api GET /api/v1/campaigns/con-1/events
expect 200
kinds=$(jbody '[.items[].kind] | join(",")')
[[ $kinds == *paused* && $(jbody '.items | length') -ge 2 && $(jbody .next_cursor) == null ]] ||
	fail "events: $(body)"
# the timeline is the engine's table, oldest first, nothing invented
sql_eq "$kinds" "SELECT string_agg(kind, ',' ORDER BY id) FROM campaign_events WHERE campaign_id = 'con-1'" ||
	fail "events differ from campaign_events: $kinds"
first=$(jbody '.items[0].id')
TOKEN=$VIEW api GET "/api/v1/campaigns/con-1/events?limit=1"
expect 200
[[ $(jbody '.items | length') == 1 && $(jbody .next_cursor) == "$first" ]] || fail "events page: $(body)"
TOKEN=$VIEW api GET "/api/v1/campaigns/con-1/events?cursor=$first"
expect 200
[[ $(jbody '.items[0].id') -gt $first ]] || fail "events after the cursor: $(body)"
TOKEN=$VIEW api GET "/api/v1/campaigns/con-1/events?cursor=abc"
expect 400 bad_request
TOKEN=$VIEW api GET /api/v1/campaigns/nope/events
expect 404 not_found
TOKEN=$VIEW api GET "/api/v1/campaigns/x%27%3B/events"
expect 400 bad_request
[[ $(curl -s -o /dev/null -w '%{http_code}' "$API/api/v1/campaigns/con-1/events") == 401 ]] ||
	fail "events without a token"
TOKEN=$VIEW api GET /api/v1/campaigns/con-1/failures
expect 200
[[ $(jbody '.items | length') == 0 ]] || fail "no failure yet: $(body)"
# two devices report failures as the report path records them (state, error)
sql -c "INSERT INTO campaign_devices (campaign_id, device_id, stage_no, state, error, admit_seq, admitted_at)
	VALUES ('con-1', 'dev-x1', 0, 'failed', 'OTA_ERR_SELFTEST', nextval('campaign_devices_admit_seq'), now()),
	       ('con-1', 'dev-x2', 0, 'failed', 'OTA_ERR_SELFTEST', nextval('campaign_devices_admit_seq'), now()),
	       ('con-1', 'dev-x3', 1, 'timed_out', '', nextval('campaign_devices_admit_seq'), now())"
TOKEN=$VIEW api GET /api/v1/campaigns/con-1/failures
expect 200
[[ $(jq -c .items "$T/body") == '[{"stage":0,"state":"failed","error":"OTA_ERR_SELFTEST","devices":2},{"stage":1,"state":"timed_out","error":"","devices":1}]' ]] ||
	fail "failures: $(body)"
sql -c "DELETE FROM campaign_devices WHERE campaign_id = 'con-1' AND device_id LIKE 'dev-x%'"
TOKEN=$VIEW api GET /api/v1/campaigns/nope/failures
expect 404 not_found

log "console: ETag + If-None-Match -> 304 while a campaign is unchanged, 200 once it changes"
etag_of() { curl -sS -D - -o /dev/null -H "Authorization: Bearer $VIEW" "$API$1" | tr -d '\r' | sed -n 's/^[Ee][Tt]ag: //p'; }
tag=$(etag_of /api/v1/campaigns/con-1)
[[ $tag =~ ^\"[0-9a-f]{32}\"$ ]] || fail "no ETag on a campaign: '$tag'"
: >"$T/body" # curl writes nothing for an empty body
TOKEN=$VIEW api GET /api/v1/campaigns/con-1 -H "If-None-Match: $tag"
expect 304
[[ ! -s "$T/body" ]] || fail "304 with a body: $(body)"
TOKEN=$VIEW api GET /api/v1/campaigns/con-1 -H 'If-None-Match: "00000000000000000000000000000000"'
expect 200
TOKEN=$OPER api POST /api/v1/campaigns/con-1/resume
expect 200
TOKEN=$VIEW api GET /api/v1/campaigns/con-1 -H "If-None-Match: $tag"
expect 200
[[ $(jbody .state) == running ]] || fail "changed campaign: $(body)"
[[ $(etag_of /api/v1/campaigns/con-1) != "$tag" ]] || fail "the ETag did not change with the campaign"
for p in /api/v1/campaigns/con-1/events /api/v1/campaigns/con-1/failures /api/v1/fleet; do
	tag=$(etag_of "$p")
	: >"$T/body"
	TOKEN=$VIEW api GET "$p" -H "If-None-Match: $tag"
	expect 304
	[[ ! -s "$T/body" ]] || fail "$p: 304 with a body"

done
# a 304 is never given for an error: an unknown campaign stays 404
TOKEN=$VIEW api GET /api/v1/campaigns/nope -H 'If-None-Match: *'
expect 404 not_found
TOKEN=$OPER api POST /api/v1/campaigns/con-1/cancel
expect 200

log "console: fleet summary by model / version / state, online or quiet"
TOKEN=$VIEW api GET /api/v1/fleet
expect 200
want=$(sql -c "SELECT count(*) || ',' || count(*) FILTER (WHERE last_seen >= now() - interval '600 s')
	FROM devices WHERE NOT decommissioned")
[[ "$(jbody .devices),$(jbody .online)" == "$want" ]] || fail "fleet totals $(jbody .devices),$(jbody .online) != $want"
[[ $(jbody '[.breakdown[].devices] | add') == $(jbody .devices) && $(jbody .truncated) == false ]] ||
	fail "breakdown does not add up: $(body)"
[[ $(jbody '[.breakdown[] | select(.model == "fx-model" and .version == "1.0.0")] | map(.devices) | add') == 2 ]] ||
	fail "fx-model 1.0.0: $(body)"
TOKEN=$VIEW api GET "/api/v1/fleet?online_seconds=259200"
expect 200
[[ $(jbody .online) -gt $(sql -c "SELECT count(*) FILTER (WHERE last_seen >= now() - interval '600 s') FROM devices WHERE NOT decommissioned") ]] ||
	fail "a wider online window counts more devices: $(body)"
TOKEN=$VIEW api GET "/api/v1/fleet?online_seconds=0"
expect 400 bad_request

log "console: device search with the dynamic-group filter language"
f='{"all":[{"field":"model","op":"eq","value":"fx-model"},{"field":"version_code","op":"lt","value":2}]}'
TOKEN=$VIEW api GET /api/v1/fleet/devices -G --data-urlencode "filter=$f"
expect 200
got=$(jbody '[.items[].device_id] | join(",")')
[[ $got == "$(sql -c "SELECT string_agg(device_id, ',' ORDER BY device_id) FROM devices
	WHERE model = 'fx-model' AND version_code < 2 AND NOT decommissioned")" && -n $got ]] || fail "filter: $got"
TOKEN=$VIEW api GET /api/v1/fleet/devices -G --data-urlencode "filter=$f" --data-urlencode "q=-2"
expect 200
[[ $(jbody '[.items[].device_id] | join(",")') == dev-2 ]] || fail "filter + q: $(body)"
TOKEN=$VIEW api GET "/api/v1/fleet/devices?limit=1"
expect 200
c=$(jbody .next_cursor)
TOKEN=$VIEW api GET "/api/v1/fleet/devices?limit=1&cursor=$c"
expect 200
[[ $(jbody '.items[0].device_id') > $c ]] || fail "paging: $(body)"
before=$(db_state)
for bad in '{"field":"model","op":"lt","value":"x"}' '{"field":"password","op":"eq","value":"x"}' \
	"{\"field\":\"model\",\"op\":\"eq\",\"value\":\"x'; DROP TABLE devices; --\"}" 'not json' '[]'; do
	TOKEN=$VIEW api GET /api/v1/fleet/devices -G --data-urlencode "filter=$bad"
	if [[ $bad == *DROP* ]]; then
		expect 200 # a value is a parameter: it matches nothing, and runs nothing
		[[ $(jbody '.items | length') == 0 ]] || fail "injection matched: $(body)"
	else
		expect 400 bad_request
		[[ $(jbody .error.field) == filter ]] || fail "400 names the filter: $(body)"
	fi
done
[[ "$(db_state)" == "$before" ]] || fail "a refused search changed the database"

log "console: static assets with a strict CSP, no token needed, nothing else reachable"
csp_of() { curl -sS -D - -o "$T/asset" "$API$1" | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ss]ecurity-[Pp]olicy: //p'; }
csp=$(csp_of /console/)
[[ $csp == *"default-src 'none'"* && $csp == *"script-src 'self'"* && $csp != *unsafe-inline* ]] ||
	fail "console CSP: '$csp'"
grep -q 'src="/console/app.js"' "$T/asset" || fail "/console/ is not the console's page"
grep -qi '<script>' "$T/asset" && fail "inline script in index.html"
api GET /console
expect 200
grep -q 'src="/console/app.js"' "$T/body" || fail "/console is not the console's page"
api GET /console/app.js
expect 200
api GET /console/console.css
expect 200
grep -q "text/javascript" <(curl -sS -D - -o /dev/null "$API/console/app.js") || fail "app.js content type"
api GET /console/nope.js
expect 404 not_found
for p in /console/..%2f..%2fmigrations%2f0001_core.sql /console/%2e%2e /console/.hidden /console/a/b; do
	code=$(curl -s -o "$T/body" -w '%{http_code}' --path-as-is "$API$p")
	[[ $code == 404 || $code == 400 ]] || fail "$p: $code"
	grep -q "CREATE TABLE" "$T/body" && fail "$p served a file outside the console"
done
# no inline script or style, and nothing fetched from another origin
for f in "$TOP"/web-api/console/*; do
	grep -nE 'innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|https?://' "$f" &&
		fail "$f: HTML from strings, eval or another origin"
done
grep -nE '<style|style="|onclick=|<script>' "$TOP/web-api/console/index.html" && fail "inline code in index.html"
true
