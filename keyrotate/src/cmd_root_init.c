/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys root-init: root keys and the first RootList. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"

static const char help_root_init[] =
	"Usage: ota-keys root-init --out-dir DIR [-n N] [-k K] [options]\n"
	"Generates N root keys (DIR/root-I.key, 0600, PEM PKCS#8; DIR/root-I.pub\n"
	"descriptor; DIR/root-I.pem public key) and the first RootList, version 1,\n"
	"threshold K, signed by every key: DIR/rootlist-1.signed.\n"
	"  -n, --count N          number of root keys (default 3)\n"
	"  -k, --threshold K      signatures needed (default 2)\n"
	"  --alg ed25519|p256     key algorithm (default ed25519)\n"
	"  --key SPEC             use an existing key (file or pkcs11: URI) instead of\n"
	"                         generating; repeat for each root\n"
	"  --issued TIME          default now\n"
	"  --expires TIME         RootList expiry (default never)\n"
	"  --out FILE             RootList file (default DIR/rootlist-1.signed)\n";

int cli_cmd_root_init(int argc, char **argv)
{
	static const struct option options[] = {
		COMMON_OPTIONS,
		{"out-dir", required_argument, NULL, OPT_OUT_DIR},
		{"out", required_argument, NULL, OPT_OUT},
		{"count", required_argument, NULL, 'n'},
		{"threshold", required_argument, NULL, 'k'},
		{"alg", required_argument, NULL, OPT_ALG},
		{"key", required_argument, NULL, OPT_KEY},
		{"issued", required_argument, NULL, OPT_ISSUED},
		{"expires", required_argument, NULL, OPT_EXPIRES},
		{NULL, 0, NULL, 0},
	};
	struct common c = {.now = (uint64_t)time(NULL)};
	struct list keys = {0};
	const char *out_dir = NULL, *out = NULL, *issued_arg = "now", *expires_arg = "never";
	uint64_t count = 3, threshold = 2, issued, expires;
	enum ota_alg alg = OTA_ALG_ED25519;
	Fleetota__V1__PublicKey *pubs[OTA_MAX_KEYS] = {0};
	char *key_paths[OTA_MAX_KEYS] = {0};
	Fleetota__V1__Signed *env = NULL;
	uint8_t *body = NULL;
	size_t body_len = 0, n_keys = 0;
	int rc = EXIT_REJECTED, opt;
	enum ota_err err;

	while ((opt = cli_next_option(argc, argv, "n:k:", options, &c, help_root_init, &rc)) > 0) {
		if (cli_key_option(opt, optarg, &out, &alg) > 0)
			return EXIT_USAGE;
		switch (opt) {
		case OPT_OUT_DIR:
			out_dir = optarg;
			break;
		case 'n':
			if (cli_parse_u64(optarg, &count))
				return EXIT_USAGE;
			break;
		case 'k':
			if (cli_parse_u64(optarg, &threshold))
				return EXIT_USAGE;
			break;
		case OPT_KEY:
			if (cli_list_push(&keys, optarg))
				return EXIT_USAGE;
			break;
		case OPT_ISSUED:
			issued_arg = optarg;
			break;
		case OPT_EXPIRES:
			expires_arg = optarg;
			break;
		}
	}
	if (opt < 0)
		return rc;
	if (!out_dir || optind != argc)
		return cli_usage_error("--out-dir is required%s", "");
	if (keys.n)
		count = keys.n;
	if (count < 1 || count > OTA_MAX_KEYS || threshold < 1 || threshold > count)
		return cli_usage_error("need 1 <= threshold <= count <= 32%s", "");
	if (cli_parse_time(&c, issued_arg, &issued) || cli_parse_time(&c, expires_arg, &expires))
		return EXIT_USAGE;
	if ((rc = cli_common_ready(&c)) != 0)
		goto out;
	rc = EXIT_REJECTED;
	if (mkdir(out_dir, 0700) != 0 && access(out_dir, W_OK) != 0) {
		err = kr_fail(&c.diag, OTA_ERR_STORAGE, "cannot create %s", out_dir);
		goto cli_fail;
	}
	for (n_keys = 0; n_keys < count; n_keys++) {
		char prefix[KR_MAX_PATH_BYTES], name[32];
		snprintf(name, sizeof(name), "root-%zu", n_keys + 1);
		snprintf(prefix, sizeof(prefix), "%s/%s", out_dir, name);
		err = cli_make_key(&c, keys.n ? keys.items[n_keys] : NULL, alg, prefix, name, 0, 0,
				   FLEETOTA__V1__KEY_ROLE__KEY_ROLE_OPERATIONAL, &key_paths[n_keys],
				   &pubs[n_keys]);
		if (err != OTA_OK) {
			n_keys++;
			goto cli_fail;
		}
	}
	struct kr_rootlist_spec spec = {
		.version = 1,
		.threshold = (uint32_t)threshold,
		.issued_at = issued,
		.expires_at = expires,
		.add = pubs,
		.n_add = n_keys,
	};
	if ((err = kr_rootlist_build(&spec, &body, &body_len, &c.diag)) != OTA_OK ||
	    (err = kr_envelope_new(body, body_len, &env)) != OTA_OK)
		goto cli_fail;
	if ((err = cli_sign_all(&c, env, OTA_OBJ_ROOT, 1, (const char *const *)key_paths, n_keys,
				NULL)) != OTA_OK)
		goto cli_fail;
	/* the same check a device makes when the list is provisioned */
	struct kr_verifier v;
	kr_verifier_init(&v, 0);
	err = kr_verify_root_anchor(&v, env, &c.diag);
	kr_verifier_release(&v);
	if (err != OTA_OK)
		goto cli_fail;
	char out_default[KR_MAX_PATH_BYTES];
	if (!out) {
		snprintf(out_default, sizeof(out_default), "%s/rootlist-1.signed", out_dir);
		out = out_default;
	}
	if ((err = kr_envelope_write(out, env, &c.diag)) != OTA_OK)
		goto cli_fail;
	printf("RootList v1: %zu root keys, threshold %llu, written to %s\n", n_keys,
	       (unsigned long long)threshold, out);
	rc = 0;
	goto out;
cli_fail:
	rc = cli_fail(err, &c.diag);
out:
	for (size_t i = 0; i < OTA_MAX_KEYS; i++) {
		if (pubs[i])
			fleetota__v1__public_key__free_unpacked(pubs[i], NULL);
		free(key_paths[i]);
	}
	if (env)
		fleetota__v1__signed__free_unpacked(env, NULL);
	free(body);
	cli_common_release(&c);
	return rc;
}
