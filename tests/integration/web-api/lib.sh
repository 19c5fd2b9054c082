#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Shared setup for the REST API tests: temp dir, private PostgreSQL on a free
# loopback port, migrated schema, signed fixtures, ota-server with its admin
# listener (no MQTT: the API does not need it). Everything is stopped by PID
# on exit, also on failure.
set -euo pipefail
: "${OTA_SERVER:?}" "${WA_FIXTURES:?}" "${TOP:?}"
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$TOP/tests/lsan.supp:print_suppressions=0}

source "$TOP/scripts/stack.sh" # the stack's pieces, shared with the demo and the bench
stack_use_tmpfs
stack_init fleetota-webapi-test
T=$STACK
SERVER_PID=
SERVER_STATUS=0
PG_FROZEN=
FAILED=0
RESPONSES=$T/responses.tsv
: >"$RESPONSES"

log() { echo "[$(date +%T)] $*"; }
fail() {
	echo "FAIL: $*" >&2
	FAILED=1
	exit 1
}

free_port() { stack_free_port; }

stop_server() {
	[[ -n "$SERVER_PID" ]] || return 0
	STACK_STOP_PID=$SERVER_PID stack_server_stop
	SERVER_PID= SERVER_STATUS=$STACK_SERVER_STATUS
}

cleanup() {
	local rc=$?
	set +e
	pg_thaw
	stop_server
	stack_stop immediate
	if [[ $rc != 0 || $FAILED != 0 ]]; then
		echo "---- ota-server log (tail)"
		tail -40 "$T/server.log" 2>/dev/null
		echo "---- last response"
		cat "$T/status" "$T/body" 2>/dev/null
	fi
	# before/after comparisons: keep what was recorded (normalize_responses.py)
	[[ -z ${WA_KEEP_RESPONSES:-} ]] || cp "$RESPONSES" "$WA_KEEP_RESPONSES"
	stack_cleanup
	exit $rc
}
trap cleanup EXIT
# a test runner's timeout (TERM) or Ctrl-C must still stop what we started
trap 'exit 143' TERM
trap 'exit 130' INT

PG_PORT=$(free_port)
DEV_PORT=$(free_port)
API_PORT=$(free_port)
PKI=$T/pki
STORE=$T/store
FX=$T/fixtures
API=http://127.0.0.1:$API_PORT

# A hung database (not a down one): pg_freeze stops the private cluster's
# postmaster and every process it started (backends included) with SIGSTOP,
# by the PIDs of its pidfile; pg_thaw continues them (cleanup does too).
pg_freeze() {
	local pm
	pm=$(head -1 "$T/pg/data/postmaster.pid")
	[[ $pm =~ ^[0-9]+$ ]] || fail "no postmaster pid"
	PG_FROZEN="$pm $(ps -o pid= --ppid "$pm" | tr '\n' ' ')"
	# shellcheck disable=SC2086 # a list of PIDs
	kill -STOP $PG_FROZEN
}
pg_thaw() {
	[[ -n "$PG_FROZEN" ]] || return 0
	# shellcheck disable=SC2086
	kill -CONT $PG_FROZEN 2>/dev/null
	PG_FROZEN=
}

sql() { psql "host=$T/pg port=$PG_PORT dbname=fleetota user=postgres" -v ON_ERROR_STOP=1 -Atq "$@"; }
sql_eq() { [[ "$(sql -c "$2")" == "$1" ]]; }

