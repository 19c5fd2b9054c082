#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A private PostgreSQL 15 cluster for development, tests and the demo:
# listens on 127.0.0.1:PORT with its unix socket in DIR, runs as the
# `postgres` user (PostgreSQL refuses root), started and stopped by PID.
#
#   scripts/pg.sh start  DIR PORT [DBNAME]   initdb if needed, start, create DBNAME
#   scripts/pg.sh stop   DIR [immediate]     fast shutdown by PID, waits;
#                                            immediate: no shutdown checkpoint
#                                            (a cluster about to be removed)
#   scripts/pg.sh keep   DIR PORT DBNAME TAG stops the cluster, keeps a copy of
#                                            it as the template of TAG, starts
#                                            it again (see PG_TEMPLATE_TAG)
#   scripts/pg.sh status DIR                 exit 0 when running
#   scripts/pg.sh conninfo DIR PORT [DBNAME] prints a libpq conninfo
#
# DIR's parents must be traversable by `postgres` (chmod 711 on a mktemp dir).
#
# A new cluster costs about 2.5 s of CPU (initdb, then a private start that
# creates DBNAME), and the tests start some 70 of them: the first one's data
# directory, stopped cleanly with DBNAME in it, is kept as a template in
# PG_TEMPLATE-DBNAME (default PG_TEMPLATE /tmp/fleetota-pg-template-UID-
# VERSION; PG_TEMPLATE_DIR instead of /tmp: the tests keep it where their
# clusters are, on tmpfs) and later clusters are copies of it (cp -a, 0.1 s).
# A copy has its database before it first listens, as an initdb'd cluster
# has. PG_TEMPLATE=none turns it off.
#
# PG_TEMPLATE_TAG=TAG: a new cluster is a copy of TAG's template instead when
# there is one (DIR/data/fleetota-template-tag then holds TAG). A caller that
# does the same set-up in every cluster (the tests' migrations: TAG a hash of
# what they apply) does it once, then `pg.sh keep`s the result.
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop|status|conninfo DIR [PORT] [DBNAME]}
dir=${2:?DIR}
bindir=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v initdb)")}

as_pg() {
	if [[ $(id -u) == 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pid_of() {
	[[ -f "$dir/data/postmaster.pid" ]] || return 1
	local pid=
	read -r pid <"$dir/data/postmaster.pid" || true
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

case $cmd in
start)
	port=${3:?PORT}
	db=${4:-fleetota}
	mkdir -p "$dir"
	if [[ $(id -u) == 0 ]]; then chown postgres: "$dir"; fi
	chmod 700 "$dir"
	if ! as_pg test -x "$dir"; then
		echo "pg.sh: $dir is not reachable by user postgres (chmod 711 its parents)" >&2
		exit 1
	fi
	template=none
	if [[ ${PG_TEMPLATE:-} != none ]]; then
		template=${PG_TEMPLATE:-${PG_TEMPLATE_DIR:-/tmp}/fleetota-pg-template-$(id -u)-$("$bindir/pg_ctl" --version | awk '{print $3}')}-$db
	fi
	copied=0
	if [[ ! -f "$dir/data/PG_VERSION" && $template != none && -n ${PG_TEMPLATE_TAG:-} &&
		-f "$template-$PG_TEMPLATE_TAG/fleetota-template-tag" ]]; then
		rm -rf "$dir/data"
		cp -a "$template-$PG_TEMPLATE_TAG" "$dir/data"
		copied=1
	fi
	if [[ ! -f "$dir/data/PG_VERSION" && $template != none && -f "$template/PG_VERSION" ]]; then
		rm -rf "$dir/data"
		cp -a "$template" "$dir/data"
		copied=1
	fi
	if [[ ! -f "$dir/data/PG_VERSION" ]]; then
		rm -rf "$dir/data"
		as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
			--no-sync >"$dir/initdb.log" 2>&1 || {
			cat "$dir/initdb.log" >&2
			exit 1
		}
		# the database exists before anyone can connect: a client started
		# first (a server waiting for its database) never sees the cluster
		# without it. A private start: no TCP, its socket in DIR/init.
		as_pg mkdir -p "$dir/init"
		as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
			-o "-p $port -k $dir/init -c listen_addresses=''" start >/dev/null
		as_pg "$bindir/psql" -h "$dir/init" -p "$port" -U postgres -d postgres -q \
			-c "CREATE DATABASE \"$db\"" >/dev/null
		as_pg "$bindir/pg_ctl" -D "$dir/data" -w -t 30 -m fast stop >/dev/null
		# the template appears whole or not at all (another test may race)
		if [[ $template != none && ! -e "$template" ]]; then
			{ cp -a "$dir/data" "$template.$$" && mv -T "$template.$$" "$template"; } 2>/dev/null ||
				rm -rf "$template.$$"
		fi
	fi
	if pid_of >/dev/null; then
		echo "pg.sh: already running (pid $(pid_of))" >&2
	else
		# on tmpfs (the tests) dynamic shared memory in the data directory:
		# an immediate stop leaves posix segments behind in /dev/shm
		dsm=posix
		[[ $(stat -f -c %T "$dir") != tmpfs ]] || dsm=mmap
		as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
			-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off \
-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 \
-c dynamic_shared_memory_type=$dsm" \
			start >/dev/null || {
			tail -20 "$dir/postgres.log" >&2
			exit 1
		}
	fi
	# a copy of the template has DBNAME (the template is DBNAME's): no
	# psql as postgres to check (~0.15 s of CPU per cluster)
	((copied)) ||
		as_pg "$bindir/psql" -h "$dir" -p "$port" -U postgres -d postgres -Atq \
			-c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
		as_pg "$bindir/psql" -h "$dir" -p "$port" -U postgres -d postgres -q \
			-c "CREATE DATABASE \"$db\"" >/dev/null
	pid_of
	;;
stop)
	pid=$(pid_of) || exit 0
	case ${3:-fast} in
	fast) kill -INT "$pid" ;;
	immediate) kill -QUIT "$pid" ;;
	*)
		echo "pg.sh: stop mode ${3} is neither fast nor immediate" >&2
		exit 2
		;;
	esac
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || exit 0
		sleep 0.1
	done
	echo "pg.sh: postgres $pid did not stop, killing" >&2
	kill -KILL "$pid" 2>/dev/null || true
	;;
keep)
	port=${3:?PORT}
	db=${4:?DBNAME}
	tag=${5:?TAG}
	[[ $tag =~ ^[A-Za-z0-9._-]+$ ]] || { echo "pg.sh: bad template tag '$tag'" >&2; exit 2; }
	[[ ${PG_TEMPLATE:-} != none ]] || exit 0
	template=${PG_TEMPLATE:-${PG_TEMPLATE_DIR:-/tmp}/fleetota-pg-template-$(id -u)-$("$bindir/pg_ctl" --version | awk '{print $3}')}-$db-$tag
	if [[ ! -e "$template" ]]; then
		"$0" stop "$dir"
		# whole or not at all (another test may race); the tag file last
		{ cp -a "$dir/data" "$template.$$" && echo "$tag" >"$template.$$/fleetota-template-tag" &&
			mv -T "$template.$$" "$template"; } 2>/dev/null || rm -rf "$template.$$"
		"$0" start "$dir" "$port" "$db" >/dev/null
	fi
	;;
status)
	pid_of >/dev/null
	;;
conninfo)
	echo "host=$dir port=${3:?PORT} dbname=${4:-fleetota} user=postgres"
	;;
*)
	echo "pg.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
