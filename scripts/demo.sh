#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job. Replaced by the full demo when issue 8 lands.
echo "make demo: not built yet — it needs the server, REST API and rollout engine (issues 5-8)." >&2
echo "make test runs everything that exists today." >&2
exit 2
