/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys keylist and rootlist: what new, sign and merge share. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"

static const char help_keylist[] =
	"Usage: ota-keys keylist new --out FILE [--prev KEYLIST] [--add KEY.pub]...\n"
	"                            [--remove SEL]... [--expire SEL=TIME]...\n"
	"                            [--version N] [--issued TIME] [--expires TIME]\n"
	"                            [--rootlist ROOTLIST] [--key ROOTKEY]... [--finalize]\n"
	"       ota-keys keylist sign --in FILE --out FILE --key ROOTKEY... [--rootlist R]\n"
	"                             [--prev KEYLIST] [--finalize]\n"
	"       ota-keys keylist merge --out FILE [--rootlist R] [--prev KEYLIST]\n"
	"                              [--finalize] PARTIAL...\n"
	"new builds the next KeyList from --prev (version = previous + 1 unless\n"
	"--version): --add a descriptor from op-new, --remove (revoke) a key, --expire\n"
	"a key at TIME (sets its not_after). SEL is a key name or a key id prefix of\n"
	"8+ hex digits. With --key it is signed at once; without, the file is\n"
	"unsigned and each root holder runs `keylist sign` on their own machine, then\n"
	"`keylist merge` joins the partial files. --finalize (needs --rootlist) refuses\n"
	"to write unless a threshold of the RootList signed (OTA_ERR_THRESHOLD) and the\n"
	"version is above --prev (OTA_ERR_KEYLIST_ROLLBACK).\n";

static const char help_rootlist[] =
	"Usage: ota-keys rootlist new [--prev ROOTLIST] --out FILE [--add ROOT.pub]...\n"
	"                             [--remove SEL]... [--threshold K] [--issued TIME]\n"
	"                             [--expires TIME] [--key ROOTKEY]... [--finalize]\n"
	"       ota-keys rootlist sign [--prev ROOTLIST] --in FILE --out FILE --key KEY...\n"
	"                              [--finalize]\n"
	"       ota-keys rootlist merge [--prev ROOTLIST] --out FILE [--finalize] PARTIAL...\n"
	"Rotates root keys: RootList N+1 must be signed by a threshold of RootList N's\n"
	"keys (else devices refuse it: OTA_ERR_ROOT_CHAIN) and by a threshold of its\n"
	"own keys (OTA_ERR_THRESHOLD). --finalize refuses to write a list that would\n"
	"not verify. Without --prev it builds RootList v1 from descriptors (--add, from\n"
	"root-new on each holder's machine), signed by its own threshold: the way to\n"
	"start without ever bringing the root keys together.\n";

static int list_args_parse(int argc, char **argv, struct common *c, struct list_args *a,
			   int is_root)
{
	static const struct option options[] = {
		COMMON_OPTIONS,
		{"out", required_argument, NULL, OPT_OUT},
		{"in", required_argument, NULL, OPT_IN},
		{"prev", required_argument, NULL, OPT_PREV},
		{"rootlist", required_argument, NULL, OPT_ROOTLIST},
		{"version", required_argument, NULL, OPT_VERSION},
		{"issued", required_argument, NULL, OPT_ISSUED},
		{"expires", required_argument, NULL, OPT_EXPIRES},
		{"threshold", required_argument, NULL, OPT_THRESHOLD},
		{"key", required_argument, NULL, OPT_KEY},
		{"add", required_argument, NULL, OPT_ADD},
		{"remove", required_argument, NULL, OPT_REMOVE},
		{"revoke", required_argument, NULL, OPT_REMOVE},
		{"expire", required_argument, NULL, OPT_EXPIRE},
		{"finalize", no_argument, NULL, OPT_FINALIZE},
		{NULL, 0, NULL, 0},
	};
	int opt, rc;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(is_root ? help_rootlist : help_keylist, argc < 2 ? stderr : stdout);
		fputs(COMMON_HELP, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : -1;
	}
	a->sub = argv[1];
	if (strcmp(a->sub, "new") != 0 && strcmp(a->sub, "sign") != 0 &&
	    strcmp(a->sub, "merge") != 0)
		return cli_usage_error("unknown subcommand %s", a->sub);
	argc--;
	argv++;
	while ((opt = cli_next_option(argc, argv, "", options, c,
				      is_root ? help_rootlist : help_keylist, &rc)) > 0) {
		int bad = 0;
		switch (opt) {
		case OPT_OUT:
			a->out = optarg;
			break;
		case OPT_IN:
			a->in = optarg;
			break;
		case OPT_PREV:
			a->prev = optarg;
			break;
		case OPT_ROOTLIST:
			a->rootlist = optarg;
			break;
		case OPT_VERSION:
			a->version_arg = optarg;
			break;
		case OPT_ISSUED:
			a->issued_arg = optarg;
			break;
		case OPT_EXPIRES:
			a->expires_arg = optarg;
			break;
		case OPT_THRESHOLD:
			if (!is_root)
				return cli_usage_error("--threshold is for rootlist%s", "");
			a->threshold_arg = optarg;
			break;
		case OPT_KEY:
			bad = cli_list_push(&a->keys, optarg);
			break;
		case OPT_ADD:
			bad = cli_list_push(&a->add, optarg);
			break;
		case OPT_REMOVE:
			bad = cli_list_push(&a->remove, optarg);
			break;
		case OPT_EXPIRE:
			if (is_root)
				return cli_usage_error("root keys have no validity window%s", "");
			bad = cli_list_push(&a->expire, optarg);
			break;
		case OPT_FINALIZE:
			a->finalize = 1;
			break;
		}
		if (bad)
			return EXIT_USAGE;
	}
	if (opt < 0)
		return rc == 0 ? -1 : rc;
	for (int i = optind; i < argc; i++) {
		if (cli_list_push(&a->inputs, argv[i]))
			return EXIT_USAGE;
	}
	if (!a->out)
		return cli_usage_error("--out is required%s", "");
	if (strcmp(a->sub, "sign") == 0 && (!a->in || a->keys.n == 0))
		return cli_usage_error("sign needs --in and --key%s", "");
	if (strcmp(a->sub, "merge") == 0 && a->inputs.n == 0)
		return cli_usage_error("merge needs the partial files%s", "");
	if (strcmp(a->sub, "merge") != 0 && a->inputs.n)
		return cli_usage_error("unexpected argument %s", a->inputs.items[0]);
	if (!is_root && a->finalize && !a->rootlist)
		return cli_usage_error("--finalize needs --rootlist%s", "");
	return 0;
}

