#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Renders web-api/openapi.yaml into one HTML page (OUT, default
# build/api.html) with the pinned @redocly/cli the contract test uses,
# installed from tests/integration/web-api/npm/package-lock.json into a
# cache outside the repository.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
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
