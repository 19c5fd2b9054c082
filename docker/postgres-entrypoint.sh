#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# PostgreSQL 15 from Debian, configured like the official image's basics:
# POSTGRES_USER (superuser, default fleetota), POSTGRES_PASSWORD (required),
# POSTGRES_DB (default fleetota). The first start makes the cluster in
# PGDATA; TCP clients log in with scram-sha-256, local ones are trusted.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
user=${POSTGRES_USER:-fleetota}
db=${POSTGRES_DB:-fleetota}
data=${PGDATA:-/var/lib/postgresql/data}
bin=/usr/lib/postgresql/15/bin
if [ ! -s "$data/PG_VERSION" ]; then
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	"$bin/initdb" -D "$data" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 >/dev/null
	rm -f "$pwfile"
	echo "host all all all scram-sha-256" >>"$data/pg_hba.conf"
	if [ "$db" != postgres ]; then
		echo "CREATE DATABASE \"$db\" OWNER \"$user\"" |
			"$bin/postgres" --single -D "$data" -j postgres >/dev/null
	fi
	echo "postgres-entrypoint: cluster made in $data, database $db"
fi
exec "$bin/postgres" -D "$data" -c listen_addresses='*' "$@"
