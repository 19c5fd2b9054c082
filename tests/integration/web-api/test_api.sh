#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The REST API against a real PostgreSQL: every operation of openapi.yaml
# over real HTTP, the attack matrix (each refusal with its documented error
# and an unchanged database and store), then every recorded response body is
# validated against the spec's schemas by an external validator (ajv), and
# the spec is linted by an external OpenAPI linter (@redocly/cli).
source "$(dirname "$0")/lib.sh"
npm_tools &
NPM_PID=$!
setup_world
start_server

log "bootstrap: an admin token from the CLI, printed once, stored hashed"
ADMIN=$(new_token admin root-admin)
[[ $ADMIN =~ ^fota_[A-Za-z0-9_-]{43}$ ]] || fail "token shape: $ADMIN"
sql_eq 0 "SELECT count(*) FROM api_tokens WHERE token_sha256::text LIKE '%$(printf %s "${ADMIN:5:10}" | od -An -tx1 | tr -d ' \n')%'" ||
	fail "token stored in clear"
sql_eq "$(printf %s "$ADMIN" | sha256sum | cut -c1-64)" \
	"SELECT encode(token_sha256, 'hex') FROM api_tokens WHERE name = 'root-admin'" || fail "token hash"
sql_eq "cli|token.create" "SELECT actor, action FROM audit ORDER BY id DESC LIMIT 1" || fail "cli audit"

log "health and identity"
TOKEN= api GET /healthz
expect 200
[[ $(jbody .status) == ok ]] || fail "healthz"
TOKEN=$ADMIN api GET /api/v1/me
expect 200
[[ $(jbody .role) == admin ]] || fail "me"

log "tokens: admin creates operator and viewer tokens"
TOKEN=$ADMIN api POST /api/v1/tokens -H 'Content-Type: application/json' -d '{"name":"ci","role":"operator"}'
expect 201
OPER=$(jbody .token)
OPER_ID=$(jbody .id)
TOKEN=$ADMIN api POST /api/v1/tokens -H 'Content-Type: application/json' -d '{"name":"dash","role":"viewer"}'
expect 201
VIEW=$(jbody .token)
TOKEN=$ADMIN api POST /api/v1/tokens -H 'Content-Type: application/json' -d '{"name":"old","role":"admin"}'
expect 201
OLD=$(jbody .token)
OLD_ID=$(jbody .id)
TOKEN=$ADMIN api GET "/api/v1/tokens?limit=2"
expect 200
[[ $(jbody '.items | length') == 2 && $(jbody .next_cursor) != null ]] || fail "token page 1"
TOKEN=$ADMIN api GET "/api/v1/tokens?limit=2&cursor=$(jbody .next_cursor)"
expect 200
[[ $(jbody '.items | length') == 2 ]] || fail "token page 2"
jq -e '[.items[] | has("token") or has("token_sha256")] | any | not' "$T/body" >/dev/null ||
	fail "a token list shows secrets"
TOKEN=$ADMIN api DELETE "/api/v1/tokens/$OLD_ID"
expect 200
[[ $(jbody .revoked_at) != null ]] || fail "revoked_at"
TOKEN=$ADMIN api DELETE "/api/v1/tokens/$OLD_ID"
expect 409 conflict
TOKEN=$ADMIN api DELETE /api/v1/tokens/999999
expect 404 not_found

log "root lists and key lists: verified chain steps, versions increase"
TOKEN=$ADMIN api POST /api/v1/keylists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/keylist1.bin"
expect 422 OTA_ERR_ROOT_CHAIN
TOKEN=$ADMIN api POST /api/v1/rootlists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/rootlist1.bin"
expect 201
[[ $(jbody .version) == 1 ]] || fail "rootlist version"
TOKEN=$ADMIN api POST /api/v1/rootlists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/rootlist-foreign.bin"
expect 422 OTA_ERR_ROOT_CHAIN
TOKEN=$ADMIN api POST /api/v1/rootlists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/rootlist2.bin"
expect 201
TOKEN=$ADMIN api POST /api/v1/rootlists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/rootlist2.bin"
expect 422 OTA_ERR_ROOT_CHAIN
TOKEN=$ADMIN api POST /api/v1/keylists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/keylist1.bin"
expect 201
[[ $(jbody .version) == 1 && $(jbody .rootlist_version) == 2 && $(jbody '.key_ids | length') == 1 ]] ||
	fail "keylist fields: $(body)"
