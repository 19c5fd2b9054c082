#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A private PgBouncer (Debian's pgbouncer) on 127.0.0.1:PORT in front of the
# PostgreSQL at 127.0.0.1:PG_PORT, database fleetota, user postgres (trust,
# as the private clusters of scripts/pg.sh). Runs as the `postgres` user
# (PgBouncer refuses root), no unix socket, started and stopped by PID.
#
#   scripts/pgbouncer.sh start DIR PORT PG_PORT [MODE [POOL_SIZE]]
#                        MODE: transaction (default), session or statement
#   scripts/pgbouncer.sh reconnect DIR
#                        closes its server connections as they become free
#                        (admin RECONNECT): after a promotion of its
#                        PostgreSQL, see below
#   scripts/pgbouncer.sh stop  DIR
#   scripts/pgbouncer.sh status DIR
#
# PgBouncer 1.18 (Debian 12) does not keep protocol-level prepared
# statements in transaction mode (max_prepared_statements came in 1.21):
# ota-server behind it needs db_prepared_statements = false (docs/scaling.md).
# PgBouncer 1.18 also replays the startup parameters of its first server
# connection to every new client, in_hot_standby included: after its
# standby is promoted, libpq's target_session_attrs=read-write keeps
# refusing it ("session is read-only") until its server connections are
# re-opened. A failover must RECONNECT the pooler of the promoted node (a
# Patroni on_role_change callback does).
# DIR's parents must be traversable by `postgres` (chmod 711).
set -euo pipefail
cmd=${1:?usage: pgbouncer.sh start|stop|status DIR ...}
dir=${2:?DIR}

as_pg() {
	if [[ $(id -u) == 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pid_of() {
	[[ -f "$dir/pgbouncer.pid" ]] || return 1
	local pid
	pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null)
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

case $cmd in
start)
	port=${3:?PORT}
	pg_port=${4:?PG_PORT}
	mode=${5:-transaction}
	pool=${6:-8}
	mkdir -p "$dir"
	if [[ $(id -u) == 0 ]]; then chown postgres: "$dir"; fi
	echo '"postgres" ""' >"$dir/users.txt"
	# server_login_retry 1 s: a dead PostgreSQL is noticed (and its clients
	# told) within a second; server_check_delay 0: a pooled server
	# connection is checked before reuse after a failover
	cat >"$dir/pgbouncer.ini" <<-EOF
		[databases]
		fleetota = host=127.0.0.1 port=$pg_port dbname=fleetota user=postgres
		[pgbouncer]
		listen_addr = 127.0.0.1
		listen_port = $port
		unix_socket_dir =
		auth_type = trust
		auth_file = $dir/users.txt
		pool_mode = $mode
		default_pool_size = $pool
		max_client_conn = 200
		server_login_retry = 1
		server_connect_timeout = 3
		server_check_delay = 0
		query_wait_timeout = 10
		ignore_startup_parameters = extra_float_digits
		logfile = $dir/pgbouncer.log
		pidfile = $dir/pgbouncer.pid
		admin_users = postgres
	EOF
	if [[ $(id -u) == 0 ]]; then chown postgres: "$dir"/*; fi
	if pid_of >/dev/null; then
		echo "pgbouncer.sh: already running (pid $(pid_of))" >&2
		exit 1
	fi
	as_pg pgbouncer -d "$dir/pgbouncer.ini" >/dev/null 2>&1 || {
		tail -5 "$dir/pgbouncer.log" >&2
		exit 1
	}
	for _ in $(seq 1 100); do
		pid_of >/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && {
			pid_of
			exit 0
		}
		sleep 0.1
	done
	echo "pgbouncer.sh: did not come up" >&2
	tail -5 "$dir/pgbouncer.log" >&2
	exit 1
	;;
reconnect)
	port=$(sed -n 's/^listen_port = //p' "$dir/pgbouncer.ini")
	"${PG_BINDIR:-/usr/lib/postgresql/15/bin}/psql" -X -q \
		"host=127.0.0.1 port=$port dbname=pgbouncer user=postgres" -c "RECONNECT fleetota"
	;;
stop)
	pid=$(pid_of) || exit 0
	kill -TERM "$pid" # immediate shutdown (INT waits for every client)
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || exit 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	;;
status)
	pid_of >/dev/null
	;;
*)
	echo "pgbouncer.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
