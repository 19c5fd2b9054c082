#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Shared setup for the server integration tests: a temp dir, a dev PKI, a
# private PostgreSQL and mosquitto on free loopback ports, ota-server; all
# stopped by PID on exit, also on failure.
set -euo pipefail
: "${OTA_SERVER:?}" "${SRV_TESTTOOL:?}" "${TOP:?}"
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$TOP/tests/lsan.supp:print_suppressions=0}

# The stack's pieces come from scripts/stack.sh (shared with the demo and
# the bench); this file keeps the tests' names for them.
source "$TOP/scripts/stack.sh"
stack_use_tmpfs
stack_init fleetota-srv-test
T=$STACK
SERVER_PID=
SERVER_STATUS=0
FAILED=0

log() { echo "[$(date +%T)] $*"; }
fail() {
	echo "FAIL: $*" >&2
	FAILED=1
	exit 1
}

free_port() { stack_free_port; }

# Tests stop their own extra processes by registering a hook here, never by
# replacing the EXIT trap: the trap must keep the test's exit status.
CLEANUP_HOOKS=()
at_cleanup() { CLEANUP_HOOKS+=("$1"); }

cleanup() {
	local rc=$?
	set +e
	((FAILED == 0)) || ((rc != 0)) || rc=1
	local hook
	for hook in "${CLEANUP_HOOKS[@]+"${CLEANUP_HOOKS[@]}"}"; do
		"$hook"
	done
	stop_server
	stack_stop immediate
	if [[ $rc != 0 || $FAILED != 0 ]]; then
		echo "---- ota-server log (tail)"
		tail -${SERVER_LOG_TAIL:-40} "$T/server.log" 2>/dev/null
		# the other servers a test started (server2.log, server-nc.log, ...)
		local extra
		for extra in "$T"/server?*.log; do
			[[ -f $extra ]] || continue
			echo "---- $(basename "$extra") (tail)"
			tail -${SERVER_LOG_TAIL:-40} "$extra" 2>/dev/null
		done
		echo "---- mosquitto log (tail)"
		tail -15 "$T/mq/mosquitto.log" 2>/dev/null
	fi
	stack_cleanup
	exit $rc
}
trap cleanup EXIT
# a test runner's timeout (TERM) or Ctrl-C must still stop what we started
trap 'exit 143' TERM
trap 'exit 130' INT

PG_PORT=$(free_port)
MQ_PORT=$(free_port)
DEV_PORT=$(free_port)
PKI=$T/pki
STORE=$T/fixtures/store

# The dev PKI with server MQTT identities ota-server:1 and ota-server:2; its
# CAs and server certificates are copies of a template the tests share
# (pki.sh: PKI_TEMPLATE, beside the stacks), its devices its own.
PKI_TEMPLATE_PREFIX=${STACK_TMPDIR:-/tmp}/fleetota-pki-template-$EUID
setup_pki() {
	PKI_TEMPLATE=$PKI_TEMPLATE_PREFIX "$TOP/scripts/pki.sh" "$PKI" "$@"
	"$TOP/scripts/pki.sh" server "$PKI" 2
}

start_pg() { stack_pg_start "$T/pg" "$PG_PORT"; }
stop_pg() { stack_pg_stop "$T/pg"; }
start_broker() { stack_broker_start "$T/mq" "$MQ_PORT" "$PKI"; }
stop_broker() { stack_broker_stop "$T/mq"; }

sql() { psql "host=$T/pg port=$PG_PORT dbname=fleetota user=postgres" -v ON_ERROR_STOP=1 -Atq "$@"; }

write_config() {
	stack_server_conf "$T/server.conf" "$PKI" "$T/pg" "$PG_PORT" "$DEV_PORT" "$STORE" \
		"# written by tests/integration/server/lib.sh" \
		db_pool_size=2 \
		"rate_per_sec=${RATE_PER_SEC:-20}" \
		"rate_burst=${RATE_BURST:-40}" \
		"report_rate_per_sec=${REPORT_RATE:-2}" \
		"report_burst=${REPORT_BURST:-30}" \
		http_timeout_sec=3 \
		"mqtt=$MQ_PORT" \
		notify_poll_ms=200 \
		log_level=debug \
		"${SERVER_CONF_EXTRA:-}"
	if [[ -n "${API_PORT:-}" ]]; then
		echo "admin_listen = 127.0.0.1:$API_PORT" >>"$T/server.conf"
	fi
}

# second_server_config DEVICE_PORT OUT: the config of a second instance
# (its own device port and MQTT identity ota-server:2)
second_server_config() {
	sed -e "s/^device_listen = .*/device_listen = 127.0.0.1:$1/" \
		-e "s|/servers/1\.|/servers/2.|" "$T/server.conf" >"$2"
}

migrate() { "$OTA_SERVER" migrate --config "$T/server.conf"; }
migrate_quiet() { migrate >/dev/null 2>&1 || { migrate; fail "migrate"; }; }