TOKEN=$VIEW api GET /api/v1/rootlists
expect 200
[[ $(jbody '[.items[].version] | join(",")') == "2,1" ]] || fail "rootlist list"

log "artifacts: upload verified against the server's KeyList, image by hash"
TOKEN=$OPER api POST "/api/v1/artifacts?id=fw-1.1.0" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/fw1.otab"
expect 201
[[ $(jbody .version) == 1.1.0 && $(jbody .image_size) == 65536 && $(jbody .product) == fx-model ]] ||
	fail "artifact fields: $(body)"
IMG=$(jbody .image_sha256)
[[ -f "$STORE/$IMG" ]] || fail "image not in the store under its digest"
[[ $(sha256sum <"$STORE/$IMG" | cut -c1-64) == "$IMG" ]] || fail "stored image differs"
TOKEN=$OPER api POST "/api/v1/artifacts?id=fw-1.2.0" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/fw2.otab"
expect 422 OTA_ERR_KEY_UNKNOWN
TOKEN=$ADMIN api POST /api/v1/keylists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/keylist2.bin"
expect 201
TOKEN=$ADMIN api POST /api/v1/keylists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/keylist1.bin"
expect 422 OTA_ERR_KEYLIST_ROLLBACK
TOKEN=$OPER api POST "/api/v1/artifacts?id=fw-1.2.0" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/fw2.otab"
expect 201
TOKEN=$VIEW api GET /api/v1/keylists
expect 200
[[ $(jbody '.items[0].version') == 2 ]] || fail "keylist list"
TOKEN=$VIEW api GET "/api/v1/artifacts?product=fx-model&limit=1"
expect 200
[[ $(jbody '.items[0].artifact_id') == fw-1.1.0 && $(jbody .next_cursor) == fw-1.1.0 ]] || fail "artifact page"
TOKEN=$VIEW api GET "/api/v1/artifacts?cursor=fw-1.1.0"
expect 200
[[ $(jbody '[.items[].artifact_id] | join(",")') == fw-1.2.0 ]] || fail "artifact page 2"
TOKEN=$VIEW api GET /api/v1/artifacts/fw-1.2.0
expect 200
[[ $(jbody .version_code) == 3 && $(jbody .security_counter) == 3 ]] || fail "artifact show"
TOKEN=$VIEW api GET /api/v1/artifacts/nope
expect 404 not_found

log "devices: filters, show with events, tags, suspect flag, decommission"
TOKEN=$VIEW api GET "/api/v1/devices?model=fx-model&tag=eu"
expect 200
[[ $(jbody '[.items[].device_id] | join(",")') == dev-1,dev-2 ]] || fail "device filter: $(body)"
TOKEN=$VIEW api GET "/api/v1/devices?seen_within=3600"
expect 200
[[ $(jbody '[.items[].device_id] | join(",")') == dev-1,dev-4 ]] || fail "seen_within"
TOKEN=$VIEW api GET "/api/v1/devices?not_seen_within=3600&keylist_version=1"
expect 200
[[ $(jbody '[.items[].device_id] | join(",")') == dev-2 ]] || fail "not_seen_within"
TOKEN=$VIEW api GET "/api/v1/devices?hw_revision=rev-a&version=1.0.0&limit=1"
expect 200
[[ $(jbody '[.items[].device_id] | join(",")') == dev-1 && $(jbody .next_cursor) == dev-1 ]] || fail "device page"
TOKEN=$VIEW api GET /api/v1/devices/dev-1
expect 200
[[ $(jbody '.events | length') == 2 && $(jbody '.events[0].kind') == install_started ]] || fail "events"
TOKEN=$OPER api PUT /api/v1/devices/dev-3/tags -H 'Content-Type: application/json' -d '{"tags":["us","beta","beta"]}'
expect 200
[[ $(jbody '.tags | join(",")') == beta,us ]] || fail "tags: $(body)"
sql_eq '{"tags": ["us"]}|{"tags": ["beta", "us"]}' \
	"SELECT before, after FROM audit WHERE action = 'device.set_tags' ORDER BY id DESC LIMIT 1" ||
	fail "tags audit"