# npm tools (pinned by package-lock.json) in a cache outside the repository.
NPM_LOCK=$TOP/tests/integration/web-api/npm/package-lock.json
NPM_DIR=${FLEETOTA_NPM_CACHE:-$HOME/.cache/fleetota/npm}/webapi-$(sha256sum "$NPM_LOCK" | cut -c1-16)
npm_tools() {
	local lock=$NPM_LOCK
	if [[ ! -x "$NPM_DIR/node_modules/.bin/redocly" || ! -d "$NPM_DIR/node_modules/ajv" ]]; then
		mkdir -p "$NPM_DIR"
		cp "$TOP/tests/integration/web-api/npm/package.json" "$lock" "$NPM_DIR/"
		(cd "$NPM_DIR" && npm ci --no-audit --no-fund --loglevel=error >"$NPM_DIR/install.log" 2>&1) ||
			{ cat "$NPM_DIR/install.log"; fail "npm ci failed"; }
	fi
}

wa_migrate() {
	"$OTA_SERVER" migrate --config "$T/server.conf" >"$T/migrate.log" 2>&1 ||
		{ cat "$T/migrate.log"; fail "migrate"; }
}

setup_world() {
	mkdir -p "$STORE" "$FX"
	# the CAs and server certificates: copies of the tests' shared template
	PKI_TEMPLATE=${STACK_TMPDIR:-/tmp}/fleetota-pki-template-$EUID "$TOP/scripts/pki.sh" "$PKI" dev-1 dev-4 \
		>/dev/null 2>&1 || fail "pki"
	stack_server_conf "$T/server.conf" "$PKI" "$T/pg" "$PG_PORT" "$DEV_PORT" "$STORE" \
		db_pool_size=2 \
		"admin_listen=127.0.0.1:$API_PORT" \
		"admin_max_upload_bytes=${MAX_UPLOAD:-8388608}" \
		http_timeout_sec=5 \
		"console_dir=$TOP/web-api/console" \
		log_level=info
	# the migrated schema: a copy of the first test's (stack.sh)
	stack_pg_start_prepared "$T/pg" "$PG_PORT" "$(stack_migrations_tag ota-server)" wa_migrate
	"$WA_FIXTURES" "$FX" || fail "fixtures"
	sql -c "INSERT INTO devices (device_id, model, hw_revision, version, version_code,
			keylist_version, tags, state, last_seen)
		VALUES ('dev-1', 'fx-model', 'rev-a', '1.0.0', 1, 1, '{eu,lab}', 'idle', now()),
		       ('dev-2', 'fx-model', 'rev-b', '1.0.0', 1, 1, '{eu}', 'idle', now() - interval '2 days'),
		       ('dev-3', 'gw-200', 'rev-a', '2.0.0', 7, 0, '{us}', 'idle', NULL),
		       ('dev-4', 'fx-model', 'rev-a', '1.1.0', 2, 2, '{}', 'confirmed', now())"
	sql -c "INSERT INTO device_events (device_id, seq, kind, version, version_code)
		VALUES ('dev-1', 1, 'booted', '1.0.0', 1), ('dev-1', 2, 'install_started', '1.0.0', 1)"
}

healthz() { curl -s -o /dev/null "$API/healthz"; }
start_server() {
	STACK_SERVER_READY=healthz stack_server_start "$T/server.conf" "$T/server.log"
	SERVER_PID=$STACK_SERVER_PID
}

check_server_exit() {
	stop_server
	[[ $SERVER_STATUS == 0 ]] || fail "ota-server exited with $SERVER_STATUS (sanitizer report?)"
}

new_token() { # ROLE NAME
	"$OTA_SERVER" token create --role "$1" --name "$2" --config "$T/server.conf"
}

