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
check_server_exit
log "PASS"