sql -c "UPDATE devices SET suspect = true, suspect_reason = 'test', suspect_at = now() WHERE device_id = 'dev-3'"
TOKEN=$VIEW api GET "/api/v1/devices?suspect=true"
expect 200
[[ $(jbody '[.items[] | .device_id + ":" + .suspect_reason] | join(",")') == dev-3:test ]] || fail "suspect filter: $(body)"
TOKEN=$VIEW api POST /api/v1/devices/dev-3/clear-suspect
expect 403 forbidden
TOKEN=$OPER api POST /api/v1/devices/dev-3/clear-suspect
expect 200
[[ $(jbody '[.suspect, .suspect_at] | map(tostring) | join(",")') == false,null ]] || fail "clear-suspect: $(body)"
sql_eq 'test|false' "SELECT before->>'suspect_reason', after->>'suspect' FROM audit
	WHERE action = 'device.suspect_clear' AND object = 'device:dev-3'" || fail "clear-suspect audit"
TOKEN=$OPER api POST /api/v1/devices/nobody/clear-suspect
expect 404 not_found
[[ $(dev_get dev-4 /v1/keylist) == 200 ]] || fail "dev-4 not served before decommissioning"
TOKEN=$ADMIN api POST /api/v1/devices/dev-4/decommission
expect 200
[[ $(jbody .decommissioned) == true ]] || fail "decommission"
[[ $(dev_get dev-4 /v1/keylist) == 403 ]] || fail "a decommissioned device is still served"
TOKEN=$ADMIN api POST /api/v1/devices/dev-4/decommission
expect 409 conflict
TOKEN=$VIEW api GET "/api/v1/devices?decommissioned=false"
expect 200
[[ $(jbody '[.items[].device_id] | join(",")') == dev-1,dev-2,dev-3 ]] || fail "decommissioned filter"

log "groups: static members, dynamic filter evaluated in SQL"
TOKEN=$OPER api POST /api/v1/groups -H 'Content-Type: application/json' \
	-d '{"group_id":"lab","kind":"static","description":"bench","devices":["dev-1","dev-3"]}'
expect 201
[[ $(jbody .member_count) == 2 ]] || fail "static count"
TOKEN=$OPER api POST /api/v1/groups -H 'Content-Type: application/json' \
	-d '{"group_id":"eu-fx","kind":"dynamic","filter":{"all":[{"field":"model","op":"eq","value":"fx-model"},{"field":"tags","op":"has","value":"eu"},{"any":[{"field":"version_code","op":"lt","value":2},{"field":"state","op":"in","value":["idle","failed"]}]}]}}'
expect 201
TOKEN=$OPER api POST /api/v1/groups -H 'Content-Type: application/json' -d '{"group_id":"lab","kind":"static"}'
expect 409 conflict
TOKEN=$OPER api POST /api/v1/groups -H 'Content-Type: application/json' -d '{"group_id":"x","kind":"static","devices":["ghost"]}'
expect 422 unknown_device
TOKEN=$VIEW api GET /api/v1/groups/eu-fx/devices
expect 200
[[ $(jbody '[.items[].device_id] | join(",")') == dev-1,dev-2 ]] || fail "dynamic members: $(body)"
sql -c "UPDATE devices SET tags = '{eu}' WHERE device_id = 'dev-3'; UPDATE devices SET model = 'fx-model' WHERE device_id = 'dev-3'"
TOKEN=$VIEW api GET "/api/v1/groups/eu-fx/devices?limit=5"
expect 200
[[ $(jbody '[.items[].device_id] | join(",")') == dev-1,dev-2,dev-3 ]] || fail "dynamic group follows the fleet"
TOKEN=$VIEW api GET "/api/v1/groups/lab/devices?limit=1"
expect 200
[[ $(jbody '[.items[].device_id] | join(",")') == dev-1 ]] || fail "static members page"
TOKEN=$OPER api PUT /api/v1/groups/lab/members -H 'Content-Type: application/json' -d '{"devices":["dev-2","dev-3"]}'
expect 200
sql_eq dev-2,dev-3 "SELECT string_agg(device_id, ',' ORDER BY device_id) FROM device_group_members WHERE group_id = 'lab'" ||
	fail "members replaced"
