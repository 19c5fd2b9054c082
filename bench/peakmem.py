#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Peak memory of one command, split by kind (bench/delta.sh).

    peakmem.py [--limit-s S] [--limit-as-mb MB] OUT CMD...

Runs CMD (its stdout and stderr into OUT.log) and writes one line to
OUT.time, in /usr/bin/time's order first:

    WALL_S MAXRSS_KIB USER_S SYS_S ANON_PEAK_KIB FILE_PEAK_KIB SAMPLES

MAXRSS_KIB is the kernel's own high-water mark of the resident set
(VmHWM: RssAnon + RssFile + RssShmem at their peak), as last read, and
ANON_PEAK_KIB and FILE_PEAK_KIB are the largest RssAnon (private memory:
heap, stacks, the work area) and RssFile (file pages mapped: the program,
its libraries, a mapped base image), all from /proc/PID/status polled
every POLL_S seconds (the kernel keeps no high-water mark of each kind,
so a spike shorter than that can be missed; VmHWM misses only a peak in
the last poll interval). Not getrusage's ru_maxrss: the child starts as
a vfork of this interpreter and the kernel counts that memory in it. No
cgroup is needed. SAMPLES is how many polls saw the process. Exits with
CMD's status (128 + signal). Bounds: --limit-s kills CMD after S seconds
(exit 124, as timeout(1)); --limit-as-mb caps its address space
(RLIMIT_AS), so an allocation past it fails in CMD. OUT.time is written
either way.
"""
import os
import resource
import subprocess
import sys
import time

POLL_S = 0.005


def status_kib(pid):
    """RssAnon, RssFile and VmHWM of pid in KiB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            text = f.read()
    except OSError:
        return None
    got = {}
    for line in text.splitlines():
        key, _, val = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            got[key] = int(val.split()[0])
    if len(got) < 3:
        return None  # a zombie has no memory lines
    return got["RssAnon"], got["RssFile"], got["VmHWM"]


def main():
    args = sys.argv[1:]
    limit_s = limit_as = None
    while len(args) >= 2 and args[0] in ("--limit-s", "--limit-as-mb"):
        if args[0] == "--limit-s":
            limit_s = float(args[1])
        else:
            limit_as = int(args[1]) * 1048576
        args = args[2:]
    if len(args) < 2:
        sys.stderr.write("usage: peakmem.py [--limit-s S] [--limit-as-mb MB] OUT CMD...\n")
        return 2
    out, cmd = args[0], args[1:]

    def bound():
        if limit_as is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    t0 = time.monotonic()
    # Popen returns once CMD runs (exec done): no sample sees this
    # interpreter's memory; the child is reaped here with wait4
    with open(out + ".log", "wb") as log:
        try:
            pid = subprocess.Popen(cmd, stdout=log, stderr=log,
                                   preexec_fn=bound if limit_as else None).pid
        except OSError as e:
            sys.stderr.write(f"peakmem.py: {cmd[0]}: {e}\n")
            return 127
    anon = fil = hwm = samples = 0
    timed_out = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done == pid:
            break
        if limit_s is not None and not timed_out and time.monotonic() - t0 > limit_s:
            os.kill(pid, 9)
            timed_out = True
        kib = status_kib(pid)
        if kib:
            anon = max(anon, kib[0])
            fil = max(fil, kib[1])
            hwm = max(hwm, kib[2])
            samples += 1
        time.sleep(POLL_S)
    wall = time.monotonic() - t0
    with open(out + ".time", "w", encoding="ascii") as f:
        f.write(f"{wall:.2f} {hwm} {usage.ru_utime:.2f} {usage.ru_stime:.2f} "
                f"{anon} {fil} {samples}\n")
    if timed_out:
        return 124
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