# start_pg_migrated: start_pg with the schema that `migrate` makes (needs the
# config: write_config first). The first cluster of these migrations runs
# `ota-server migrate` and is kept as a template, the others are copies of
# it with no migrate of their own (stack_migrations_tag: a copy holds what a
# migrate would have made).
start_pg_migrated() {
	stack_pg_start_prepared "$T/pg" "$PG_PORT" "$(stack_migrations_tag ota-server)" migrate_quiet
}

# start_server: waits for the database and the broker (the config's env
# OTA_ROLLOUT_* and the like pass through to the server)
start_server() {
	stack_server_start "$T/server.conf" "$T/server.log" "mqtt connected" "db connection 0 up"
	SERVER_PID=$STACK_SERVER_PID
}

# Stops the server with SIGTERM; a sanitizer report makes its status non-zero.
stop_server() {
	[[ -n "$SERVER_PID" ]] || return 0
	STACK_STOP_PID=$SERVER_PID stack_server_stop
	SERVER_PID= SERVER_STATUS=$STACK_SERVER_STATUS
}

check_server_exit() {
	stop_server
	[[ $SERVER_STATUS == 0 ]] || fail "ota-server exited with $SERVER_STATUS (sanitizer report?)"
}

# dev_curl DEVICE PATH [curl args...]: prints the body, status in $T/status
dev_curl() {
	local dev=$1 path=$2
	shift 2
	curl -sS --cacert "$PKI/server-ca.crt" --cert "$PKI/devices/$dev.crt" \
		--key "$PKI/devices/$dev.key" -o "$T/body" -w '%{http_code}' \
		"$@" "https://127.0.0.1:$DEV_PORT$path" >"$T/status" || true
}
status() { cat "$T/status"; }

mq_pub() { # DEVICE TOPIC FILE
	mosquitto_pub -V 5 -q 1 -h 127.0.0.1 -p "$MQ_PORT" --cafile "$PKI/server-ca.crt" \
		--cert "$PKI/devices/$1.crt" --key "$PKI/devices/$1.key" -t "$2" -f "$3"
}

# mq_sub_bg DEVICE CLIENT_ID OUT: a long-lived subscriber on DEVICE's cmd
# topic in the background (its messages, one per line, in OUT); sets MQ_SUB_PID
# and stops it at cleanup.
MQ_SUB_PIDS=()
stop_mq_subs() {
	local pid
	for pid in "${MQ_SUB_PIDS[@]+"${MQ_SUB_PIDS[@]}"}"; do
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	MQ_SUB_PIDS=()
}
at_cleanup stop_mq_subs
mq_sub_bg() {
	mosquitto_sub -V 5 -q 1 -h 127.0.0.1 -p "$MQ_PORT" --cafile "$PKI/server-ca.crt" \
		--cert "$PKI/devices/$1.crt" --key "$PKI/devices/$1.key" -i "$2" \
		-t "fleetota/v1/$1/cmd" -F '%x' >"$3" 2>"$3.err" &
	MQ_SUB_PID=$!
	MQ_SUB_PIDS+=("$MQ_SUB_PID")
}

report() { # DEVICE TOPIC_DEVICE SEQ STATE VERSION CODE COUNTER [ARTIFACT] [EVENTS...]
	local dev=$1 topic_dev=$2
	shift 2
	local f="$T/report.$RANDOM.bin"
	"$SRV_TESTTOOL" report "$f" "$dev" "$@"
	mq_pub "$dev" "fleetota/v1/$topic_dev/status" "$f"
}

# pub DEVICE FIRST_SEQ COUNT [PER_SEC]: QoS 1 reports, all acknowledged by the
# broker when it returns (srv_mqttpub.c)
pub() {
	"$SRV_MQTTPUB" 127.0.0.1 "$MQ_PORT" "$PKI/server-ca.crt" "$PKI/devices/$1.crt" \
		"$PKI/devices/$1.key" "$@"
}

# What a report may change: devices, their events, assignments, campaign
# state (audit rows are counted apart).
db_fingerprint() {
	sql -c "SELECT md5(string_agg(t, '|')) FROM (
		SELECT (SELECT md5(coalesce(string_agg(d::text, ',' ORDER BY device_id), '')) FROM devices d) AS t
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(e::text, ',' ORDER BY id), '')) FROM device_events e)
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(a::text, ',' ORDER BY device_id, artifact_id), ''))
			FROM assignments a)
		UNION ALL SELECT (SELECT md5(coalesce(string_agg(c::text, ',' ORDER BY campaign_id, device_id), ''))
			FROM campaign_devices c)) s"
}

# metric NAME_WITH_LABELS: its value on /metrics (needs API_PORT and TOKEN)
metric() {
	curl -sS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$API_PORT/metrics" |
		awk -v m="$1" '$1 == m { print $2 }'
}

