#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The container path a user takes, run for real: docker/build-images.sh
# builds the four images with buildah (base image from mmdebstrap, no
# registry), podman-compose starts docker/compose.yaml itself, and then,
# only through the published REST API on loopback: a token, the trust
# lists and signed artifacts uploaded, a 2-stage campaign to FLEET_DEVICES
# simulated devices (the compose file's fleet service) run to completion.
# Health checks are the images' own (podman healthcheck run). Everything
# the test starts (containers, volumes, network) is removed by label/name.
#
# Engine settings are private (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
# CONTAINERS_REGISTRIES_CONF): runc with fixed ulimits (the sandbox lacks
# CAP_SYS_RESOURCE for crun's setrlimit), netavark, no registry. The image
# store is a cache under FLEETOTA_CONTAINERS_CACHE (default
# ~/.cache/fleetota/containers): the base image and the build steps before
# the first changed file are reused by the next run. One container test at
# a time per cache (flock). Prints image sizes and timings ("measured:").
set -euo pipefail
: "${TOP:?}"
DEVICES=${FLEET_DEVICES:-24}
CACHE=${FLEETOTA_CONTAINERS_CACHE:-$HOME/.cache/fleetota/containers}
T=$(mktemp -d /tmp/fleetota-compose.XXXXXX)
PROJECT=fleetota-test-$$
FAILED=0
UP= # set once compose up ran: there are container logs to show
START=$SECONDS

log() { echo "[$(date +%T)] $*"; }
fail() {
	echo "FAIL: $*" >&2
	FAILED=1
	exit 1
}

for tool in buildah podman podman-compose mmdebstrap runc curl jq flock; do
	command -v "$tool" >/dev/null || fail "$tool is missing (scripts/install-deps.sh installs it)"
done

mkdir -p "$CACHE/storage" "$CACHE/run" "$CACHE/tmp" "$CACHE/networks"
exec 9>"$CACHE/lock"
log "waiting for the container cache lock ($CACHE)"
flock -w 1800 9 || fail "another container test holds $CACHE/lock for 30 min"

cat >"$T/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$CACHE/tmp"
[network]
network_backend = "netavark"
network_config_dir = "$CACHE/networks"
EOF
cat >"$T/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$CACHE/storage"
runroot = "$CACHE/run"
EOF
printf '%s\n' 'unqualified-search-registries = []' >"$T/registries.conf"
export CONTAINERS_CONF=$T/containers.conf CONTAINERS_STORAGE_CONF=$T/storage.conf
export CONTAINERS_REGISTRIES_CONF=$T/registries.conf

# the compose file's variables: images, fleet size, ports published on
# loopback only, host ports left to the engine (set but empty)
export FLEETOTA_TAG=ci-$(echo "$TOP" | sha256sum | cut -c1-8)
export FLEETOTA_BASE_IMAGE=localhost/fleetota-base:bookworm
export FLEETOTA_PUBLISH=127.0.0.1 FLEET_DEVICES=$DEVICES
# the compile layer reuses objects of earlier runs (a cold compile took 238 s
# on CI's loaded 2 cores)
export FLEETOTA_CCACHE_DIR=$CACHE/ccache
export OTA_DEVICE_PORT= OTA_API_PORT= OTA_MQTT_PORT=
compose() { podman-compose -p "$PROJECT" -f "$TOP/docker/compose.yaml" "$@"; }
ctr() { echo "${PROJECT}_$1_1"; } # podman-compose 1.0's container names

