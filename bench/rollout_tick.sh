#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The rollout engine's tick at fleet scale, in SQL alone (no server, no
# devices): CPU of PostgreSQL's tick per installed device for a one-stage
# campaign over N devices, at the fleet bench's pace.
#   bench/rollout_tick.sh [N...]       (default: 1000 3000 10000)
# Per N: a private PostgreSQL (tests/integration/rollout/lib.sh), N devices,
# a signed security update (as bench/fleet.sh: the security watch runs), a
# campaign of one 100 % stage at BENCH_TICK_RATE installs per second
# (60, the fleet bench's pace), ticked every 0.5 s of simulated time
# (OTA_ROLLOUT_TICK_MS=500 in bench/fleet.sh); every notification is
# published at once and each device confirms BENCH_TICK_INSTALL_S (3)
# simulated seconds after its notification (rollout_report, as the ingest
# calls it). Measured: the tick's own CPU (rollout_tick, then
# rollout_published: user + system of the backend, /proc/self/stat), per
# installed device, and the ticks taken. The devices' reports are not
# measured (the ingest's cost, bench/fleet.sh measures it). Prints
# "rollout_tick: devices=N ticks=T tick_cpu_ms_per_install=X".
# BENCH_TICK_EXPLAIN=MS logs the plans of statements slower than MS
# (auto_explain, nested, with ANALYZE and BUFFERS) into BENCH_TICK_LOG.
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@")
((${#sizes[@]})) || sizes=(1000 3000 10000)
rate=${BENCH_TICK_RATE:-60}
install_s=${BENCH_TICK_INSTALL_S:-3}
for n in "${sizes[@]}"; do
	[[ $n =~ ^[0-9]+$ ]] && ((n >= 10 && n <= 200000)) ||
		{ echo "rollout_tick: N must be 10..200000" >&2; exit 2; }
done

for n in "${sizes[@]}"; do
	(
		source "$top/tests/integration/rollout/lib.sh" "$top"
		seed_trust
		add_artifact fw-new 200
		q "UPDATE artifacts SET is_security_update = true WHERE artifact_id = 'fw-new'"
		add_devices "$n" dev-
		q "SELECT rollout_create('{\"id\":\"c\",\"artifact\":\"fw-new\",\"rate_per_minute\":$((rate * 60)),
			\"rate_burst\":$((rate > 10 ? rate : 10)),\"device_timeout_seconds\":600,
			\"stages\":[{\"percent\":100,\"failure_ratio\":0.5}]}', 'bench')" >/dev/null
		q "SELECT rollout_start('c', 'bench', '2030-01-01T00:00:00Z')" >/dev/null
		q "ANALYZE"
		# one backend runs the whole campaign; the tick's CPU is read around
		# each tick from /proc/self/stat (clock ticks, summed)
		q "CREATE FUNCTION bench_cpu() RETURNS bigint LANGUAGE sql AS \$\$
			SELECT split_part(s, ' ', 14)::bigint + split_part(s, ' ', 15)::bigint
			FROM pg_read_file('/proc/self/stat') s \$\$"
		# a procedure: every tick and every report its own transaction, as
		# in the server (pruning and the statistics see committed rows)
		q "CREATE PROCEDURE bench_run() LANGUAGE plpgsql AS \$\$
		DECLARE
			t timestamptz := '2030-01-01T00:00:00Z';
			c0 bigint;
			v_cpu bigint := 0;
			v_ticks integer := 0;
			v_ids bigint[];
			v_fences bigint[];
			r record;
		BEGIN
			WHILE (SELECT state FROM campaigns WHERE campaign_id = 'c') = 'running' AND v_ticks < 100000 LOOP
				c0 := bench_cpu();
				SELECT array_agg(notification_id), array_agg(fence) INTO v_ids, v_fences
				FROM rollout_tick('bench', t);
				PERFORM rollout_published(coalesce(v_ids, '{}'), coalesce(v_fences, '{}'), 'bench', t);
				v_cpu := v_cpu + bench_cpu() - c0;
				v_ticks := v_ticks + 1;
				FOR r IN SELECT m.device_id FROM campaign_devices m
				         WHERE m.campaign_id = 'c' AND m.state = 'notified'
				           AND m.notified_at <= t - make_interval(secs => $install_s) LOOP
					UPDATE devices SET version = '1.0.200', version_code = 200, state = 'confirmed',
					       last_seen = t WHERE device_id = r.device_id;
					PERFORM rollout_report(r.device_id, 'confirmed', 200, 1, NULL, '', 'c', t);
				END LOOP;
				t := t + interval '0.5 s';
				COMMIT;
			END LOOP;
			RAISE WARNING 'rollout_tick: devices=$n ticks=% tick_cpu_ms_per_install=% state=% confirmed=%',
				v_ticks, round(v_cpu * 1000.0 / $(getconf CLK_TCK) / $n, 3),
				(SELECT state FROM campaigns WHERE campaign_id = 'c'),
				(SELECT count(*) FROM campaign_devices WHERE campaign_id = 'c' AND state = 'confirmed');
		END \$\$"
		explain=()
		[[ -z ${BENCH_TICK_EXPLAIN:-} ]] ||
			explain=(-c "LOAD 'auto_explain'" -c "SET auto_explain.log_min_duration = '${BENCH_TICK_EXPLAIN}ms'"
				-c "SET auto_explain.log_nested_statements = on" -c "SET auto_explain.log_analyze = on"
				-c "SET auto_explain.log_buffers = on")
		"${PSQL[@]}" -At -c "SET client_min_messages = warning" "${explain[@]}" -c "CALL bench_run()" 2>&1 |
			sed -n 's/.*WARNING:  //p'
		[[ -z ${BENCH_TICK_EXPLAIN:-} ]] || cp "$PGDIR/postgres.log" "${BENCH_TICK_LOG:-/dev/stderr}"
	)
done
