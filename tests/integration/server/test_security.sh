#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Security events (issue 12, findings 6 and 8): a report with seq 0 and a
# replayed seq change nothing but are audited and counted; a stale
# (reordered) report and a redelivery are not security events; a device
# asking for another device's artifact gets 403, an audit row and a metric,
# and is flagged suspect at the threshold; the flag shows in the REST API
# and an operator (not a viewer) clears it, audited; a security refusal a
# device reports (OTA_ERR_PIN) is audited.
source "$(dirname "$0")/lib.sh"
API_PORT=$(free_port)
standard_setup
sql -c "INSERT INTO assignments (device_id, artifact_id, notified_at) VALUES ('dev-2', 'art-2', now())"
sql -c "UPDATE rollout_settings SET value = '4' WHERE name = 'suspect_threshold'"
TOKEN=$("$OTA_SERVER" token create --role operator --name sec-op --config "$T/server.conf")
VIEWER=$("$OTA_SERVER" token create --role viewer --name sec-viewer --config "$T/server.conf")
api() { # TOKEN METHOD PATH: body in $T/api.body, prints the status
	curl -sS -X "$2" -H "Authorization: Bearer $1" -o "$T/api.body" -w '%{http_code}' \
		"http://127.0.0.1:$API_PORT$3" || true
}
audit_count() { sql -c "SELECT count(*) FROM audit WHERE action = '$1' AND object = 'device:$2'"; }

log "dev-1 reports seq 5 (stored)"
report dev-1 dev-1 5 idle 1.1.0 2 2 3:12
wait_for 10 sql_eq "5|1.1.0" "SELECT last_report_seq, version FROM devices WHERE device_id = 'dev-1'" ||
	fail "seq 5 not stored"

log "seq 0 (finding 6): refused, the row does not change, a replay security event"
before=$(db_fingerprint)
report dev-1 dev-1 0 confirmed 6.6.6 66 66 4:6
wait_for 10 sql_eq 1 "SELECT count(*) FROM audit WHERE action = 'security.replay'" || fail "no replay audit row"
[[ $(db_fingerprint) == "$before" ]] || fail "seq 0 changed the database: $(sql -c "SELECT * FROM devices WHERE device_id = 'dev-1'")"
sql_eq "device:dev-1|device:dev-1|report seq 0, stored seq 5" "SELECT actor, object, after->>'detail' FROM audit
	WHERE action = 'security.replay'" || fail "audit row: $(sql -c "SELECT * FROM audit")"
[[ $(metric 'fleetota_security_events_total{kind="replay"}') == 1 ]] || fail "replay metric"

log "another report under the stored seq 5: refused, audited, nothing changes"
report dev-1 dev-1 5 confirmed 7.7.7 77 77 5:6
wait_for 10 sql_eq 2 "SELECT count(*) FROM audit WHERE action = 'security.replay'" || fail "second replay not audited"
[[ $(db_fingerprint) == "$before" ]] || fail "a replayed seq changed the database"

log "the same report again (a redelivery): nothing changes, not a security event"
f=$T/same.bin
"$SRV_TESTTOOL" report "$f" dev-1 6 idle 1.1.0 2 2 6:12
mq_pub dev-1 fleetota/v1/dev-1/status "$f"
wait_for 10 sql_eq 6 "SELECT last_report_seq FROM devices WHERE device_id = 'dev-1'" || fail "seq 6 not stored"
before=$(db_fingerprint)
mq_pub dev-1 fleetota/v1/dev-1/status "$f"
wait_for 10 grep -q "report dev-1 seq 6: duplicate (ignored)" "$T/server.log" || fail "duplicate not seen"
[[ $(db_fingerprint) == "$before" ]] || fail "a duplicate changed the database"

log "a stale report (seq 4 < 6): the row stays, its new event is kept, no security event"
report dev-1 dev-1 4 downloading 1.0.9 1 1 4:1
wait_for 10 grep -q "report dev-1 seq 4: stale (device row kept), 1 new events" "$T/server.log" ||
	fail "stale report not handled"
sql_eq "6|idle|1.1.0" "SELECT last_report_seq, state, version FROM devices WHERE device_id = 'dev-1'" ||
	fail "a stale report changed the row"
sql_eq 2 "SELECT count(*) FROM audit WHERE action LIKE 'security.%'" || fail "stale counted as security event"
sql_eq f "SELECT suspect FROM devices WHERE device_id = 'dev-1'" || fail "suspect too early"

