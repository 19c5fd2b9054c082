/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys keylist new | sign | merge. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"

int cli_cmd_keylist(int argc, char **argv)
{
	struct common c = {.now = (uint64_t)time(NULL)};
	struct list_args a = {0};
	struct kr_verifier v;
	struct kr_arena prev_arena = {0};
	Fleetota__V1__KeyList *prev = NULL;
	Fleetota__V1__Signed *env = NULL;
	Fleetota__V1__PublicKey *adds[MAX_LIST_ARGS];
	struct kr_expire expires[MAX_LIST_ARGS];
	uint8_t *body = NULL;
	size_t body_len = 0;
	enum ota_err err = OTA_OK;
	int rc;

	kr_verifier_init(&v, 0);
	if ((rc = cli_list_start(argc, argv, &c, &a, 0, &v, &prev_arena)) >= 0)
		goto out;
	if (a.rootlist && (err = cli_load_verified(&v, a.rootlist, kr_verify_root_anchor, &c.diag,
						   NULL)) != OTA_OK)
		goto cli_fail;
	if (a.prev) {
		Fleetota__V1__Signed *penv = NULL;
		if ((err = kr_envelope_read(a.prev, &prev_arena.arena, &penv, &c.diag)) != OTA_OK)
			goto cli_fail;
		if (ota_keylist_parse(penv, &prev_arena.arena, &prev) != OTA_OK) {
			err = kr_fail(&c.diag, OTA_ERR_FORMAT, "%s is not a KeyList", a.prev);
			goto cli_fail;
		}
		v.keylist_floor = prev->version;
	}
	if (strcmp(a.sub, "new") == 0) {
		struct kr_keylist_spec spec = {.prev = prev};
		uint64_t issued = c.now, expires_at = 0;
		if ((a.version_arg && cli_parse_u64(a.version_arg, &spec.version)) ||
		    (a.issued_arg && cli_parse_time(&c, a.issued_arg, &issued)) ||
		    (a.expires_arg && cli_parse_time(&c, a.expires_arg, &expires_at))) {
			rc = EXIT_USAGE;
			goto out;
		}
		if (a.version_arg && spec.version == 0) {
			rc = cli_usage_error("--version must be at least 1%s", "");
			goto out;
		}
		spec.issued_at = issued;
		spec.expires_at = expires_at;
		spec.rootlist_version = v.root ? v.root->version : 0;
		if ((err = cli_read_adds(&a, &prev_arena.arena, adds, &c.diag)) != OTA_OK)
			goto cli_fail;
		for (size_t i = 0; i < a.expire.n; i++) {
			const char *eq = strrchr(a.expire.items[i], '=');
			static char selectors[MAX_LIST_ARGS][OTA_MAX_STRING_BYTES + 1];
			if (!eq || (size_t)(eq - a.expire.items[i]) > OTA_MAX_STRING_BYTES ||
			    cli_parse_time(&c, eq + 1, &expires[i].not_after)) {
				rc = cli_usage_error("--expire wants SEL=TIME, got %s",
						     a.expire.items[i]);
				goto out;
			}
			snprintf(selectors[i], sizeof(selectors[i]), "%.*s",
				 (int)(eq - a.expire.items[i]), a.expire.items[i]);
			expires[i].selector = selectors[i];
		}
		spec.add = adds;
		spec.n_add = a.add.n;
		spec.remove = a.remove.items;
		spec.n_remove = a.remove.n;
		spec.expire = expires;
		spec.n_expire = a.expire.n;
		if ((err = kr_keylist_build(&spec, &body, &body_len, &c.diag)) != OTA_OK ||
		    (err = kr_envelope_new(body, body_len, &env)) != OTA_OK)
			goto cli_fail;
	} else if ((err = cli_list_envelope_load(&a, &c.diag, &env)) != OTA_OK) {
		goto cli_fail;
	}
	/* what is about to be signed must be a well-formed KeyList */
	struct kr_arena check = {0};
	Fleetota__V1__KeyList *kl = NULL;
	if ((err = kr_arena_init(&check, OTA_DECODE_ARENA_BYTES)) != OTA_OK)
		goto cli_fail;
	err = ota_keylist_parse(env, &check.arena, &kl);
	uint64_t version = kl ? kl->version : 0;
	kr_arena_release(&check);
	if (err != OTA_OK) {
		kr_fail(&c.diag, err, "not a KeyList");
		goto cli_fail;
	}
	if (prev && version <= prev->version) {
		err = kr_fail(&c.diag, OTA_ERR_KEYLIST_ROLLBACK,
			      "KeyList version %llu does not increase over %llu",
			      (unsigned long long)version, (unsigned long long)prev->version);
		goto cli_fail;
	}
	char root_name[48];
	struct signers roots = {.what = root_name};
	if (v.root) {
		roots.a = v.root->keys;
		roots.n_a = v.root->n_keys;
		snprintf(root_name, sizeof(root_name), "RootList v%llu",
			 (unsigned long long)v.root->version);
	}
	if ((err = cli_sign_all(&c, env, OTA_OBJ_KEYLIST, version, a.keys.items, a.keys.n,
				v.root ? &roots : NULL)) != OTA_OK)
		goto cli_fail;
	if (v.root) {
		size_t have = 0;
		ota_threshold_count(OTA_OBJ_KEYLIST, env, v.root->keys, v.root->n_keys, &have);
		if (a.finalize) {
			if ((err = kr_verify_keylist(&v, env, &c.diag)) != OTA_OK)
				goto cli_fail;
		}
		printf("KeyList v%llu: %zu of %u root signatures%s\n", (unsigned long long)version,
		       have, v.root->threshold,
		       have >= v.root->threshold ? " (complete)" : " (partial)");
	} else {
		printf("KeyList v%llu: %zu signatures (give --rootlist to count them)\n",
		       (unsigned long long)version, env->n_signatures);
	}
	if ((err = kr_envelope_write(a.out, env, &c.diag)) != OTA_OK)
		goto cli_fail;
	rc = 0;
	goto out;
cli_fail:
	rc = cli_fail(err, &c.diag);
out:
	return cli_list_end(rc, &c, &v, &prev_arena, env, body);
}
