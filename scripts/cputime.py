#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# cputime.py COMMAND [ARGS...]: runs COMMAND and prints, on stderr, the CPU
# time (user + sys) of its whole process tree and its wall time:
#
#   cputime: user 12.34 s sys 1.23 s cpu 13.57 s wall 40.10 s
#
# The whole tree includes daemons that detach from the test (postmaster,
# mosquitto -d): this process is their child subreaper (prctl), so they are
# reparented here and reaped as soon as they exit (a daemon left a zombie
# would still answer `kill -0`, and pg.sh/mosquitto.sh stop wait for that to
# fail). `make test` runs every meson test under it (meson test --wrapper);
# scripts/test-times.sh reads the lines back from the test log.
#
# With CPUTIME_LOG=FILE and CPUTIME_LABEL=NAME it also appends
# "NAME<TAB>cpu<TAB>wall<TAB>exit status" to FILE (make test's phases).
import ctypes
import os
import resource
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main():
    if len(sys.argv) < 2:
        print("usage: cputime.py COMMAND [ARGS...]", file=sys.stderr)
        return 2
    log = os.environ.get("CPUTIME_LOG")
    label = os.environ.get("CPUTIME_LABEL", sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    start = time.monotonic()
    child = os.fork()
    if child == 0:
        # the phase log is this process's: a nested cputime.py (meson's
        # wrapper of each test) must not write to it
        os.environ.pop("CPUTIME_LOG", None)
        os.environ.pop("CPUTIME_LABEL", None)
        try:
            os.execvp(sys.argv[1], sys.argv[1:])
        except OSError as e:
            print(f"cputime: {sys.argv[1]}: {e}", file=sys.stderr)
            os._exit(127)
    # meson's timeout and Ctrl-C signal the whole process group: the test
    # handles them; this process keeps reaping and still reports
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    status = None
    while status is None:
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status = st
    wall = time.monotonic() - start
    # orphans that already exited; live ones go to init when we leave
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"cputime: user {ru.ru_utime:.2f} s sys {ru.ru_stime:.2f} s "
          f"cpu {ru.ru_utime + ru.ru_stime:.2f} s wall {wall:.2f} s",
          file=sys.stderr, flush=True)
    if status is None:
        rc = 1
    elif os.WIFSIGNALED(status):
        rc = 128 + os.WTERMSIG(status)
    else:
        rc = os.WEXITSTATUS(status)
    if log:
        with open(log, "a") as f:
            f.write(f"{label}\t"
                    f"{ru.ru_utime + ru.ru_stime:.1f}\t{wall:.1f}\t{rc}\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