log "cross-device request (finding 8): 403 not_assigned, audited, counted; suspect at the threshold (4)"
before=$(db_fingerprint)
dev_curl dev-1 /v1/manifests/art-2
[[ $(status) == 403 ]] && grep -q '"not_assigned"' "$T/body" || fail "got $(status) $(cat "$T/body")"
wait_for 10 sql_eq 1 "SELECT count(*) FROM audit WHERE action = 'security.cross_device'" || fail "no audit row"
sql_eq "device:dev-1|device:dev-1|manifest of artifact art-2" "SELECT actor, object, after->>'detail' FROM audit
	WHERE action = 'security.cross_device'" || fail "audit row: $(sql -c "SELECT * FROM audit")"
[[ $(metric 'fleetota_security_events_total{kind="cross_device"}') == 1 ]] || fail "cross_device metric"
[[ $(db_fingerprint) == "$before" ]] || fail "a refused request changed the database"
sql_eq f "SELECT suspect FROM devices WHERE device_id = 'dev-1'" ||
	fail "flagged after 3 events (2 replays, 1 cross-device) with a threshold of 4"
dev_curl dev-1 /v1/images/art-2
[[ $(status) == 403 ]] || fail "image of another device: $(status)"
wait_for 10 sql_eq "t" "SELECT suspect FROM devices WHERE device_id = 'dev-1'" || fail "not flagged suspect"
sql_eq 1 "SELECT count(*) FROM audit WHERE action = 'device.suspect' AND object = 'device:dev-1'" ||
	fail "flag not audited"
[[ $(api "$VIEWER" GET /api/v1/devices/dev-1) == 200 ]] || fail "GET device"
[[ $(jq -r '.suspect' "$T/api.body") == true ]] || fail "API: $(cat "$T/api.body")"
jq -r '.suspect_reason' "$T/api.body" | grep -q "cross_device (image of artifact art-2)" ||
	fail "reason: $(jq -r .suspect_reason "$T/api.body")"
[[ $(jq -r '.suspect_at' "$T/api.body") != null ]] || fail "suspect_at"
[[ $(api "$VIEWER" GET '/api/v1/devices?suspect=true') == 200 ]] &&
	[[ $(jq -r '[.items[].device_id] | join(",")' "$T/api.body") == dev-1 ]] || fail "?suspect=true: $(cat "$T/api.body")"
sql_eq f "SELECT suspect FROM devices WHERE device_id = 'dev-2'" || fail "dev-2 flagged"

log "a viewer cannot clear the flag; an operator can (audited)"
[[ $(api "$VIEWER" POST /api/v1/devices/dev-1/clear-suspect) == 403 ]] || fail "viewer cleared"
sql_eq t "SELECT suspect FROM devices WHERE device_id = 'dev-1'" || fail "viewer changed the flag"
[[ $(api "$TOKEN" POST /api/v1/devices/dev-9/clear-suspect) == 404 ]] || fail "unknown device"
[[ $(api "$TOKEN" POST /api/v1/devices/dev-1/clear-suspect) == 200 ]] || fail "clear: $(cat "$T/api.body")"
[[ $(jq -r '[.suspect, .suspect_reason, .suspect_at] | map(tostring) | join("|")' "$T/api.body") == "false||null" ]] ||
	fail "after clear: $(cat "$T/api.body")"
sql_eq "sec-op|true|false" "SELECT split_part(actor, ':', 3), before->>'suspect', after->>'suspect' FROM audit
	WHERE action = 'device.suspect_clear' AND object = 'device:dev-1'" || fail "clear not audited"
log "events before the clear no longer count: one more does not flag again"
dev_curl dev-1 /v1/manifests/art-2
wait_for 10 sql_eq 3 "SELECT count(*) FROM audit WHERE action = 'security.cross_device'" || fail "not audited"
sql_eq f "SELECT suspect FROM devices WHERE device_id = 'dev-1'" || fail "flagged again at once"

log "a device reports a pin refusal (OTA_ERR_PIN): audited once, not on every re-sent report"
report dev-2 dev-2 1 failed 1.0.0 1 1 1:11:OTA_ERR_PIN
wait_for 10 sql_eq 1 "SELECT count(*) FROM audit WHERE action = 'security.refusal' AND object = 'device:dev-2'" ||
	fail "pin refusal not audited"
report dev-2 dev-2 2 idle 1.0.0 1 1 1:11:OTA_ERR_PIN 2:12
wait_for 10 sql_eq 2 "SELECT last_report_seq FROM devices WHERE device_id = 'dev-2'" || fail "seq 2"
sql_eq "1|event 1 download_failed: OTA_ERR_PIN" "SELECT count(*), max(after->>'detail') FROM audit
	WHERE action = 'security.refusal' AND object = 'device:dev-2'" || fail "re-sent event audited twice"
[[ $(metric 'fleetota_security_events_total{kind="refusal"}') == 1 ]] || fail "refusal metric"

check_server_exit
log "PASS"
