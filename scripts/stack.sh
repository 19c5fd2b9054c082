# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# The fleetota stack on loopback, as one library that the integration tests,
# `make demo` (scripts/demo.sh) and `make bench` (bench/run.sh) source:
# a private directory, free loopback ports, PostgreSQL (scripts/pg.sh),
# mosquitto (scripts/mosquitto.sh), the dev PKI (scripts/pki.sh), the
# server's config, ota-server started and stopped by PID, and a cleanup
# that stops everything by PID and removes the directory.
#
#   source "$TOP/scripts/stack.sh"
#   stack_init NAME              STACK=/tmp/NAME.XXXXXX (chmod 711: the
#                                `postgres` user reaches its cluster there;
#                                STACK_TMPDIR instead of /tmp)
#   stack_use_tmpfs              the tests' choice: STACK_TMPDIR and the
#                                PostgreSQL template (PG_TEMPLATE_DIR) on
#                                /dev/shm when it has 2 GiB free
#   stack_free_port              a free loopback port in 20000-31999, reserved
#                                for this shell until stack_release_ports:
#                                tests that run at the same time never pick
#                                the same one
#   stack_pki DIR [DEVICE_ID...] the dev PKI (pki.sh), quiet
#   stack_pg_start DIR PORT      PostgreSQL, database fleetota; stack_pg_stop DIR
#   stack_pg_start_prepared DIR PORT TAG COMMAND...
#                                the same, its database as COMMAND leaves it:
#                                the first cluster of TAG runs COMMAND and is
#                                kept as TAG's template (pg.sh keep), the
#                                others are copies of it. TAG must name all
#                                that COMMAND does (say, a hash of the
#                                migrations it applies).
#   stack_migrations_tag HOW     such a TAG for a database migrated by HOW
#                                (say, ota-server): a hash of every file
#                                `ota-server migrate` applies and of its code
#   stack_broker_start DIR PORT PKI   mosquitto; stack_broker_stop DIR
#   stack_server_conf OUT PKI PG_DIR PG_PORT DEVICE_PORT STORE [KEY=VALUE...]
#                                an ota-server config: the database, the
#                                migrations, the device listener with PKI's
#                                certificates, the store, then the given keys
#                                in order (one per argument, "KEY=VALUE" or a
#                                whole "KEY = VALUE" line; "mqtt=PORT": the
#                                broker on PORT as PKI's ota-server:1)
#   stack_server_start CONF LOG [UNTIL...]
#                                ota-server in the background (STACK_SERVER_PID;
#                                env STACK_SERVER_ENV=(K=V...) for its
#                                environment), waits until LOG holds every
#                                UNTIL line and, when STACK_SERVER_READY
#                                names a command, until it succeeds (with
#                                neither: "db connection 0 up", and "mqtt
#                                connected" when CONF has mqtt_url)
#   stack_server_stop [SIGNAL [SECONDS]]
#                                stops it by PID (TERM; after SECONDS, KILL
#                                when SECONDS is given), its exit status in
#                                STACK_SERVER_STATUS; STACK_STOP_PID=PID
#                                stack_server_stop stops a server the caller
#                                started itself
#   stack_stop [immediate]       server, broker and PostgreSQL under STACK
#                                (immediate: PostgreSQL without its shutdown
#                                checkpoint, for a cluster about to be removed)
#   stack_cleanup                stack_stop immediate, then removes STACK and
#                                releases the ports (from an EXIT trap)
#
# Failures call `fail` when the sourcing script defines it, else exit 1.
# Nothing here installs a trap: each user keeps its own exit path (the demo's
# removes the private keys first, whatever stops the rest).

