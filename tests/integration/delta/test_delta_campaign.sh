#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A campaign with deltas on real agents (issue 15): `ota-agent run` devices,
# each with its own identity and file-backed slots, through the real
# ota-server, PostgreSQL and mosquitto. The release (ota-keys) is uploaded
# through the REST API: the full bundle of 1.0.2 and its deltas from the
# two images in the field. Devices running 1.0.1 "v1" get the delta from
# v1, devices running another 1.0.1 image "v0" the delta from v0, a device
# on an image without a delta gets the full image; a device whose running
# slot is damaged (the delta rebuilds a wrong image: OTA_ERR_HASH) falls
# back to the full image by itself and is no failure of the campaign.
# Every device ends on 1.0.2 byte for byte; the campaign's status and
# /metrics show the deltas and the bytes they saved.
# env: OTA_SERVER SRV_TESTTOOL TOP OTA_AGENT OTA_KEYS
set -euo pipefail
: "${OTA_AGENT:?}" "${OTA_KEYS:?}"
source "$TOP/tests/integration/server/lib.sh"
source "$TOP/tests/integration/delta/release.sh"
# dev-1, dev-2 run v1; dev-3 runs v0; dev-4 runs v1 from a damaged slot;
# dev-5 runs an image of its own (no delta for it)
DEVICES=(dev-1 dev-2 dev-3 dev-4 dev-5)
AGENT_PIDS=()
stop_agents() {
	local p
	for p in "${AGENT_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${AGENT_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	AGENT_PIDS=()
}
at_cleanup stop_agents

R=$T/release
delta_release "$R" "$OTA_KEYS" || fail "ota-keys could not make the release"
head -c 100000 /dev/urandom >"$R/v9.img"
(cd "$R" && OTA_KEYS_AUDIT_LOG=$R/audit.log "$OTA_KEYS" sign --key op.key --keylist kl.signed \
	--rootlist roots/rootlist-1.signed --image v9.img --product fx-model --version 1.0.1 \
	--version-code 1 --security-counter 1 --bundle-out v9.otab >/dev/null)

API_PORT=$(free_port)
setup_pki "${DEVICES[@]}"
start_pg
start_broker
mkdir -p "$STORE"
write_config
migrate >/dev/null 2>&1 || { migrate; fail "migrate"; }
OTA_ROLLOUT_TICK_MS=200 start_server
ADMIN=$("$OTA_SERVER" token create --role admin --name delta-e2e --config "$T/server.conf")
rest() { # METHOD PATH FILE: the HTTP status; the body in $T/body
	curl -sS -o "$T/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $ADMIN" \
		-H 'Content-Type: application/octet-stream' --data-binary @"$3" \
		"http://127.0.0.1:$API_PORT$2"
}
[[ $(rest POST /api/v1/rootlists "$R/roots/rootlist-1.signed") == 201 ]] || fail "rootlist: $(cat "$T/body")"
[[ $(rest POST /api/v1/keylists "$R/kl.signed") == 201 ]] || fail "keylist: $(cat "$T/body")"
[[ $(rest POST '/api/v1/artifacts?id=fw-1.0.2' "$R/v2.otab") == 201 ]] || fail "artifact: $(cat "$T/body")"
for d in d12 d02; do
	[[ $(rest POST /api/v1/artifacts/fw-1.0.2/deltas "$R/$d.otab") == 201 ]] ||
		fail "delta $d: $(cat "$T/body")"
done

declare -A IMAGE=([dev-1]=v1 [dev-2]=v1 [dev-3]=v0 [dev-4]=v1 [dev-5]=v9)
for d in "${DEVICES[@]}"; do
	cat >"$T/$d.conf" <<CONF
state_dir = $T/$d-state
device_id = $d
model = fx-model
hw_revision = rev-a
slot_size = 1048576
checkpoint_bytes = 65536
server_url = https://127.0.0.1:$DEV_PORT
broker_url = ssl://127.0.0.1:$MQ_PORT
ca_file = $PKI/server-ca.crt
device_cert = $PKI/devices/$d.crt
device_key = $PKI/devices/$d.key
server_pins = $(cat "$PKI/server.pin")
stall_timeout = 5
report_interval = 2
CONF
	"$OTA_AGENT" provision --config "$T/$d.conf" --rootlist "$R/roots/rootlist-1.signed" \
		--keylist "$R/kl.signed" --image "$R/${IMAGE[$d]}.otab" >/dev/null
done
# dev-4's running slot loses its first 64 KiB: it still reports v1 (its
# records say so), and what the delta rebuilds from it is not v2
slot=$("$OTA_AGENT" status --json --config "$T/dev-4.conf" | jq -r .active_slot)
[[ -f $T/dev-4-state/slot$slot.img ]] || fail "no slot file slot$slot.img: $(ls "$T/dev-4-state")"
dd if=/dev/zero of="$T/dev-4-state/slot$slot.img" bs=65536 count=1 conv=notrunc status=none
for d in "${DEVICES[@]}"; do
	"$OTA_AGENT" run --config "$T/$d.conf" >>"$T/$d.log" 2>&1 &
	AGENT_PIDS+=($!)
