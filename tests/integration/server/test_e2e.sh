#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End to end: provision, artifact, assignment, Notify over MQTT, manifest and
# image over mTLS, status reports over MQTT into the device registry and its
# event history.
source "$(dirname "$0")/lib.sh"
standard_setup

log "migrations: a second run applies nothing; a changed applied migration is refused"
migrate 2>&1 | grep -q "0 applied" || fail "second migrate run"
sql_eq 1 "SELECT count(*) FROM schema_migrations WHERE version = 1 AND length(checksum) = 64" ||
	fail "migration not recorded with its checksum"
cp -r "$TOP/migrations" "$T/migrations-changed"
echo "-- edited" >>"$T/migrations-changed/0001_core.sql"
sed "s|^migrations_dir = .*|migrations_dir = $T/migrations-changed|" "$T/server.conf" >"$T/changed.conf"
if "$OTA_SERVER" migrate --config "$T/changed.conf" 2>"$T/migrate.err"; then
	fail "a changed migration was accepted"
fi
grep -q "refused: 0001_core.sql was changed after it was applied" "$T/migrate.err" ||
	fail "unclear error: $(cat "$T/migrate.err")"
echo "db_pool_size = lots" >>"$T/changed.conf"
"$OTA_SERVER" --config "$T/changed.conf" 2>"$T/config.err" && fail "bad config accepted"
grep -q "db_pool_size = 'lots' is not a number" "$T/config.err" || fail "config error: $(cat "$T/config.err")"

log "device dev-1 listens on its cmd topic"
mosquitto_sub -V 5 -q 1 -h 127.0.0.1 -p "$MQ_PORT" --cafile "$PKI/server-ca.crt" \
	--cert "$PKI/devices/dev-1.crt" --key "$PKI/devices/dev-1.key" \
	-t fleetota/v1/dev-1/cmd -C 1 -W 20 -N >"$T/notify.bin" &
SUB=$!
sleep 0.5

log "assign art-1 to dev-1; the server notifies"
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-1', 'art-1')"
wait "$SUB" || fail "no Notify received"
[[ "$("$SRV_TESTTOOL" notify "$T/notify.bin")" == "1 art-1 1.1.0 2" ]] ||
	fail "unexpected Notify: $("$SRV_TESTTOOL" notify "$T/notify.bin")"
sql_eq "notified|1" "SELECT state, notify_count FROM assignments WHERE device_id = 'dev-1'" ||
	fail "assignment not marked notified"

log "manifest first, then the image, keylist and rootlist"
dev_curl dev-1 /v1/manifests/art-1
[[ $(status) == 200 ]] || fail "manifest status $(status)"
cmp -s "$T/body" "$T/fixtures/art-1.manifest" || fail "manifest bytes differ"
dev_curl dev-1 /v1/images/art-1
[[ $(status) == 200 ]] || fail "image status $(status)"
cmp -s "$T/body" "$T/fixtures/art-1.image" || fail "image bytes differ"
dev_curl dev-1 /v1/keylist
[[ $(status) == 200 ]] && cmp -s "$T/body" "$T/fixtures/keylist.bin" || fail "keylist"
dev_curl dev-1 /v1/rootlist
[[ $(status) == 200 ]] && cmp -s "$T/body" "$T/fixtures/rootlist.bin" || fail "rootlist"

log "the device reports every step (EventKind numbers from ota.proto)"
report dev-1 dev-1 1 downloading 1.0.0 1 1 art-1 1:1
report dev-1 dev-1 2 pending 1.0.0 1 1 art-1 2:3 3:4
report dev-1 dev-1 3 trial 1.1.0 2 1 art-1 4:12 5:5
report dev-1 dev-1 4 confirmed 1.1.0 2 2 art-1 6:6 7:8
wait_for 10 sql_eq "1.1.0|2|2|confirmed|4" \
	"SELECT version, version_code, security_counter, state, last_report_seq FROM devices WHERE device_id = 'dev-1'" ||
	fail "device registry not updated: $(sql -c "SELECT * FROM devices WHERE device_id = 'dev-1'")"
sql_eq "install_started,verified,pending,booted,trial_boot,confirmed,counter_advanced" \
	"SELECT string_agg(kind, ',' ORDER BY seq) FROM device_events WHERE device_id = 'dev-1'" ||
	fail "event history: $(sql -c "SELECT seq, kind FROM device_events ORDER BY seq")"
sql_eq "confirmed" "SELECT state FROM assignments WHERE device_id = 'dev-1' AND artifact_id = 'art-1'" ||
	fail "assignment state"

log "a repeated report changes nothing (idempotent on the event seq)"
report dev-1 dev-1 4 confirmed 1.1.0 2 2 art-1 6:6 7:8
report dev-1 dev-1 3 trial 1.1.0 2 1 art-1 4:12 5:5
sleep 1
sql_eq 7 "SELECT count(*) FROM device_events WHERE device_id = 'dev-1'" || fail "events duplicated"
sql_eq "confirmed|4" "SELECT state, last_report_seq FROM devices WHERE device_id = 'dev-1'" ||
	fail "an older report overwrote newer state"

log "a rejected update is recorded with its error name"
report dev-2 dev-2 1 rejected 1.0.0 1 1 art-2 1:2:OTA_ERR_ROLLBACK
wait_for 10 sql_eq "rejected|OTA_ERR_ROLLBACK|OTA_ERR_ROLLBACK" \
	"SELECT d.state, d.last_error, e.error FROM devices d JOIN device_events e USING (device_id) WHERE device_id = 'dev-2'" ||
	fail "rejection not recorded"

check_server_exit
log "PASS"
