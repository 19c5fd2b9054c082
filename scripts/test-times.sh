#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Where `make test`'s time went: each phase's wall and CPU time (user + sys
# of its whole process tree, scripts/cputime.py), then the meson tests that
# took longest, with their CPU time: a test with CPU far below its wall time
# waits (sleeps, timeouts, other processes), one near or above it computes.
#
# Then the figures tests measured (their "measured: ..." lines).
# Last, for each failed test, the lines that say why (FAIL/ERROR lines,
# sanitizer reports, the end of its stderr): a CI log cut in the middle
# still shows them at its end.
#
#   scripts/test-times.sh PHASES_FILE [TEST_BUILD_DIR] [TOP_N]
set -euo pipefail
phases=${1:?PHASES_FILE}
build=${2:-build-test}
top_n=${3:-20}
# meson names its log after the wrapper (make test: scripts/cputime.py)
testlog=$build/meson-logs/testlog-cputime.py.json
[[ -f $testlog ]] || testlog=$build/meson-logs/testlog.json
/usr/bin/python3 - "$phases" "$testlog" "$top_n" <<'PY'
import json, os, re, sys
phases, testlog, top_n = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("== make test: time per phase (wall / CPU of the process tree, seconds)")
total_wall = total_cpu = 0.0
if os.path.exists(phases):
    for line in open(phases):
        name, cpu, wall, rc = line.rstrip("\n").split("\t")
        # a phase run beside another (make test: beside the meson tests)
        # adds its CPU, not its wall time
        if not name.endswith("(beside)"):
            total_wall += float(wall)
        total_cpu += float(cpu)
        note = "" if rc == "0" else f"  (exit {rc})"
        print(f"   {name:<21} {float(wall):7.0f} {float(cpu):7.0f}{note}")
    # make test passes its own elapsed time (phases beside others overlap)
    if os.environ.get("TEST_WALL"):
        total_wall = float(os.environ["TEST_WALL"])
    print(f"   {'total':<21} {total_wall:7.0f} {total_cpu:7.0f}"
          f"   ({total_wall / 60:.1f} min; load average now "
          f"{open('/proc/loadavg').read().split()[0]}, {os.cpu_count()} cores)")
if not os.path.exists(testlog):
    sys.exit(0)
rows = []
for line in open(testlog):
    r = json.loads(line)
    m = re.search(r"cputime: user \S+ s sys \S+ s cpu (\S+) s",
                  (r.get("stderr") or "") + (r.get("stdout") or ""))
    rows.append((r["duration"], float(m.group(1)) if m else None,
                 r["name"].split(" / ")[-1], r["result"]))
rows.sort(reverse=True)
print(f"== meson tests: the {min(top_n, len(rows))} longest of {len(rows)}"
      f" (wall / CPU, seconds; sum of walls {sum(r[0] for r in rows):.0f})")
for wall, cpu, name, result in rows[:top_n]:
    cpu_s = "      ?" if cpu is None else f"{cpu:7.1f}"
    print(f"   {name:<28} {wall:7.1f} {cpu_s}  {result}")
# figures a test measured for the record ("measured: ..." lines of its
# stdout, e.g. docker_compose's image sizes and times): passing tests' output
# is only in meson's log, so they are repeated here
figures = []
for line in open(testlog):
    r = json.loads(line)
    for l in (r.get("stdout") or "").splitlines():
        if l.startswith("measured: "):
            figures.append((r["name"].split(" / ")[-1], l[len("measured: "):]))
if figures:
    print("== figures the tests measured")
    for name, l in figures:
        print(f"   {name}: {l[:400]}")
failed = [json.loads(line) for line in open(testlog)]
failed = [r for r in failed if r["result"] not in ("OK", "SKIP", "EXPECTEDFAIL")]
for r in failed:
    name = r["name"].split(" / ")[-1]
    out = (r.get("stdout") or "").splitlines()
    err = (r.get("stderr") or "").splitlines()
    why = [l for l in out + err
           if re.search(r"FAIL|ERROR|Assertion|AddressSanitizer|runtime error|not ok", l)]
    print(f"== why {name} failed ({r['result']}): its FAIL/ERROR lines, then its stderr's end")
    for l in (why[-12:] + ["--"] + [l for l in err[-8:] if not l.startswith("cputime:")]):
        print(f"   {l[:400]}")
PY
