/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys timestamp: a short-lived signed statement of a product line's current release. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char help_timestamp[] =
	"Usage: ota-keys timestamp --key TSKEY --keylist KEYLIST --product MODEL --out FILE\n"
	"                          [--manifest MANIFEST | --version V --version-code N\n"
	"                           [--security-counter N] [--artifact ID]]\n"
	"                          [--rootlist ROOTLIST] [--issued TIME] [--expires TIME]\n"
	"Signs a Timestamp (signed freshness, docs/keys.md) with the timestamp role's\n"
	"key: the key must be in KEYLIST with the timestamp role (an operational key is\n"
	"OTA_ERR_KEY_ROLE). --manifest takes the current release from a signed manifest\n"
	"(verified against KEYLIST). A Timestamp always expires: --expires never is\n"
	"refused, and so is a lifetime above 7 days (OTA_ERR_FORMAT).\n"
	"  --issued TIME          default now; --expires TIME default +1d\n"
	"  --rootlist ROOTLIST    verify KEYLIST against it first\n" COMMON_HELP;

struct ts_args {
	const char *key, *keylist, *rootlist, *manifest, *out;
	const char *issued_arg, *expires_arg, *version_arg, *version_code_arg, *counter_arg;
	const char *artifact_arg;
	Fleetota__V1__Timestamp ts;
};

static int ts_parse_args(int argc, char **argv, struct common *c, struct ts_args *a)
{
	static const struct option options[] = {
		COMMON_OPTIONS,
		{"key", required_argument, NULL, OPT_KEY},
		{"keylist", required_argument, NULL, OPT_KEYLIST},
		{"rootlist", required_argument, NULL, OPT_ROOTLIST},
		{"product", required_argument, NULL, OPT_PRODUCT},
		{"manifest", required_argument, NULL, OPT_MANIFEST},
		{"version", required_argument, NULL, OPT_VERSION},
		{"version-code", required_argument, NULL, OPT_VERSION_CODE},
		{"security-counter", required_argument, NULL, OPT_SECURITY_COUNTER},
		{"artifact", required_argument, NULL, OPT_ARTIFACT},
		{"issued", required_argument, NULL, OPT_ISSUED},
		{"expires", required_argument, NULL, OPT_EXPIRES},
		{"out", required_argument, NULL, OPT_OUT},
		{NULL, 0, NULL, 0},
	};
	int rc, opt;
	while ((opt = cli_next_option(argc, argv, "", options, c, help_timestamp, &rc)) > 0) {
		switch (opt) {
		case OPT_KEY:
			a->key = optarg;
			break;
		case OPT_KEYLIST:
			a->keylist = optarg;
			break;
		case OPT_ROOTLIST:
			a->rootlist = optarg;
			break;
		case OPT_PRODUCT:
			a->ts.product = optarg;
			break;
		case OPT_MANIFEST:
			a->manifest = optarg;
			break;
		case OPT_VERSION:
			a->version_arg = optarg;
			break;
		case OPT_VERSION_CODE:
			a->version_code_arg = optarg;
			break;
		case OPT_SECURITY_COUNTER:
			a->counter_arg = optarg;
			break;
		case OPT_ARTIFACT:
			a->artifact_arg = optarg;
			break;
		case OPT_ISSUED:
			a->issued_arg = optarg;
			break;
		case OPT_EXPIRES:
			a->expires_arg = optarg;
			break;
		case OPT_OUT:
			a->out = optarg;
			break;
		}
	}
	if (opt < 0)
		return rc;
	if (optind != argc || !a->key || !a->keylist || !a->ts.product[0] || !a->out)
		return cli_usage_error("timestamp needs --key, --keylist, --product and --out%s",
				       "");
	if (a->manifest && (a->version_arg || a->version_code_arg || a->counter_arg))
		return cli_usage_error("--manifest names the release: no --version-code%s", "");
	if (cli_parse_time(c, a->issued_arg, &a->ts.issued_at) ||
	    cli_parse_time(c, a->expires_arg, &a->ts.expires_at) ||
	    (a->version_code_arg && cli_parse_u64(a->version_code_arg, &a->ts.version_code)) ||
	    (a->counter_arg && cli_parse_u64(a->counter_arg, &a->ts.security_counter)))
		return EXIT_USAGE;
	return -1;
}

/* The key must be the KeyList's timestamp key, valid at issued_at. */
static enum ota_err ts_signer_check(struct common *c, const Fleetota__V1__KeyList *kl,
				    const char *key_spec, uint64_t issued_at)
{
	EVP_PKEY *pkey = NULL;
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES], id[OTA_KEY_ID_BYTES];
	size_t spki_len;
	enum ota_alg alg;
	enum ota_err err = kr_key_load(key_spec, &c->key_opts, &pkey, &c->diag);
	if (err != OTA_OK)
		return err;
	err = ota_pkey_public(pkey, &alg, spki, &spki_len, id);
	EVP_PKEY_free(pkey);
	if (err != OTA_OK)
		return kr_fail(&c->diag, err, "unusable key");
	const Fleetota__V1__PublicKey *key = ota_keylist_find(kl, id, sizeof(id));
	if (!key)
		return kr_fail(&c->diag, OTA_ERR_KEY_UNKNOWN,
			       "the signing key is not in KeyList v%llu",
			       (unsigned long long)kl->version);
	if (key->role != FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP)
		return kr_fail(&c->diag, OTA_ERR_KEY_ROLE,
			       "\"%s\" is an operational key: only the timestamp key signs "
			       "timestamps",
			       key->name);
	if ((key->not_before && issued_at < key->not_before) ||
	    (key->not_after && issued_at > key->not_after))
		return kr_fail(&c->diag, OTA_ERR_KEY_EXPIRED,
			       "timestamp key \"%s\" is not valid at issued_at", key->name);
	return OTA_OK;
}