done
wait_for 60 sql_eq 5 "SELECT count(*) FROM devices WHERE keylist_version = 1 AND running_sha256 IS NOT NULL" ||
	fail "agents did not report their running image: $(sql -c "SELECT device_id, encode(running_sha256, 'hex') FROM devices")"
sql_eq "$(sha256sum <"$R/v1.img" | cut -c1-64)" \
	"SELECT encode(running_sha256, 'hex') FROM devices WHERE device_id = 'dev-1'" || fail "dev-1's running image"

log "the campaign: deltas for v1 and v0, the full image for v9, dev-4 falls back"
sql -c "SELECT rollout_create('{\"id\":\"c1\",\"artifact\":\"fw-1.0.2\",\"rate_per_minute\":600,\"device_timeout_seconds\":120,\"stages\":[{\"percent\":100,\"failure_ratio\":0.1}]}', 'alice')" >/dev/null
sql -c "SELECT rollout_start('c1', 'alice')" >/dev/null
wait_for 120 sql_eq completed "SELECT state FROM campaigns WHERE campaign_id = 'c1'" ||
	fail "campaign: $(sql -c "SELECT rollout_status('c1')"); devices: $(sql -c "SELECT string_agg(device_id || ':' || state || ':' || error, ' ') FROM campaign_devices"); dev-4: $(tail -20 "$T/dev-4.log")"
sql_eq "5|5|0" "SELECT count(*), count(*) FILTER (WHERE state = 'confirmed'), count(*) FILTER (WHERE state = 'failed') FROM campaign_devices WHERE campaign_id = 'c1'" ||
	fail "campaign devices: $(sql -c "SELECT string_agg(device_id || ':' || state || ':' || error, ' ') FROM campaign_devices")"
v2=$(sha256sum <"$R/v2.img" | cut -c1-64)
wait_for 30 sql_eq 5 "SELECT count(*) FROM devices WHERE version = '1.0.2' AND running_sha256 = decode('$v2', 'hex')" ||
	fail "devices: $(sql -c "SELECT device_id, version, encode(running_sha256, 'hex') FROM devices")"
stop_agents
size=$(stat -c %s "$R/v2.img")
for d in "${DEVICES[@]}"; do
	s=$("$OTA_AGENT" status --json --config "$T/$d.conf")
	[[ $(jq -r .version <<<"$s") == 1.0.2 ]] || fail "$d status: $s"
	slot=$(jq -r .active_slot <<<"$s")
	cmp -s -n "$size" "$T/$d-state/slot$slot.img" "$R/v2.img" || fail "$d: slot $slot is not v2"
done

log "what each device got"
got=$(sql -c "SELECT string_agg(device_id || '=' || delivery, ' ' ORDER BY device_id) FROM assignments WHERE campaign_id = 'c1'")
[[ $got == "dev-1=delta dev-2=delta dev-3=delta dev-4=fallback dev-5=full" ]] || fail "deliveries: $got"
grep -q OTA_ERR_HASH <<<"$(sql -c "SELECT string_agg(error, ',') FROM device_events WHERE device_id = 'dev-4'")" ||
	fail "dev-4 did not refuse the delta with OTA_ERR_HASH: $(sql -c "SELECT string_agg(kind || ':' || error, ' ' ORDER BY seq) FROM device_events WHERE device_id = 'dev-4'")"
payload() {
	local hlen
	hlen=$((8 + $(od -An -tu4 --endian=big -j4 -N4 "$1" | tr -d ' ')))
	echo $(($(stat -c %s "$1") - hlen))
}
d12=$(payload "$R/d12.otab") d02=$(payload "$R/d02.otab")
saved=$((3 * size - 2 * d12 - d02))
delivery=$(curl -sS -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$API_PORT/api/v1/campaigns/c1" | jq -c .delivery)
[[ $delivery == "{\"full\":1,\"delta\":3,\"fallback\":1,\"bytes_saved\":$saved}" ]] ||
	fail "campaign delivery: $delivery (expected $saved bytes saved)"
TOKEN=$ADMIN
[[ $(metric fleetota_delta_manifests_served_total) -ge 4 &&
	$(metric fleetota_full_manifests_requested_total) -ge 1 &&
	$(metric fleetota_delta_downloads_completed_total) -ge 4 &&
	$(metric fleetota_delta_bytes_saved_total) -ge $saved ]] ||
	fail "metrics: $(curl -sS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$API_PORT/metrics" | grep -E '^fleetota_(delta|full)')"
log "saved $saved of $((5 * size)) image bytes ($((100 * saved / (5 * size))) %): $delivery"
check_server_exit
log "PASS"
