#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What the operator console reads and serves, against a real PostgreSQL and
# ota-server (server/src/api/observe.c, console.c): campaign events and
# failures, ETag / If-None-Match, the fleet summary, the device search in
# the dynamic-group language (and its attacks), the static assets with
# their CSP; then every recorded response is validated against
# openapi.yaml (ajv), covering every operation tagged Console.
source "$(dirname "$0")/lib.sh"
npm_tools &
NPM_PID=$!
setup_world
start_server
ADMIN=$(new_token admin con-admin)
OPER=$(new_token operator con-operator)
VIEW=$(new_token viewer con-viewer)
bin=(-H 'Content-Type: application/octet-stream')
TOKEN=$ADMIN api POST /api/v1/rootlists "${bin[@]}" --data-binary @"$FX/rootlist1.bin"
expect 201
TOKEN=$ADMIN api POST /api/v1/rootlists "${bin[@]}" --data-binary @"$FX/rootlist2.bin"
expect 201
TOKEN=$ADMIN api POST /api/v1/keylists "${bin[@]}" --data-binary @"$FX/keylist1.bin"
expect 201
TOKEN=$OPER api POST "/api/v1/artifacts?id=fw-1.1.0" "${bin[@]}" --data-binary @"$FX/fw1.otab"
expect 201

source "$TOP/tests/integration/web-api/api_console.sh"
check_server_exit

log "contract: every response above against openapi.yaml"
wait "$NPM_PID" || fail "npm tools"
NODE_PATH=$NPM_DIR/node_modules node "$TOP/tests/integration/web-api/validate_contract.mjs" \
	"$TOP/web-api/openapi.yaml" "$RESPONSES" --cover Console || fail "responses do not match openapi.yaml"
log "PASS ($(wc -l <"$RESPONSES") responses validated)"
