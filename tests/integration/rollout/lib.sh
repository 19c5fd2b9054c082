# SPDX-License-Identifier: Apache-2.0
# Shared by the rollout engine's integration tests: a private PostgreSQL
# (scripts/pg.sh) on a free loopback port in a temp dir, every migration
# applied in order, psql helpers, cleanup on any exit. Source it with the
# source root as $1.
set -euo pipefail

SRC=${1:?source root}
source "$SRC/scripts/stack.sh"
stack_use_tmpfs
stack_init rollout-test
PGDIR_PARENT=$STACK
PGDIR=$STACK/pg
CHILD_PIDS=()

rollout_cleanup() {
	local pid
	for pid in "${CHILD_PIDS[@]}"; do
		kill -KILL -- "$pid" 2>/dev/null || true
	done
	stack_cleanup
}
trap rollout_cleanup EXIT
trap 'exit 130' INT TERM

PGPORT=$(stack_free_port)

PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres -d fleetota)

# q SQL: runs SQL, prints unaligned tuples only
q() {
	"${PSQL[@]}" -At -c "SET client_min_messages = warning" -c "$1"
}

# qf FILE: runs a file
qf() {
	"${PSQL[@]}" -At -c "SET client_min_messages = warning" -f "$1"
}

# every migration applied in order, then the functions, as `ota-server
# migrate` applies them (docs/server.md); once per set of migrations, the
# other clusters are copies (stack_pg_start_prepared)
rollout_migrate() { # (called under ||: set -e is off, each step returns)
	local f code_files=()
	for f in "$SRC"/migrations/[0-9][0-9][0-9][0-9]_*.sql; do
		"${PSQL[@]}" --single-transaction -c "SET client_min_messages = warning" -f "$f" >/dev/null ||
			return 1
	done
	for f in "$SRC"/migrations/code/*.sql; do code_files+=(-f "$f"); done
	"${PSQL[@]}" --single-transaction -c "SET client_min_messages = warning" \
		-c "SET check_function_bodies = off" "${code_files[@]}" >/dev/null
}
stack_pg_start_prepared "$PGDIR" "$PGPORT" "$(stack_migrations_tag psql)" rollout_migrate

# pg_cpu: CPU ticks (getconf CLK_TCK per second) of the test's PostgreSQL so
# far: the postmaster, its exited children (every psql call is a new
# backend) and the live ones
pg_cpu() {
	local pm t c
	pm=$(head -1 "$PGDIR/data/postmaster.pid")
	t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
	for c in $(pgrep -P "$pm"); do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# q_cpu SQL: runs SQL in one backend, prints the CPU milliseconds (user +
# system, /proc/self/stat of that backend) the statement took: the work of
# the statement itself, not autovacuum's or another session's
q_cpu() {
	local cpu='SELECT split_part(s, $$ $$, 14)::bigint + split_part(s, $$ $$, 15)::bigint FROM pg_read_file($$/proc/self/stat$$) s'
	"${PSQL[@]}" -At -c "SET client_min_messages = warning" -c "$cpu" -c "$1" -c "$cpu" |
		awk -v hz="$(getconf CLK_TCK)" 'NR == 1 { a = $1 } { l = $1 } END { print int((l - a) * 1000 / hz) }'
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
	if [[ "$2" != "$3" ]]; then
		fail "$1: got '$2', expected '$3'"
	fi
	echo "ok - $1"
}

# expect_sqlstate WHAT CODE SQL: the statement must fail with that SQLSTATE
expect_sqlstate() {
	local out
	if out=$("${PSQL[@]}" -At -v VERBOSITY=verbose -c "SET client_min_messages = warning" -c "$3" 2>&1); then
		fail "$1: succeeded, expected SQLSTATE $2"
	fi
	if ! grep -q "ERROR:  $2:" <<<"$out"; then
		fail "$1: expected SQLSTATE $2, got: $out"
	fi
	echo "ok - $1 ($2)"
}

# Fixture rows: an artifact for model m1 signed by key 'k1' (bytes), two
# keylists (v1 {k1}, v2 {k1,k2}).
KEY1="decode(repeat('11', 32), 'hex')"
KEY2="decode(repeat('22', 32), 'hex')"
seed_trust() {
	q "INSERT INTO rootlists (version, bytes, sha256) VALUES (1, '\\x00', '\\x00');
	   INSERT INTO keylists (version, rootlist_version, bytes, sha256, key_ids)
	   VALUES (1, 1, '\\x01', '\\x01', ARRAY[$KEY1]),
	          (2, 1, '\\x02', '\\x02', ARRAY[$KEY1, $KEY2]);"
}

# add_artifact ID VERSION_CODE [KEY] [MODEL]
add_artifact() {
	local key=${3:-$KEY1} model=${4:-m1}
	q "INSERT INTO artifacts (artifact_id, digest, manifest, product, hw_revisions, version, version_code,
	                          image_sha256, image_size, signing_key_id, store_path)
	   VALUES ('$1', decode(md5('$1'), 'hex'), '\\x00', '$model', '{}', '1.0.$2', $2,
	           decode(repeat('ab', 32), 'hex'), 1, $key, 'x');"
}

# add_devices N PREFIX [MODEL] [VERSION_CODE] [KEYLIST]
add_devices() {
	q "INSERT INTO devices (device_id, model, hw_revision, version, version_code, keylist_version, last_seen)
	   SELECT '$2' || lpad(i::text, 7, '0'), '${3:-m1}', 'r1', '1.0.${4:-100}', ${4:-100}, ${5:-1}, now()
	   FROM generate_series(1, $1) i;"
}

# expect_counts_kept WHAT: the member counts kept as rows change
# (campaign_state_counts plus the deltas not folded yet, 0023) equal the
# rows of campaign_devices, for every campaign, stage and state, and
# rollout_stage_counts equals its pass over the members
expect_counts_kept() {
	expect_eq "$1: counts kept equal the members" "$(q "
		WITH kept AS (
			SELECT campaign_id, stage_no, state, sum(n) AS n
			FROM (SELECT campaign_id, stage_no, state, n FROM campaign_state_counts
			      UNION ALL SELECT campaign_id, stage_no, state, n FROM campaign_state_deltas) x
			GROUP BY 1, 2, 3),
		rows AS (
			SELECT campaign_id, stage_no, state, count(*) AS n FROM campaign_devices GROUP BY 1, 2, 3)
		SELECT count(*) FROM kept FULL JOIN rows USING (campaign_id, stage_no, state)
		WHERE coalesce(kept.n, 0) <> coalesce(rows.n, 0)")" 0
	expect_eq "$1: stage counts equal a pass over the members" "$(q "
		SELECT count(*) FROM campaigns c,
		LATERAL ((SELECT * FROM rollout_stage_counts(c.campaign_id)
		          EXCEPT ALL SELECT * FROM rollout_stage_counts_scan(c.campaign_id))
		         UNION ALL
		         (SELECT * FROM rollout_stage_counts_scan(c.campaign_id)
		          EXCEPT ALL SELECT * FROM rollout_stage_counts(c.campaign_id))) d")" 0
}
