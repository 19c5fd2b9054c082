#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Deltas of an artifact through the REST API and the device listener (issue
# 15, the server side), against a real PostgreSQL and ota-server, with a
# release made by ota-keys: upload (one request and an upload session),
# list and page; the refusals, each by its exact status and error with the
# database and the store unchanged (an unknown artifact, a full bundle, a
# delta of another image or release, a tampered or untrusted delta, a delta
# from the image itself, the same base twice, a delta uploaded as an
# artifact, a viewer); then what a device gets: the delta manifest when it
# runs the base, the full one with ?full=1 or another image, the delta's
# payload at ?base=HEX byte for byte, 404 for a base without a delta; the
# metrics and the assignments' record. Every recorded REST response is
# validated against openapi.yaml.
# env: OTA_SERVER WA_FIXTURES TOP OTA_KEYS
set -euo pipefail
: "${OTA_KEYS:?}"
source "$TOP/tests/integration/web-api/lib.sh"
source "$TOP/tests/integration/delta/release.sh"
npm_tools &
NPM_PID=$!

R=$T/release
delta_release "$R" "$OTA_KEYS" attacks || fail "ota-keys could not make the release"
mkdir -p "$STORE"
"$TOP/scripts/pki.sh" "$PKI" dev-1 dev-2 >/dev/null 2>&1 || fail "pki"
stack_pg_start "$T/pg" "$PG_PORT"
stack_server_conf "$T/server.conf" "$PKI" "$T/pg" "$PG_PORT" "$DEV_PORT" "$STORE" \
	db_pool_size=2 "admin_listen=127.0.0.1:$API_PORT" http_timeout_sec=5 log_level=info
"$OTA_SERVER" migrate --config "$T/server.conf" >"$T/migrate.log" 2>&1 ||
	{ cat "$T/migrate.log"; fail "migrate"; }
start_server
ADMIN=$(new_token admin d-admin)
OPER=$(new_token operator d-ci)
VIEW=$(new_token viewer d-dash)
octet=(-H 'Content-Type: application/octet-stream')
TOKEN=$ADMIN api POST /api/v1/rootlists "${octet[@]}" --data-binary @"$R/roots/rootlist-1.signed"
expect 201
TOKEN=$ADMIN api POST /api/v1/keylists "${octet[@]}" --data-binary @"$R/kl.signed"
expect 201
TOKEN=$OPER
api POST '/api/v1/artifacts?id=fw-2' "${octet[@]}" --data-binary @"$R/v2.otab"
expect 201
api POST '/api/v1/artifacts?id=fw-1' "${octet[@]}" --data-binary @"$R/v1.otab"
expect 201

# What an upload may change: artifacts, deltas, upload sessions, the audit
# trail, and the store.
state() {
	sql -c "SELECT md5(string_agg(t, '|')) FROM (
		SELECT (SELECT md5(coalesce(string_agg(a::text, ',' ORDER BY artifact_id), '')) FROM artifacts a) AS t
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY artifact_id, base_sha256), ''))
			FROM artifact_deltas x)
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(u::text, ',' ORDER BY upload_id), '')) FROM uploads u)
		UNION ALL SELECT (SELECT count(*)::text FROM audit)) s"
	ls -A "$STORE" | sort | md5sum
}
hex() { sha256sum <"$1" | cut -c1-64; }
V0=$(hex "$R/v0.img") V1=$(hex "$R/v1.img") V2=$(hex "$R/v2.img")
# payload FILE: the bytes of a bundle after its header
payload() {
	local hlen
	hlen=$((8 + $(od -An -tu4 --endian=big -j4 -N4 "$1" | tr -d ' ')))
	tail -c +$((hlen + 1)) "$1"
}

log "refusals: exact status and error, nothing stored"
before=$(state)
refuse() { # PATH BUNDLE STATUS [CODE]
	api POST "$1" "${octet[@]}" --data-binary @"$2"
	expect "${@:3}"
	[[ $(state) == "$before" ]] || fail "$2 at $1 changed the database or the store"
}
refuse /api/v1/artifacts/nope/deltas "$R/d12.otab" 404 not_found
refuse /api/v1/artifacts/fw-2/deltas "$R/v0.otab" 422 OTA_ERR_FORMAT
refuse /api/v1/artifacts/fw-2/deltas "$R/d13.otab" 422 OTA_ERR_HASH
refuse /api/v1/artifacts/fw-1/deltas "$R/d12.otab" 422 OTA_ERR_HASH
refuse /api/v1/artifacts/fw-2/deltas "$R/d12-v3.otab" 409 conflict
refuse /api/v1/artifacts/fw-2/deltas "$R/d12-tampered.otab" 422 OTA_ERR_HASH
refuse /api/v1/artifacts/fw-2/deltas "$R/d12-untrusted.otab" 422 OTA_ERR_KEY_UNKNOWN
refuse /api/v1/artifacts/fw-2/deltas "$R/d-self.otab" 409 conflict
refuse '/api/v1/artifacts?id=fw-d' "$R/d12.otab" 422 OTA_ERR_FORMAT
head -c 100 /dev/urandom >"$T/garbage"
refuse /api/v1/artifacts/fw-2/deltas "$T/garbage" 422 OTA_ERR_FORMAT
refuse '/api/v1/artifacts/-x/deltas' "$R/d12.otab" 400 bad_request
TOKEN=$VIEW refuse /api/v1/artifacts/fw-2/deltas "$R/d12.otab" 403 forbidden
TOKEN= refuse /api/v1/artifacts/fw-2/deltas "$R/d12.otab" 401 unauthorized

