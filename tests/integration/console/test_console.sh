#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The operator console in a real headless Chromium against a running stack
# (PostgreSQL, mosquitto, ota-server with console_dir, a simulated fleet of
# 20 devices in one campaign): sign in; the running campaign's counts change;
# an operator pauses it and creates a campaign with the form; a viewer has no
# button to pause it and the API refuses the viewer's pause; what a device
# reports and an image name holding "<script>" stay text (a device id cannot
# hold markup); the CSP header is there.
# Screenshots are kept in CONSOLE_SHOTS.
source "$TOP/tests/integration/server/lib.sh"
: "${OTA_KEYS:?}" "${OTA_FLEET_SIM:?}" "${CONSOLE_SHOTS:?}"
N=20
SIM_PID=
stop_sim() { stop_bg SIM_PID; }
at_cleanup stop_sim
for b in /usr/bin/chromium /usr/bin/chromedriver; do
	[[ -x $b ]] || fail "$b missing (scripts/packages.txt: chromium, chromium-driver)"
done
/usr/bin/python3 -c 'import selenium' || fail "python3-selenium missing (scripts/packages.txt)"

setup_pki
start_pg
start_broker
API_PORT=$(free_port)
API=http://127.0.0.1:$API_PORT
SERVER_CONF_EXTRA="console_dir = $TOP/web-api/console" write_config
sed -i 's/^log_level = .*/log_level = info/' "$T/server.conf"
mkdir -p "$STORE"
migrate >/dev/null 2>&1 || { migrate; fail "migrate"; }
export OTA_ROLLOUT_TICK_MS=300
start_server
token() { "$OTA_SERVER" token create --role "$1" --name "console-$1" --config "$T/server.conf" 2>/dev/null; }
ADMIN=$(token admin)
OPER=$(token operator)
VIEW=$(token viewer)
api() { curl --fail-with-body -sS -H "Authorization: Bearer $ADMIN" "$@"; }
upload() { api -H 'Content-Type: application/octet-stream' --data-binary @"$2" "$API$1" >/dev/null; }

log "6. the console's page and assets carry a strict CSP (and need no token)"
for p in /console/ /console/app.js /console/console.css; do
	h=$(curl -sS -D - -o /dev/null "$API$p" | tr -d '\r')
	grep -q '^HTTP/1.1 200' <<<"$h" || fail "$p: $(head -1 <<<"$h")"
	csp=$(sed -n 's/^[Cc]ontent-[Ss]ecurity-[Pp]olicy: //p' <<<"$h")
	[[ $csp == *"default-src 'none'"* && $csp == *"script-src 'self'"* && $csp == *"style-src 'self'"* &&
		$csp == *"frame-ancestors 'none'"* && $csp != *unsafe* ]] || fail "$p CSP: '$csp'"
done

log "trust anchors and firmware (ota-keys); the new image's name holds <script>"
XSS_IMAGE='<script>window.__xss=1</script>fw.img'
XSS_TEXT='<script>window.__xss=2</script><img src=x onerror="window.__xss=3">'
K=$T/keys
sign_firmware "$K" "$XSS_IMAGE"
upload /api/v1/rootlists "$K/roots/rootlist-1.signed"
upload /api/v1/keylists "$K/kl.signed"
upload "/api/v1/artifacts?id=fw-1.1.0" "$K/fw-1.1.0.otab"
[[ $(api "$API/api/v1/artifacts/fw-1.1.0" | jq -r .image_name) == "$XSS_IMAGE" ]] || fail "image name"

log "$N simulated devices (half of them on a slow link), and a device whose strings hold <script>"
"$OTA_FLEET_SIM" --devices $N --prefix con- --pki "$PKI" --state-dir "$T/fleet" \
	--server "https://127.0.0.1:$DEV_PORT" --broker "ssl://127.0.0.1:$MQ_PORT" \
	--rootlist "$K/roots/rootlist-1.signed" --keylist "$K/kl.signed" --image "$K/fw-1.0.0.otab" \
	--slot-size 262144 --workers 4 --progress 0 --seed 3 --slow 0.5 --slow-rate 25000 \
	>"$T/fleet.log" 2>&1 &
SIM_PID=$!
wait_for 60 sql_eq $N "SELECT count(*) FROM devices WHERE version = '1.0.0'" ||
	fail "registered: $(sql -c "SELECT count(*) FROM devices")"
# A device id is a certificate CN and the schema holds it to [A-Za-z0-9._-]:
# markup never gets that far. What a device reports (model, version, error
# detail, tags) is free text: one device carries markup in each.
sql -c "INSERT INTO devices (device_id, model, version) VALUES ('<script>x</script>', 'm', 'v')" 2>/dev/null &&
	fail "the registry took a device id with markup"
sql -v "x=$XSS_TEXT" <<'SQL'
INSERT INTO devices (device_id, model, hw_revision, version, version_code, last_error,
	last_error_detail, tags, last_seen)
VALUES ('xss-1', :'x', 'rev-a', :'x', 9, 'OTA_ERR_FORMAT', :'x', ARRAY['lab', :'x'], now());
SQL

log "a campaign (the browser starts it): 2 canaries, then everyone, 20 notifications a minute"
api -H 'Content-Type: application/json' -d '{"id": "live-1", "artifact": "fw-1.1.0",
	"target": {"model": "fx-model"}, "stages": [{"count": 2, "failure_ratio": 0.5},
	{"percent": 100, "failure_ratio": 0.5}], "rate_per_minute": 20, "rate_burst": 1,
	"device_timeout_seconds": 120}' "$API/api/v1/campaigns" >/dev/null

log "the browser: sign in, live counts, pause (operator), no pause (viewer), <script> as text"
mkdir -p "$CONSOLE_SHOTS"
rm -f "$CONSOLE_SHOTS"/*.png
rc=0
timeout 210 /usr/bin/python3 -u "$TOP/tests/integration/console/console_browser.py" "$API" "$OPER" "$VIEW" \
	live-1 "$CONSOLE_SHOTS" "$XSS_TEXT" "$XSS_IMAGE" || rc=$?
((rc == 0)) || fail "browser checks failed ($rc)"

log "the pause came from the operator's token, and the viewer changed nothing"
[[ $(api "$API/api/v1/campaigns/live-1" | jq -r .state) == paused ]] || fail "not paused"
actors=$(sql -c "SELECT string_agg(action || '=' || split_part(actor, ':', 3), ',' ORDER BY id) FROM audit
	WHERE object = 'live-1' AND action LIKE 'campaign.%'")
[[ $actors == "campaign.create=console-admin,campaign.start=console-operator,campaign.pause=console-operator" ]] ||
	fail "audit of live-1: $actors"
stop_sim
check_server_exit
log "PASS (screenshots in $CONSOLE_SHOTS)"