STACK_TOP=${STACK_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
STACK=
STACK_SERVER_PID=
STACK_SERVER_STATUS=0
STACK_SERVER_ENV=()
STACK_PORT_DIR=${STACK_PORT_DIR:-/tmp/fleetota-ports}
# psql straight from PostgreSQL's bindir: Debian's /usr/bin/psql is a Perl
# wrapper that doubles the CPU of each call, and tests poll with psql
if [[ -n ${PG_BINDIR:-} ]]; then
	STACK_PG_BINDIR=$PG_BINDIR
elif [[ -d /usr/lib/postgresql/15/bin ]]; then
	STACK_PG_BINDIR=/usr/lib/postgresql/15/bin
else
	STACK_PG_BINDIR=$(dirname "$(command -v initdb || command -v psql)")
fi
[[ ! -x "$STACK_PG_BINDIR/psql" || ":$PATH:" == *":$STACK_PG_BINDIR:"* ]] || PATH=$STACK_PG_BINDIR:$PATH

stack_fail() {
	if declare -F fail >/dev/null; then
		fail "$@"
	fi
	echo "stack: $*" >&2
	exit 1
}

stack_init() { # NAME
	STACK=$(mktemp -d "${STACK_TMPDIR:-/tmp}/${1:?NAME}.XXXXXX")
	chmod 711 "$STACK"
}

# On this project's VMs a file made on ext4 costs far more system CPU than
# one on tmpfs: a cluster's copy of the template (1,267 files, 46 MB) took
# 0.6-1.2 s of CPU from /tmp to /tmp and 0.13-0.18 s from /dev/shm to
# /dev/shm, and the tests start some 70 clusters. The tests' stacks are
# throwaway: on tmpfs when there is room (a container's 64 MB /dev/shm is
# not), else /tmp; STACK_TMPDIR set by the caller wins.
stack_use_tmpfs() {
	[[ -z ${STACK_TMPDIR:-} ]] || return 0
	local avail
	[[ -d /dev/shm && -w /dev/shm ]] || return 0
	avail=$(df --output=avail -k /dev/shm 2>/dev/null) || return 0
	avail=${avail##*[!0-9]}
	((${avail:-0} >= 2097152)) || return 0
	export STACK_TMPDIR=/dev/shm PG_TEMPLATE_DIR=${PG_TEMPLATE_DIR:-/dev/shm}
}

# Free: nothing listens (connect fails, no socket in /proc/net/tcp), and no
# live shell holds its reservation (a directory named after it, holding the
# owner's PID; a dead owner's is taken over).
stack_free_port() {
	local p owner hex i
	# no process that bash does not need: every test takes 3-5 ports, and
	# a process costs 10-20 ms of CPU on a loaded machine
	[[ -d $STACK_PORT_DIR ]] ||
		{ mkdir -p "$STACK_PORT_DIR" 2>/dev/null && chmod 1777 "$STACK_PORT_DIR" 2>/dev/null; }
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000))
		printf -v hex '%04X' "$p"
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null ||
			grep -q ":$hex " /proc/net/tcp 2>/dev/null; then
			continue
		fi
		if ! mkdir "$STACK_PORT_DIR/$p" 2>/dev/null; then
			owner=
			read -r owner <"$STACK_PORT_DIR/$p/pid" 2>/dev/null || continue
			if [[ -z "$owner" ]] || kill -0 "$owner" 2>/dev/null; then
				continue
			fi
			rm -rf "${STACK_PORT_DIR:?}/$p"
			mkdir "$STACK_PORT_DIR/$p" 2>/dev/null || continue
		fi
		echo "$$" >"$STACK_PORT_DIR/$p/pid"
		echo "$p"
		return 0
	done
	stack_fail "no free port"
}

stack_release_ports() {
	local f owner mine=()
	# read, not $(cat): no process per reservation (every test's cleanup
	# walks all of them, its neighbours' too); one rm for this shell's
	for f in "$STACK_PORT_DIR"/*/pid; do
		owner=
		[[ -f "$f" ]] && read -r owner <"$f" 2>/dev/null
		[[ $owner == "$$" ]] && mine+=("${f%/pid}")
	done
	((${#mine[@]} == 0)) || rm -rf "${mine[@]}"
	return 0
}

stack_pki() { "$STACK_TOP/scripts/pki.sh" "$@" >/dev/null; }
stack_pg_start() { "$STACK_TOP/scripts/pg.sh" start "${1:?DIR}" "${2:?PORT}" fleetota >/dev/null; }
stack_pg_start_prepared() { # DIR PORT TAG COMMAND...
	local dir=${1:?DIR} port=${2:?PORT} tag=${3:?TAG}
	shift 3
	PG_TEMPLATE_TAG=$tag stack_pg_start "$dir" "$port"
	[[ ! -f "$dir/data/fleetota-template-tag" ]] || return 0
	"$@" || stack_fail "preparing the database ($*)"
	"$STACK_TOP/scripts/pg.sh" keep "$dir" "$port" fleetota "$tag"
}
stack_migrations_tag() { # HOW
	local files=("$STACK_TOP"/migrations/*.sql "$STACK_TOP"/migrations/code/*.sql
		"$STACK_TOP/server/src/core/migrate.c") h
	h=$({
		printf '%s\n' "${files[@]##*/}"
		cat "${files[@]}"
	} | sha256sum)
	echo "${1:?HOW}-${h:0:16}"
}
stack_pg_stop() { "$STACK_TOP/scripts/pg.sh" stop "${1:?DIR}"; }
stack_broker_start() { "$STACK_TOP/scripts/mosquitto.sh" start "${1:?DIR}" "${2:?PORT}" "${3:?PKI}" >/dev/null; }
stack_broker_stop() { "$STACK_TOP/scripts/mosquitto.sh" stop "${1:?DIR}"; }