# server_ms "CODE PRETRANSFER TOTAL ...": curl's times (seconds, 6 decimals)
# to the ms from the request sent (after connect and TLS) to the response's
# end, into $T/time.
server_ms() {
	local code pre total
	read -r code pre total _ <<<"$1"
	pre=${pre/./}
	total=${total/./}
	echo $(((10#${total:-0} - 10#${pre:-0}) / 1000)) >"$T/time"
}

# api METHOD PATH [curl args...]: body in $T/body, status in $T/status, the
# server's time to answer in $T/time (ms, from the request sent to the end of
# the response); every response is recorded for the contract check against
# openapi.yaml.
api() {
	local method=$1 path=$2 out
	shift 2
	out=$(curl -sS -X "$method" -o "$T/body" -w '%{http_code} %{time_pretransfer} %{time_total} %{content_type}' \
		${TOKEN:+-H "Authorization: Bearer $TOKEN"} "$@" "$API$path") || true
	server_ms "$out"
	out="${out%% *} ${out#* * * }"
	echo "${out%% *}" >"$T/status"
	# method, path, status, content type, base64 body: one line per response
	printf '%s\t%s\t%s\t%s\t' "$method" "${path%%\?*}" "${out%% *}" "${out#* }" >>"$RESPONSES"
	base64 -w0 "$T/body" >>"$RESPONSES"
	echo >>"$RESPONSES"
}
status() { cat "$T/status"; }

# dev_get DEVICE PATH: a device's mTLS request to the delivery listener;
# prints the HTTP status (its time in $T/time, as api's).
dev_get() {
	local out
	out=$(curl -sS -m 20 -o /dev/null -w '%{http_code} %{time_pretransfer} %{time_total}' --cacert "$PKI/server-ca.crt" \
		--cert "$PKI/devices/$1.crt" --key "$PKI/devices/$1.key" \
		"https://127.0.0.1:$DEV_PORT$2") || true
	server_ms "$out"
	echo "${out%% *}"
}
body() { cat "$T/body"; }
jbody() { jq -r "$1" "$T/body"; }

# expect STATUS [CODE]: the last response had this status (and error code).
expect() {
	local got body
	got=$(<"$T/status")
	[[ "$got" == "$1" ]] || fail "expected HTTP $1, got $got: $(head -c 400 "$T/body")"
	if [[ $# -ge 2 ]]; then
		body=$(<"$T/body")
		[[ $body =~ ^\{\"error\":\{\"code\":\"([^\"]*)\" && ${BASH_REMATCH[1]} == "$2" ]] ||
			fail "expected error $2, got: $(head -c 400 "$T/body")"
	fi
}

# A batch of requests sent by one curl process, in order, on one
# connection (a curl and a jq per request is most of this suite's CPU):
#   batch_add METHOD PATH STATUS CODE CHECK [CONTENT-TYPE BODY-FILE [HEADER...]]
# queues a request with $TOKEN (and the extra HEADERs) and what its answer
# must be: the HTTP status, the error code ("" for none) and CHECK: "" or
# "items0" (.items is empty) or "field=NAME" (.error.field is NAME).
# batch_run sends them, records every response for the contract check (as
# api does) and asserts each one's status, error code and CHECK, with one
# jq for all bodies.
BATCH_N=0
BATCH_CHECKED=()
batch_cfg() { # OPTION VALUE: a curl config line, VALUE double-quoted
	local v=${2//\\/\\\\}
	printf '%s = "%s"\n' "$1" "${v//\"/\\\"}"
}
batch_add() {
	local method=$1 path=$2 h
	((BATCH_N > 0)) || { mkdir -p "$T/batch" && : >"$T/batch.cfg" && : >"$T/batch.expect" && BATCH_CHECKED=(); }
	BATCH_N=$((BATCH_N + 1))
	{
		((BATCH_N == 1)) || echo next
		batch_cfg url "$API$path"
		batch_cfg request "$method"
		[[ -z ${TOKEN:-} ]] || batch_cfg header "Authorization: Bearer $TOKEN"
		if [[ $# -ge 7 ]]; then
			batch_cfg header "Content-Type: $6"
			batch_cfg data-binary "@$7"
			for h in "${@:8}"; do batch_cfg header "$h"; done
		fi
		batch_cfg output "$T/batch/$BATCH_N"
		echo 'write-out = "%{http_code}\t%{content_type}\n"'
	} >>"$T/batch.cfg"
	# fields apart by \x1f: empty ones (no error code, no check) stay fields
	printf '%s\x1f%s\x1f%s\x1f%s\x1f%s\n' "$method" "${path%%\?*}" "$3" "$4" "$5" >>"$T/batch.expect"
	[[ -z $5 ]] || BATCH_CHECKED+=("$BATCH_N")
}
batch_run() {
	local i=0 k=0 method path want code check got ctype body items field
	local -a codes ctypes checks
	curl -sS -K "$T/batch.cfg" >"$T/batch.out" || true
	mapfile -t codes < <(cut -f1 "$T/batch.out")
	mapfile -t ctypes < <(cut -f2 "$T/batch.out")
	((${#codes[@]} == BATCH_N)) || fail "batch: $BATCH_N requests, ${#codes[@]} answers"
	# the bodies a CHECK reads: .items' length and .error.field (one jq)
	if ((${#BATCH_CHECKED[@]} > 0)); then
		mapfile -t checks < <(printf "$T/batch/%s\n" "${BATCH_CHECKED[@]}" |
			xargs jq -r '[(.items | length), (.error.field // "")] | @tsv')
		((${#checks[@]} == ${#BATCH_CHECKED[@]})) ||
			fail "batch: ${#BATCH_CHECKED[@]} bodies to check, ${#checks[@]} read"
	fi
	# the responses' records, as api writes them (one process, not a base64 each)
	python3 - "$T" "$BATCH_N" >>"$RESPONSES" <<'PY' || fail "batch: recording the responses"
import base64, sys
t, n = sys.argv[1], int(sys.argv[2])
sent = [l.rstrip("\n").split("\x1f") for l in open(f"{t}/batch.expect")]
got = [l.rstrip("\n").split("\t") for l in open(f"{t}/batch.out")]
for i in range(n):
    body = base64.b64encode(open(f"{t}/batch/{i + 1}", "rb").read()).decode()
    print(sent[i][0], sent[i][1], got[i][0], got[i][1], body, sep="\t")
PY
	i=0
	while IFS=$'\x1f' read -r method path want code check; do
		got=${codes[i]}
		ctype=${ctypes[i]}
		i=$((i + 1))
		[[ $got == "$want" ]] || fail "batch request $i ($method $path): expected HTTP $want, got $got: $(head -c 400 "$T/batch/$i")"
		if [[ -n $code ]]; then
			body=$(<"$T/batch/$i")
			[[ $body =~ ^\{\"error\":\{\"code\":\"([^\"]*)\" && ${BASH_REMATCH[1]} == "$code" ]] ||
				fail "batch request $i ($method $path): expected error $code, got: $(head -c 400 "$T/batch/$i")"
		fi
		[[ -z $check ]] || IFS=$'\t' read -r items field <<<"${checks[k++]}"
		case $check in
		items0) [[ $items == 0 ]] || fail "batch request $i ($method $path): $items items, expected none" ;;
		field=*) [[ $field == "${check#field=}" ]] ||
			fail "batch request $i ($method $path): error field '$field', expected '${check#field=}'" ;;
		esac
	done <"$T/batch.expect"
	BATCH_N=0
}

# The whole observable state: every API table and the image store.
db_state() {
	sql -c "SELECT md5(string_agg(t, '|')) FROM (
		SELECT (SELECT md5(coalesce(string_agg(d::text, ',' ORDER BY device_id), '')) FROM devices d) AS t
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(a::text, ',' ORDER BY artifact_id), '')) FROM artifacts a)
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(k::text, ',' ORDER BY version), '')) FROM keylists k)
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(r::text, ',' ORDER BY version), '')) FROM rootlists r)
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) FROM api_tokens t)
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(g::text, ',' ORDER BY group_id), '')) FROM device_groups g)
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(m::text, ',' ORDER BY group_id, device_id), '')) FROM device_group_members m)
		UNION ALL SELECT (SELECT count(*)::text FROM audit)) s"
	ls -A "$STORE" | sort | md5sum
}
