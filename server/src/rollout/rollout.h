/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_ROLLOUT_H
#define SRV_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"
#include "ota.pb-c.h"

struct srv_server;
struct srv_rollout;

/*
 * The rollout engine's driver. The engine itself is SQL
 * (migrations/code/rollout_*.sql, docs/campaigns.md): this only calls
 * rollout_tick() on a timer through srv_db (never blocking the loop),
 * publishes the Notify messages it returns through the MQTT bridge, reports
 * each one published with rollout_published() once the broker acknowledged
 * it (QoS 1 PUBACK), and feeds every StatusReport to rollout_report(). Any number of servers run it against one database:
 * campaigns are leased in SQL; a notification nobody acknowledged within the
 * lease (a crash, a broker stall, a take-over) is issued again.
 *
 * Fencing: every tick row carries its campaign lease's fencing token (a
 * generation that rises with every take-over); every publish carries it (MQTT
 * 5 user property) and rollout_published() refuses a stale one. The driver
 * publishes a tick's rows only while the lease it took is surely still its
 * own: until lease_s minus a margin after it sent the tick, measured on the
 * monotonic clock (which keeps running while the process is stopped). A
 * frozen instance that resumes later publishes nothing.
 *
 * Knobs (environment, read at start): OTA_ROLLOUT_TICK_MS (default 1000),
 * OTA_ROLLOUT_LEASE_S (default 30), OTA_ROLLOUT_SERVER_ID (default
 * hostname:pid).
 *
 * Test hook: OTA_ROLLOUT_FAILPOINT=tick-sent | tick-result | publish-N makes
 * the server stop itself (raise(SIGSTOP)) once, at that step of a tick:
 * right after sending the tick (its transaction runs and commits while the
 * server is frozen), after reading a tick result with rows (committed, none
 * published), or after the N-th publish of a tick (once the broker
 * acknowledged it). With OTA_ROLLOUT_FAILPOINT_ARM=PATH it fires only while
 * PATH exists. It logs "rollout: failpoint NAME: stopping" first. Never set
 * in production.
 */

#define SRV_ROLLOUT_TICK_MS_DEFAULT 1000u
#define SRV_ROLLOUT_TICK_MS_MIN 50u
#define SRV_ROLLOUT_TICK_MS_MAX 600000u
#define SRV_ROLLOUT_LEASE_S_DEFAULT 30u
#define SRV_ROLLOUT_LEASE_S_MIN 2u
#define SRV_ROLLOUT_LEASE_S_MAX 3600u
/* Most notifications one tick hands to this server. */
#define SRV_ROLLOUT_MAX_NOTIFY 10000u
/* Longest server id (a lease owner name). */
#define SRV_ROLLOUT_MAX_SERVER_ID 128u

/* Registers the rollout statements (before srv_db_start). */
enum ota_err srv_rollout_prepare(struct srv_server *srv);

/* Starts the tick timer. Needs srv->db and srv->mqtt. */
enum ota_err srv_rollout_start(struct srv_server *srv, struct srv_rollout **ret_rollout);

/* Stops the timer; call after srv_db_free (pending callbacks done). NULL ok. */
void srv_rollout_stop(struct srv_rollout *rollout);

/*
 * Pure helpers, exposed for the unit tests.
 *
 * Fills notify from one row of rollout_tick() (text columns: notification
 * id, campaign, device, kind, artifact, version, version_code,
 * is_security_update, keylist_version; NULL or "" for absent). Strings are
 * borrowed from fields. OTA_OK, or OTA_ERR_FORMAT for an unknown kind or a
 * number that does not parse.
 */
#define SRV_ROLLOUT_TICK_COLUMNS 9
/* Then the fencing token, the last column of a tick row. */
#define SRV_ROLLOUT_TICK_FENCE_COLUMN 9
/* Then the stage's post-install health window (Notify.health_window_seconds). */
#define SRV_ROLLOUT_TICK_HEALTH_COLUMN 10
enum ota_err srv_rollout_notify_from_row(const char *const fields[SRV_ROLLOUT_TICK_COLUMNS],
					 uint64_t issued_at, Fleetota__V1__Notify *notify);

/*
 * Appends a decimal id to a PostgreSQL array literal being built in buf
 * ("{1,2,3}"); *len is the current length (0 to start). OTA_ERR_SIZE when it
 * does not fit (buf unchanged). Close with srv_rollout_ids_close().
 */
enum ota_err srv_rollout_ids_append(char *buf, size_t cap, size_t *len, uint64_t id);
enum ota_err srv_rollout_ids_close(char *buf, size_t cap, size_t *len);

/*
 * May a tick sent at sent_ms (monotonic, ms) still be published at now_ms
 * under a lease of lease_s seconds? Leaves a quarter of the lease (at least
 * 500 ms) as margin, so a publish never races the lease's end.
 */
bool srv_rollout_lease_valid(uint64_t now_ms, uint64_t sent_ms, unsigned lease_s);

/* Failpoints (test hook, see above). */
enum srv_rollout_failpoint {
	SRV_ROLLOUT_FP_NONE,
	SRV_ROLLOUT_FP_TICK_SENT,
	SRV_ROLLOUT_FP_TICK_RESULT,
	SRV_ROLLOUT_FP_PUBLISH,
};

/* Parses a failpoint name; *ret_n is N of publish-N. OTA_ERR_FORMAT if unknown. */
enum ota_err srv_rollout_failpoint_parse(const char *text, enum srv_rollout_failpoint *ret_fp,
					 unsigned *ret_n);

/* Environment knob within [min, max], else def. */
unsigned srv_rollout_env_uint(const char *name, unsigned def, unsigned min, unsigned max);

#endif
