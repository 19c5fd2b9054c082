#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Use: WA_KEEP_RESPONSES=/tmp/a.tsv meson test ... webapi_api at two revisions,
# then diff <(normalize_responses.py a.tsv) <(normalize_responses.py b.tsv).
# Normalizes a responses.tsv (method, path, status, content type, base64 body)
# for a before/after diff: run-specific values (times, random ids, keys,
# digests, tokens, ports) become placeholders; everything else stays.
import base64, re, sys
subs = [
    (re.compile(r'\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}(:\d{2})?|Z)?'), 'TIME'),
    (re.compile(r'fota_[A-Za-z0-9_-]{20,}'), 'TOKEN'),
    (re.compile(r'u_[0-9a-f]{32}'), 'UPLOAD'),
    (re.compile(r'[0-9a-fA-F]{16,}'), 'HEX'),
    (re.compile(r'[A-Za-z0-9+/]{40,}={0,2}'), 'B64'),
    (re.compile(r'127\.0\.0\.1:\d+'), 'ADDR'),
    (re.compile(r'"(issued_at|expires_at|age_s|uptime_s|duration_ms|elapsed_ms|seconds)": ?[0-9.]+'), r'"\1": N'),
]
for line in open(sys.argv[1]):
    parts = line.rstrip('\n').split('\t')
    if len(parts) < 5:
        print(line.rstrip('\n')); continue
    body = base64.b64decode(parts[4]).decode('utf-8', 'replace')
    head = '\t'.join(parts[:4])
    for rx, rep in subs:
        body = rx.sub(rep, body); head = rx.sub(rep, head)
    print(head + '\t' + body)