cleanup() {
	local rc=$?
	set +e
	trap - INT TERM
	((FAILED == 0)) || ((rc != 0)) || rc=1
	if [[ $rc != 0 && -n $UP ]]; then
		for s in pki keys postgres broker ota-server fleet; do
			echo "---- $s (log tail)"
			podman logs --tail 25 "$(ctr "$s")" 2>&1
		done
	fi
	local t0=$SECONDS ids
	# by label, all at once (podman-compose 1.0's `down` stops and removes
	# one container after the other and sleeps 1 s after each volume: 20-80 s)
	ids=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT")
	[[ -z "$ids" ]] || podman rm -f -t 5 $ids >/dev/null 2>&1 # (stderr: "unable to get systemd connection to remove healthchecks")
	ids=$(podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT")
	[[ -z "$ids" ]] || podman volume rm -f $ids >/dev/null
	podman network exists "${PROJECT}_default" && podman network rm -f "${PROJECT}_default" >/dev/null
	# buildah's working containers of an interrupted build (we hold the
	# cache's lock: no other build runs here), then superseded build layers
	# of earlier runs (the cache keeps the newest)
	buildah rm --all >/dev/null 2>&1
	podman image prune -f >/dev/null 2>&1
	left=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" | wc -l)
	((left == 0)) || { echo "FAIL: $left containers left"; rc=1; }
	log "torn down in $((SECONDS - t0)) s"
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# ---- build ------------------------------------------------------------------
# Warm (the base image and the package layers in the cache; CI's machine
# keeps ~/.cache) this is the compile layer, about 70 s on 2 cores. Cold
# (an empty cache: mmdebstrap and every apt download) it is bounded here,
# so a slow mirror fails the test with a reason instead of eating the suite.
BUILD_BOUND=${FLEETOTA_IMAGE_BUILD_SECONDS:-900}
if podman image exists "$FLEETOTA_BASE_IMAGE"; then cache=warm; else cache="cold (no base image)"; fi
log "building the images (cache: $CACHE, $cache; bound ${BUILD_BOUND} s)"
t0=$SECONDS
rc=0
timeout --kill-after=30 "$BUILD_BOUND" bash "$TOP/docker/build-images.sh" || rc=$?
((rc != 124 && rc != 137)) || fail "image build over its bound of ${BUILD_BOUND} s ($cache cache)"
((rc == 0)) || fail "image build"
BUILD_S=$((SECONDS - t0))
IMAGES=(ota-server tools broker postgres)
REFS=()
for img in "${IMAGES[@]}"; do REFS+=("fleetota/$img:$FLEETOTA_TAG"); done
podman image inspect --format '{{.Config.Healthcheck}}' "${REFS[@]}" >"$T/hc" || fail "image inspect"
i=0
while read -r hc; do
	img=${IMAGES[i++]}
	case $img in tools) ;; *) [[ $hc == *CMD* ]] || fail "$img has no HEALTHCHECK (docker format lost?)" ;; esac
