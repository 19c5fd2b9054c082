#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the ```sh blocks of docs/api.md, in order, as one script (shell
# variables carry from one block to the next, as in a reader's terminal),
# with API, TOKEN (an admin token) and BUNDLE set, so the documented examples
# stay true. The examples use curl --fail-with-body: any HTTP error fails.
# usage: run_doc_examples.sh DOC API_URL ADMIN_TOKEN BUNDLE WORKDIR
set -euo pipefail
doc=$1
export API=$2 TOKEN=$3 BUNDLE=$4
work=$5
mkdir -p "$work"
awk '
	/^```sh$/ { inblock = 1; n++; printf "echo \"---- example %d\"\n", n; next }
	/^```$/ && inblock { inblock = 0; next }
	inblock { print }
' "$doc" >"$work/examples.sh"
count=$(grep -c '^echo "---- example' "$work/examples.sh" || true)
[[ $count -ge 8 ]] || { echo "docs/api.md: only $count examples found"; exit 1; }
if ! (cd "$work" && bash -euo pipefail "$work/examples.sh" >"$work/out.log" 2>&1); then
	echo "docs/api.md examples failed:"
	tail -30 "$work/out.log"
	exit 1
fi
echo "docs/api.md: $count examples ran"
