/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys rootlist new | sign | merge. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int cli_cmd_rootlist(int argc, char **argv)
{
	struct list_cmd l = {.c = {.now = (uint64_t)time(NULL)}};
	struct common *c = &l.c;
	struct list_args *a = &l.a;
	Fleetota__V1__Signed *penv = NULL;
	Fleetota__V1__PublicKey *adds[MAX_LIST_ARGS];
	enum ota_err err = OTA_OK;
	int rc;

	if ((rc = cli_list_start(argc, argv, 1, &l)) >= 0)
		goto out;
	/* the current RootList: trusted as the anchor of this step; none for v1 */
	if (a->prev &&
	    ((err = kr_envelope_read(a->prev, &l.arena.arena, &penv, &c->diag)) != OTA_OK ||
	     (err = kr_verify_root_anchor(&l.v, penv, &c->diag)) != OTA_OK))
		goto cli_fail;
	const Fleetota__V1__RootList *prev = l.v.root;
	uint64_t prev_version = prev ? prev->version : 0;
	if (strcmp(a->sub, "new") == 0) {
		struct list_numbers n;
		if ((rc = cli_list_numbers(&l, &n)) != 0)
			goto out;
		if (n.threshold > OTA_MAX_KEYS || (a->threshold_arg && n.threshold == 0)) {
			rc = cli_usage_error("bad --threshold%s", "");
			goto out;
		}
		if ((err = cli_read_adds(&l, adds)) != OTA_OK)
			goto cli_fail;
		struct kr_rootlist_spec spec = {
			.prev = prev,
			.version = n.version,
			.threshold = (uint32_t)n.threshold,
			.issued_at = n.issued,
			.expires_at = n.expires,
			.add = adds,
			.n_add = a->add.n,
			.remove = a->remove.items,
			.n_remove = a->remove.n,
		};
		if ((err = kr_rootlist_build(&spec, &l.body, &l.body_len, &c->diag)) != OTA_OK)
			goto cli_fail;
	}
	if ((err = cli_list_envelope(&l)) != OTA_OK)
		goto cli_fail;
	Fleetota__V1__RootList *next = NULL;
	if ((err = ota_rootlist_parse(l.env, &l.check.arena, &next)) != OTA_OK) {
		kr_fail(&c->diag, err, "not a RootList");
		goto cli_fail;
	}
	uint64_t version = next->version;
	if (version != prev_version + 1) {
		err = kr_fail(
			&c->diag, OTA_ERR_ROOT_CHAIN,
			prev ? "RootList v%llu does not follow v%llu"
			     : "RootList v%llu without --prev: only v1 (v%llu + 1) is possible",
			(unsigned long long)version, (unsigned long long)prev_version);
		goto cli_fail;
	}
	char lists_name[KR_LIST_NAME_BYTES];
	snprintf(lists_name, sizeof(lists_name), "RootList v%llu or v%llu",
		 (unsigned long long)prev_version, (unsigned long long)version);
	struct signers rotation = {prev ? prev->keys : NULL, prev ? prev->n_keys : 0, next->keys,
				   next->n_keys, lists_name};
	if ((err = cli_sign_all(c, l.env, OTA_OBJ_ROOT, version, a->keys.items, a->keys.n,
				&rotation)) != OTA_OK)
		goto cli_fail;
	size_t have_old = 0, have_new = 0;
	ota_threshold_count(OTA_OBJ_ROOT, l.env, next->keys, next->n_keys, &have_new);
	if (prev) {
		ota_threshold_count(OTA_OBJ_ROOT, l.env, prev->keys, prev->n_keys, &have_old);
		printf("RootList v%llu: %zu of %u old-root and %zu of %u new-root signatures\n",
		       (unsigned long long)version, have_old, prev->threshold, have_new,
		       next->threshold);
	} else {
		printf("RootList v1: %zu of %u root signatures\n", have_new, next->threshold);
	}
	/* kr_verify_root_step: a chain step from prev, or (no prev) an anchor */
	if (a->finalize && (err = kr_verify_root_step(&l.v, l.env, &c->diag)) != OTA_OK)
		goto cli_fail;
	err = kr_envelope_write(a->out, l.env, &c->diag);
cli_fail:
	rc = err == OTA_OK ? 0 : cli_fail(err, &c->diag);
out:
	return cli_list_end(&l, rc);
}
