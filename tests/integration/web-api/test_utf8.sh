#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Invalid UTF-8 from outside never reaches SQL (issue 12 #7: ?model=%ff%fe
# was a 500, PostgreSQL 22021). From the contract itself: every query
# parameter of every operation and every path parameter gets %ff%fe and must
# be refused with 400 bad_request naming it; other malformed forms
# (overlong, surrogate, truncated), JSON strings and header values too.
# Nothing changes, no statement fails, no 500; every response matches
# openapi.yaml. Strings inside a signed bundle (the manifest's) too.
source "$(dirname "$0")/lib.sh"
npm_tools &
NPM_PID=$!
setup_world
start_server
ADMIN=$(new_token admin root-admin)
TOKEN= api GET /healthz
expect 200
# trust records, so that a bundle signed by key A verifies up to its strings
for f in rootlist1 keylist1; do
	TOKEN=$ADMIN api POST "/api/v1/${f%1}s" -H 'Content-Type: application/octet-stream' --data-binary @"$FX/$f.bin"
	expect 201
done
TOKEN=$ADMIN api GET /metrics
expect 200
BEFORE=$(db_state)
wait "$NPM_PID" || fail "npm tools"

# One case a line, from openapi.yaml:
#   query METHOD PATH PARAM BODY   (PATH with valid ids; BODY none|json|binary)
#   path  METHOD PATH BODY         (PATH with %ff%fe for every {param})
NODE_PATH=$NPM_DIR/node_modules node - "$TOP/web-api/openapi.yaml" >"$T/cases" <<'JS'
const { readFileSync } = require('node:fs');
const YAML = require('yaml');
const spec = YAML.parse(readFileSync(process.argv[2], 'utf8'));
const deref = (o) => {
  while (o && o.$ref) o = o.$ref.replace(/^#\//, '').split('/').reduce((x, k) => x[k], spec);
  return o;
};
for (const [path, item] of Object.entries(spec.paths)) {
  for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
    const op = item[method];
    if (!op) continue;
    const types = Object.keys(deref(op.requestBody)?.content || {});
    const body = types.includes('application/json') ? 'json' : types.length ? 'binary' : 'none';
    const params = [...(item.parameters || []), ...(op.parameters || [])].map(deref);
    const filled = path.replace(/\{([^}]+)\}/g, (_, n) => (n === 'token_id' ? '1' : 'id1'));
    for (const p of params.filter((p) => p.in === 'query'))
      console.log(['query', method.toUpperCase(), filled, p.name, body].join('\t'));
    if (path.includes('{'))
      console.log(['path', method.toUpperCase(), path.replace(/\{[^}]+\}/g, '%ff%fe'), body].join('\t'));
  }
}
JS
(($(grep -c '^query' "$T/cases") >= 30)) || fail "too few query parameters found in the spec: $(cat "$T/cases")"
(($(grep -c '^path' "$T/cases") >= 20)) || fail "too few path parameters found in the spec"

# All cases in one curl run (a process per request would cost more than the
# request): $T/batch/N is case N's body, line N of $T/batch.out its status.
mkdir -p "$T/batch"
n=0
while IFS=$'\t' read -r kind method path a b; do
	n=$((n + 1))
	[[ $kind == query ]] && url="$API$path?$a=%ff%fe" body=$b || url="$API$path" body=$a
	((n == 1)) || echo next
	printf 'url = "%s"\nrequest = "%s"\noutput = "%s/batch/%d"\n' "$url" "$method" "$T" "$n"
	printf 'header = "Authorization: Bearer %s"\n' "$ADMIN"
	case $body in
	json) printf 'header = "Content-Type: application/json"\ndata = "{}"\n' ;;
	binary) printf 'header = "Content-Type: application/octet-stream"\ndata = "x"\n' ;;
	esac
	printf 'write-out = "%%{http_code}\\t%%{content_type}\\n"\n'
done <"$T/cases" >"$T/batch.cfg"
curl -sS -K "$T/batch.cfg" >"$T/batch.out" || fail "the batch did not run"
[[ $(wc -l <"$T/batch.out") == "$n" ]] || fail "$(wc -l <"$T/batch.out") answers to $n requests"

log "every query parameter and every path parameter: %ff%fe -> 400 naming it"
# case number, error code, field, message: one jq for all answers
for ((i = 1; i <= n; i++)); do
	jq -r --arg i "$i" '[$i, .error.code, .error.field, .error.message] | @tsv' "$T/batch/$i" ||
		echo "$i"