log "upload d12 in one request"
api POST /api/v1/artifacts/fw-2/deltas "${octet[@]}" --data-binary @"$R/d12.otab"
expect 201
dsize=$(payload "$R/d12.otab" | wc -c)
isize=$(stat -c %s "$R/v2.img")
[[ $(jbody .base_sha256) == "$V1" && $(jbody .delta_size) == "$dsize" &&
	$(jbody .image_size) == "$isize" && $(jbody .saved_bytes) == $((isize - dsize)) &&
	$(jbody .delta_sha256) == "$(payload "$R/d12.otab" | sha256sum | cut -c1-64)" &&
	$(jbody .algorithm) == zstd_chunked && $(jbody .chunk_bytes) == 65536 &&
	$(jbody .uploaded_by) == *d-ci ]] || fail "delta: $(body)"
[[ -f $STORE/$(jbody .delta_sha256) ]] || fail "the payload is not in the store"
sql_eq 1 "SELECT count(*) FROM audit WHERE action = 'artifact.delta_upload' AND object = 'artifact:fw-2'" ||
	fail "no audit row"
before=$(state)
refuse /api/v1/artifacts/fw-2/deltas "$R/d12.otab" 409 conflict

log "upload d02 through an upload session"
size=$(stat -c %s "$R/d02.otab")
api POST /api/v1/uploads -H 'Content-Type: application/json' -d "{\"size\": $size}"
expect 201
UP=$(jbody .id)
api PATCH "/api/v1/uploads/$UP" -H 'Content-Type: application/offset+octet-stream' \
	-H 'Upload-Offset: 0' --data-binary @"$R/d02.otab"
expect 200
sed -i '$d' "$RESPONSES" # PATCH is not an operation of the contract (PUT is)
api POST "/api/v1/uploads/$UP/delta" -H 'Content-Type: application/json' -d '{"artifact_id": "nope"}'
expect 404 not_found
api POST "/api/v1/uploads/$UP/delta" -H 'Content-Type: application/json' -d '{"artifact_id": "fw-2"}'
expect 201
[[ $(jbody .base_sha256) == "$V0" ]] || fail "session delta: $(body)"
sql_eq 0 "SELECT count(*) FROM uploads" || fail "the session is still there"

log "list and page"
TOKEN=$VIEW api GET /api/v1/artifacts/fw-2/deltas
expect 200
[[ $(jbody '.items | length') == 2 && $(jbody .next_cursor) == null ]] || fail "list: $(body)"
TOKEN=$VIEW api GET '/api/v1/artifacts/fw-2/deltas?limit=1'
expect 200
first=$(jbody '.items[0].base_sha256') cursor=$(jbody .next_cursor)
TOKEN=$VIEW api GET "/api/v1/artifacts/fw-2/deltas?limit=1&cursor=$cursor"
expect 200
[[ $(jbody '.items | length') == 1 && $(jbody '.items[0].base_sha256') != "$first" ]] ||
	fail "second page: $(body)"
TOKEN=$VIEW api GET /api/v1/artifacts/fw-1/deltas
expect 200
[[ $(jbody '.items | length') == 0 ]] || fail "fw-1 has no delta: $(body)"
TOKEN=$VIEW api GET /api/v1/artifacts/nope/deltas
expect 404 not_found
TOKEN=$VIEW api GET '/api/v1/artifacts/fw-2/deltas?cursor=xyz'
expect 400 bad_request

