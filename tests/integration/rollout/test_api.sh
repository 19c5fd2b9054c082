#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The campaign endpoints on their own (the REST API's contract test also
# sources api_campaigns.sh, and validates the responses against the spec).
source "$TOP/tests/integration/web-api/lib.sh"
setup_world
start_server
ADMIN=$(new_token admin root-admin)
TOKEN=$ADMIN api POST /api/v1/tokens -H 'Content-Type: application/json' -d '{"name":"ci","role":"operator"}'
OPER=$(jbody .token)
TOKEN=$ADMIN api POST /api/v1/tokens -H 'Content-Type: application/json' -d '{"name":"dash","role":"viewer"}'
VIEW=$(jbody .token)
TOKEN=$ADMIN api POST /api/v1/rootlists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/rootlist1.bin"
expect 201
TOKEN=$ADMIN api POST /api/v1/rootlists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/rootlist2.bin"
expect 201
TOKEN=$ADMIN api POST /api/v1/keylists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/keylist1.bin"
expect 201
TOKEN=$OPER api POST "/api/v1/artifacts?id=fw-1.1.0" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/fw1.otab"
expect 201
source "$(dirname "$0")/api_campaigns.sh"

log "a signed security fix through the upload: the exposure view shows what its manifest says it fixes"
TOKEN=$OPER api POST "/api/v1/artifacts?id=fw-sec" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/fw-sec.otab"
expect 201
[[ $(jbody .is_security_update) == true && $(jbody .version_code) == 7 ]] || fail "uploaded security fix: $(body)"
TOKEN=$VIEW api GET /api/v1/security/exposure
expect 200
# fw-sec fixes version codes 1..2 (signed): exactly the fx-model devices on them
want=$(sql -c "SELECT count(*) FROM devices WHERE model = 'fx-model' AND version_code BETWEEN 1 AND 2 AND NOT decommissioned")
sec() { jbody ".fixes[] | select(.artifact == \"fw-sec\") | $1"; }
[[ $(sec '"\(.fixes_version_code_min)-\(.fixes_version_code_max):\(.advisory)"') == 1-2:CVE-2026-7777 &&
	$(sec .exposed_devices) == "$want" && $want -ge 1 && $(sec .age_seconds) -ge 3600 ]] ||
	fail "exposure of the uploaded fix ($want devices expected): $(body)"
check_server_exit
log "PASS"
