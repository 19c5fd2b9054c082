/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys verify: any signed object or bundle against a RootList. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"

static const char help_verify[] =
	"Usage: ota-keys verify FILE --rootlist ROOTLIST [--rootlist-chain FILE]...\n"
	"                       [--keylist KEYLIST] [--keylist-floor N] [--image IMAGE]\n"
	"                       [--type rootlist|keylist|manifest|timestamp|bundle] [--now TIME]\n"
	"Verifies FILE with the device's own code. ROOTLIST is the trust anchor (signed\n"
	"by its own threshold); --rootlist-chain files are walked one version at a time.\n"
	"A RootList FILE must be the next step (or the anchor itself); a KeyList must be\n"
	"signed by a threshold of the roots and above --keylist-floor; a manifest by a\n"
	"key of --keylist valid at its issued_at (--image checks the image too); a\n"
	"bundle is checked whole, image streamed. Exits 0, or 1 with OTA_ERR_X: detail.\n";

int cli_cmd_verify(int argc, char **argv)
{
	static const struct option options[] = {
		COMMON_OPTIONS,
		{"rootlist", required_argument, NULL, OPT_ROOTLIST},
		{"rootlist-chain", required_argument, NULL, OPT_ROOTLIST_CHAIN},
		{"keylist", required_argument, NULL, OPT_KEYLIST},
		{"keylist-floor", required_argument, NULL, OPT_KEYLIST_FLOOR},
		{"image", required_argument, NULL, OPT_IMAGE},
		{"type", required_argument, NULL, OPT_TYPE},
		{NULL, 0, NULL, 0},
	};
	struct common c = {.now = (uint64_t)time(NULL)};
	struct list chain = {0};
	const char *rootlist = NULL, *keylist = NULL, *image = NULL;
	enum kr_obj_kind kind = KR_OBJ_UNKNOWN;
	uint64_t floor = 0;
	struct kr_verifier v;
	struct ota_arena *arena = NULL;
	Fleetota__V1__Signed *anchor = NULL, *env = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc, opt;
	enum ota_err err = OTA_OK;

	kr_verifier_init(&v, 0);
	while ((opt = cli_next_option(argc, argv, "", options, &c, help_verify, &rc)) > 0) {
		switch (opt) {
		case OPT_ROOTLIST:
			rootlist = optarg;
			break;
		case OPT_ROOTLIST_CHAIN:
			if (cli_list_push(&chain, optarg))
				return EXIT_USAGE;
			break;
		case OPT_KEYLIST:
			keylist = optarg;
			break;
		case OPT_KEYLIST_FLOOR:
			if (cli_parse_u64(optarg, &floor))
				return EXIT_USAGE;
			break;
		case OPT_IMAGE:
			image = optarg;
			break;
		case OPT_TYPE:
			if (kr_obj_kind_parse(optarg, &kind) != OTA_OK || kind == KR_OBJ_PUBKEY)
				return cli_usage_error("unknown --type %s", optarg);
			break;
		}
	}
	if (opt < 0)
		return rc;
	if (optind + 1 != argc)
		return cli_usage_error("verify takes one FILE%s", "");
	const char *path = argv[optind];
	if (!rootlist)
		return cli_usage_error("--rootlist (the trust anchor) is required%s", "");
	if ((rc = cli_common_ready(&c)) != 0)
		goto out;
	v.now = c.now;
	v.keylist_floor = floor;
	if ((err = cli_load_verified(&v, rootlist, kr_verify_root_anchor, &c.diag, &anchor)) !=
	    OTA_OK)
		goto cli_fail;
	for (size_t i = 0; i < chain.n; i++) {
		Fleetota__V1__Signed *step = NULL;
		if ((err = cli_load_verified(&v, chain.items[i], kr_verify_root_step, &c.diag,
					     &step)) != OTA_OK)
			goto cli_fail;
		anchor = step; /* the newest trusted one */
	}
	if ((err = kr_verifier_arena(&v, KR_HEADER_ARENA_BYTES, &arena)) != OTA_OK)
		goto cli_fail;
	if (kind == KR_OBJ_UNKNOWN) {
		/* only the prefix matters for a bundle; objects are small */
		uint8_t head[OTA_BUNDLE_PREFIX_BYTES];
		FILE *f = fopen(path, "rb");
		size_t got = f ? fread(head, 1, sizeof(head), f) : 0;
		if (f)
			fclose(f);
		if (!f) {
			err = kr_fail(&c.diag, OTA_ERR_STORAGE, "cannot open %s", path);
			goto cli_fail;
		}
		uint32_t hl;
		if (got == sizeof(head) && ota_bundle_prefix_parse(head, &hl) == OTA_OK) {
			kind = KR_OBJ_BUNDLE;
		} else {
			if ((err = kr_file_read(path, KR_MAX_OBJECT_FILE_BYTES, &buf, &len,
						&c.diag)) != OTA_OK)
				goto cli_fail;
			kind = kr_obj_detect(buf, len, arena);
			ota_arena_reset(arena);
		}
	}
	if (kind == KR_OBJ_BUNDLE) {
		if (keylist) {
			if ((err = cli_load_verified(&v, keylist, kr_verify_keylist, &c.diag,
						     NULL)) != OTA_OK)
				goto cli_fail;
			/* a KeyList in the bundle must then be newer than this one */
			v.keylist_floor =
				v.keylist->version > floor ? v.keylist->version - 1 : floor;
		}
		if ((err = kr_verify_bundle_file(&v, path, &c.diag)) != OTA_OK)
			goto cli_fail;
		printf("OK: bundle %s verifies (RootList v%llu, KeyList v%llu, image intact)\n",
		       path, (unsigned long long)v.root->version,
		       (unsigned long long)v.keylist->version);
		rc = 0;
		goto out;
	}
	if (kind == KR_OBJ_UNKNOWN || kind == KR_OBJ_PUBKEY) {
		err = kr_fail(&c.diag, OTA_ERR_FORMAT, "%s is not a signed fleetota object", path);
		goto cli_fail;
	}
	if (!buf &&
	    (err = kr_file_read(path, KR_MAX_OBJECT_FILE_BYTES, &buf, &len, &c.diag)) != OTA_OK)
		goto cli_fail;
	if (ota_envelope_decode(buf, len, arena, &env) != OTA_OK) {
		err = kr_fail(&c.diag, OTA_ERR_FORMAT, "%s is not a signed fleetota object", path);
		goto cli_fail;
	}
	if (kind == KR_OBJ_ROOTLIST) {
		Fleetota__V1__RootList *r = NULL;
		uint64_t trusted = v.root->version;
		if (anchor && env->body.len == anchor->body.len &&
		    memcmp(env->body.data, anchor->body.data, env->body.len) == 0) {
			/* the anchor or the chain's end itself: checked above */
			printf("OK: RootList v%llu is the trusted one\n",
			       (unsigned long long)trusted);
			rc = 0;
			goto out;
		}
		if ((err = ota_rootlist_parse(env, arena, &r)) != OTA_OK) {
			kr_fail(&c.diag, err, "malformed RootList");
			goto cli_fail;
		}
		if (r->version != trusted + 1) {
			err = kr_fail(&c.diag, OTA_ERR_ROOT_CHAIN,
				      "RootList v%llu is not the step after trusted v%llu",
				      (unsigned long long)r->version, (unsigned long long)trusted);
			goto cli_fail;
		}
		if ((err = kr_verify_root_step(&v, env, &c.diag)) != OTA_OK)
			goto cli_fail;
		printf("OK: RootList v%llu chains from v%llu (threshold %u of %zu)\n",
		       (unsigned long long)v.root->version, (unsigned long long)trusted,
		       v.root->threshold, v.root->n_keys);
	} else if (kind == KR_OBJ_KEYLIST) {
		if ((err = kr_verify_keylist(&v, env, &c.diag)) != OTA_OK)
			goto cli_fail;
		printf("OK: KeyList v%llu signed by RootList v%llu (%zu keys)\n",
		       (unsigned long long)v.keylist->version, (unsigned long long)v.root->version,
		       v.keylist->n_keys);
	} else if (kind == KR_OBJ_TIMESTAMP) {
		Fleetota__V1__Timestamp *t = NULL;
		char expires[KR_TIME_TEXT_BYTES];
		if (!keylist) {
			rc = cli_usage_error("a timestamp needs --keylist%s", "");
			goto out;
		}
		if ((err = cli_load_verified(&v, keylist, kr_verify_keylist, &c.diag, NULL)) !=
			    OTA_OK ||
		    (err = kr_verify_timestamp(&v, env, arena, &t, &c.diag)) != OTA_OK)
			goto cli_fail;
		printf("OK: timestamp %s current %s (code %llu) signed by the timestamp key of "
		       "KeyList v%llu, fresh until %s\n",
		       t->product, t->version[0] ? t->version : "-",
		       (unsigned long long)t->version_code, (unsigned long long)v.keylist->version,
		       kr_time_format(t->expires_at, expires, sizeof(expires)));
	} else {
		Fleetota__V1__Manifest *m = NULL;
		if (!keylist) {
			rc = cli_usage_error("a manifest needs --keylist%s", "");
			goto out;
		}
		if ((err = cli_load_verified(&v, keylist, kr_verify_keylist, &c.diag, NULL)) !=
			    OTA_OK ||
		    (err = kr_verify_manifest(&v, env, arena, &m, &c.diag)) != OTA_OK)
			goto cli_fail;
		if (image && (err = kr_verify_image_file(m, image, &c.diag)) != OTA_OK)
			goto cli_fail;
		printf("OK: manifest %s %s signed by a key of KeyList v%llu%s\n", m->product,
		       m->version, (unsigned long long)v.keylist->version,
		       image ? ", image matches" : "");
	}
	rc = 0;
	goto out;
cli_fail:
	rc = cli_fail(err, &c.diag);
out:
	free(buf);
	kr_verifier_release(&v);
	cli_common_release(&c);
	return rc;
}
