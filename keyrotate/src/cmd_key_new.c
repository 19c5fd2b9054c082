/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys op-new, root-new and timestamp-new: one key with its descriptor. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"

static const char help_op_new[] =
	"Usage: ota-keys op-new --out PREFIX [--name NAME] [--not-before TIME]\n"
	"                       [--not-after TIME] [--alg ed25519|p256] [--key pkcs11:URI]\n"
	"Generates an operational key: PREFIX.key (0600, PEM PKCS#8, encrypted with\n"
	"--passphrase-*), PREFIX.pub (descriptor with name and validity window, for\n"
	"`keylist --add`) and PREFIX.pem (public key). With --key the key already\n"
	"exists (a token key stays in the token) and only the descriptor is written.\n"
	"  --not-before TIME      default now; --not-after TIME default +365d\n";

static const char help_root_new[] =
	"Usage: ota-keys root-new --out PREFIX [--name NAME] [--alg ed25519|p256]\n"
	"                         [--key SPEC]\n"
	"Generates a root key for a RootList rotation: PREFIX.key, PREFIX.pub, PREFIX.pem.\n";

static const char help_timestamp_new[] =
	"Usage: ota-keys timestamp-new --out PREFIX [--name NAME] [--not-before TIME]\n"
	"                              [--not-after TIME] [--alg ed25519|p256] [--key SPEC]\n"
	"Generates the timestamp role's key: PREFIX.key, PREFIX.pub (descriptor with the\n"
	"timestamp role, for `keylist --add`), PREFIX.pem. A KeyList key with this role\n"
	"signs Timestamps (`ota-keys timestamp`, or the server's timestamp_key) and\n"
	"nothing else: devices refuse it on a manifest or a KeyList (OTA_ERR_KEY_ROLE).\n"
	"It is the one key the server may hold online (docs/keys.md).\n"
	"  --not-before TIME      default now; --not-after TIME default +90d\n";

/* The key op-new, root-new and timestamp-new make. */
enum key_kind {
	KEY_OPERATIONAL,
	KEY_ROOT,
	KEY_TIMESTAMP,
};

static int key_new(int argc, char **argv, enum key_kind kind)
{
	const int is_root = kind == KEY_ROOT;
	const char *help = is_root		   ? help_root_new
			   : kind == KEY_TIMESTAMP ? help_timestamp_new
						   : help_op_new;
	static const struct option options[] = {
		COMMON_OPTIONS,
		{"out", required_argument, NULL, OPT_OUT},
		{"name", required_argument, NULL, OPT_NAME},
		{"alg", required_argument, NULL, OPT_ALG},
		{"key", required_argument, NULL, OPT_KEY},
		{"not-before", required_argument, NULL, OPT_NOT_BEFORE},
		{"not-after", required_argument, NULL, OPT_NOT_AFTER},
		{NULL, 0, NULL, 0},
	};
	struct common c = {.now = (uint64_t)time(NULL)};
	const char *out = NULL, *name = NULL, *key = NULL;
	const char *nb_arg = is_root ? "never" : "now";
	const char *na_arg = is_root ? "never" : kind == KEY_TIMESTAMP ? "+90d" : "+365d";
	uint64_t not_before, not_after;
	enum ota_alg alg = OTA_ALG_ED25519;
	Fleetota__V1__PublicKey *pub = NULL;
	int rc, opt;
	enum ota_err err;

	while ((opt = cli_next_option(argc, argv, "", options, &c, help, &rc)) > 0) {
		if (cli_key_option(opt, optarg, &out, &alg) > 0)
			return EXIT_USAGE;
		switch (opt) {
		case OPT_NAME:
			name = optarg;
			break;
		case OPT_KEY:
			key = optarg;
			break;
		case OPT_NOT_BEFORE:
			if (is_root)
				return cli_usage_error("root keys have no validity window%s", "");
			nb_arg = optarg;
			break;
		case OPT_NOT_AFTER:
			if (is_root)
				return cli_usage_error("root keys have no validity window%s", "");
			na_arg = optarg;
			break;
		}
	}
	if (opt < 0)
		return rc;
	if (!out || optind != argc)
		return cli_usage_error("--out PREFIX is required%s", "");
	if (cli_parse_time(&c, nb_arg, &not_before) || cli_parse_time(&c, na_arg, &not_after))
		return EXIT_USAGE;
	if (not_after && not_before > not_after)
		return cli_usage_error("--not-after is before --not-before%s", "");
	if ((rc = cli_common_ready(&c)) != 0)
		goto out;
	char *base_copy = strdup(out);
	if (!base_copy) {
		err = OTA_ERR_NOMEM;
		goto cli_fail;
	}
	char label[OTA_MAX_STRING_BYTES + 1];
	snprintf(label, sizeof(label), "%s", name ? name : basename(base_copy));
	free(base_copy);
	Fleetota__V1__KeyRole role = kind == KEY_TIMESTAMP
					     ? FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP
					     : FLEETOTA__V1__KEY_ROLE__KEY_ROLE_OPERATIONAL;
	if ((err = cli_make_key(&c, key, alg, out, label, not_before, not_after, role, NULL,
				&pub)) != OTA_OK)
		goto cli_fail;
	char nb[KR_TIME_TEXT_BYTES], na[KR_TIME_TEXT_BYTES];
	printf("%s key \"%s\" id ",
	       is_root		       ? "root"
	       : kind == KEY_TIMESTAMP ? "timestamp"
				       : "operational",
	       label);
	cli_print_key_id(stdout, pub->key_id.data);
	if (!is_root)
		printf(" valid %s .. %s", kr_time_format(not_before, nb, sizeof(nb)),
		       kr_time_format(not_after, na, sizeof(na)));
	printf("\n");
	rc = 0;
	goto out;
cli_fail:
	rc = cli_fail(err, &c.diag);
out:
	if (pub)
		fleetota__v1__public_key__free_unpacked(pub, NULL);
	cli_common_release(&c);
	return rc;
}

int cli_cmd_op_new(int argc, char **argv)
{
	return key_new(argc, argv, KEY_OPERATIONAL);
}

int cli_cmd_root_new(int argc, char **argv)
{
	return key_new(argc, argv, KEY_ROOT);
}

int cli_cmd_timestamp_new(int argc, char **argv)
{
	return key_new(argc, argv, KEY_TIMESTAMP);
}