done >"$T/batch.err"
queries=0 paths=0 n=0
while IFS=$'\t' read -r kind method path a _ <&3; do
	n=$((n + 1))
	IFS=$'\t' read -r code ctype <&4
	IFS=$'\t' read -r i ecode field message <&5
	printf '%s\t%s\t%s\t%s\t%s\n' "$method" "$path" "$code" "$ctype" "$(base64 -w0 "$T/batch/$n")" >>"$RESPONSES"
	[[ $kind == path ]] && want="path" || want="$a query parameter is not valid UTF-8"
	[[ $kind == path ]] && got=$field || got="$field $message"
	[[ $i == "$n" && $code == 400 && $ecode == bad_request && $got == "$want" ]] ||
		fail "$method $path${a:+?$a}: HTTP $code $(head -c 300 "$T/batch/$n")"
	[[ $kind == path ]] && paths=$((paths + 1)) || queries=$((queries + 1))
done 3<"$T/cases" 4<"$T/batch.out" 5<"$T/batch.err"
log "$queries query parameters and $paths path parameters refused"

# refused FIELD WHAT: 400 bad_request naming FIELD
refused() {
	expect 400 bad_request
	[[ $(jbody .error.field) == "$1" ]] || fail "$2: field $(jbody .error.field), not $1: $(body)"
}

log "other malformed forms, and the operations without parameters"
for bad in "%c3" "ok%c3" "%c0%af" "%e0%80%af" "%ed%a0%80" "%f4%90%80%80" "%80" "%f8%88%80%80%80"; do
	TOKEN=$ADMIN api GET "/api/v1/devices?model=$bad"
	refused model "model=$bad"
	TOKEN=$ADMIN api GET "/api/v1/devices/dev$bad"
	refused path "/devices/dev$bad"
done
# valid UTF-8 is fine: no such model, an empty page
TOKEN=$ADMIN api GET "/api/v1/devices?model=caf%c3%a9-%f0%9f%98%80"
expect 200
[[ $(jbody '.items | length') == 0 ]] || fail "a UTF-8 model matched: $(body)"
TOKEN=$ADMIN api GET "/api/v1/me?x=%ff%fe"
refused query "/me?x"
TOKEN=$ADMIN api POST "/api/v1/rootlists?x=%ff%fe" -H 'Content-Type: application/octet-stream' --data-binary x
refused query "/rootlists?x"

log "JSON strings: invalid UTF-8, lone surrogates and NUL are malformed JSON"
printf '{"group_id":"g\xff\xfe","kind":"static"}' >"$T/bad.json"
TOKEN=$ADMIN api POST /api/v1/groups -H 'Content-Type: application/json' --data-binary @"$T/bad.json"
expect 400 bad_json
TOKEN=$ADMIN api POST /api/v1/tokens -H 'Content-Type: application/json' -d '{"name":"a\ud800","role":"viewer"}'
expect 400 bad_json
TOKEN=$ADMIN api PUT /api/v1/devices/dev-1/tags -H 'Content-Type: application/json' -d '{"tags":["a\u0000b"]}'
expect 400 bad_json
printf '{"tags":["eu\xc0\xaf"]}' >"$T/bad.json"
TOKEN=$ADMIN api PUT /api/v1/devices/dev-1/tags -H 'Content-Type: application/json' --data-binary @"$T/bad.json"
expect 400 bad_json

log "strings in a signed bundle: a manifest version that is not UTF-8 is a malformed manifest"
TOKEN=$ADMIN api POST "/api/v1/artifacts?id=fw-bad-utf8" -H 'Content-Type: application/octet-stream' \
	--data-binary @"$FX/fw-bad-utf8.otab"
expect 422 OTA_ERR_FORMAT

log "header values: a bearer token with invalid UTF-8 is no token"
TOKEN=$(printf 'fota_\xff\xfe%041d' 0) api GET /api/v1/me
expect 401 unauthorized

log "nothing changed, no statement failed, no 500"
[[ "$(db_state)" == "$BEFORE" ]] || fail "a refused request changed the database or the store"
! grep -q "statement failed" "$T/server.log" || fail "a statement failed: $(grep "statement failed" "$T/server.log" | head -3)"
! cut -f3 "$RESPONSES" | grep -q '^5' || fail "a 5xx answer: $(cut -f1-3 "$RESPONSES" | grep -P '\t5\d\d$' | head -3)"
check_server_exit

log "contract: every recorded response matches openapi.yaml"
NODE_PATH=$NPM_DIR/node_modules node "$TOP/tests/integration/web-api/validate_contract.mjs" \
	"$TOP/web-api/openapi.yaml" "$RESPONSES" --cover Operations || fail "responses do not match openapi.yaml"
log "PASS ($(wc -l <"$RESPONSES") responses)"
