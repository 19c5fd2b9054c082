#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make demo`: a whole fleetota installation on loopback, and a rollout story
# an operator recognises, played through the REST API with curl:
#
#   1. key ceremony (3 root keys, threshold 2; operational key op-1)
#   2. a simulated fleet (ota-fleet-sim) on 1.0.0 registers itself
#   3. 1.1.0 has a bug: its self-test fails -> the canaries revert -> the
#      campaign pauses by itself; nobody beyond the canaries got it
#   4. 1.1.1 fixes it -> the campaign completes stage by stage; the release
#      carries a delta from 1.0.0: devices running 1.0.0 download only the
#      delta, devices that cannot apply deltas take the full image
#   5. key rotation: new op key, KeyList v2 rolled out as a campaign,
#      1.2.0 signed by the new key rolls out
#   6. a rollback attempt with the old, validly signed 1.0.0 (an attacker
#      who controls the backend assigns it) -> every device refuses
#
# Environment: DEMO_DEVICES (default 200), DEMO_BUILD (build dir, default
# build/), DEMO_SKIP_BUILD=1 (use DEMO_BUILD as it is), DEMO_CHECK=1 (exit
# non-zero unless every outcome is as told: the CI mode), DEMO_KEEP=1 (keep
# the temp dir), DEMO_POWER_LOSS / DEMO_SLOW (fault shares, default 0.05 /
# 0.05), DEMO_NO_DELTA (share of devices that cannot apply deltas, default
# 0.2), DEMO_IMAGE_KB (firmware size, default 200), DEMO_STORY=scale
# (only registration and one staged release: for measuring large fleets),
# DEMO_STAY=1 (at the end, leave ota-server, PostgreSQL and mosquitto
# running until Ctrl-C and print the console's URL, a token and curl lines
# to try). The console's URL and the admin token are also printed at start,
# so the rollout can be watched in a browser while it plays.
# Everything runs under a temp dir and .demo/ keeps the logs of the last
# run; all processes are stopped by PID on exit, on Ctrl-C and when the
# reader of stdout goes away (`make demo | tee log`, then Ctrl-C): the key
# material goes first, and no write to a closed pipe can stop the cleanup.
#
# Stage numbers: the API counts stages from 0 (`current_stage`, `stage`,
# the engine's pause reason "stage 0: ..."); this script shows them as
# people count, from 1 ("stage 1/3"), also inside the pause reason.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
DEVICES=${DEMO_DEVICES:-200}
BUILD=${DEMO_BUILD:-$TOP/build}
CHECK=${DEMO_CHECK:-0}
STORY=${DEMO_STORY:-full}
STAY=${DEMO_STAY:-0}
IMAGE_KB=${DEMO_IMAGE_KB:-200}
POWER_LOSS=${DEMO_POWER_LOSS:-0.05}
SLOW=${DEMO_SLOW:-0.05}
NO_DELTA=${DEMO_NO_DELTA:-0.2}
[[ $DEVICES =~ ^[0-9]+$ ]] && ((DEVICES >= 10 && DEVICES <= 20000)) ||
	{ echo "demo: DEMO_DEVICES must be 10..20000" >&2; exit 2; }

if [[ ${DEMO_SKIP_BUILD:-0} != 1 ]]; then
	bash "$TOP/scripts/install-deps.sh"
	[[ -f "$BUILD/build.ninja" ]] || meson setup "$BUILD" "$TOP" -Dwerror=true >/dev/null
	ninja -C "$BUILD" >/dev/null
fi
SERVER_BIN=$BUILD/server/ota-server
KEYS_BIN=$BUILD/keyrotate/ota-keys
SIM_BIN=$BUILD/agent/ota-fleet-sim
for b in "$SERVER_BIN" "$KEYS_BIN" "$SIM_BIN"; do
	[[ -x "$b" ]] || { echo "demo: $b missing (build first)" >&2; exit 2; }
done

