/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_MIGRATE_INTERNAL_H
#define SRV_MIGRATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "fleetota/err.h"

/* Most migration files, and the largest one. */
#define SRV_MIGRATE_MAX_FILES 1000u
#define SRV_MIGRATE_MAX_BYTES (1024u * 1024u)

/* true for "NNNN_name.sql" (4 digits, [a-z0-9_] name); writes the number. */
bool srv_migrate_name_valid(const char *name, unsigned *ret_version);

/* true for "name.sql" ([a-z0-9_] name), a file of the code/ directory. */
bool srv_migrate_code_name_valid(const char *name);

/*
 * Applies the migrations of dir to the database at conninfo, in order,
 * each in its own transaction, under an advisory lock (several servers may
 * start at once), recording version, name and SHA-256 in
 * schema_migrations. A migration already applied whose file changed (or
 * is gone) is refused: OTA_ERR_HASH, with the reason on stderr. Runs
 * before the loop starts (blocking libpq is fine there).
 * Then the function files of dir/code (CREATE OR REPLACE ...) whose text
 * changed since they were last applied are applied again, in one
 * transaction, recorded in schema_code. *ret_applied counts both.
 * OTA_OK; OTA_ERR_TRANSPORT (database), OTA_ERR_STORAGE (files),
 * OTA_ERR_FORMAT (a bad file name), OTA_ERR_HASH.
 */
enum ota_err srv_migrate(const char *conninfo, const char *dir, unsigned *ret_applied);

/*
 * Waits until the database at conninfo accepts connections (PQping), with
 * back-off from 0.2 s doubling to 5 s, for at most wait_sec seconds: a
 * container engine may start ota-server before PostgreSQL. Each attempt
 * is bounded by connect_timeout (5 s unless conninfo sets one). Blocking:
 * before the loop starts. OTA_OK; OTA_ERR_TIMEOUT (not reachable in time);
 * OTA_ERR_INVALID_ARG (conninfo unusable). Logs why it waits.
 */
enum ota_err srv_migrate_wait_db(const char *conninfo, unsigned wait_sec);

#endif
