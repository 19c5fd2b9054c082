/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "fleetota/crypto.h"
#include "log-internal.h"
#include "migrate-internal.h"
#include "store-internal.h"
#include "srv-limits.h"

/* Any constant: the advisory lock that serializes migrations. */
#define MIGRATE_LOCK_KEY "7143201905"

struct migration {
	unsigned version;
	char name[SRV_MIGRATION_NAME_BYTES];
	char checksum[SRV_SHA256_HEX_BYTES];
	char *sql;
};

bool srv_migrate_name_valid(const char *name, unsigned *ret_version)
{
	size_t len = strlen(name);

	if (len < 10 || len > 200 || strcmp(name + len - 4, ".sql") != 0 || name[4] != '_')
		return false;
	for (size_t i = 0; i < 4; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
	}
	for (size_t i = 5; i < len - 4; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	*ret_version = (unsigned)((name[0] - '0') * 1000 + (name[1] - '0') * 100 +
				  (name[2] - '0') * 10 + (name[3] - '0'));
	return *ret_version > 0;
}

bool srv_migrate_code_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len < 5 || len > 200 || strcmp(name + len - 4, ".sql") != 0)
		return false;
	for (size_t i = 0; i < len - 4; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

/*
 * Schema files rewritten once, when their functions moved to code/: a
 * database that recorded the old text's checksum accepts exactly the new
 * text, and its record is updated. The functions the old text created are
 * the ones code/ re-creates, so both paths end with the same database.
 */
static const struct rebaseline {
	const char *name;
	const char *from;
	const char *to;
} rebaselines[] = {
	{"0010_rollout.sql", "a13befd843a3b6a86fd51a11364327c992a6946b51cdcca42517d30cb5931f10",
	 "6def4b3ff5b27de54fa3346ae46a034a833d60c1d6e23eb639cc7f85676d595c"},
	{"0012_uploads.sql", "102883128d7f22aaf84620e0fb03c73c123616bf60f392ae587d967a143aa3cc",
	 "6814394a05f65c6436b8f8fd196b245a41f4914ad7aba20cd646020912674391"},
};

static bool rebaselined(const struct migration *m, const char *recorded)
{
	for (size_t i = 0; i < sizeof(rebaselines) / sizeof(rebaselines[0]); i++) {
		if (strcmp(m->name, rebaselines[i].name) == 0 &&
		    strcmp(recorded, rebaselines[i].from) == 0 &&
		    strcmp(m->checksum, rebaselines[i].to) == 0)
			return true;
	}
	return false;
}

static int cmp_migration(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

static enum ota_err read_file(const char *dir, struct migration *m)
{
	char path[PATH_MAX];
	uint8_t digest[OTA_SHA256_BYTES];
	FILE *f;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", dir, m->name);
	f = fopen(path, "re");
	if (f == NULL) {
		fprintf(stderr, "migrate: %s: %s\n", path, strerror(errno));
		return OTA_ERR_STORAGE;
	}
	m->sql = malloc(SRV_MIGRATE_MAX_BYTES + 1);
	if (m->sql == NULL) {
		fclose(f);
		return OTA_ERR_NOMEM;
	}
	len = fread(m->sql, 1, SRV_MIGRATE_MAX_BYTES + 1, f);
	fclose(f);
	if (len > SRV_MIGRATE_MAX_BYTES) {
		fprintf(stderr, "migrate: %s is larger than %u bytes\n", path,
			SRV_MIGRATE_MAX_BYTES);
		return OTA_ERR_SIZE;
	}
	m->sql[len] = '\0';
	if (strlen(m->sql) != len) {
		fprintf(stderr, "migrate: %s contains a NUL byte\n", path);
		return OTA_ERR_FORMAT;
	}
	if (ota_sha256(m->sql, len, digest) != OTA_OK)
		return OTA_ERR_INTERNAL;
	srv_store_name_from_sha256(digest, m->checksum);
	return OTA_OK;
}

static void free_list(struct migration *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i].sql);
	free(list);
}