wait_for() { # SECONDS COMMAND...: retries the command until it succeeds
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

sql_eq() { # EXPECTED SQL
	[[ "$(sql -c "$2")" == "$1" ]]
}

# Standard world: PKI, PostgreSQL, broker, migrated schema, fixtures, server.
standard_setup() {
	setup_pki dev-1 dev-2 dev-3
	write_config
	start_pg_migrated
	start_broker
	mkdir -p "$T/fixtures"
	"$SRV_TESTTOOL" fixtures "$T/fixtures" art-1:1.1.0:2:300000 art-2:1.2.0:3:1000 >/dev/null
	# one psql, one session for all (each -f and -c as its own psql would)
	sql -f "$T/fixtures/trust.sql" -f "$T/fixtures/art-1.sql" -f "$T/fixtures/art-2.sql" \
		-c "INSERT INTO devices (device_id, model, hw_revision, version, version_code, security_counter)
		VALUES ('dev-1', 'fx-model', 'rev-a', '1.0.0', 1, 1),
		       ('dev-2', 'fx-model', 'rev-a', '1.0.0', 1, 1),
		       ('dev-3', 'fx-model', 'rev-a', '1.0.0', 1, 1)"
	start_server
}

# ---- a test's own background processes, ota-agent and ota-keys ----

# stop_bg VAR: TERM to the process whose PID $VAR holds, then wait for it;
# VAR is emptied and the exit status kept in BG_STATUS.
stop_bg() {
	local -n bg_pid=$1
	BG_STATUS=0
	[[ -n "$bg_pid" ]] || return 0
	kill -TERM "$bg_pid" 2>/dev/null || true
	wait "$bg_pid" 2>/dev/null || BG_STATUS=$?
	bg_pid=
}

# agent_config FILE DEVICE STATE_DIR SLOT_SIZE [LINE...]: an ota-agent config
# for DEVICE of the fixtures' fx-model against this stack (its certificate,
# the server pinned, the broker), then each LINE.
agent_config() {
	local file=$1 device=$2 state=$3 slot=$4 line
	shift 4
	cat >"$file" <<CONF
state_dir = $state
device_id = $device
model = fx-model
hw_revision = rev-a
slot_size = $slot
server_url = https://127.0.0.1:$DEV_PORT
broker_url = ssl://127.0.0.1:$MQ_PORT
ca_file = $PKI/server-ca.crt
device_cert = $PKI/devices/$device.crt
device_key = $PKI/devices/$device.key
server_pins = $(cat "$PKI/server.pin")
CONF
	for line in "$@"; do echo "$line"; done >>"$file"
}

# agent_provision CONF: the fixtures' RootList and KeyList (ota-agent provision).
agent_provision() {
	"$OTA_AGENT" provision --config "$1" --rootlist "$T/fixtures/rootlist.bin" \
		--keylist "$T/fixtures/keylist.bin" >/dev/null
}

# start_agent CONF DEVICE: `ota-agent run` in the background (AGENT_PID, log
# $T/agent.log, stopped on exit) until DEVICE's first report is stored.
AGENT_PID=
AGENT_STATUS=0
stop_agent() {
	stop_bg AGENT_PID
	AGENT_STATUS=$BG_STATUS
}
at_cleanup stop_agent
start_agent() {
	"$OTA_AGENT" run --config "$1" >>"$T/agent.log" 2>&1 &
	AGENT_PID=$!
	wait_for 20 sql_eq "1" "SELECT keylist_version FROM devices WHERE device_id = '$2'" ||
		fail "no start report: $(tail -5 "$T/agent.log")"
}

# sign_firmware DIR [NAME]: with $OTA_KEYS in DIR, RootList v1 (1 of 1,
# roots/rootlist-1.signed), KeyList v1 (kl.signed) and two security updates
# of fx-model: fw-1.0.0.{manifest,otab} (code 100, counter 1) and
# fw-1.1.0.{manifest,otab} (code 110, counter 2, min installed 100, image
# name NAME, default its file name); each image 100,000 random bytes.
sign_firmware() {
	local dir=$1 name11=${2:-fw-1.1.0.img}
	mkdir -p "$dir"
	export OTA_KEYS_AUDIT_LOG=$dir/audit.log
	(
		cd "$dir"
		"$OTA_KEYS" root-init --out-dir roots -n 1 -k 1 >/dev/null
		"$OTA_KEYS" op-new --out op >/dev/null
		"$OTA_KEYS" keylist new --out kl.signed --add op.pub --rootlist roots/rootlist-1.signed \
			--key roots/root-1.key --finalize >/dev/null
		local v ver code counter min name
		for v in 1.0.0:100:1:0 1.1.0:110:2:100; do
			IFS=: read -r ver code counter min <<<"$v"
			head -c 100000 /dev/urandom >"fw-$ver.img"
			name=fw-$ver.img
			[[ $ver == 1.0.0 ]] || name=$name11
			"$OTA_KEYS" sign --key op.key --keylist kl.signed \
				--rootlist roots/rootlist-1.signed --image "fw-$ver.img" --image-name "$name" \
				--product fx-model --version "$ver" --version-code "$code" \
				--security-counter "$counter" --min-installed "$min" --security-update \
				--manifest-out "fw-$ver.manifest" --bundle-out "fw-$ver.otab" >/dev/null
		done
	) || fail "ota-keys"
}
