#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ota-fleet-sim's factory (issue 19: a 10,000-device set-up cheap enough to
# run): the first new device is provisioned through the agent core, the
# other new devices are copies of its state directory.
# 1. The copies are what the core writes: devices provisioned by default
#    and with --provision-each have the same files, byte for byte.
# 2. A device whose state directory exists is opened from it, not
#    overwritten by a copy; no temp directory is left behind.
# No server or broker: the simulator provisions, then runs 1 s against
# addresses that refuse.
source "$TOP/tests/integration/server/lib.sh"
: "${OTA_KEYS:?}" "${OTA_FLEET_SIM:?}"
N=6

setup_pki
sign_firmware "$T/keys"

# sim STATE [ARGS...]: provisions N devices into STATE, output in STATE.log
sim() {
	local state=$1
	shift
	"$OTA_FLEET_SIM" --devices "$N" --prefix g- --pki "$PKI" --state-dir "$state" \
		--server https://127.0.0.1:1 --broker ssl://127.0.0.1:1 \
		--rootlist "$T/keys/roots/rootlist-1.signed" --keylist "$T/keys/kl.signed" \
		--image "$T/keys/fw-1.0.0.otab" --duration 1 --progress 0 "$@" >"$state.log" 2>&1 ||
		fail "ota-fleet-sim exited $?: $(tail -5 "$state.log")"
}

log "1. $N devices as copies of the first, $N through the core: the same files"
sim "$T/copies"
grep -q "^ota-fleet-sim: $N devices provisioned in [0-9.]* s (1 by the agent core, $((N - 1)) as copies of its first)$" \
	"$T/copies.log" || fail "no copies: $(grep provisioned "$T/copies.log")"
sim "$T/each" --provision-each
grep -q "^ota-fleet-sim: $N devices provisioned in [0-9.]* s ($N by the agent core, 0 as copies of its first)$" \
	"$T/each.log" || fail "not through the core: $(grep provisioned "$T/each.log")"
for ((i = 0; i < N; i++)); do
	d=$(printf 'g-%05u' "$i")
	listed=$(cd "$T/copies/$d" && find . -type f | sort)
	[[ -n $listed && $listed == "$(cd "$T/each/$d" && find . -type f | sort)" ]] ||
		fail "$d: other files than the core's"
	# every copy is the first device, which the core provisioned
	diff -r "$T/copies/g-00000" "$T/copies/$d" >/dev/null || fail "$d differs from g-00000"
done
# the core's files of the same device, run for run, are the same bytes
# (the event records aside: an event may carry the time it was written)
for d in g-00001 g-00005; do
	diff -r --exclude='event*' "$T/each/$d" "$T/copies/$d" >/dev/null ||
		fail "$d: the copy is not what the core wrote: $(diff -rq --exclude='event*' "$T/each/$d" "$T/copies/$d")"
done
grep -iE "error|unreadable|damaged" "$T/copies.log" && fail "the copies logged errors"
echo "ok - the copies hold the core's files"

log "2. existing devices are opened, not copied over; nothing left behind"
echo marker >"$T/copies/g-00004/marker"
sim "$T/copies"
grep -q "^ota-fleet-sim: $N devices provisioned in [0-9.]* s (0 by the agent core, 0 as copies of its first)$" \
	"$T/copies.log" || fail "existing devices provisioned again: $(grep provisioned "$T/copies.log")"
[[ -f $T/copies/g-00004/marker ]] || fail "an existing state directory was replaced"
if compgen -G "$T/copies/*.golden-tmp" >/dev/null; then
	fail "temp directories left: $(ls -d "$T"/copies/*.golden-tmp)"
fi
echo "ok - existing state kept, no temp directories"
log "PASS"
