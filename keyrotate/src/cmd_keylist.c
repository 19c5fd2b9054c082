/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys keylist new | sign | merge. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* --expire SEL=TIME: EXIT_USAGE on a bad one, else 0. */
static int parse_expires(const struct list_cmd *l, struct kr_expire *expires)
{
	static char selectors[MAX_LIST_ARGS][OTA_MAX_STRING_BYTES + 1];
	const struct list *expire = &l->a.expire;
	for (size_t i = 0; i < expire->n; i++) {
		const char *eq = strrchr(expire->items[i], '=');
		if (!eq || (size_t)(eq - expire->items[i]) > OTA_MAX_STRING_BYTES ||
		    cli_parse_time(&l->c, eq + 1, &expires[i].not_after))
			return cli_usage_error("--expire wants SEL=TIME, got %s", expire->items[i]);
		snprintf(selectors[i], sizeof(selectors[i]), "%.*s", (int)(eq - expire->items[i]),
			 expire->items[i]);
		expires[i].selector = selectors[i];
	}
	return 0;
}

int cli_cmd_keylist(int argc, char **argv)
{
	struct list_cmd l = {.c = {.now = (uint64_t)time(NULL)}};
	struct common *c = &l.c;
	struct list_args *a = &l.a;
	Fleetota__V1__KeyList *prev = NULL;
	Fleetota__V1__PublicKey *adds[MAX_LIST_ARGS];
	struct kr_expire expires[MAX_LIST_ARGS];
	enum ota_err err = OTA_OK;
	int rc;

	if ((rc = cli_list_start(argc, argv, 0, &l)) >= 0)
		goto out;
	if (a->rootlist && (err = cli_load_verified(&l.v, a->rootlist, kr_verify_root_anchor,
						    &c->diag, NULL)) != OTA_OK)
		goto cli_fail;
	if (a->prev) {
		Fleetota__V1__Signed *penv = NULL;
		if ((err = kr_envelope_read(a->prev, &l.arena.arena, &penv, &c->diag)) != OTA_OK)
			goto cli_fail;
		if (ota_keylist_parse(penv, &l.arena.arena, &prev) != OTA_OK) {
			err = kr_fail(&c->diag, OTA_ERR_FORMAT, "%s is not a KeyList", a->prev);
			goto cli_fail;
		}
		l.v.keylist_floor = prev->version;
	}
	if (strcmp(a->sub, "new") == 0) {
		struct list_numbers n;
		if ((rc = cli_list_numbers(&l, &n)) != 0)
			goto out;
		if (a->version_arg && n.version == 0) {
			rc = cli_usage_error("--version must be at least 1%s", "");
			goto out;
		}
		if ((err = cli_read_adds(&l, adds)) != OTA_OK)
			goto cli_fail;
		if ((rc = parse_expires(&l, expires)) != 0)
			goto out;
		struct kr_keylist_spec spec = {
			.prev = prev,
			.version = n.version,
			.issued_at = n.issued,
			.expires_at = n.expires,
			.rootlist_version = l.v.root ? l.v.root->version : 0,
			.add = adds,
			.n_add = a->add.n,
			.remove = a->remove.items,
			.n_remove = a->remove.n,
			.expire = expires,
			.n_expire = a->expire.n,
		};
		if ((err = kr_keylist_build(&spec, &l.body, &l.body_len, &c->diag)) != OTA_OK)
			goto cli_fail;
	}
	if ((err = cli_list_envelope(&l)) != OTA_OK)
		goto cli_fail;
	/* what is about to be signed must be a well-formed KeyList */
	Fleetota__V1__KeyList *kl = NULL;
	if ((err = ota_keylist_parse(l.env, &l.check.arena, &kl)) != OTA_OK) {
		kr_fail(&c->diag, err, "not a KeyList");
		goto cli_fail;
	}
	uint64_t version = kl->version;
	if (prev && version <= prev->version) {
		err = kr_fail(&c->diag, OTA_ERR_KEYLIST_ROLLBACK,
			      "KeyList version %llu does not increase over %llu",
			      (unsigned long long)version, (unsigned long long)prev->version);
		goto cli_fail;
	}
	const Fleetota__V1__RootList *root = l.v.root;
	char root_name[KR_ROOT_NAME_BYTES];
	struct signers roots = {.what = root_name};
	if (root) {
		roots.a = root->keys;
		roots.n_a = root->n_keys;
		snprintf(root_name, sizeof(root_name), "RootList v%llu",
			 (unsigned long long)root->version);
	}
	if ((err = cli_sign_all(c, l.env, OTA_OBJ_KEYLIST, version, a->keys.items, a->keys.n,
				root ? &roots : NULL)) != OTA_OK)
		goto cli_fail;
	if (root) {
		size_t have = 0;
		ota_threshold_count(OTA_OBJ_KEYLIST, l.env, root->keys, root->n_keys, &have);
		if (a->finalize && (err = kr_verify_keylist(&l.v, l.env, &c->diag)) != OTA_OK)
			goto cli_fail;
		printf("KeyList v%llu: %zu of %u root signatures%s\n", (unsigned long long)version,
		       have, root->threshold,
		       have >= root->threshold ? " (complete)" : " (partial)");
	} else {
		printf("KeyList v%llu: %zu signatures (give --rootlist to count them)\n",
		       (unsigned long long)version, l.env->n_signatures);
	}
	err = kr_envelope_write(a->out, l.env, &c->diag);
cli_fail:
	rc = err == OTA_OK ? 0 : cli_fail(err, &c->diag);
out:
	return cli_list_end(&l, rc);
}