TOKEN=$OPER api PUT /api/v1/groups/eu-fx/members -H 'Content-Type: application/json' -d '{"devices":["dev-2"]}'
expect 409 conflict
TOKEN=$VIEW api GET "/api/v1/groups?kind=dynamic"
expect 200
[[ $(jbody '[.items[].group_id] | join(",")') == eu-fx ]] || fail "group list"
TOKEN=$VIEW api GET /api/v1/groups/lab
expect 200
TOKEN=$OPER api POST /api/v1/groups -H 'Content-Type: application/json' -d '{"group_id":"tmp","kind":"static"}'
expect 201
log "a group or artifact that a campaign uses is not deleted"
sql -c "INSERT INTO campaigns (campaign_id, kind, artifact_id, target_filter, created_by)
	VALUES ('c-tmp', 'firmware', 'fw-1.2.0', '{\"groups\": [\"tmp\"]}', 'test')"
TOKEN=$OPER api DELETE /api/v1/groups/tmp
expect 409 conflict
TOKEN=$OPER api DELETE /api/v1/artifacts/fw-1.2.0
expect 409 conflict
sql -c "DELETE FROM campaigns WHERE campaign_id = 'c-tmp'"
TOKEN=$OPER api DELETE /api/v1/groups/tmp
expect 200
TOKEN=$OPER api DELETE /api/v1/groups/tmp
expect 404 not_found

log "artifact delete: refused while assigned"
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-1', 'fw-1.1.0')"
TOKEN=$OPER api DELETE /api/v1/artifacts/fw-1.1.0
expect 409 conflict
TOKEN=$OPER api DELETE /api/v1/artifacts/fw-1.2.0
expect 200
IMG2=$(jbody .image_sha256)
[[ ! -e "$STORE/$IMG2" ]] || fail "unused image left in the store"
[[ -f "$STORE/$IMG" ]] || fail "assigned image removed"

log "audit: every change, append-only, readable"
TOKEN=$VIEW api GET "/api/v1/audit?limit=3"
expect 200
[[ $(jbody '.items | length') == 3 && $(jbody '.items[0].action') == artifact.delete ]] || fail "audit list"
TOKEN=$VIEW api GET "/api/v1/audit?action=token.create&cursor=$(jbody .next_cursor)"
expect 200
[[ $(jbody '.items | length') -ge 3 ]] || fail "audit filter"
sql_eq "token.create,token.create,token.create,token.create,token.revoke,rootlist.upload,rootlist.upload,keylist.upload,artifact.upload,keylist.upload,artifact.upload,device.set_tags,device.suspect_clear,device.decommission,group.create,group.create,group.set_members,group.create,group.delete,artifact.delete" \
	"SELECT string_agg(action, ',' ORDER BY id) FROM audit" || fail "audit trail: $(sql -c "SELECT string_agg(action, ',' ORDER BY id) FROM audit")"
sql -c "UPDATE audit SET actor = 'x'" 2>/dev/null && fail "audit UPDATE allowed"
sql -c "DELETE FROM audit" 2>/dev/null && fail "audit DELETE allowed"
sql -c "TRUNCATE audit" 2>/dev/null && fail "audit TRUNCATE allowed"

log "metrics"
TOKEN=$VIEW api GET /metrics
expect 200
grep -q '^fleetota_devices_by_version{version="1.0.0"} 2$' "$T/body" || fail "devices by version: $(grep by_version "$T/body")"
grep -q '^fleetota_devices_by_state{state="idle"} 3$' "$T/body" || fail "devices by state"
grep -q '^fleetota_rejections_total{reason="rate_limited"} ' "$T/body" || fail "rejections"
grep -q '^fleetota_api_request_duration_seconds_count ' "$T/body" || fail "latency"
grep -q '^fleetota_bytes_served_total ' "$T/body" || fail "bytes served"

# ------------------------------------------------------------------------
log "attacks: each refused with its documented error, nothing changes"
BEFORE=$(db_state)
unchanged() { [[ "$(db_state)" == "$BEFORE" ]] || fail "state changed after: $*"; }

# (a batch: one curl for the requests of a section, see batch_add)
# body FILE TEXT: a request body in a file, as -d TEXT sends it
body_file() { printf '%s' "$2" >"$T/$1"; }
body_file evil.json '{"name":"evil","role":"admin"}'
OCT=application/octet-stream
TOKEN= batch_add GET /api/v1/devices 401 unauthorized ""
TOKEN=fota_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA batch_add GET /api/v1/devices 401 unauthorized ""
TOKEN="not a token" batch_add GET /api/v1/devices 401 unauthorized ""
TOKEN=$OLD batch_add POST /api/v1/tokens 401 unauthorized "" application/json "$T/evil.json"
batch_run
unchanged "bad tokens"