/* The envelope of sign (read) or merge (the partial files joined). */
static enum ota_err list_envelope_load(struct list_args *a, struct kr_diag *diag,
				       Fleetota__V1__Signed **ret_env)
{
	Fleetota__V1__Signed *env = NULL;
	enum ota_err err;
	const char *first = strcmp(a->sub, "sign") == 0 ? a->in : a->inputs.items[0];
	if ((err = kr_envelope_read_heap(first, &env, diag)) != OTA_OK)
		return err;
	for (size_t i = 1; strcmp(a->sub, "merge") == 0 && i < a->inputs.n; i++) {
		Fleetota__V1__Signed *other = NULL;
		err = kr_envelope_read_heap(a->inputs.items[i], &other, diag);
		if (err == OTA_OK)
			err = kr_envelope_merge(env, other, diag);
		if (other)
			fleetota__v1__signed__free_unpacked(other, NULL);
		if (err != OTA_OK) {
			fleetota__v1__signed__free_unpacked(env, NULL);
			return err;
		}
	}
	*ret_env = env;
	return OTA_OK;
}

enum ota_err cli_list_envelope(struct list_cmd *l)
{
	enum ota_err err = strcmp(l->a.sub, "new") == 0
				   ? kr_envelope_new(l->body, l->body_len, &l->env)
				   : list_envelope_load(&l->a, &l->c.diag, &l->env);
	if (err == OTA_OK)
		err = kr_arena_init(&l->check, OTA_DECODE_ARENA_BYTES);
	return err;
}

int cli_list_start(int argc, char **argv, int is_root, struct list_cmd *l)
{
	kr_verifier_init(&l->v, 0);
	int rc = list_args_parse(argc, argv, &l->c, &l->a, is_root);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	if ((rc = cli_common_ready(&l->c)) != 0)
		return rc;
	l->v.now = l->c.now;
	enum ota_err err = kr_arena_init(&l->arena, OTA_DECODE_ARENA_BYTES * 2);
	return err == OTA_OK ? -1 : cli_fail(err, &l->c.diag);
}

int cli_list_numbers(const struct list_cmd *l, struct list_numbers *ret)
{
	const struct list_args *a = &l->a;
	struct list_numbers n = {.issued = l->c.now};
	if ((a->version_arg && cli_parse_u64(a->version_arg, &n.version)) ||
	    (a->threshold_arg && cli_parse_u64(a->threshold_arg, &n.threshold)) ||
	    (a->issued_arg && cli_parse_time(&l->c, a->issued_arg, &n.issued)) ||
	    (a->expires_arg && cli_parse_time(&l->c, a->expires_arg, &n.expires)))
		return EXIT_USAGE;
	*ret = n;
	return 0;
}

int cli_list_end(struct list_cmd *l, int rc)
{
	if (l->env)
		fleetota__v1__signed__free_unpacked(l->env, NULL);
	free(l->body);
	kr_arena_release(&l->check);
	kr_arena_release(&l->arena);
	kr_verifier_release(&l->v);
	cli_common_release(&l->c);
	return rc;
}

enum ota_err cli_read_adds(struct list_cmd *l, Fleetota__V1__PublicKey **adds)
{
	enum ota_err err = OTA_OK;
	for (size_t i = 0; err == OTA_OK && i < l->a.add.n; i++)
		err = kr_pubkey_read(l->a.add.items[i], &l->arena.arena, &adds[i], &l->c.diag);
	return err;
}