log "delivery: a device running the base gets the delta, others the full image"
sql -c "INSERT INTO devices (device_id, model, hw_revision, version, version_code, running_sha256)
	VALUES ('dev-1', 'fx-model', 'rev-a', '1.0.1', 1, decode('$V1', 'hex')),
	       ('dev-2', 'fx-model', 'rev-a', '1.0.1', 1, NULL)"
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-1', 'fw-2'), ('dev-2', 'fw-2')"
dev() { # DEVICE PATH OUT: the HTTP status
	curl -sS -m 20 -o "$3" -w '%{http_code}' --cacert "$PKI/server-ca.crt" \
		--cert "$PKI/devices/$1.crt" --key "$PKI/devices/$1.key" \
		"https://127.0.0.1:$DEV_PORT$2" || true
}
dbhex() { sql -c "SELECT encode($1, 'hex') FROM $2"; }
[[ $(dev dev-1 /v1/manifests/fw-2 "$T/m") == 200 &&
	$(xxd -p "$T/m" | tr -d '\n') == $(dbhex manifest "artifact_deltas WHERE base_sha256 = decode('$V1', 'hex')") ]] ||
	fail "dev-1 did not get the delta manifest"
sql_eq "delta|$((isize - dsize))" "SELECT delivery, delivery_saved_bytes FROM assignments WHERE device_id = 'dev-1'" ||
	fail "assignment: $(sql -c "SELECT delivery, delivery_saved_bytes FROM assignments WHERE device_id = 'dev-1'")"
[[ $(dev dev-1 "/v1/images/fw-2?base=$V1" "$T/p") == 200 ]] && cmp -s "$T/p" <(payload "$R/d12.otab") ||
	fail "dev-1: the delta payload"
[[ $(dev dev-1 "/v1/images/fw-2?base=$V0" "$T/p") == 200 ]] && cmp -s "$T/p" <(payload "$R/d02.otab") ||
	fail "dev-1: the payload of the delta from v0"
[[ $(dev dev-1 "/v1/images/fw-2?base=$V2" "$T/p") == 404 ]] || fail "a base without a delta"
[[ $(dev dev-1 "/v1/images/fw-2?base=xyz" "$T/p") == 404 ]] || fail "a malformed base"
[[ $(dev dev-1 "/v1/manifests/fw-2?full=1" "$T/m") == 200 &&
	$(xxd -p "$T/m" | tr -d '\n') == $(dbhex manifest "artifacts WHERE artifact_id = 'fw-2'") ]] ||
	fail "dev-1 ?full=1 did not get the full manifest"
sql_eq "fallback|0" "SELECT delivery, delivery_saved_bytes FROM assignments WHERE device_id = 'dev-1'" ||
	fail "assignment after ?full=1"
[[ $(dev dev-1 /v1/images/fw-2 "$T/i") == 200 ]] && cmp -s "$T/i" "$R/v2.img" || fail "dev-1: the full image"
[[ $(dev dev-2 /v1/manifests/fw-2 "$T/m") == 200 &&
	$(xxd -p "$T/m" | tr -d '\n') == $(dbhex manifest "artifacts WHERE artifact_id = 'fw-2'") ]] ||
	fail "dev-2 (no running image reported) did not get the full manifest"
sql_eq "full" "SELECT delivery FROM assignments WHERE device_id = 'dev-2'" || fail "dev-2 assignment"
[[ $(dev dev-2 "/v1/images/fw-1?base=$V1" "$T/p") == 403 ]] || fail "an artifact not assigned"
TOKEN=$VIEW
metric() {
	curl -sS -H "Authorization: Bearer $TOKEN" "$API/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
d02size=$(payload "$R/d02.otab" | wc -c)
[[ $(metric fleetota_delta_manifests_served_total) == 1 &&
	$(metric fleetota_full_manifests_requested_total) == 1 &&
	$(metric fleetota_delta_downloads_completed_total) == 2 &&
	$(metric fleetota_delta_bytes_served_total) == $((dsize + d02size)) &&
	$(metric fleetota_delta_bytes_saved_total) == $((2 * isize - dsize - d02size)) ]] ||
	fail "metrics: $(curl -sS -H "Authorization: Bearer $TOKEN" "$API/metrics" | grep -E '^fleetota_(delta|full)')"

log "deleting the artifact deletes its deltas"
sql -c "DELETE FROM assignments"
TOKEN=$OPER api DELETE /api/v1/artifacts/fw-2
expect 200
sql_eq 0 "SELECT count(*) FROM artifact_deltas" || fail "deltas left"

check_server_exit
wait "$NPM_PID" || fail "npm tools"
log "contract: validate every recorded response against openapi.yaml"
NODE_PATH=$NPM_DIR/node_modules node "$TOP/tests/integration/web-api/validate_contract.mjs" \
	"$TOP/web-api/openapi.yaml" "$RESPONSES" --cover Deltas || fail "responses do not match openapi.yaml"
log "PASS ($(wc -l <"$RESPONSES") responses validated)"
