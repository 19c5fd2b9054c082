#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Schema migrations are immutable; the function files of migrations/code are
# re-applied when their text changes. Checked on a private PostgreSQL with
# a copy of the migrations dir:
#  - a fresh database gets every schema file and every code file;
#  - a second run applies nothing;
#  - an edited code file is applied again and its new function is live;
#  - an edited schema file is refused (OTA_ERR_HASH) and nothing changes;
#  - a badly named code file is refused (OTA_ERR_FORMAT);
#  - a database migrated with the texts from before the functions moved to
#    code/ (taken from git history) is accepted and ends with the same
#    functions, triggers and tables as a fresh one.
. "$(dirname "$0")/lib.sh"

M=$T/migrations
cp -r "$TOP/migrations" "$M"
start_pg
write_config
sed -i "s|^migrations_dir = .*|migrations_dir = $M|" "$T/server.conf"
dump() {
	pg_dump -h "$T/pg" -p "$PG_PORT" -U postgres -T schema_code -T schema_migrations \
		"${1:-fleetota}" | grep -v '^--\|restrict'
}

out=$(migrate 2>&1) || fail "fresh migrate: $out"
n_schema=$(ls "$M"/[0-9]*.sql | wc -l)
n_code=$(ls "$M"/code/*.sql | wc -l)
[[ $(sql -c "SELECT count(*) FROM schema_migrations") == "$n_schema" ]] || fail "schema rows"
[[ $(sql -c "SELECT count(*) FROM schema_code") == "$n_code" ]] || fail "code rows"
sql -c "SELECT 'rollout_tick'::regproc, 'upload_create'::regproc" >/dev/null || fail "functions missing"
out=$(migrate 2>&1) || fail "second migrate: $out"
grep -q "migrations: 0 applied" <<<"$out" || fail "second run applied something: $out"
log "fresh database: $n_schema schema files, $n_code code files; a second run applies nothing"

# an edited function is applied again, the other files are not
cat >>"$M/code/rollout_keys.sql" <<'SQL'

CREATE OR REPLACE FUNCTION rollout_migrate_probe() RETURNS integer LANGUAGE sql AS $$ SELECT 42 $$;
SQL
out=$(migrate 2>&1) || fail "migrate after a code edit: $out"
grep -q "code rollout_keys.sql applied" <<<"$out" || fail "edited code not applied: $out"
grep -q "migrations: 1 applied" <<<"$out" || fail "more than the edited file applied: $out"
[[ $(sql -c "SELECT rollout_migrate_probe()") == 42 ]] || fail "edited function not live"
log "an edited code file is applied again, alone"

# an edited schema file is refused, nothing applied
before=$(dump)
echo "-- edited" >>"$M/0001_core.sql"
echo "CREATE OR REPLACE FUNCTION rollout_migrate_probe() RETURNS integer LANGUAGE sql AS \$\$ SELECT 7 \$\$;" >>"$M/code/rollout_purge.sql"
if out=$(migrate 2>&1); then fail "an edited schema file was accepted"; fi
grep -q "OTA_ERR_HASH" <<<"$out" && grep -q "0001_core.sql was changed" <<<"$out" ||
	fail "wrong refusal: $out"
[[ "$(dump)" == "$before" ]] || fail "the refused run changed the database"
[[ $(sql -c "SELECT rollout_migrate_probe()") == 42 ]] || fail "code applied despite refusal"
cp "$TOP/migrations/0001_core.sql" "$M/0001_core.sql"
cp "$TOP/migrations/code/rollout_purge.sql" "$M/code/rollout_purge.sql"
log "an edited schema file is refused (OTA_ERR_HASH), nothing changed"

touch "$M/code/Bad-Name.sql"
if out=$(migrate 2>&1); then fail "a bad code file name was accepted"; fi
grep -q "OTA_ERR_FORMAT" <<<"$out" || fail "wrong refusal: $out"
rm "$M/code/Bad-Name.sql"
log "a badly named code file is refused (OTA_ERR_FORMAT)"

# A database made by the texts from before the move (0010 and 0012 held
# their functions) is accepted: its records move to the new texts and the
# result equals a fresh database.
if git -C "$TOP" cat-file -e 7f0c437:migrations/0010_rollout.sql 2>/dev/null; then
	OLD=$T/old
	mkdir -p "$OLD"
	for f in 0001_core.sql 0002_api.sql 0010_rollout.sql 0012_uploads.sql; do
		git -C "$TOP" show "7f0c437:migrations/$f" >"$OLD/$f"
	done
	sql -c "CREATE DATABASE legacy" -c "CREATE DATABASE fresh"
	for db in legacy fresh; do
		sed "s|dbname=fleetota|dbname=$db|; s|^migrations_dir = .*|migrations_dir = $TOP/migrations|" \
			"$T/server.conf" >"$T/$db.conf"
	done
	# the old texts, applied the way the old server did (no code/ dir)
	sed -i "s|^migrations_dir = .*|migrations_dir = $OLD|" "$T/legacy.conf"
	"$OTA_SERVER" migrate --config "$T/legacy.conf" >/dev/null 2>&1 || fail "old texts"
	sed -i "s|^migrations_dir = .*|migrations_dir = $TOP/migrations|" "$T/legacy.conf"
	out=$("$OTA_SERVER" migrate --config "$T/legacy.conf" 2>&1) || fail "legacy database refused: $out"
	grep -q "0010_rollout.sql: record moved" <<<"$out" || fail "no rebaseline: $out"
	"$OTA_SERVER" migrate --config "$T/fresh.conf" >/dev/null 2>&1 || fail "fresh"
	diff <(dump legacy) <(dump fresh) >"$T/legacy.diff" || fail "legacy != fresh: $(head -20 "$T/legacy.diff")"
	log "a database migrated before the move is accepted and equals a fresh one"
else
	log "not a git checkout with history: the legacy check is skipped"
fi
echo PASS