stack_server_conf() { # OUT PKI PG_DIR PG_PORT DEVICE_PORT STORE [KEY=VALUE...]
	local out=${1:?OUT} pki=${2:?PKI} kv
	local base=("db_conninfo=host=${3:?PG_DIR} port=${4:?PG_PORT} dbname=fleetota user=postgres"
		"migrations_dir=$STACK_TOP/migrations" "device_listen=127.0.0.1:${5:?DEVICE_PORT}"
		"tls_cert=$pki/server.crt" "tls_key=$pki/server.key" "device_ca=$pki/device-ca.crt"
		"store_dir=${6:?STORE}")
	shift 6
	for kv in "${base[@]}" "$@"; do
		if [[ $kv == mqtt=* ]]; then
			printf '%s\n' "mqtt_url = ssl://127.0.0.1:${kv#mqtt=}" "mqtt_ca = $pki/server-ca.crt" \
				"mqtt_cert = $pki/servers/1.crt" "mqtt_key = $pki/servers/1.key"
		elif [[ $kv == *" = "* || $kv == "#"* || -z $kv ]]; then
			printf '%s\n' "$kv"
		else
			printf '%s = %s\n' "${kv%%=*}" "${kv#*=}"
		fi
	done >"$out"
}

# stack_tick_open / stack_tick SECONDS / stack_tick_close: a wait that
# starts no process (read -t on a FIFO nobody writes to), for the polls of
# this library: a `sleep` each 0.1 s was ~30 processes per server start.
# The FIFO is opened only while a poll runs, after the process polled for
# started: daemons do not inherit it.
STACK_TICK_FD=
stack_tick_open() {
	if [[ -n $STACK && -d $STACK ]]; then
		[[ -p $STACK/.tick ]] || mkfifo "$STACK/.tick" 2>/dev/null || return 0
		exec {STACK_TICK_FD}<>"$STACK/.tick"
	fi
}
stack_tick() {
	if [[ -n $STACK_TICK_FD ]]; then
		read -r -t "$1" -u "$STACK_TICK_FD" _ || true
	else
		sleep "$1"
	fi
}
stack_tick_close() {
	[[ -z $STACK_TICK_FD ]] || exec {STACK_TICK_FD}<&-
	STACK_TICK_FD=
}

stack_server_start() { # CONF LOG [UNTIL...]
	local conf=${1:?CONF} logf=${2:?LOG} line chunk pending='' logfd i j
	shift 2
	local until=("$@") seen=()
	if ((${#until[@]} == 0)) && [[ -z "${STACK_SERVER_READY:-}" ]]; then
		until=("db connection 0 up")
		! grep -q '^mqtt_url' "$conf" || until+=("mqtt connected")
	fi
	# the log from its end (only the new server's lines count), read as
	# it grows: no tail and grep per line and poll
	: >>"$logf"
	exec {logfd}<"$logf"
	IFS= read -r -d '' -u "$logfd" _ || true
	env ${STACK_SERVER_ENV[@]+"${STACK_SERVER_ENV[@]}"} \
		"${OTA_SERVER:?}" --config "$conf" >>"$logf" 2>&1 {logfd}<&- &
	STACK_SERVER_PID=$!
	stack_tick_open
	for ((i = 0; i < 200; i++)); do
		while IFS= read -r -u "$logfd" chunk; do
			line=$pending$chunk pending=
			for j in "${!until[@]}"; do
				[[ $line != *"${until[j]}"* ]] || seen[j]=1
			done
		done
		pending+=$chunk
		for j in "${!until[@]}"; do
			[[ $pending != *"${until[j]}"* ]] || seen[j]=1
		done
		if ((${#seen[@]} == ${#until[@]})) &&
			{ [[ -z "${STACK_SERVER_READY:-}" ]] || $STACK_SERVER_READY; }; then
			exec {logfd}<&-
			stack_tick_close
			return 0
		fi
		if ! kill -0 "$STACK_SERVER_PID" 2>/dev/null; then
			exec {logfd}<&-
			stack_tick_close
			stack_fail "ota-server exited"
		fi
		stack_tick 0.1
	done
	exec {logfd}<&-
	stack_tick_close
	stack_fail "ota-server did not come up"
}

stack_server_stop() { # [SIGNAL [SECONDS]]
	local pid=${STACK_STOP_PID:-$STACK_SERVER_PID}
	[[ -n "$pid" ]] || return 0
	[[ -n "${STACK_STOP_PID:-}" ]] || STACK_SERVER_PID=
	kill -"${1:-TERM}" "$pid" 2>/dev/null || true
	if [[ -n "${2:-}" ]]; then
		local i
		stack_tick_open
		for ((i = 0; i < $2 * 10; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			stack_tick 0.1
		done
		stack_tick_close
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null && STACK_SERVER_STATUS=0 || STACK_SERVER_STATUS=$?
	return 0
}

stack_stop() { # [immediate]
	stack_server_stop
	[[ -z "$STACK" ]] && return 0
	[[ ! -d "$STACK/mq" ]] || "$STACK_TOP/scripts/mosquitto.sh" stop "$STACK/mq" >/dev/null 2>&1
	[[ ! -d "$STACK/pg" ]] || "$STACK_TOP/scripts/pg.sh" stop "$STACK/pg" ${1:+"$1"} >/dev/null 2>&1
	return 0
}

stack_cleanup() {
	stack_stop immediate
	[[ -z "$STACK" ]] || rm -rf "$STACK"
	stack_release_ports
}
