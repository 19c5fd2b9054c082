#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks the include graph of server/src (docs/where-to-change.md).

Components are the directories of server/src: core, device, api, rollout
(main.c is on top). A file may include headers of its own component, any
header of core, and only the public headers of the components it may use:

    core    -> core
    device  -> core
    api     -> core
    rollout -> core, device (device.h, mqtt.h)
    main    -> every public header

A *-internal.h header never leaves its component (core's are the shared
base layer). The include graph of files and the graph of components must
have no cycle. Modules (x.c with x.h or x-internal.h) must not include
each other in a circle either, but for the circles in KNOWN_CYCLES, which
are known debt: a new circle fails, and so does a known one that is gone
(take it off the list). Exit 1 with one line per violation.

    check_layout.py SRC_DIR        check server/src
    check_layout.py --self-test    check that violations are found
"""
import os
import re
import sys
import tempfile

USES = {
    'core': {'core'},
    'device': {'core', 'device'},
    'api': {'core', 'api'},
    'rollout': {'core', 'device', 'rollout'},
    'main': {'core', 'device', 'api', 'rollout'},
}
PUBLIC = {
    'device': {'device.h', 'mqtt.h'},
    'api': {'webapi.h'},
    'rollout': {'rollout.h'},
}
# Module circles still to break (docs/where-to-change.md): none left. A new
# one fails the test; listing one here is a debt that must be named.
KNOWN_CYCLES = []
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def component(rel):
    parts = rel.split('/')
    return parts[0] if len(parts) > 1 else 'main'


def files(src):
    out = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith(('.c', '.h')):
                p = os.path.join(root, n)
                out[os.path.relpath(p, src)] = p
    return out


def resolve(rel, name, known):
    """The server/src file that #include "name" in rel finds, or None."""
    here = os.path.dirname(rel)
    cand = os.path.normpath(os.path.join(here, name))
    if cand in known:
        return cand
    for comp in ('core', 'device', 'api', 'rollout'):
        cand = os.path.normpath(os.path.join(comp, name))
        if cand in known:
            return cand
    return None


def module(rel):
    return re.sub(r'(-internal)?\.[ch]$', '', rel)


def strongly_connected(graph):
    """The node sets of graph's circles (Tarjan), each of two or more nodes."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def find_cycle(graph):
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def check(src, known_cycles=None):
    if known_cycles is None:
        known_cycles = KNOWN_CYCLES
    known = files(src)
    errors = []
    fgraph = {}
    cgraph = {}
    mgraph = {}
    for rel, path in sorted(known.items()):
        with open(path, encoding='utf-8', errors='replace') as f:
            text = f.read()
        a = component(rel)
        for name in INCLUDE.findall(text):
            target = resolve(rel, name, known)
            if target is None:
                continue  # proto/, generated or system header
            fgraph.setdefault(rel, set()).add(target)
            if module(rel) != module(target):
                mgraph.setdefault(module(rel), set()).add(module(target))
            b = component(target)
            if a == b:
                continue
            cgraph.setdefault(a, set()).add(b)
            base = os.path.basename(target)
            if b not in USES[a]:
                errors.append(f'{rel}: includes {target}: {a} may not use {b}')
            elif b != 'core' and base not in PUBLIC.get(b, set()):
                errors.append(f'{rel}: includes {target}: not a public header of {b}')
    for graph, what in ((fgraph, 'files'), (cgraph, 'components')):
        c = find_cycle(graph)
        if c:
            errors.append(f'include cycle ({what}): ' + ' -> '.join(c))
    comps = strongly_connected(mgraph)
    for comp in comps:
        if comp not in known_cycles:
            errors.append('module circle: ' + ' <-> '.join(sorted(comp)))
    for comp in known_cycles:
        if comp not in comps:
            errors.append('known circle gone (take it off KNOWN_CYCLES): ' +
                          ' <-> '.join(sorted(comp)))
    return errors, len(known), sum(len(v) for v in fgraph.values())


def self_test():
    cases = {
        'api including a device internal header': {
            'device/report-internal.h': '', 'api/x.c': '#include "report-internal.h"\n'},
        'core using device': {'device/device.h': '', 'core/x.c': '#include "device.h"\n'},
        'a header cycle': {'core/a.h': '#include "b.h"\n', 'core/b.h': '#include "a.h"\n'},
        'device using rollout': {'rollout/rollout.h': '', 'device/x.c': '#include "rollout.h"\n'},
        'a module circle': {
            'device/a-internal.h': '', 'device/b-internal.h': '',
            'device/a.c': '#include "b-internal.h"\n', 'device/b.c': '#include "a-internal.h"\n'},
    }
    ok = True
    for what, tree in cases.items():
        with tempfile.TemporaryDirectory() as d:
            for rel, text in tree.items():
                os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
                with open(os.path.join(d, rel), 'w') as f:
                    f.write(text)
            errors, _, _ = check(d, [])
            if not errors:
                print(f'self-test: {what} not found')
                ok = False
    # and a clean tree passes
    with tempfile.TemporaryDirectory() as d:
        for rel, text in {'device/device.h': '', 'rollout/r.c': '#include "device.h"\n'}.items():
            os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(d, rel), 'w') as f:
                f.write(text)
        if check(d, [])[0]:
            print('self-test: a clean tree fails')
            ok = False
    return ok


def main():
    if len(sys.argv) == 2 and sys.argv[1] == '--self-test':
        sys.exit(0 if self_test() else 1)
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    errors, nfiles, nedges = check(sys.argv[1])
    for e in errors:
        print(e)
    if errors:
        sys.exit(1)
    known = f' beyond the {len(KNOWN_CYCLES)} known ones' if KNOWN_CYCLES else ''
    print(f'server/src: {nfiles} files, {nedges} includes: no file or component cycle, no reach'
          f' into internals, no module circle{known}')


if __name__ == '__main__':
    main()
