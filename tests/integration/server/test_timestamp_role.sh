#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The server's one key signs Timestamps and nothing else: given the
# KeyList's operational key (the one that signs manifests) or the RootList's
# root key as timestamp_key, ota-server refuses to sign (OTA_ERR_KEY_ROLE in
# its log), serves no Timestamp (404) and signs nothing; the same server
# given the timestamp role's key serves one (the control: the check tells
# them apart).
# env: OTA_SERVER SRV_TESTTOOL TOP
source "$TOP/tests/integration/server/lib.sh"
SERVER_CONF_EXTRA="timestamp_key = $T/fixtures/operational.key
timestamp_lifetime_sec = 10"
standard_setup
grep -q "timestamp role on" "$T/server.log" || fail "timestamp role not started"

log "the operational key as timestamp_key: refused, nothing signed or served"
wait_for 15 grep -q "timestamp_key is an operational key of KeyList v1: refusing to sign (OTA_ERR_KEY_ROLE)" \
	"$T/server.log" || fail "no refusal in the log: $(grep timestamp "$T/server.log")"
sleep 2 # two signing intervals: still nothing
dev_curl dev-1 /v1/timestamp/fx-model
[[ $(status) == 404 ]] || fail "a Timestamp served with the operational key: status $(status)"
grep -q '"not_found"' "$T/body" || fail "404 body: $(cat "$T/body")"
! grep -q "timestamp: .* product lines signed" "$T/server.log" ||
	fail "Timestamps signed with the operational key: $(grep "lines signed" "$T/server.log")"
stop_server
[[ $SERVER_STATUS == 0 ]] || fail "ota-server exited with $SERVER_STATUS"

log "a root key as timestamp_key: refused, nothing signed or served"
sed -i "s|^timestamp_key = .*|timestamp_key = $T/fixtures/root.key|" "$T/server.conf"
: >"$T/server.log"
start_server
wait_for 15 grep -q "timestamp_key is a root key of RootList v1: refusing to sign (OTA_ERR_KEY_ROLE)" \
	"$T/server.log" || fail "no refusal of the root key in the log: $(grep timestamp "$T/server.log")"
sleep 2 # two signing intervals: still nothing
dev_curl dev-1 /v1/timestamp/fx-model
[[ $(status) == 404 ]] || fail "a Timestamp served with the root key: status $(status)"
! grep -q "timestamp: .* product lines signed" "$T/server.log" ||
	fail "Timestamps signed with the root key: $(grep "lines signed" "$T/server.log")"
stop_server
[[ $SERVER_STATUS == 0 ]] || fail "ota-server exited with $SERVER_STATUS"

log "control: the timestamp role's key signs and serves"
sed -i "s|^timestamp_key = .*|timestamp_key = $T/fixtures/timestamp.key|" "$T/server.conf"
: >"$T/server.log"
start_server
wait_for 15 eval 'dev_curl dev-1 /v1/timestamp/fx-model; [[ $(status) == 200 ]]' ||
	fail "timestamp status $(status) with the timestamp key"
grep -q "timestamp: 1 product lines signed" "$T/server.log" || fail "nothing signed with the timestamp key"
! grep -q "OTA_ERR_KEY_ROLE" "$T/server.log" || fail "the timestamp key was refused"
check_server_exit
log "PASS"
