/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys rootlist new | sign | merge. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"

int cli_cmd_rootlist(int argc, char **argv)
{
	struct common c = {.now = (uint64_t)time(NULL)};
	struct list_args a = {0};
	struct kr_verifier v;
	struct kr_arena arena = {0};
	Fleetota__V1__Signed *env = NULL, *penv = NULL;
	Fleetota__V1__PublicKey *adds[MAX_LIST_ARGS];
	uint8_t *body = NULL;
	size_t body_len = 0;
	enum ota_err err = OTA_OK;
	int rc;

	kr_verifier_init(&v, 0);
	if ((rc = cli_list_start(argc, argv, &c, &a, 1, &v, &arena)) >= 0)
		goto out;
	/* the current RootList: trusted as the anchor of this step; none for v1 */
	if (a.prev && ((err = kr_envelope_read(a.prev, &arena.arena, &penv, &c.diag)) != OTA_OK ||
		       (err = kr_verify_root_anchor(&v, penv, &c.diag)) != OTA_OK))
		goto cli_fail;
	const Fleetota__V1__RootList *prev = v.root;
	uint64_t prev_version = prev ? prev->version : 0;
	if (strcmp(a.sub, "new") == 0) {
		struct kr_rootlist_spec spec = {.prev = prev};
		uint64_t issued = c.now, expires_at = 0, threshold = 0;
		if ((a.version_arg && cli_parse_u64(a.version_arg, &spec.version)) ||
		    (a.threshold_arg && cli_parse_u64(a.threshold_arg, &threshold)) ||
		    (a.issued_arg && cli_parse_time(&c, a.issued_arg, &issued)) ||
		    (a.expires_arg && cli_parse_time(&c, a.expires_arg, &expires_at))) {
			rc = EXIT_USAGE;
			goto out;
		}
		if (threshold > OTA_MAX_KEYS || (a.threshold_arg && threshold == 0)) {
			rc = cli_usage_error("bad --threshold%s", "");
			goto out;
		}
		spec.threshold = (uint32_t)threshold;
		spec.issued_at = issued;
		spec.expires_at = expires_at;
		if ((err = cli_read_adds(&a, &arena.arena, adds, &c.diag)) != OTA_OK)
			goto cli_fail;
		spec.add = adds;
		spec.n_add = a.add.n;
		spec.remove = a.remove.items;
		spec.n_remove = a.remove.n;
		if ((err = kr_rootlist_build(&spec, &body, &body_len, &c.diag)) != OTA_OK ||
		    (err = kr_envelope_new(body, body_len, &env)) != OTA_OK)
			goto cli_fail;
	} else if ((err = cli_list_envelope_load(&a, &c.diag, &env)) != OTA_OK) {
		goto cli_fail;
	}
	struct kr_arena check = {0};
	Fleetota__V1__RootList *next = NULL;
	if ((err = kr_arena_init(&check, OTA_DECODE_ARENA_BYTES)) != OTA_OK)
		goto cli_fail;
	err = ota_rootlist_parse(env, &check.arena, &next);
	if (err != OTA_OK) {
		kr_arena_release(&check);
		kr_fail(&c.diag, err, "not a RootList");
		goto cli_fail;
	}
	uint64_t version = next->version;
	if (version != prev_version + 1) {
		kr_arena_release(&check);
		err = kr_fail(
			&c.diag, OTA_ERR_ROOT_CHAIN,
			prev ? "RootList v%llu does not follow v%llu"
			     : "RootList v%llu without --prev: only v1 (v%llu + 1) is possible",
			(unsigned long long)version, (unsigned long long)prev_version);
		goto cli_fail;
	}
	char lists_name[64];
	snprintf(lists_name, sizeof(lists_name), "RootList v%llu or v%llu",
		 (unsigned long long)prev_version, (unsigned long long)version);
	struct signers rotation = {prev ? prev->keys : NULL, prev ? prev->n_keys : 0, next->keys,
				   next->n_keys, lists_name};
	err = cli_sign_all(&c, env, OTA_OBJ_ROOT, version, a.keys.items, a.keys.n, &rotation);
	size_t have_old = 0, have_new = 0;
	if (err == OTA_OK) {
		ota_threshold_count(OTA_OBJ_ROOT, env, next->keys, next->n_keys, &have_new);
		if (prev) {
			ota_threshold_count(OTA_OBJ_ROOT, env, prev->keys, prev->n_keys, &have_old);
			printf("RootList v%llu: %zu of %u old-root and %zu of %u new-root "
			       "signatures\n",
			       (unsigned long long)version, have_old, prev->threshold, have_new,
			       next->threshold);
		} else {
			printf("RootList v1: %zu of %u root signatures\n", have_new,
			       next->threshold);
		}
	}
	kr_arena_release(&check);
	if (err != OTA_OK)
		goto cli_fail;
	/* kr_verify_root_step: a chain step from prev, or (no prev) an anchor */
	if (a.finalize && (err = kr_verify_root_step(&v, env, &c.diag)) != OTA_OK)
		goto cli_fail;
	if ((err = kr_envelope_write(a.out, env, &c.diag)) != OTA_OK)
		goto cli_fail;
	rc = 0;
	goto out;
cli_fail:
	rc = cli_fail(err, &c.diag);
out:
	return cli_list_end(rc, &c, &v, &arena, env, body);
}
