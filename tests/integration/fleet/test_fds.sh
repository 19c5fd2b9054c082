#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ota-fleet-sim and its file descriptors (issue 19: a 10,000-device process
# ran out at 6,663 sessions and then waited for ever).
# 1. At start it raises the soft RLIMIT_NOFILE to the hard one and refuses,
#    naming the numbers, a fleet that cannot fit: exit 2, nothing written.
# 2. A fleet that fits starts even with a low soft limit (it is raised).
# 3. Descriptors that run out at run time (the limit lowered under the
#    running process with prlimit) end the run with a clear error and exit
#    status 1 within seconds, not a wait for sessions that cannot come.
# 4. Fresh devices log no error on their first boot (no state or freshness
#    record yet is a blank device, not a damaged one), and a device holds
#    about 3 descriptors (its MQTT TLS socket and libmosquitto's socket
#    pair). Records that cannot be opened for want of a descriptor do read
#    as damaged (OTA_ERR_STORAGE): such errors may follow the lowering.
source "$TOP/tests/integration/server/lib.sh"
: "${OTA_KEYS:?}" "${OTA_FLEET_SIM:?}"
N=40
SIM_PID=
stop_sim() { stop_bg SIM_PID; }
at_cleanup stop_sim

# sim_args STATE: SIM_ARGS, every option a run needs, against nothing (the budget is checked first)
sim_args() {
	SIM_ARGS=(--pki "$T/no-pki" --state-dir "$1" --server https://127.0.0.1:1
		--broker ssl://127.0.0.1:1 --rootlist "$T/none" --keylist "$T/none")
}

log "1. 100 devices under a hard limit of 300 descriptors: refused at start"
rc=0
sim_args "$T/state-1"
out=$(ulimit -n 300 && "$OTA_FLEET_SIM" --devices 100 "${SIM_ARGS[@]}" 2>&1) || rc=$?
echo "$out"
((rc == 2)) || fail "exit status $rc, expected 2"
# 100 devices x 3 + 16 workers x 6 + 32 to spare + those open at start
grep -Eq "^ota-fleet-sim: 100 devices need about 4[2-9][0-9] file descriptors \(3 a device, 8 for each of up to 16 worker threads, [0-9]+ open now, 32 to spare\); this process may open 300 \(RLIMIT_NOFILE, hard limit\): use more processes \(--first, --devices\) or raise the limit$" <<<"$out" ||
	fail "no budget message with the numbers"
[[ ! -e $T/state-1 && ! -e $T/no-pki ]] || fail "a refused run wrote files"

log "2. 100 devices, soft limit 100, hard 1000: the soft limit is raised, the budget fits"
rc=0
sim_args "$T/state-2"
out=$(ulimit -Sn 100 && ulimit -Hn 1000 && "$OTA_FLEET_SIM" --devices 100 "${SIM_ARGS[@]}" 2>&1) || rc=$?
echo "$out"
((rc == 2)) || fail "exit status $rc, expected 2 (no PKI)"
grep -q "file descriptors" <<<"$out" && fail "refused although 1000 descriptors fit"
grep -q "device-ca.{crt,key} unreadable" <<<"$out" || fail "did not get past the budget"

source "$TOP/tests/integration/fleet/lib_fleet.sh"
fleet_stack

log "3. $N devices connecting at 1 a second; the limit is lowered under the running simulator"
fleet_sim "$T/fleet.log" --devices $N --prefix fds- --slot-size 262144 --workers 4 \
	--connect-rate 1 --progress 2
registered() { (($(sql -c "SELECT count(*) FROM devices WHERE version = '1.0.0'") >= $1)); }
fds() { find "/proc/$SIM_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
# sockets: a device's are its TLS connection to the broker and libmosquitto's
# socket pair; nothing else of the simulator is a socket before a campaign
# (its HTTPS connections are open only during downloads)
sockets() { find "/proc/$SIM_PID/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' | wc -l; }
to_broker() { ss -Htnp "( dport = :$MQ_PORT )" | grep -c "pid=$SIM_PID,"; }
wait_for 90 registered 20 || fail "registered: $(sql -c "SELECT count(*) FROM devices") $(tail -3 "$T/fleet.log")"
# a snapshot between two session starts (one a second): the count to the broker the same around it
for _ in 1 2 3 4 5; do
	c=$(to_broker) s=$(sockets) open=$(fds)
	(($(to_broker) == c)) && break
done
per_device=$(awk -v s="$s" -v c="$c" 'BEGIN { printf "%.2f", s / c }')
echo "descriptors: $open open, $s of them sockets, with $c sessions to the broker: $per_device sockets a device"
awk -v p="$per_device" 'BEGIN { exit !(p >= 2.8 && p <= 3.2) }' ||
	fail "$per_device descriptors a device, the budget counts 3"
before=$(wc -l <"$T/fleet.log")
prlimit --pid "$SIM_PID" --nofile="$open:$open"
gone() { ! kill -0 "$SIM_PID" 2>/dev/null; }
wait_for 30 gone || fail "the simulator still runs 30 s after its descriptors ran out: $(tail -3 "$T/fleet.log")"
rc=0
wait "$SIM_PID" || rc=$?
SIM_PID=
grep -v "^\[fleet" "$T/fleet.log" | tail -20
((rc == 1)) || fail "exit status $rc, expected 1"
grep -Eq "^ota-fleet-sim: out of file descriptors: this process may open $open \(RLIMIT_NOFILE\) and could not open one more with [0-9]+ of $N sessions started; a device needs about 3: use more processes \(--first, --devices\)$" "$T/fleet.log" ||
	fail "no clear out-of-descriptors message"
fleet_summary_ok "$T/fleet.log"

log "4. first boot (provisioning, connect, report) of $c fresh devices: no error logged"
if head -n "$before" "$T/fleet.log" | grep -E "error|unreadable"; then
	fail "fresh devices logged errors on their first boot"
fi
echo "ok - refused at start with the numbers, raised the soft limit, stopped with exit 1 when descriptors ran out, no first-boot errors"
check_server_exit
log "PASS"