done <"$T/hc"
((i == ${#IMAGES[@]})) || fail "image inspect gave $i health checks for ${#IMAGES[@]} images"

# ---- up -----------------------------------------------------------------------
log "podman-compose up ($DEVICES devices)"
t_up=$SECONDS
UP=1
compose up -d --no-build >"$T/up.log" 2>&1 || { cat "$T/up.log"; fail "compose up"; }
API=http://$(podman port "$(ctr ota-server)" 8080) || fail "REST API port not published"
for s in ota-server broker; do
	podman port "$(ctr $s)" | grep -v -- '-> 127\.0\.0\.1:' | grep . && fail "$s publishes beyond loopback"
done
[[ $API == http://127.0.0.1:[0-9]* ]] || fail "REST API published on $API, not on loopback"
# health as the images define it; podman runs no timers here (no systemd),
# so the test runs each container's HEALTHCHECK itself. It waits on the
# published /healthz first (a curl from here, not two podman calls a
# second), then the image's own check must pass.
healthy() { podman healthcheck run "$(ctr "$1")" >/dev/null 2>&1; }
deadline=$((SECONDS + 240))
n=0
until curl -fsS -o /dev/null --max-time 2 "$API/healthz" 2>/dev/null && healthy ota-server; do
	((SECONDS < deadline)) || fail "ota-server not healthy after 240 s"
	if ((++n % 10 == 0)); then
		[[ $(podman inspect -f '{{.State.Running}}' "$(ctr ota-server)") == true ]] ||
			fail "ota-server container stopped"
	fi
	sleep 0.5
done
HEALTHY_S=$((SECONDS - t_up))
log "ota-server healthy $HEALTHY_S s after compose up (REST API $API)"
healthy postgres || fail "postgres health check fails"
healthy broker || fail "broker health check fails"
# the broker's check is a real client: mosquitto logged its TLS session
# (also proves the broker's log is not held in a buffer)
# (logs to a file first: grep -q stops reading at its match, and under
# pipefail the writer's EPIPE would fail the check)
podman logs "$(ctr broker)" >"$T/broker.log" 2>&1
grep -q "as broker-health" "$T/broker.log" ||
	fail "broker log shows no broker-health client (the check did not connect?)"
podman logs "$(ctr ota-server)" >"$T/server.log" 2>&1
grep -q "waiting for the database\|db connection 0 up" "$T/server.log" ||
	fail "ota-server log lacks its database start"

# ---- through the REST API ---------------------------------------------------------
ADMIN=$(podman exec "$(ctr ota-server)" ota-server token create --role admin --name compose-admin \
	--config /etc/fleetota/ota-server.conf) || fail "token create"
api() { # TOKEN METHOD PATH [curl args]
	local tok=$1 m=$2 p=$3
	shift 3
	curl --fail-with-body -sS -X "$m" -H "Authorization: Bearer $tok" "$@" "$API$p"
}
OP=$(api "$ADMIN" POST /api/v1/tokens -H 'Content-Type: application/json' \
	-d '{"name": "compose-operator", "role": "operator"}' | jq -r .token)
[[ -n "$OP" && "$OP" != null ]] || fail "no operator token from POST /api/v1/tokens"
[[ $(api "$OP" GET /api/v1/me | jq -r .role) == operator ]] || fail "operator token"

podman wait "$(ctr keys)" >"$T/keys.rc" || fail "keys service"
[[ $(cat "$T/keys.rc") == 0 ]] || fail "keys service exited $(cat "$T/keys.rc")"
# the keys job's output, read from its volume on the host (one podman call,
# not one `podman cp` per file)
KEYS=$(podman volume inspect --format '{{.Mountpoint}}' "${PROJECT}_keys") || fail "keys volume"
for f in roots/rootlist-1.signed kl-1.signed fw-1.0.0.otab fw-1.1.0.otab; do
	cp "$KEYS/$f" "$T/" || fail "copy $f out of the keys volume"
done
api "$ADMIN" POST /api/v1/rootlists -H 'Content-Type: application/octet-stream' \
	--data-binary @"$T/rootlist-1.signed" >/dev/null || fail "rootlist upload"
api "$ADMIN" POST /api/v1/keylists -H 'Content-Type: application/octet-stream' \
	--data-binary @"$T/kl-1.signed" >/dev/null || fail "keylist upload"
for v in 1.0.0 1.1.0; do
	api "$OP" POST "/api/v1/artifacts?id=fw-$v" -H 'Content-Type: application/octet-stream' \
		--data-binary @"$T/fw-$v.otab" >/dev/null || fail "artifact fw-$v upload"
done
log "RootList, KeyList, fw-1.0.0 and fw-1.1.0 uploaded"

metric() { # NAME VERSION: fleetota_devices_by_version{...version...} or 0
	api "$OP" GET /metrics | awk -v n="$1" -v l="$2" '$1 ~ "^"n"{" && index($1, "\""l"\"") {v=$2} END {print v+0}'
}
deadline=$((SECONDS + 180))
until (($(metric fleetota_devices_by_version 1.0.0) >= DEVICES)); do
	((SECONDS < deadline)) || fail "only $(metric fleetota_devices_by_version 1.0.0) of $DEVICES devices registered"
	if ((++n % 5 == 0)); then
		[[ $(podman inspect -f '{{.State.Running}}' "$(ctr fleet)") == true ]] || fail "fleet container stopped"
	fi
	sleep 1
done
log "$DEVICES devices registered on 1.0.0"

api "$OP" POST /api/v1/campaigns -H 'Content-Type: application/json' -d '{"id": "rel-1.1.0",
	"artifact": "fw-1.1.0", "target": {"model": ["fx-model"]},
	"stages": [{"count": 4, "failure_ratio": 0.2, "soak_seconds": 2}, {"percent": 100, "failure_ratio": 0.1}],
	"rate_per_minute": 600, "device_timeout_seconds": 120}' >/dev/null || fail "campaign create"
api "$OP" POST /api/v1/campaigns/rel-1.1.0/start >/dev/null || fail "campaign start"
deadline=$((SECONDS + 240))
while :; do
	c=$(api "$OP" GET /api/v1/campaigns/rel-1.1.0)
	state=$(jq -r .state <<<"$c")
	case $state in completed) break ;; paused | cancelled | failed) fail "campaign $state: $(jq -c . <<<"$c")" ;; esac
	((SECONDS < deadline)) || fail "campaign still $state after 240 s: $(jq -c . <<<"$c")"
	sleep 1
done
confirmed=$(jq '[.stages[].devices.confirmed] | add' <<<"$c")
failed=$(jq '[.stages[].devices.failed] | add' <<<"$c")
stages=$(jq '.stages | length' <<<"$c")
first=$(jq '.stages[0].devices.confirmed' <<<"$c")
((stages == 2)) || fail "$stages stages"
((first == 4)) || fail "stage 1 confirmed $first devices, expected the 4 canaries"
((confirmed == DEVICES && failed == 0)) || fail "confirmed $confirmed, failed $failed of $DEVICES"
on_new=$(metric fleetota_devices_by_version 1.1.0)
((on_new == DEVICES)) || fail "$on_new of $DEVICES devices report 1.1.0"
log "campaign rel-1.1.0 completed: $first canaries, then the rest; $on_new devices on 1.1.0"

# one "measured:" line per figure: make test's summary (scripts/test-times.sh)
# repeats them at the end of the CI log
podman image inspect --format '{{.Size}}' "${REFS[@]}" "$FLEETOTA_BASE_IMAGE" | numfmt --to=si >"$T/sizes"
mapfile -t size <"$T/sizes"
sizes=
for i in "${!IMAGES[@]}"; do
	sizes+="${sizes:+, }fleetota/${IMAGES[i]} ${size[i]}B"
done
echo "measured: image sizes: $sizes (base image ${size[${#IMAGES[@]}]}B of each)"
echo "measured: compose up -> ota-server healthy: $HEALTHY_S s"
echo "measured: container test: $((SECONDS - START)) s (image build $BUILD_S s with the cache $cache; up, campaign to $DEVICES devices)"
log "PASS"