static int cmp_code(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/*
 * Schema files (NNNN_name.sql, by number) or, with code, the function files
 * of dir (name.sql, by name). A missing code dir is an empty list.
 */
static enum ota_err list_dir(const char *dir, bool code, struct migration **ret_list, size_t *ret_n)
{
	struct migration *list = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d = opendir(dir);
	enum ota_err err = OTA_OK;

	if (d == NULL && code && errno == ENOENT) {
		*ret_list = NULL;
		*ret_n = 0;
		return OTA_OK;
	}
	if (d == NULL) {
		fprintf(stderr, "migrate: %s: %s\n", dir, strerror(errno));
		return OTA_ERR_STORAGE;
	}
	list = calloc(SRV_MIGRATE_MAX_FILES, sizeof(*list));
	if (list == NULL) {
		closedir(d);
		return OTA_ERR_NOMEM;
	}
	while ((de = readdir(d)) != NULL) {
		unsigned version = 0;
		size_t len = strlen(de->d_name);

		if (len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		if (code && !srv_migrate_code_name_valid(de->d_name)) {
			fprintf(stderr, "migrate: %s/%s: not name.sql ([a-z0-9_])\n", dir,
				de->d_name);
			err = OTA_ERR_FORMAT;
			break;
		}
		if (!code && !srv_migrate_name_valid(de->d_name, &version)) {
			fprintf(stderr, "migrate: %s: not NNNN_name.sql\n", de->d_name);
			err = OTA_ERR_FORMAT;
			break;
		}
		if (n == SRV_MIGRATE_MAX_FILES) {
			err = OTA_ERR_SIZE;
			break;
		}
		list[n].version = code ? 0 : version;
		snprintf(list[n].name, sizeof(list[n].name), "%s", de->d_name);
		n++;
	}
	closedir(d);
	if (err == OTA_OK && code) {
		qsort(list, n, sizeof(*list), cmp_code);
	} else if (err == OTA_OK) {
		qsort(list, n, sizeof(*list), cmp_migration);
		for (size_t i = 0; i + 1 < n; i++) {
			if (list[i].version == list[i + 1].version) {
				fprintf(stderr, "migrate: %s and %s have the same number\n",
					list[i].name, list[i + 1].name);
				err = OTA_ERR_FORMAT;
				break;
			}
		}
	}
	for (size_t i = 0; i < n && err == OTA_OK; i++)
		err = read_file(dir, &list[i]);
	if (err != OTA_OK) {
		free_list(list, n);
		return err;
	}
	*ret_list = list;
	*ret_n = n;
	return OTA_OK;
}

static bool exec_ok(PGconn *pg, const char *sql, const char *what)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "migrate: %s: %s", what, PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/* Runs one parameterised statement that records m; prints why it failed. */
static bool record_ok(PGconn *pg, const struct migration *m, const char *sql, int n,
		      const char *const *params)
{
	PGresult *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		fprintf(stderr, "migrate: recording %s: %s", m->name, PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

static enum ota_err apply_one(PGconn *pg, const struct migration *m)
{
	char version[SRV_U32_TEXT_BYTES];
	const char *params[3] = {version, m->name, m->checksum};

	snprintf(version, sizeof(version), "%u", m->version);
	if (!exec_ok(pg, "BEGIN", "BEGIN"))
		return OTA_ERR_TRANSPORT;
	if (!exec_ok(pg, m->sql, m->name)) {
		exec_ok(pg, "ROLLBACK", "ROLLBACK");
		return OTA_ERR_STORAGE;
	}
	if (!record_ok(pg, m,
		       "INSERT INTO schema_migrations (version, name, checksum)"
		       " VALUES ($1::int, $2, $3)",
		       3, params)) {
		exec_ok(pg, "ROLLBACK", "ROLLBACK");
		return OTA_ERR_STORAGE;
	}
	return exec_ok(pg, "COMMIT", "COMMIT") ? OTA_OK : OTA_ERR_STORAGE;
}

static bool record_code(PGconn *pg, const struct migration *m)
{
	const char *params[2] = {m->name, m->checksum};

	return record_ok(pg, m,
			 "INSERT INTO schema_code (name, checksum) VALUES ($1, $2)"
			 " ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum,"
			 " applied_at = now()",
			 2, params);
}

/*
 * The function files of dir/code: every file whose checksum differs from
 * the one recorded in schema_code is executed again (they hold CREATE OR
 * REPLACE statements), all changed files in one transaction. Bodies are
 * checked when they run, not when they are created, so the files' order
 * does not matter (pg_dump does the same).
 */
static enum ota_err apply_code(PGconn *pg, const char *dir, unsigned *ret_applied)
{
	char code_dir[PATH_MAX];
	struct migration *list = NULL;
	size_t n = 0;
	unsigned applied = 0;
	PGresult *res = NULL;
	enum ota_err err;

	if ((size_t)snprintf(code_dir, sizeof(code_dir), "%s/code", dir) >= sizeof(code_dir))
		return OTA_ERR_SIZE;
	err = list_dir(code_dir, true, &list, &n);
	if (err != OTA_OK)
		return err;
	if (!exec_ok(pg,
		     "CREATE TABLE IF NOT EXISTS schema_code ("
		     " name text PRIMARY KEY, checksum text NOT NULL,"
		     " applied_at timestamptz NOT NULL DEFAULT now())",
		     "schema_code")) {
		err = OTA_ERR_TRANSPORT;
		goto out;
	}
	res = PQexec(pg, "SELECT name, checksum FROM schema_code");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "migrate: %s", PQresultErrorMessage(res));
		err = OTA_ERR_TRANSPORT;
		goto out;
	}
	if (!exec_ok(pg, "BEGIN", "BEGIN") ||
	    !exec_ok(pg, "SET LOCAL check_function_bodies = off", "settings")) {
		err = OTA_ERR_TRANSPORT;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		bool same = false;

		for (int row = 0; row < PQntuples(res); row++) {
			if (strcmp(PQgetvalue(res, row, 0), list[i].name) == 0 &&
			    strcmp(PQgetvalue(res, row, 1), list[i].checksum) == 0)
				same = true;
		}
		if (same)
			continue;
		if (!exec_ok(pg, list[i].sql, list[i].name) || !record_code(pg, &list[i])) {
			exec_ok(pg, "ROLLBACK", "ROLLBACK");
			err = OTA_ERR_STORAGE;
			goto out;
		}
		srv_log(SRV_LOG_INFO, "code %s applied", list[i].name);
		applied++;
	}
	if (!exec_ok(pg, "COMMIT", "COMMIT")) {
		err = OTA_ERR_STORAGE;
		goto out;
	}
	*ret_applied = applied;
out:
	PQclear(res);
	free_list(list, n);
	return err;
}

static bool update_checksum(PGconn *pg, const struct migration *m)
{
	char version[SRV_U32_TEXT_BYTES];
	const char *params[2] = {version, m->checksum};

	snprintf(version, sizeof(version), "%u", m->version);
	return record_ok(pg, m,
			 "UPDATE schema_migrations SET checksum = $2 WHERE version = $1::int", 2,
			 params);
}

enum ota_err srv_migrate(const char *conninfo, const char *dir, unsigned *ret_applied)
{
	struct migration *list = NULL;
	size_t n = 0;
	unsigned applied = 0, code_applied = 0;
	PGconn *pg = NULL;
	PGresult *res = NULL;
	enum ota_err err;

	err = list_dir(dir, false, &list, &n);
	if (err != OTA_OK)
		return err;
	pg = PQconnectdb(conninfo);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "migrate: cannot connect: %s", PQerrorMessage(pg));
		err = OTA_ERR_TRANSPORT;
		goto out;
	}
	PQsetNoticeProcessor(pg, srv_log_pg_notice, NULL);
	exec_ok(pg, "SET client_min_messages = warning", "settings");
	if (!exec_ok(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "lock") ||
	    !exec_ok(pg,
		     "CREATE TABLE IF NOT EXISTS schema_migrations ("
		     " version integer PRIMARY KEY, name text NOT NULL,"
		     " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
		     "schema_migrations")) {
		err = OTA_ERR_TRANSPORT;
		goto out;
	}
	res = PQexec(pg, "SELECT version, name, checksum FROM schema_migrations ORDER BY version");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "migrate: %s", PQresultErrorMessage(res));
		err = OTA_ERR_TRANSPORT;
		goto out;
	}
	/* Every applied migration must still be there, unchanged. */
	for (int row = 0; row < PQntuples(res); row++) {
		unsigned version = (unsigned)strtoul(PQgetvalue(res, row, 0), NULL, 10);
		const struct migration *m = NULL;

		for (size_t i = 0; i < n; i++) {
			if (list[i].version == version)
				m = &list[i];
		}
		if (m == NULL) {
			fprintf(stderr,
				"migrate: applied migration %s is missing from %s"
				" (database newer than this server?)\n",
				PQgetvalue(res, row, 1), dir);
			err = OTA_ERR_HASH;
			goto out;
		}
		if (strcmp(m->checksum, PQgetvalue(res, row, 2)) != 0 &&
		    rebaselined(m, PQgetvalue(res, row, 2))) {
			if (!update_checksum(pg, m)) {
				err = OTA_ERR_TRANSPORT;
				goto out;
			}
			srv_log(SRV_LOG_INFO, "migration %s: record moved to its rewritten text",
				m->name);
		} else if (strcmp(m->checksum, PQgetvalue(res, row, 2)) != 0) {
			fprintf(stderr,
				"migrate: refused: %s was changed after it was applied"
				" (checksum %s, recorded %s); add a new migration instead\n",
				m->name, m->checksum, PQgetvalue(res, row, 2));
			err = OTA_ERR_HASH;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		bool done = false;

		for (int row = 0; row < PQntuples(res); row++) {
			if ((unsigned)strtoul(PQgetvalue(res, row, 0), NULL, 10) == list[i].version)
				done = true;
		}
		if (done)
			continue;
		err = apply_one(pg, &list[i]);
		if (err != OTA_OK)
			goto out;
		srv_log(SRV_LOG_INFO, "migration %s applied", list[i].name);
		applied++;
	}
	err = apply_code(pg, dir, &code_applied);
	if (err != OTA_OK)
		goto out;
	*ret_applied = applied + code_applied;
out:
	PQclear(res);
	if (pg != NULL && PQstatus(pg) == CONNECTION_OK)
		exec_ok(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", "unlock");
	PQfinish(pg);
	free_list(list, n);
	return err;
}

#define WAIT_BACKOFF_MIN_MS 200u
#define WAIT_BACKOFF_MAX_MS 5000u

static long long monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum ota_err srv_migrate_wait_db(const char *conninfo, unsigned wait_sec)
{
	/* later keywords win: conninfo's own connect_timeout overrides ours */
	const char *const keywords[] = {"connect_timeout", "dbname", NULL};
	const char *const values[] = {"5", conninfo, NULL};
	long long deadline = monotonic_ms() + (long long)wait_sec * 1000;
	unsigned backoff_ms = WAIT_BACKOFF_MIN_MS;

	for (;;) {
		PGPing ping = PQpingParams(keywords, values, 1);
		long long left;
		struct timespec pause;

		if (ping == PQPING_OK)
			return OTA_OK;
		if (ping == PQPING_NO_ATTEMPT) {
			srv_log(SRV_LOG_ERROR, "db_conninfo: not usable (bad parameters)");
			return OTA_ERR_INVALID_ARG;
		}
		left = deadline - monotonic_ms();
		if (left <= 0) {
			srv_log(SRV_LOG_ERROR, "database not reachable after %u s (db_wait_sec)",
				wait_sec);
			return OTA_ERR_TIMEOUT;
		}
		if ((long long)backoff_ms > left)
			backoff_ms = (unsigned)left;
		srv_log(SRV_LOG_WARN, "waiting for the database (%s), next try in %u ms",
			ping == PQPING_REJECT ? "it refuses connections" : "no answer", backoff_ms);
		pause.tv_sec = backoff_ms / 1000;
		pause.tv_nsec = (long)(backoff_ms % 1000) * 1000000L;
		nanosleep(&pause, NULL);
		backoff_ms =
			backoff_ms * 2 > WAIT_BACKOFF_MAX_MS ? WAIT_BACKOFF_MAX_MS : backoff_ms * 2;
	}
}