# ---- a private world, removed on exit ---------------------------------------
# (the stack's pieces: scripts/stack.sh, shared with the tests and the bench)
source "$TOP/scripts/stack.sh"
stack_init fleetota-demo
T=$STACK
OTA_SERVER=$SERVER_BIN
PKI=$T/pki
K=$T/keys
LOGS=${DEMO_LOGS:-$TOP/.demo}
mkdir -p "$LOGS"
SERVER_PID=
SIM_PID=
SIM_PIDS=()
FAILED=0
START=$SECONDS

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
log() { printf '   %s\n' "$*"; }
fail() {
	echo "demo: FAIL: $*" >&2
	FAILED=1
	exit 1
}
check() { # CONDITION-TEXT: a told outcome that did not happen
	if [[ $CHECK == 1 ]]; then fail "$*"; fi
	echo "   (!) $*" >&2
}

stop_pid() { # PID SIGNAL SECONDS
	local pid=$1
	[[ -n "$pid" ]] || return 0
	kill -"$2" "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 $(($3 * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

sims_alive() {
	local p
	for p in "${SIM_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done
}
stop_sims() {
	local p
	for p in "${SIM_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${SIM_PIDS[@]}"; do stop_pid "$p" TERM 30; done
	SIM_PIDS=()
	SIM_PID=
}
# Key material first: the root and operational private keys, the PKI's
# private keys (the rest of $T follows once the processes are stopped).
remove_keys() {
	rm -rf "$K" "$PKI" "$T/fw" 2>/dev/null
}
cleanup() {
	local rc=$?
	set +e
	# From here a write to a closed stdout fails (EPIPE) instead of killing
	# the shell, and a second Ctrl-C does not cut the cleanup short.
	trap '' PIPE INT TERM
	remove_keys
	local t0=$SECONDS
	stop_sims
	stack_server_stop TERM 10
	stack_stop
	echo "demo: fleet, ota-server, mosquitto and PostgreSQL stopped ($((SECONDS - t0)) s)"
	cp "$T"/*.log "$T"/mq/mosquitto.log "$T"/sim-summary*.json "$LOGS/" 2>/dev/null
	if [[ $rc != 0 || $FAILED != 0 ]]; then
		echo "---- ota-server log (tail)"
		tail -20 "$T/server.log" 2>/dev/null
		echo "---- fleet log (tail)"
		tail -20 "$T/fleet.log" 2>/dev/null
		echo "(logs kept in $LOGS)"
	fi
	if [[ ${DEMO_KEEP:-0} == 1 ]]; then
		echo "demo: kept $T"
		stack_release_ports
	else
		stack_cleanup
	fi
	exit $rc
}
trap cleanup EXIT
# stdout's reader went away (`| tee`, then Ctrl-C): nothing more to show
on_sigpipe() {
	exec >/dev/null
	exit 141
}
trap on_sigpipe PIPE
trap 'trap "" PIPE; echo; echo "demo: interrupted, cleaning up"; exit 130' INT TERM

free_port() { stack_free_port; }
PG_PORT=$(free_port)
MQ_PORT=$(free_port)
DEV_PORT=$(free_port)
API_PORT=$(free_port)
API=http://127.0.0.1:$API_PORT
mkdir -p "$K" "$T/fw" "$T/store"
export OTA_KEYS_AUDIT_LOG=$K/ota-keys-audit.log

say "fleetota demo: $DEVICES devices on loopback (state in $T)"
stack_pki "$PKI"
log "dev PKI: fleet CAs, server, broker and ota-server MQTT certificates"
stack_pg_start "$T/pg" "$PG_PORT"
log "PostgreSQL on 127.0.0.1:$PG_PORT (private cluster, user postgres)"
stack_broker_start "$T/mq" "$MQ_PORT" "$PKI"
log "mosquitto on 127.0.0.1:$MQ_PORT (TLS client certificates, per-device ACL)"
stack_server_conf "$T/server.conf" "$PKI" "$T/pg" "$PG_PORT" "$DEV_PORT" "$T/store" \
	db_pool_size=4 \
	rate_per_sec=20 \
	rate_burst=40 \
	"mqtt=$MQ_PORT" \
	"device_crl=$PKI/device-ca.crl" \
	notify_poll_ms=500 \
	"admin_listen=127.0.0.1:$API_PORT" \
	"console_dir=$TOP/web-api/console" \
	log_level=info
"$SERVER_BIN" migrate --config "$T/server.conf" >"$T/migrate.log" 2>&1 || fail "migrate"
export OTA_ROLLOUT_TICK_MS=500
healthz() { curl -s -o /dev/null "$API/healthz"; }
STACK_SERVER_READY=healthz stack_server_start "$T/server.conf" "$T/server.log"
SERVER_PID=$STACK_SERVER_PID
log "ota-server: devices https://127.0.0.1:$DEV_PORT (mTLS), REST API $API"
TOKEN=$("$SERVER_BIN" token create --role admin --name demo-admin --config "$T/server.conf" 2>>"$T/server.log")
[[ -n "$TOKEN" ]] || fail "no admin token"
log "admin token created (ota-server token create --role admin)"
log "console: $API/console/ (sign in with the token $TOKEN)"

AUTH=(-H "Authorization: Bearer $TOKEN")
api() { # METHOD PATH [curl args]: prints the body; fails on HTTP errors
	local m=$1 p=$2
	shift 2
	curl --fail-with-body -sS -X "$m" "${AUTH[@]}" "$@" "$API$p"
}
api_json() { api "$1" "$2" -H 'Content-Type: application/json' -d "$3"; }
api_bin() { api POST "$1" -H 'Content-Type: application/octet-stream' --data-binary @"$2"; }

# ---- 1. key ceremony ------------------------------------------------------------
say "1. key ceremony: root keys (2 of 3), operational key op-1, KeyList v1"
(
	cd "$K"
	"$KEYS_BIN" root-init --out-dir roots -n 3 -k 2 >/dev/null
	"$KEYS_BIN" op-new --out op-1 --not-before -1h --not-after +365d >/dev/null
	"$KEYS_BIN" keylist new --out kl-1.signed --add op-1.pub --rootlist roots/rootlist-1.signed \
		--key roots/root-1.key --key roots/root-2.key --finalize >/dev/null
	# the product line's recipient key (encrypted images): every device holds it
	"$KEYS_BIN" enc-key-new --out product-fx >/dev/null
)
api_bin /api/v1/rootlists "$K/roots/rootlist-1.signed" >/dev/null
api_bin /api/v1/keylists "$K/kl-1.signed" >/dev/null
log "RootList v1 and KeyList v1 uploaded (the server verifies them with the device's code)"

# The firmware images: most of their bytes are the same from one release to
# the next (as a real product's are), so a delta of one from another is small.
head -c $((IMAGE_KB * 1000)) /dev/urandom >"$T/fw/common.bin"
# sign VERSION CODE COUNTER KEY KEYLIST [MARKER]: firmware image + bundle
sign() {
	local v=$1 code=$2 counter=$3 key=$4 kl=$5 img=$T/fw/fw-$1.img
	{
		printf 'fleetota demo firmware %s\n' "$v"
		[[ -z "${6:-}" ]] || printf '%s\n' "$6"
		cat "$T/fw/common.bin"
		head -c 2000 /dev/urandom
	} >"$img"
	sign_bundle "$v" "$code" "$counter" "$key" "$kl" "$T/fw/fw-$v.otab" \
		--manifest-out "$T/fw/fw-$v.manifest"
}
# sign_bundle VERSION CODE COUNTER KEY KEYLIST OUT [ota-keys sign options]
sign_bundle() {
	local v=$1 code=$2 counter=$3 key=$4 kl=$5 out=$6
	shift 6
	"$KEYS_BIN" sign --key "$K/$key.key" --keylist "$K/$kl" --rootlist "$K/roots/rootlist-1.signed" \
		--image "$T/fw/fw-$v.img" --product fx-model --version "$v" --version-code "$code" \
		--security-counter "$counter" --min-installed "${MIN_INSTALLED:-100}" --security-update \
		${ENCRYPT_TO:+--encrypt-to "$ENCRYPT_TO"} --bundle-out "$out" "$@" >/dev/null
}
MIN_INSTALLED=0 sign 1.0.0 100 1 op-1 kl-1.signed
api_bin "/api/v1/artifacts?id=fw-1.0.0" "$T/fw/fw-1.0.0.otab" >/dev/null
log "fw-1.0.0 signed by op-1 (security counter 1): the factory image"

# ---- 2. the fleet ------------------------------------------------------------------
say "2. the fleet: $DEVICES simulated devices, each its own certificate, slots and MQTT session"
# One simulator process carries 6,000 devices (its MQTT sessions share one
# event loop; about three file descriptors each, 20,000 allowed per
# process: a 10,000-device process stopped at 6,663 sessions): a larger
# fleet is split over several processes (docs/scaling.md).
PER_SIM=${DEMO_DEVICES_PER_SIM:-6000}
NSIM=$(((DEVICES + PER_SIM - 1) / PER_SIM))
WORKERS=$((16 / NSIM > 4 ? 16 / NSIM : 4))
SIM_PIDS=()
for ((k = 0; k < NSIM; k++)); do
	first=$((k * PER_SIM))
	count=$((DEVICES - first < PER_SIM ? DEVICES - first : PER_SIM))
	suffix=${k/#0/}
	"$SIM_BIN" --devices "$count" --first "$first" --prefix dev- --pki "$PKI" --state-dir "$T/fleet" \
		--server "https://127.0.0.1:$DEV_PORT" --broker "ssl://127.0.0.1:$MQ_PORT" \
		--rootlist "$K/roots/rootlist-1.signed" --keylist "$K/kl-1.signed" \
		--image "$T/fw/fw-1.0.0.otab" --slot-size 1048576 --workers "$WORKERS" --progress 10 \
		--product-key "$K/product-fx.key" \
		--power-loss "$POWER_LOSS" --slow "$SLOW" --slow-rate 40000 --no-delta "$NO_DELTA" \
		--seed $((k + 1)) \
		--summary-json "$T/sim-summary${suffix:+-$suffix}.json" >"$T/fleet${suffix:+-$suffix}.log" 2>&1 &
	SIM_PIDS+=($!)
done
SIM_PID=${SIM_PIDS[0]}
(( NSIM == 1 )) || log "$NSIM simulator processes of up to $PER_SIM devices each"

metric() { # NAME LABEL-VALUE: a gauge from /metrics, 0 when absent
	api GET /metrics | awk -v n="$1" -v l="$2" '$1 ~ "^"n"{" && index($1, "\""l"\"") {v=$2} END {print v+0}'
}
deadline=$((SECONDS + 60 + DEVICES / 20))
while :; do
	n=$(metric fleetota_devices_by_version 1.0.0)
	[[ ! -t 1 ]] || printf '\r   registered: %s / %s devices on 1.0.0 ' "$n" "$DEVICES"
	((n >= DEVICES)) && break
	sims_alive || fail "ota-fleet-sim exited"
	((SECONDS < deadline)) || fail "only $n of $DEVICES devices registered"
	sleep 1
done
[[ ! -t 1 ]] || echo
log "registered: $n / $DEVICES devices on 1.0.0 ($((SECONDS - START)) s since start)"
grep -hE "identities|provisioned" "$T"/fleet*.log | sed 's/^/   /'

# ---- campaigns -----------------------------------------------------------------------
CANARY=$((DEVICES / 20 > 3 ? DEVICES / 20 : 3))
STAGES="[{\"count\":$CANARY,\"failure_ratio\":0.2,\"soak_seconds\":3},
	{\"percent\":30,\"failure_ratio\":0.1,\"soak_seconds\":3},
	{\"percent\":100,\"failure_ratio\":0.1}]"
RATE=$((DEVICES * 6 > 600 ? DEVICES * 6 : 600))

# record CAMPAIGN-JSON: its outcome as the summary shows it. Taken when the
# campaign's story ends: later campaigns count a device as confirmed in
# every campaign whose version it has reached (the engine's "the version it
# runs is what counts"), so reading rel-1.1.0 at the very end would show
# its reverted canaries as confirmed.
record() {
	jq -r '[.id, .state, .target_size, ([.stages[].devices.confirmed] | add),
		([.stages[].devices.failed] | add), ([.stages[].devices.timed_out] | add)] | @tsv' \
		<<<"$1" >>"$T/campaigns.tsv"
}

# human_stages: the engine's reason counts stages from 0 ("stage 0: 3 of
# 10 devices failed"); shown from 1 like the progress line ("stage 1/3")
human_stages() {
	perl -pe 's/\bstage (\d+)\b/"stage " . ($1 + 1)/ge'
}

# watch ID UNTIL-STATES SECONDS: progress until the campaign is in one of them
watch() {
	local id=$1 until=$2 limit=$3 c state last_done=0 last_t=$SECONDS last_line=
	local deadline=$((SECONDS + limit))
	while :; do
		c=$(api GET "/api/v1/campaigns/$id")
		# state, target size, confirmed devices and the progress line: one jq
		local target line done rate
		IFS=$'\t' read -r state target done line < <(jq -r '[.state, .target_size,
			([.stages[].devices.confirmed] | add // 0),
			"stage \(.current_stage + 1)/\(.stages | length) | target \(.target_size) | " +
			"confirmed \([.stages[].devices.confirmed] | add) failed \([.stages[].devices.failed] | add) " +
			"timed out \([.stages[].devices.timed_out] | add) in flight \([.stages[].devices.in_flight] | add)"] | @tsv' <<<"$c")
		# the engine sizes the target at its first tick after start: until
		# then there is nothing true to show
		if [[ $state == running && $target == 0 ]] && ((SECONDS < deadline)); then
			sleep 0.3
			continue
		fi
		rate=$(((done - last_done) * 10 / (SECONDS - last_t + 1)))
		line=$(printf '%-10s %-9s %s | %d.%d dev/s' "$id" "$state" "$line" $((rate / 10)) $((rate % 10)))
		if [[ -t 1 ]]; then
			printf '\r   %s   ' "$line"
		elif [[ "$line" != "${last_line:-}" ]]; then
			printf '   %s\n' "$line"
		fi
		last_line=$line
		last_done=$done
		last_t=$SECONDS
		if [[ " $until " == *" $state "* ]]; then
			[[ ! -t 1 ]] || echo
			CAMPAIGN=$c
			return 0
		fi
		((SECONDS < deadline)) || { echo; fail "$id still $state after ${limit}s"; }
		sims_alive || { echo; fail "ota-fleet-sim exited"; }
		sleep 2
	done
}
TIMEOUT_S=$((120 + DEVICES / 5))

if [[ $STORY == full ]]; then
# ---- 3. the buggy release --------------------------------------------------------------
say "3. fw-1.1.0 has a bug (its self-test fails): canary campaign"
sign 1.1.0 110 2 op-1 kl-1.signed FLEETOTA-SELFTEST-FAIL
api_bin "/api/v1/artifacts?id=fw-1.1.0" "$T/fw/fw-1.1.0.otab" >/dev/null
api_json POST /api/v1/campaigns "{\"id\":\"rel-1.1.0\",\"artifact\":\"fw-1.1.0\",
	\"target\":{\"model\":[\"fx-model\"]},\"stages\":$STAGES,\"rate_per_minute\":$RATE,
	\"device_timeout_seconds\":120}" >/dev/null
api POST /api/v1/campaigns/rel-1.1.0/start >/dev/null
log "campaign rel-1.1.0 started: $CANARY canaries first, pause above 20 % failures"
watch rel-1.1.0 "paused completed cancelled failed" "$TIMEOUT_S"
BAD=$CAMPAIGN
log "$(jq -r '"state: \(.state) — \(.reason)"' <<<"$BAD" | human_stages)"
[[ $(jq -r .state <<<"$BAD") == paused ]] || check "rel-1.1.0 did not pause"
jq -e '.reason | test("OTA_ERR_SELFTEST")' <<<"$BAD" >/dev/null || check "pause reason does not name OTA_ERR_SELFTEST"
bad_failed=$(jq '.stages[0].devices.failed' <<<"$BAD")
bad_beyond=$(jq '[.stages[1:][].devices.admitted] | add // 0' <<<"$BAD")
((bad_failed > 0)) || check "no canary failed"
((bad_beyond == 0)) || check "$bad_beyond devices beyond the canaries were admitted"
bad_versions=$(api GET "/api/v1/campaigns/rel-1.1.0/devices?state=failed&limit=500" |
	jq -r '[.items[] | .error] | group_by(.) | map("\(.[0]) \(length)") | join(", ")')
log "failed canaries: $bad_versions; they reverted and still run 1.0.0"
n=$(metric fleetota_devices_by_version 1.1.0)
((n == 0)) || check "$n devices run 1.1.0"
api POST /api/v1/campaigns/rel-1.1.0/cancel >/dev/null
log "operator cancels rel-1.1.0: the devices not yet notified are released;"
log "the canaries still in flight finish (and revert) before the next release"
# counted once nobody is in flight: the pause came at the first failures
# over the threshold, with canaries still installing
deadline=$((SECONDS + TIMEOUT_S))
while BAD=$(api GET /api/v1/campaigns/rel-1.1.0) &&
	(($(jq '[.stages[].devices.in_flight] | add' <<<"$BAD") > 0)) && ((SECONDS < deadline)); do
	sleep 1
done
[[ $(jq -r .state <<<"$BAD") == cancelled ]] || check "rel-1.1.0 is $(jq -r .state <<<"$BAD"), not cancelled"
record "$BAD"
bad_failed=$(jq '[.stages[].devices.failed] | add' <<<"$BAD")
log "rel-1.1.0: $bad_failed canaries failed (OTA_ERR_SELFTEST) and reverted; none in flight"
fi

# ---- 4. the fix -----------------------------------------------------------------------------
say "4. fw-1.1.1 fixes it: the campaign completes stage by stage"
sign 1.1.1 111 2 op-1 kl-1.signed
api_bin "/api/v1/artifacts?id=fw-1.1.1" "$T/fw/fw-1.1.1.otab" >/dev/null
# the delta from the factory image every device runs (ota-keys sign --base)
sign_bundle 1.1.1 111 2 op-1 kl-1.signed "$T/fw/fw-1.1.1.from-1.0.0.otab" \
	--base "$T/fw/fw-1.0.0.img" --delta-level 3
DELTA=$(api_bin /api/v1/artifacts/fw-1.1.1/deltas "$T/fw/fw-1.1.1.from-1.0.0.otab")
log "$(jq -r '"with a delta from 1.0.0: \(.delta_size) bytes instead of \(.image_size)"' <<<"$DELTA")"
log "(devices running 1.0.0 get the delta; those that cannot apply deltas, each device with"
log " probability $NO_DELTA in this fleet, refuse it and take the full image)"
api_json POST /api/v1/campaigns "{\"id\":\"rel-1.1.1\",\"artifact\":\"fw-1.1.1\",
	\"target\":{\"model\":[\"fx-model\"]},\"stages\":$STAGES,\"rate_per_minute\":$RATE,
	\"device_timeout_seconds\":120}" >/dev/null
api POST /api/v1/campaigns/rel-1.1.1/start >/dev/null
watch rel-1.1.1 "paused completed cancelled failed" "$TIMEOUT_S"
GOOD=$CAMPAIGN
record "$GOOD"
[[ $(jq -r .state <<<"$GOOD") == completed ]] || check "rel-1.1.1: $(jq -r '.state + " " + .reason' <<<"$GOOD")"
good_confirmed=$(jq '[.stages[].devices.confirmed] | add' <<<"$GOOD")
((good_confirmed == DEVICES)) || check "rel-1.1.1 confirmed $good_confirmed of $DEVICES"
api GET /api/v1/campaigns/rel-1.1.1 | jq -r '.stages[] | "   stage \(.stage + 1): admitted \(.devices.admitted), confirmed \(.devices.confirmed), started \(.started_at[11:19]), done \(.completed_at[11:19] // "-")"'
# how the devices got it: the delta, the full image after refusing the
# delta (no delta support), or the full image
image_size=$(jq .image_size <<<"$DELTA")
DELIVERED=$(api GET /api/v1/campaigns/rel-1.1.1 | jq -r --argjson size "$image_size" '.delivery |
	(.full + .delta + .fallback) as $n | "\(.delta) devices got the delta, \(.fallback) the full image " +
	"after refusing it, \(.full) the full image; \(.bytes_saved / 1e6 * 10 | round / 10) MB of " +
	"\($n * $size / 1e6 * 10 | round / 10) MB not downloaded (\(if $n > 0 then .bytes_saved * 100 / ($n * $size) | round else 0 end) %)"')
log "delivery: $DELIVERED"
delta_devices=$(api GET /api/v1/campaigns/rel-1.1.1 | jq .delivery.delta)
((delta_devices > 0)) || check "no device got the delta of fw-1.1.1"

if [[ $STORY == full ]]; then
# ---- 5. key rotation ---------------------------------------------------------------------------
say "5. key rotation: op-2, KeyList v2 {op-1, op-2} rolled out, fw-1.2.0 signed by op-2"
(
	cd "$K"
	"$KEYS_BIN" op-new --out op-2 --not-before -1h --not-after +730d >/dev/null
	"$KEYS_BIN" keylist new --out kl-2.signed --prev kl-1.signed --add op-2.pub \
		--rootlist roots/rootlist-1.signed --key roots/root-2.key --key roots/root-3.key \
		--finalize >/dev/null
)
api_bin /api/v1/keylists "$K/kl-2.signed" >/dev/null
api_json POST /api/v1/campaigns "{\"id\":\"keylist-2\",\"kind\":\"keylist\",\"keylist_version\":2,
	\"stages\":[{\"percent\":10,\"failure_ratio\":0.1},{\"percent\":100}],\"rate_per_minute\":$RATE}" >/dev/null
api POST /api/v1/campaigns/keylist-2/start >/dev/null
watch keylist-2 "paused completed cancelled failed" "$TIMEOUT_S"
record "$CAMPAIGN"
[[ $(jq -r .state <<<"$CAMPAIGN") == completed ]] || check "keylist-2: $(jq -r .state <<<"$CAMPAIGN")"
api GET /api/v1/keyrotation >"$T/keyrotation.json"
log "key-rotation coverage (GET /api/v1/keyrotation):"
jq -r '"KeyList", "devices", "share", "last seen", (.coverage[] | ("v\(.keylist_version)",
	.devices, "\(.share * 1000 | round / 10) %", (.last_seen // "-" | .[0:19])))' "$T/keyrotation.json" |
	paste - - - - | awk -F'\t' '{printf "     %-8s %8s %8s  %s\n", $1, $2, $3, $4}'
log "$(jq -r '"stragglers below v\(.latest_keylist): \(.stragglers | length)" +
	(if (.stragglers | length) > 0 then " (\([.stragglers[:5][].device_id] | join(", ")))" else "" end) +
	"; a KeyList may drop op-1 once \(.min_share * 100 | round) % trust v\(.latest_keylist)"' "$T/keyrotation.json")"
ENCRYPT_TO=$K/product-fx.pub sign 1.2.0 120 3 op-2 kl-2.signed
api_bin "/api/v1/artifacts?id=fw-1.2.0" "$T/fw/fw-1.2.0.otab" >/dev/null
log "fw-1.2.0 encrypted for the product line's key: the server stores and serves only ciphertext"
# the store holds the ciphertext (its digest is the API's image_sha256), never the image
stored=$(api GET /api/v1/artifacts/fw-1.2.0 | jq -r .image_sha256)
[[ $stored != "$(sha256sum <"$T/fw/fw-1.2.0.img" | cut -c1-64)" ]] ||
	check "the server stored fw-1.2.0 in plaintext"
grep -rqF "fleetota demo firmware 1.2.0" "$T/store" && check "plaintext of fw-1.2.0 in the store"
api_json POST /api/v1/campaigns "{\"id\":\"rel-1.2.0\",\"artifact\":\"fw-1.2.0\",
	\"target\":{\"model\":[\"fx-model\"]},\"stages\":$STAGES,\"rate_per_minute\":$RATE,
	\"device_timeout_seconds\":120}" >/dev/null
api POST /api/v1/campaigns/rel-1.2.0/start >/dev/null
watch rel-1.2.0 "paused completed cancelled failed" "$TIMEOUT_S"
record "$CAMPAIGN"
[[ $(jq -r .state <<<"$CAMPAIGN") == completed ]] || check "rel-1.2.0: $(jq -r '.state + " " + .reason' <<<"$CAMPAIGN")"
n=$(metric fleetota_devices_by_version 1.2.0)
((n == DEVICES)) || check "$n of $DEVICES devices run 1.2.0"

# ---- 6. rollback attempt --------------------------------------------------------------------------
say "6. rollback attempt: the old, validly signed fw-1.0.0 pushed to every device"
log "the rollout engine never plans a downgrade, so this plays an attacker who"
log "controls the backend: assignments written into the database, Notify sent"
psql "host=$T/pg port=$PG_PORT dbname=fleetota user=postgres" -Atq -v ON_ERROR_STOP=1 \
	-c "INSERT INTO assignments (device_id, artifact_id) SELECT device_id, 'fw-1.0.0' FROM devices
	    ON CONFLICT (device_id, artifact_id) DO UPDATE SET notified_at = NULL, notify_after = now(), state = 'pending'" ||
	fail "assignments"
# from the API: every device's state, error and version (a device that
# refused reports its last error from then on, also when it is idle again)
devices_tsv() {
	local cursor='' page
	: >"$T/devices.tsv"
	while :; do
		page=$(api GET "/api/v1/devices?model=fx-model&limit=500${cursor:+&cursor=$cursor}")
		jq -r '.items[] | [.device_id, .state, .last_error, .version] | @tsv' <<<"$page" >>"$T/devices.tsv"
		cursor=$(jq -r '.next_cursor // empty' <<<"$page")
		[[ -n "$cursor" ]] || break
	done
	awk -F'\t' '($3 == "OTA_ERR_ROLLBACK" || $3 == "OTA_ERR_DOWNGRADE") && $4 == "1.2.0"' "$T/devices.tsv" | wc -l
}
deadline=$((SECONDS + TIMEOUT_S))
while :; do
	refused_all=$(devices_tsv)
	[[ ! -t 1 ]] || printf '\r   devices that refused it so far: %s / %s ' "$refused_all" "$DEVICES"
	((refused_all >= DEVICES)) && break
	((SECONDS < deadline)) || break
	sleep 2
done
[[ ! -t 1 ]] || echo
log "refused: $(cut -f3 "$T/devices.tsv" | sort | uniq -c | awk '{printf "%s %s  ", $2, $1}')"
((refused_all == DEVICES)) || check "$refused_all of $DEVICES devices refused the rollback and still run 1.2.0"
fi

# ---- summary -----------------------------------------------------------------------------------------
server_rss=$(awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$SERVER_PID/status" 2>/dev/null || echo '?')
stop_sims
say "summary ($((SECONDS - START)) s)"
printf '   %-11s %-10s %7s %9s %7s %9s\n' campaign "ended as" target confirmed failed timed_out
awk -F'\t' '{printf "   %-11s %-10s %7s %9s %7s %9s\n", $1, $2, $3, $4, $5, $6}' "$T/campaigns.tsv"
log "devices by version: $(api GET /metrics | awk -F'[{}"= ]+' '/^fleetota_devices_by_version\{/ {printf "%s=%s ", $3, $4}')"
[[ $STORY != full ]] || log "rollback refused by $refused_all of $DEVICES devices"
log "deltas (fw-1.1.1 from 1.0.0): $DELIVERED"
log "ota-server peak RSS: $server_rss MB"
echo
for f in "$T"/fleet*.log; do
	sed -n '/== ota-fleet-sim summary/,$p' "$f" | sed 's/^/   /'
done
if [[ $STORY == full ]]; then
	# the two accounts of the bad release: the server's and the devices'
	sim_reverted=$(jq -s '[.[].artifacts["fw-1.1.0"].reverted // 0] | add' "$T"/sim-summary*.json)
	if [[ "$sim_reverted" == "$bad_failed" ]]; then
		log "fw-1.1.0: $bad_failed failed in the campaign = $sim_reverted reverted on the devices"
	else
		check "fw-1.1.0: $bad_failed failed in the campaign, $sim_reverted reverted on the devices"
	fi
fi
echo
if [[ $STAY != 1 ]]; then
	echo "demo: done; logs in $LOGS (everything else is stopped and removed)"
	exit 0
fi
say "the stack stays up (DEMO_STAY=1): Ctrl-C stops it and removes everything"
log "console    $API/console/   (sign in with the token below)"
log "REST API   $API   (ota-server, PID $SERVER_PID; the simulated fleet is stopped)"
log "token      $TOKEN   (admin, this throwaway installation only)"
log "PostgreSQL psql 'host=$T/pg port=$PG_PORT dbname=fleetota user=postgres'"
log "try:"
log "  curl -sS -H 'Authorization: Bearer $TOKEN' $API/api/v1/campaigns | jq '.items[] | {id, state, reason}'"
log "  curl -sS -H 'Authorization: Bearer $TOKEN' '$API/api/v1/devices?limit=5' | jq '.items[] | {device_id, version, state}'"
log "  curl -sS -H 'Authorization: Bearer $TOKEN' $API/metrics | grep -E '^fleetota_(campaign_state|devices_by_version)'"
while kill -0 "$SERVER_PID" 2>/dev/null; do
	sleep 1
done
fail "ota-server exited"
