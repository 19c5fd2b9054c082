#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Renders web-api/openapi.yaml into one HTML page (OUT, default
# build/api.html) with the pinned @redocly/cli the contract test uses,
# installed from tests/integration/web-api/npm/package-lock.json into a
# cache outside the repository. Runs on what install-deps gives a fresh
# Debian 12 machine (nodejs 18.19+ and npm 9): @redocly/cli is pinned to
# the 1.34 line, which supports node 18 (2.x needs node 20.19).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
node_version=$(node --version 2>/dev/null) || { echo "api-docs: node is missing (scripts/install-deps.sh)" >&2; exit 2; }
IFS=. read -r major minor _ <<<"${node_version#v}"
if ((major < 18 || (major == 18 && minor < 17))); then
	echo "api-docs: node $node_version is too old: @redocly/cli 1.34 needs 18.17 or later" >&2
	exit 2
fi
out=${1:-$top/build/api.html}
lock=$top/tests/integration/web-api/npm/package-lock.json
npm_dir=${FLEETOTA_NPM_CACHE:-$HOME/.cache/fleetota/npm}/webapi-$(sha256sum "$lock" | cut -c1-16)
if [[ ! -x "$npm_dir/node_modules/.bin/redocly" ]]; then
	mkdir -p "$npm_dir"
	cp "$top/tests/integration/web-api/npm/package.json" "$lock" "$npm_dir/"
	(cd "$npm_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
mkdir -p "$(dirname "$out")"
"$npm_dir/node_modules/.bin/redocly" build-docs "$top/web-api/openapi.yaml" -o "$out"
echo "api-docs: $out"