/* The current release from a signed manifest verified against the KeyList. */
static enum ota_err ts_from_manifest(struct common *c, struct kr_verifier *v, const char *path,
				     Fleetota__V1__Timestamp *ts, uint8_t sha[OTA_SHA256_BYTES])
{
	struct ota_arena *arena = NULL;
	Fleetota__V1__Signed *menv = NULL;
	Fleetota__V1__Manifest *m = NULL;
	enum ota_err err = kr_verifier_arena(v, OTA_DECODE_ARENA_BYTES, &arena);
	if (err == OTA_OK)
		err = kr_envelope_read(path, arena, &menv, &c->diag);
	uint64_t saved_now = v->now;
	v->now = 0; /* the current release may be older than its own expiry judgement */
	if (err == OTA_OK)
		err = kr_verify_manifest(v, menv, arena, &m, &c->diag);
	v->now = saved_now;
	if (err != OTA_OK)
		return err;
	if (strcmp(m->product, ts->product) != 0)
		return kr_fail(&c->diag, OTA_ERR_HW_MISMATCH, "the manifest is for %s, not %s",
			       m->product, ts->product);
	ts->version = m->version;
	ts->version_code = m->version_code;
	ts->security_counter = m->security_counter;
	err = ota_sha256(menv->body.data, menv->body.len, sha);
	if (err != OTA_OK)
		return err;
	ts->manifest_sha256.data = sha;
	ts->manifest_sha256.len = OTA_SHA256_BYTES;
	return OTA_OK;
}

int cli_cmd_timestamp(int argc, char **argv)
{
	struct common c = {.now = (uint64_t)time(NULL)};
	struct ts_args a = {.issued_arg = "now", .expires_arg = "+1d"};
	fleetota__v1__timestamp__init(&a.ts);
	struct kr_verifier v;
	struct ota_arena *arena = NULL;
	Fleetota__V1__Signed *env = NULL;
	uint8_t sha[OTA_SHA256_BYTES];
	uint8_t *body = NULL;
	enum ota_err err;
	int rc;

	kr_verifier_init(&v, 0);
	if ((rc = ts_parse_args(argc, argv, &c, &a)) >= 0)
		goto out;
	if ((rc = cli_common_ready(&c)) != 0)
		goto out;
	if ((err = kr_verifier_arena(&v, OTA_DECODE_ARENA_BYTES, &arena)) != OTA_OK)
		goto cli_fail;
	if ((err = cli_load_signer_keylist(&v, arena, a.rootlist, a.keylist, &c.diag, NULL,
					   NULL)) != OTA_OK)
		goto cli_fail;
	if ((err = ts_signer_check(&c, v.keylist, a.key, a.ts.issued_at)) != OTA_OK)
		goto cli_fail;
	if (a.manifest && (err = ts_from_manifest(&c, &v, a.manifest, &a.ts, sha)) != OTA_OK)
		goto cli_fail;
	if (!a.manifest)
		a.ts.version = (char *)(a.version_arg ? a.version_arg : "");
	a.ts.artifact = (char *)(a.artifact_arg ? a.artifact_arg : "");
	a.ts.keylist_version = v.keylist->version;
	size_t len = fleetota__v1__timestamp__get_packed_size(&a.ts);
	if (len == 0 || len > OTA_MAX_BODY_BYTES || !(body = malloc(len))) {
		err = OTA_ERR_NOMEM;
		goto cli_fail;
	}
	fleetota__v1__timestamp__pack(&a.ts, body);
	if ((err = kr_envelope_new(body, len, &env)) != OTA_OK)
		goto cli_fail;
	/* the device's shape rules before a signature: expiry required and short */
	Fleetota__V1__Timestamp *parsed = NULL;
	if (ota_timestamp_parse(env, arena, &parsed) != OTA_OK) {
		err = kr_fail(&c.diag, OTA_ERR_FORMAT,
			      "a timestamp must expire after it is issued, within %llu s "
			      "(--expires never is refused)",
			      (unsigned long long)OTA_MAX_TIMESTAMP_LIFETIME_S);
		goto cli_fail;
	}
	if ((err = cli_sign_envelope(&c, env, OTA_OBJ_TIMESTAMP, a.ts.issued_at, a.key, NULL)) !=
	    OTA_OK)
		goto cli_fail;
	/* the device's own check, before anything is written */
	if ((err = ota_timestamp_verify(v.keylist, env, arena, &parsed, NULL)) != OTA_OK) {
		kr_fail(&c.diag, err, "the signed timestamp does not verify");
		goto cli_fail;
	}
	if ((err = kr_envelope_write(a.out, env, &c.diag)) != OTA_OK)
		goto cli_fail;
	char issued[KR_TIME_TEXT_BYTES], expires[KR_TIME_TEXT_BYTES];
	printf("timestamp %s current %s (code %llu) issued %s expires %s\n", a.ts.product,
	       a.ts.version[0] ? a.ts.version : "-", (unsigned long long)a.ts.version_code,
	       kr_time_format(a.ts.issued_at, issued, sizeof(issued)),
	       kr_time_format(a.ts.expires_at, expires, sizeof(expires)));
	rc = 0;
	goto out;
cli_fail:
	rc = cli_fail(err, &c.diag);
out:
	if (env)
		fleetota__v1__signed__free_unpacked(env, NULL);
	free(body);
	kr_verifier_release(&v);
	cli_common_release(&c);
	return rc;
}