body_file tags-x.json '{"tags":["x"]}'
body_file group-v.json '{"group_id":"v","kind":"static"}'
TOKEN=$VIEW batch_add POST /api/v1/tokens 403 forbidden "" application/json "$T/evil.json"
TOKEN=$VIEW batch_add PUT /api/v1/devices/dev-1/tags 403 forbidden "" application/json "$T/tags-x.json"
TOKEN=$VIEW batch_add POST "/api/v1/artifacts?id=v" 403 forbidden "" $OCT "$FX/docs.otab"
TOKEN=$VIEW batch_add DELETE /api/v1/artifacts/fw-1.1.0 403 forbidden ""
TOKEN=$VIEW batch_add POST /api/v1/groups 403 forbidden "" application/json "$T/group-v.json"
TOKEN=$OPER batch_add POST /api/v1/keylists 403 forbidden "" $OCT "$FX/keylist2.bin"
TOKEN=$OPER batch_add POST /api/v1/devices/dev-1/decommission 403 forbidden ""
TOKEN=$OPER batch_add DELETE "/api/v1/tokens/$OPER_ID" 403 forbidden ""
batch_run
unchanged "role escalation"

log "SQL injection strings in every string field and filter"
INJ=("x' OR '1'='1" "'; DROP TABLE devices; --" "dev-1'--" "\" OR 1=1 --" "%' UNION SELECT token_sha256 FROM api_tokens --")
# per string: its URL encoding and the JSON bodies that carry it (one jq)
mapfile -t ENC < <(jq -nr --args '$ARGS.positional[] | (@uri),
	({name: ., role: "viewer"}, {name: "ok", role: .}, {tags: [.]}, {group_id: ., kind: "static"},
	 {devices: [.]}, {group_id: "inj", kind: "dynamic", filter: {field: ., op: "eq", value: "x"}},
	 {group_id: "inj", kind: "dynamic", filter: {field: "model", op: ., value: "x"}} | tojson)' "${INJ[@]}")
((${#ENC[@]} == 8 * ${#INJ[@]})) || fail "injection bodies"
JSON_CT=application/json
for ((k = 0; k < ${#INJ[@]}; k++)); do
	q=${ENC[8 * k]}
	for ((b = 1; b <= 7; b++)); do printf '%s' "${ENC[8 * k + b]}" >"$T/inj-$k-$b.json"; done
	for f in model hw_revision version state; do
		TOKEN=$VIEW batch_add GET "/api/v1/devices?$f=$q" 200 "" items0
	done
	for f in tag cursor keylist_version seen_within; do
		TOKEN=$VIEW batch_add GET "/api/v1/devices?$f=$q" 400 bad_request "field=$f"
	done
	for f in actor action object; do
		TOKEN=$VIEW batch_add GET "/api/v1/audit?$f=$q" 200 "" items0
	done
	for f in product version; do
		TOKEN=$VIEW batch_add GET "/api/v1/artifacts?$f=$q" 200 "" items0
	done
	TOKEN=$VIEW batch_add GET "/api/v1/devices/$q" 400 bad_request ""
	TOKEN=$VIEW batch_add GET "/api/v1/groups/$q/devices" 400 bad_request ""
	TOKEN=$OPER batch_add POST "/api/v1/artifacts?id=$q" 400 bad_request "" application/octet-stream "$FX/docs.otab"
	TOKEN=$ADMIN batch_add POST /api/v1/tokens 400 bad_request "" $JSON_CT "$T/inj-$k-1.json"
	TOKEN=$ADMIN batch_add POST /api/v1/tokens 400 bad_request "" $JSON_CT "$T/inj-$k-2.json"
	TOKEN=$OPER batch_add PUT /api/v1/devices/dev-1/tags 400 bad_request "" $JSON_CT "$T/inj-$k-3.json"
	TOKEN=$OPER batch_add POST /api/v1/groups 400 bad_request "" $JSON_CT "$T/inj-$k-4.json"
	TOKEN=$OPER batch_add PUT /api/v1/groups/lab/members 400 bad_request "" $JSON_CT "$T/inj-$k-5.json"
	TOKEN=$OPER batch_add POST /api/v1/groups 400 bad_request "" $JSON_CT "$T/inj-$k-6.json"
	TOKEN=$OPER batch_add POST /api/v1/groups 400 bad_request "" $JSON_CT "$T/inj-$k-7.json"
done
batch_run
unchanged "injection strings (refused)"
log "an injection string as a filter value is data: a group that matches nothing"
j=$(jq -nc --arg s "${INJ[1]}" '{group_id: "inj", kind: "dynamic", description: $s, filter: {any: [{field: "model", op: "eq", value: $s}, {field: "version", op: "in", value: [$s]}]}}')
TOKEN=$OPER api POST /api/v1/groups -H 'Content-Type: application/json' -d "$j"
expect 201
TOKEN=$VIEW api GET /api/v1/groups/inj/devices
expect 200
[[ $(jbody '.items | length') == 0 ]] || fail "injection value matched"
sql_eq 4 "SELECT count(*) FROM devices" || fail "devices table touched"
TOKEN=$OPER api DELETE /api/v1/groups/inj
expect 200
BEFORE=$(db_state)

log "oversized, malformed, truncated bodies and wrong content types"
head -c $((100 * 1024 * 1024)) /dev/zero >"$T/big.bin"
TOKEN=$OPER api POST "/api/v1/artifacts?id=big" -H 'Content-Type: application/octet-stream' --data-binary @"$T/big.bin"
expect 413
head -c $((100 * 1024)) /dev/zero | tr '\0' ' ' >"$T/big.json"
TOKEN=$OPER api POST /api/v1/groups -H 'Content-Type: application/json' --data-binary @"$T/big.json"
expect 413 payload_too_large
body_file cut1.json '{"group_id": "x", "kind": '
body_file cut2.json '{"group_id": "x", "kind": "static"'
body_file array.json '["x"]'
body_file dup.json '{"group_id":"a","group_id":"b","kind":"static"}'
body_file group-x.json '{"group_id":"x","kind":"static"}'
body_file otab-magic.bin 'OTAB'
head -c 100 "$FX/docs.otab" >"$T/trunc-header.otab"
TOKEN=$OPER batch_add POST /api/v1/groups 400 bad_json "" application/json "$T/cut1.json"
TOKEN=$OPER batch_add POST /api/v1/groups 400 bad_json "" application/json "$T/cut2.json"
TOKEN=$OPER batch_add POST /api/v1/groups 400 bad_json "" application/json "$T/array.json"
TOKEN=$OPER batch_add POST /api/v1/groups 400 bad_json "" application/json "$T/dup.json"
TOKEN=$OPER batch_add POST /api/v1/groups 415 unsupported_media_type "" text/plain "$T/group-x.json"
# curl's default for -d
TOKEN=$OPER batch_add POST /api/v1/groups 415 unsupported_media_type "" application/x-www-form-urlencoded "$T/group-x.json"
TOKEN=$OPER batch_add POST "/api/v1/artifacts?id=x" 415 unsupported_media_type "" application/json "$FX/docs.otab"
TOKEN=$ADMIN batch_add POST /api/v1/keylists 415 unsupported_media_type "" application/json "$FX/keylist2.bin"
TOKEN=$OPER batch_add POST "/api/v1/artifacts?id=x" 422 OTA_ERR_FORMAT "" $OCT "$T/otab-magic.bin"
TOKEN=$OPER batch_add POST "/api/v1/artifacts?id=x" 422 OTA_ERR_FORMAT "" $OCT "$T/trunc-header.otab"
TOKEN=$OPER batch_add GET "/api/v1/devices?limit=100000" 400 bad_request ""
TOKEN=$OPER batch_add GET "/api/v1/devices?colour=red" 400 bad_request ""
batch_run
unchanged "bodies and content types"

log "path traversal in artifact names"
for id in "../../etc/passwd" "..%2F..%2Fetc%2Fpasswd" "%2e%2e" "a/../../b" ".hidden" "fw%00.otab"; do
	TOKEN=$OPER batch_add POST "/api/v1/artifacts?id=$id" 400 bad_request field=id $OCT "$FX/docs.otab"
done
for id in "..%2F..%2Fetc%2Fpasswd" "%2e%2e" ".hidden" "fw%00x"; do
	TOKEN=$VIEW batch_add GET "/api/v1/artifacts/$id" 400 bad_request ""
	TOKEN=$OPER batch_add DELETE "/api/v1/artifacts/$id" 400 bad_request ""
done
batch_run
unchanged "path traversal"

log "bundles: unknown signing key, changed image, truncated image, replay"
TOKEN=$OPER api POST "/api/v1/artifacts?id=evil" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/fw-unknown-key.otab"
expect 422 OTA_ERR_KEY_UNKNOWN
TOKEN=$OPER api POST "/api/v1/artifacts?id=evil" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/fw-changed-image.otab"
expect 422 OTA_ERR_HASH
TOKEN=$OPER api POST "/api/v1/artifacts?id=evil" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/fw-truncated.otab"
expect 422 OTA_ERR_SIZE
TOKEN=$OPER api POST "/api/v1/artifacts?id=again" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/fw1.otab"
expect 409 conflict
TOKEN=$OPER api POST "/api/v1/artifacts?id=fw-1.1.0" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/docs.otab"
expect 409 conflict
TOKEN=$ADMIN api POST /api/v1/keylists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/keylist-foreign.bin"
expect 422 OTA_ERR_THRESHOLD
TOKEN=$ADMIN api POST /api/v1/keylists -H 'Content-Type: application/octet-stream' --data-binary @"$T/trunc-header.otab"
expect 422 OTA_ERR_FORMAT
TOKEN=$ADMIN api POST /api/v1/keylists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/fw1.otab"
expect 413 payload_too_large
unchanged "bundles"
ls "$STORE" | grep -q upload && fail "temporary upload file left in the store"

log "unknown paths and methods"
TOKEN=$VIEW api GET /api/v2/devices
expect 404 not_found
TOKEN=$VIEW api PATCH /api/v1/devices
[[ $(status) == 405 || $(status) == 501 ]] || fail "PATCH: $(status)"
sed -i '$d' "$RESPONSES" # PATCH is not an operation of the contract
unchanged "unknown paths"

log "docs/api.md examples run as written"
"$TOP/tests/integration/web-api/run_doc_examples.sh" "$TOP/docs/api.md" "$API" "$ADMIN" "$FX/docs.otab" "$T/doc-examples" ||
	fail "docs/api.md examples"

log "key rotation: a KeyList that retires a key the fleet still needs is refused unless forced"
BEFORE=$(db_state)
TOKEN=$ADMIN api POST /api/v1/keylists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/keylist3-drop-a.bin"
expect 409 keyrotation_coverage
unchanged "a refused key retirement"
TOKEN=$ADMIN api POST "/api/v1/keylists?force=maybe" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/keylist3-drop-a.bin"
expect 400 bad_request
TOKEN=$ADMIN api POST "/api/v1/keylists?force=true" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/keylist3-drop-a.bin"
expect 201
[[ $(jbody .version) == 3 ]] || fail "forced keylist"
sql_eq "keylist.force_retire,keylist.upload" \
	"SELECT string_agg(action, ',' ORDER BY id) FROM (SELECT id, action FROM audit ORDER BY id DESC LIMIT 2) a" ||
	fail "forced retirement not audited: $(sql -c "SELECT action FROM audit ORDER BY id DESC LIMIT 3")"

# the rollout engine's endpoints (owned by tests/integration/rollout)
source "$TOP/tests/integration/rollout/api_campaigns.sh"

log "rate limit: a burst from one address gets 429 with Retry-After"
mkdir -p "$T/burst"
for i in $(seq 1 600); do
	printf 'url = "%s/healthz"\noutput = "%s/burst/%d"\n' "$API" "$T" "$i"
done >"$T/burst.cfg"
curl -s --parallel --parallel-max 20 -K "$T/burst.cfg" \
	-w '%{http_code}\t%{content_type}\t%header{retry-after}\t%{filename_effective}\n' \
	>"$T/burst.txt" || true
grep -q '^200' "$T/burst.txt" || fail "the burst got no 200 at all"
line=$(grep -m1 '^429' "$T/burst.txt") ||
	fail "no 429 in a burst of 600: $(cut -f1 "$T/burst.txt" | sort | uniq -c | tr '\n' ' ')"
IFS=$'\t' read -r code ctype retry file <<<"$line"
[[ $retry =~ ^[1-9][0-9]*$ ]] || fail "429 without Retry-After: '$retry'"
cp "$file" "$T/body"
echo 429 >"$T/status"
expect 429 rate_limited
printf 'GET\t/healthz\t429\t%s\t%s\n' "$ctype" "$(base64 -w0 "$file")" >>"$RESPONSES"
check_server_exit

log "TLS: the admin listener serves HTTPS with admin_tls_cert"
cat >>"$T/server.conf" <<CONF
admin_tls_cert = $PKI/server.crt
admin_tls_key = $PKI/server.key
CONF
"$OTA_SERVER" --config "$T/server.conf" >>"$T/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
	# 200: a database round trip works, not only the listener
	curl -sf -o /dev/null --cacert "$PKI/server-ca.crt" "https://127.0.0.1:$API_PORT/healthz" && break
	sleep 0.1
done
[[ $(curl -s -o /dev/null -w '%{http_code}' --cacert "$PKI/server-ca.crt" -H "Authorization: Bearer $ADMIN" \
	"https://127.0.0.1:$API_PORT/api/v1/me") == 200 ]] || fail "HTTPS request"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API_PORT/healthz") == 000 ]] ||
	fail "plain HTTP answered on the TLS listener"
check_server_exit

log "contract: lint the spec, validate every recorded response against it"
wait "$NPM_PID" || fail "npm tools"
"$NPM_DIR/node_modules/.bin/redocly" lint --format=stylish "$TOP/web-api/openapi.yaml" >"$T/lint.log" 2>&1 ||
	{ cat "$T/lint.log"; fail "openapi.yaml does not lint"; }
grep -Eq "warning|error" "$T/lint.log" && grep -Ev "Node.js|nodejs|Deprecation|═|║|Update Node|^$" "$T/lint.log" | grep -Eq "warning|error" &&
	{ cat "$T/lint.log"; fail "openapi.yaml lint warnings"; }
# the operator docs render from the contract (make api-docs does the same)
"$NPM_DIR/node_modules/.bin/redocly" build-docs "$TOP/web-api/openapi.yaml" -o "$T/api.html" \
	>"$T/docs.log" 2>&1 || { cat "$T/docs.log"; fail "the API docs do not render"; }
grep -q "fleetota" "$T/api.html" || fail "rendered API docs lack the spec's title"
# this suite covers these tags; other suites (campaigns) validate their own
COVER=Operations,Tokens,Audit,Trust,Artifacts,Devices,Groups
NODE_PATH=$NPM_DIR/node_modules node "$TOP/tests/integration/web-api/validate_contract.mjs" \
	"$TOP/web-api/openapi.yaml" "$RESPONSES" --cover "$COVER" || fail "responses do not match openapi.yaml"
log "the validator itself fails on drift (a body missing a field, an undocumented status)"
printf 'GET\t/api/v1/me\t200\tapplication/json\t%s\n' "$(printf '{"token_id":1,"role":"admin"}' | base64 -w0)" >"$T/drift1.jsonl"
printf 'GET\t/api/v1/me\t418\tapplication/json\t%s\n' "$(printf '{}' | base64 -w0)" >"$T/drift2.jsonl"
# one run for both: the validator names each problem with its line, so it
# must fail with exactly these two (each drift found, nothing else flagged)
N=$(wc -l <"$RESPONSES")
cat "$RESPONSES" "$T/drift1.jsonl" "$T/drift2.jsonl" >"$T/drift.jsonl"
NODE_PATH=$NPM_DIR/node_modules node "$TOP/tests/integration/web-api/validate_contract.mjs" \
	"$TOP/web-api/openapi.yaml" "$T/drift.jsonl" --cover "$COVER" >"$T/drift.out" 2>&1 &&
	fail "validator accepted drift: $(cat "$T/drift.out")"
grep -q "^contract: 2 problem(s):" "$T/drift.out" || fail "validator on drift: $(cat "$T/drift.out")"
grep -q "^#$((N + 1)) GET /api/v1/me -> 200: " "$T/drift.out" ||
	fail "validator accepted drift ($T/drift1.jsonl): $(cat "$T/drift.out")"
grep -q "^#$((N + 2)) GET /api/v1/me -> 418: status not documented" "$T/drift.out" ||
	fail "validator accepted drift ($T/drift2.jsonl): $(cat "$T/drift.out")"
log "PASS ($(wc -l <"$RESPONSES") responses validated)"
