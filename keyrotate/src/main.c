/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ota-keys: the signing side of the fleetota trust chain (docs/keys.md).
 * Every command prints "OTA_ERR_NAME: detail" on stderr and exits 1 when it
 * refuses or rejects, 2 on a usage error, 0 on success.
 */
#include <getopt.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "fleetota-version.h"
#include "fleetota/sign.h"
#include "kr.h"

#define EXIT_REJECTED 1
#define EXIT_USAGE 2
#define MAX_LIST_ARGS OTA_MAX_KEYS

/* ---- options shared by every command ---- */

enum {
	OPT_PASS_ENV = 1000,
	OPT_PASS_FILE,
	OPT_PIN_ENV,
	OPT_PIN_FILE,
	OPT_MODULE,
	OPT_AUDIT,
	OPT_SIGNER,
	OPT_NOW,
	OPT_HELP,
	/* command options */
	OPT_OUT,
	OPT_OUT_DIR,
	OPT_IN,
	OPT_KEY,
	OPT_ALG,
	OPT_NAME,
	OPT_NOT_BEFORE,
	OPT_NOT_AFTER,
	OPT_ISSUED,
	OPT_EXPIRES,
	OPT_VERSION,
	OPT_PREV,
	OPT_ROOTLIST,
	OPT_ROOTLIST_CHAIN,
	OPT_KEYLIST,
	OPT_ADD,
	OPT_REMOVE,
	OPT_EXPIRE,
	OPT_THRESHOLD,
	OPT_FINALIZE,
	OPT_IMAGE,
	OPT_PRODUCT,
	OPT_HW_REV,
	OPT_VERSION_CODE,
	OPT_SECURITY_COUNTER,
	OPT_MIN_INSTALLED,
	OPT_ALLOW_DOWNGRADE,
	OPT_SECURITY_UPDATE,
	OPT_SEQUENCE,
	OPT_IMAGE_NAME,
	OPT_MANIFEST_OUT,
	OPT_BUNDLE_OUT,
	OPT_NO_KEYLIST,
	OPT_TYPE,
	OPT_JSON,
	OPT_KEYLIST_FLOOR,
	OPT_EXPECT_HEAD,
	OPT_COUNT,
};

#define COMMON_OPTIONS                                                       \
	{"passphrase-env", required_argument, NULL, OPT_PASS_ENV},           \
		{"passphrase-file", required_argument, NULL, OPT_PASS_FILE}, \
		{"pin-env", required_argument, NULL, OPT_PIN_ENV},           \
		{"pin-file", required_argument, NULL, OPT_PIN_FILE},         \
		{"pkcs11-module", required_argument, NULL, OPT_MODULE},      \
		{"audit-log", required_argument, NULL, OPT_AUDIT},           \
		{"signer", required_argument, NULL, OPT_SIGNER},             \
		{"now", required_argument, NULL, OPT_NOW},                   \
	{                                                                    \
		"help", no_argument, NULL, OPT_HELP                          \
	}

#define COMMON_HELP                                                                            \
	"Common options:\n"                                                                    \
	"  --passphrase-env VAR   passphrase of encrypted key files (new and loaded)\n"        \
	"  --passphrase-file FILE the same, first line of FILE\n"                              \
	"  --pin-env VAR | --pin-file FILE   PIN for pkcs11: keys\n"                           \
	"  --pkcs11-module PATH   PKCS#11 module (default $OTA_PKCS11_MODULE, else p11-kit)\n" \
	"  --audit-log FILE       signing audit log (default $OTA_KEYS_AUDIT_LOG,\n"           \
	"                         else ./ota-keys-audit.log)\n"                                \
	"  --signer NAME          who signs, for the audit log (default $USER)\n"              \
	"  --now TIME             the current time (default: the clock)\n"                     \
	"TIME: 2026-01-31T12:00:00Z, 2026-01-31, @EPOCH, EPOCH, now, never, +90d, -1h\n"

struct common {
	const char *pass_env, *pass_file, *pin_env, *pin_file;
	const char *audit_log;
	const char *signer;
	uint64_t now;
	struct kr_secret pass, pin;
	struct kr_key_opts key_opts;
	struct kr_diag diag;
};

/* Repeated option values. */
struct list {
	const char *items[MAX_LIST_ARGS];
	size_t n;
};

static int list_push(struct list *list, const char *value)
{
	if (list->n >= MAX_LIST_ARGS) {
		fprintf(stderr, "OTA_ERR_INVALID_ARG: too many values (at most %u)\n",
			MAX_LIST_ARGS);
		return -1;
	}
	list->items[list->n++] = value;
	return 0;
}

static int fail(enum ota_err err, const struct kr_diag *diag)
{
	fprintf(stderr, "%s: %s\n", ota_err_name(err),
		diag && diag->msg[0] ? diag->msg : ota_err_describe(err));
	return err == OTA_ERR_INVALID_ARG ? EXIT_USAGE : EXIT_REJECTED;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "OTA_ERR_INVALID_ARG: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	return EXIT_USAGE;
}

/*
 * Handles a common option. Returns 1 when consumed, 0 when not a common
 * option, -1 on error.
 */
static int common_option(struct common *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_PASS_ENV:
		c->pass_env = arg;
		return 1;
	case OPT_PASS_FILE:
		c->pass_file = arg;
		return 1;
	case OPT_PIN_ENV:
		c->pin_env = arg;
		return 1;
	case OPT_PIN_FILE:
		c->pin_file = arg;
		return 1;
	case OPT_MODULE:
		c->key_opts.pkcs11_module = arg;
		return 1;
	case OPT_AUDIT:
		c->audit_log = arg;
		return 1;
	case OPT_SIGNER:
		c->signer = arg;
		return 1;
	case OPT_NOW:
		if (kr_time_parse(arg, (uint64_t)time(NULL), &c->now) != OTA_OK) {
			usage_error("bad time %s", arg);
			return -1;
		}
		return 1;
	default:
		return 0;
	}
}

/*
 * The next option of a command: common options (when c is given) are consumed
 * here, --help prints HELP (and the common help with c) and an unknown option
 * is a usage error. Returns the option, 0 at the end of the options, or -1
 * when the command is to return *rc (0 after --help, else EXIT_USAGE).
 */
static int next_option(int argc, char **argv, const char *shortopts, const struct option *options,
		       struct common *c, const char *help, int *rc)
{
	int opt;
	/* Every path leaves *rc defined: callers read it whenever this returns < 0. */
	*rc = 0;
	while ((opt = getopt_long(argc, argv, shortopts, options, NULL)) != -1) {
		int used = c ? common_option(c, opt, optarg) : 0;
		if (used < 0) {
			*rc = EXIT_USAGE;
			return -1;
		}
		if (used)
			continue;
		if (opt == OPT_HELP) {
			fputs(help, stdout);
			if (c)
				fputs(COMMON_HELP, stdout);
			*rc = 0;
			return -1;
		}
		if (opt == '?' || opt == ':') {
			*rc = usage_error("unknown option%s", "");
			return -1;
		}
		return opt;
	}
	return 0;
}

/* Secrets are read once the options are parsed. */
static int common_ready(struct common *c)
{
	enum ota_err err = OTA_OK;
	if (c->pass_env)
		err = kr_secret_from_env(c->pass_env, &c->pass, &c->diag);
	else if (c->pass_file)
		err = kr_secret_from_file(c->pass_file, &c->pass, &c->diag);
	if (err == OTA_OK && c->pin_env)
		err = kr_secret_from_env(c->pin_env, &c->pin, &c->diag);
	else if (err == OTA_OK && c->pin_file)
		err = kr_secret_from_file(c->pin_file, &c->pin, &c->diag);
	if (err != OTA_OK)
		return fail(err, &c->diag);
	c->key_opts.passphrase = c->pass.buf ? &c->pass : NULL;
	c->key_opts.pin = c->pin.buf ? &c->pin : NULL;
	if (!c->audit_log)
		c->audit_log = getenv("OTA_KEYS_AUDIT_LOG");
	if (!c->audit_log || !*c->audit_log)
		c->audit_log = "ota-keys-audit.log";
	if (!c->signer)
		c->signer = getenv("USER");
	if (!c->signer || !*c->signer)
		c->signer = "unknown";
	if (strlen(c->signer) > KR_MAX_SIGNER_BYTES)
		return usage_error("--signer: at most 64 bytes%s", "");
	return 0;
}

static void common_release(struct common *c)
{
	kr_secret_wipe(&c->pass);
	kr_secret_wipe(&c->pin);
}

static int parse_time_arg(const struct common *c, const char *arg, uint64_t *ret)
{
	if (kr_time_parse(arg, c->now, ret) != OTA_OK) {
		usage_error("bad time \"%s\"", arg);
		return -1;
	}
	return 0;
}

static int parse_u64_arg(const char *arg, uint64_t *ret)
{
	if (kr_u64_parse(arg, ret) != OTA_OK) {
		usage_error("bad number \"%s\"", arg);
		return -1;
	}
	return 0;
}

/* ---- signing: every signature goes through here, and into the audit log ---- */

/* The keys a signer must be among (a root list, or old and new for a rotation). */
struct signers {
	Fleetota__V1__PublicKey *const *a;
	size_t n_a;
	Fleetota__V1__PublicKey *const *b;
	size_t n_b;
	const char *what;
};

static int key_listed(Fleetota__V1__PublicKey *const *keys, size_t n, const uint8_t *id)
{
	for (size_t i = 0; i < n; i++) {
		if (keys[i]->key_id.len == OTA_KEY_ID_BYTES &&
		    memcmp(keys[i]->key_id.data, id, OTA_KEY_ID_BYTES) == 0)
			return 1;
	}
	return 0;
}

static enum ota_err sign_envelope(struct common *c, Fleetota__V1__Signed *env,
				  enum ota_obj_type type, uint64_t version, const char *key_spec,
				  const struct signers *allowed)
{
	EVP_PKEY *pkey = NULL;
	struct kr_audit_entry entry = {0};
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES];
	size_t spki_len;
	enum ota_alg alg;
	enum ota_err err = kr_key_load(key_spec, &c->key_opts, &pkey, &c->diag);
	if (err != OTA_OK)
		return err;
	err = ota_pkey_public(pkey, &alg, spki, &spki_len, entry.key_id);
	if (err == OTA_OK && allowed && !key_listed(allowed->a, allowed->n_a, entry.key_id) &&
	    !key_listed(allowed->b, allowed->n_b, entry.key_id)) {
		EVP_PKEY_free(pkey);
		return kr_fail(&c->diag, OTA_ERR_KEY_UNKNOWN, "%s is not a key of %s",
			       strncmp(key_spec, "pkcs11:", 7) == 0 ? "the token key" : key_spec,
			       allowed->what);
	}
	if (err == OTA_OK)
		err = ota_envelope_add_signature(env, type, pkey);
	EVP_PKEY_free(pkey);
	if (err != OTA_OK)
		return kr_fail(&c->diag, err, "signing with %s failed",
			       strncmp(key_spec, "pkcs11:", 7) == 0 ? "the token key" : key_spec);
	entry.time = c->now;
	entry.who = c->signer;
	entry.object = ota_obj_type_name(type);
	entry.version = version;
	ota_sha256(env->body.data, env->body.len, entry.sha256);
	/* no audit record, no signature leaves this tool */
	err = kr_audit_append(c->audit_log, &entry, &c->diag);
	if (err != OTA_OK)
		return err;
	return OTA_OK;
}

/* Every signature by a list of keys. */
static enum ota_err sign_all(struct common *c, Fleetota__V1__Signed *env, enum ota_obj_type type,
			     uint64_t version, const char *const *keys, size_t n,
			     const struct signers *allowed)
{
	enum ota_err err = OTA_OK;
	for (size_t i = 0; err == OTA_OK && i < n; i++)
		err = sign_envelope(c, env, type, version, keys[i], allowed);
	return err;
}

typedef enum ota_err (*verify_fn)(struct kr_verifier *v, const Fleetota__V1__Signed *env,
				  struct kr_diag *diag);

/* Reads PATH into an arena of the verifier and has VERIFY check it. */
static enum ota_err load_verified(struct kr_verifier *v, const char *path, verify_fn verify,
				  struct kr_diag *diag, Fleetota__V1__Signed **ret_env)
{
	struct ota_arena *arena;
	Fleetota__V1__Signed *env = NULL;
	enum ota_err err = kr_verifier_arena(v, OTA_DECODE_ARENA_BYTES, &arena);
	if (err == OTA_OK)
		err = kr_envelope_read(path, arena, &env, diag);
	if (err == OTA_OK)
		err = verify(v, env, diag);
	if (err == OTA_OK && ret_env)
		*ret_env = env;
	return err;
}

static void print_key_id(FILE *out, const uint8_t *id)
{
	char hex[2 * OTA_KEY_ID_BYTES + 1];
	kr_hex_encode(id, OTA_KEY_ID_BYTES, hex);
	fprintf(out, "%s", hex);
}

/* ---- root-init, op-new, root-new ---- */

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

static int write_descriptor(const char *prefix, const Fleetota__V1__PublicKey *key,
			    struct kr_diag *diag)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s.pub", prefix);
	enum ota_err err = kr_pubkey_write(path, key, diag);
	if (err == OTA_OK) {
		snprintf(path, sizeof(path), "%s.pem", prefix);
		err = kr_pubkey_write_pem(path, key, diag);
	}
	return err;
}

/*
 * A key and its descriptor PREFIX.pub and PREFIX.pem: loaded from SPEC, or
 * generated into PREFIX.key. With ret_spec, where the key is (to sign with).
 */
static enum ota_err make_key(struct common *c, const char *spec, enum ota_alg alg,
			     const char *prefix, const char *label, uint64_t not_before,
			     uint64_t not_after, char **ret_spec, Fleetota__V1__PublicKey **ret_pub)
{
	char path[4200];
	EVP_PKEY *pkey = NULL;
	enum ota_err err;
	snprintf(path, sizeof(path), "%s.key", prefix);
	if (ret_spec)
		*ret_spec = strdup(spec ? spec : path);
	if (spec) {
		err = kr_key_load(spec, &c->key_opts, &pkey, &c->diag);
	} else {
		err = kr_key_generate(alg, &pkey, &c->diag);
		if (err == OTA_OK)
			err = kr_key_write_private(path, pkey, c->key_opts.passphrase, &c->diag);
	}
	if (err == OTA_OK && ret_spec && !*ret_spec)
		err = OTA_ERR_NOMEM;
	if (err == OTA_OK)
		err = ota_pubkey_from_pkey(pkey, label, not_before, not_after, ret_pub);
	EVP_PKEY_free(pkey);
	if (err == OTA_OK)
		err = write_descriptor(prefix, *ret_pub, &c->diag);
	return err;
}

static int cmd_root_init(int argc, char **argv)
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

	while ((opt = next_option(argc, argv, "n:k:", options, &c, help_root_init, &rc)) > 0) {
		switch (opt) {
		case OPT_OUT_DIR:
			out_dir = optarg;
			break;
		case OPT_OUT:
			out = optarg;
			break;
		case 'n':
			if (parse_u64_arg(optarg, &count))
				return EXIT_USAGE;
			break;
		case 'k':
			if (parse_u64_arg(optarg, &threshold))
				return EXIT_USAGE;
			break;
		case OPT_ALG:
			if (kr_alg_parse(optarg, &alg) != OTA_OK)
				return usage_error("unknown algorithm %s", optarg);
			break;
		case OPT_KEY:
			if (list_push(&keys, optarg))
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
		return usage_error("--out-dir is required%s", "");
	if (keys.n)
		count = keys.n;
	if (count < 1 || count > OTA_MAX_KEYS || threshold < 1 || threshold > count)
		return usage_error("need 1 <= threshold <= count <= 32%s", "");
	if (parse_time_arg(&c, issued_arg, &issued) || parse_time_arg(&c, expires_arg, &expires))
		return EXIT_USAGE;
	if ((rc = common_ready(&c)) != 0)
		goto out;
	rc = EXIT_REJECTED;
	if (mkdir(out_dir, 0700) != 0 && access(out_dir, W_OK) != 0) {
		err = kr_fail(&c.diag, OTA_ERR_STORAGE, "cannot create %s", out_dir);
		goto fail;
	}
	for (n_keys = 0; n_keys < count; n_keys++) {
		char prefix[4096], name[32];
		snprintf(name, sizeof(name), "root-%zu", n_keys + 1);
		snprintf(prefix, sizeof(prefix), "%s/%s", out_dir, name);
		err = make_key(&c, keys.n ? keys.items[n_keys] : NULL, alg, prefix, name, 0, 0,
			       &key_paths[n_keys], &pubs[n_keys]);
		if (err != OTA_OK) {
			n_keys++;
			goto fail;
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
		goto fail;
	if ((err = sign_all(&c, env, OTA_OBJ_ROOT, 1, (const char *const *)key_paths, n_keys,
			    NULL)) != OTA_OK)
		goto fail;
	/* the same check a device makes when the list is provisioned */
	struct kr_verifier v;
	kr_verifier_init(&v, 0);
	err = kr_verify_root_anchor(&v, env, &c.diag);
	kr_verifier_release(&v);
	if (err != OTA_OK)
		goto fail;
	char out_default[4096];
	if (!out) {
		snprintf(out_default, sizeof(out_default), "%s/rootlist-1.signed", out_dir);
		out = out_default;
	}
	if ((err = kr_envelope_write(out, env, &c.diag)) != OTA_OK)
		goto fail;
	printf("RootList v1: %zu root keys, threshold %llu, written to %s\n", n_keys,
	       (unsigned long long)threshold, out);
	rc = 0;
	goto out;
fail:
	rc = fail(err, &c.diag);
out:
	for (size_t i = 0; i < OTA_MAX_KEYS; i++) {
		if (pubs[i])
			fleetota__v1__public_key__free_unpacked(pubs[i], NULL);
		free(key_paths[i]);
	}
	if (env)
		fleetota__v1__signed__free_unpacked(env, NULL);
	free(body);
	common_release(&c);
	return rc;
}

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

static int cmd_key_new(int argc, char **argv, int is_root)
{
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
	const char *nb_arg = is_root ? "never" : "now", *na_arg = is_root ? "never" : "+365d";
	uint64_t not_before, not_after;
	enum ota_alg alg = OTA_ALG_ED25519;
	Fleetota__V1__PublicKey *pub = NULL;
	int rc, opt;
	enum ota_err err;

	while ((opt = next_option(argc, argv, "", options, &c,
				  is_root ? help_root_new : help_op_new, &rc)) > 0) {
		switch (opt) {
		case OPT_OUT:
			out = optarg;
			break;
		case OPT_NAME:
			name = optarg;
			break;
		case OPT_ALG:
			if (kr_alg_parse(optarg, &alg) != OTA_OK)
				return usage_error("unknown algorithm %s", optarg);
			break;
		case OPT_KEY:
			key = optarg;
			break;
		case OPT_NOT_BEFORE:
			if (is_root)
				return usage_error("root keys have no validity window%s", "");
			nb_arg = optarg;
			break;
		case OPT_NOT_AFTER:
			if (is_root)
				return usage_error("root keys have no validity window%s", "");
			na_arg = optarg;
			break;
		}
	}
	if (opt < 0)
		return rc;
	if (!out || optind != argc)
		return usage_error("--out PREFIX is required%s", "");
	if (parse_time_arg(&c, nb_arg, &not_before) || parse_time_arg(&c, na_arg, &not_after))
		return EXIT_USAGE;
	if (not_after && not_before > not_after)
		return usage_error("--not-after is before --not-before%s", "");
	if ((rc = common_ready(&c)) != 0)
		goto out;
	char *base_copy = strdup(out);
	if (!base_copy) {
		err = OTA_ERR_NOMEM;
		goto fail;
	}
	char label[OTA_MAX_STRING_BYTES + 1];
	snprintf(label, sizeof(label), "%s", name ? name : basename(base_copy));
	free(base_copy);
	if ((err = make_key(&c, key, alg, out, label, not_before, not_after, NULL, &pub)) != OTA_OK)
		goto fail;
	char nb[40], na[40];
	printf("%s key \"%s\" id ", is_root ? "root" : "operational", label);
	print_key_id(stdout, pub->key_id.data);
	if (!is_root)
		printf(" valid %s .. %s", kr_time_format(not_before, nb, sizeof(nb)),
		       kr_time_format(not_after, na, sizeof(na)));
	printf("\n");
	rc = 0;
	goto out;
fail:
	rc = fail(err, &c.diag);
out:
	if (pub)
		fleetota__v1__public_key__free_unpacked(pub, NULL);
	common_release(&c);
	return rc;
}

/* ---- keylist / rootlist: new, sign, merge ---- */

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

struct list_args {
	const char *sub;
	const char *out, *in, *prev, *rootlist;
	const char *version_arg, *issued_arg, *expires_arg, *threshold_arg;
	struct list keys, add, remove, expire, inputs;
	int finalize;
};

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
		return usage_error("unknown subcommand %s", a->sub);
	argc--;
	argv++;
	while ((opt = next_option(argc, argv, "", options, c,
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
				return usage_error("--threshold is for rootlist%s", "");
			a->threshold_arg = optarg;
			break;
		case OPT_KEY:
			bad = list_push(&a->keys, optarg);
			break;
		case OPT_ADD:
			bad = list_push(&a->add, optarg);
			break;
		case OPT_REMOVE:
			bad = list_push(&a->remove, optarg);
			break;
		case OPT_EXPIRE:
			if (is_root)
				return usage_error("root keys have no validity window%s", "");
			bad = list_push(&a->expire, optarg);
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
		if (list_push(&a->inputs, argv[i]))
			return EXIT_USAGE;
	}
	if (!a->out)
		return usage_error("--out is required%s", "");
	if (strcmp(a->sub, "sign") == 0 && (!a->in || a->keys.n == 0))
		return usage_error("sign needs --in and --key%s", "");
	if (strcmp(a->sub, "merge") == 0 && a->inputs.n == 0)
		return usage_error("merge needs the partial files%s", "");
	if (strcmp(a->sub, "merge") != 0 && a->inputs.n)
		return usage_error("unexpected argument %s", a->inputs.items[0]);
	if (!is_root && a->finalize && !a->rootlist)
		return usage_error("--finalize needs --rootlist%s", "");
	return 0;
}

/* The envelope to work on: built (new), read (sign) or merged (merge). */
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

/*
 * The start of keylist and rootlist: arguments parsed, secrets read, the
 * verifier's clock set and ARENA ready for the previous list. Returns -1 to
 * go on, else the command's exit status (0 after --help).
 */
static int list_cmd_start(int argc, char **argv, struct common *c, struct list_args *a, int is_root,
			  struct kr_verifier *v, struct kr_arena *arena)
{
	int rc = list_args_parse(argc, argv, c, a, is_root);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	if ((rc = common_ready(c)) != 0)
		return rc;
	v->now = c->now;
	enum ota_err err = kr_arena_init(arena, OTA_DECODE_ARENA_BYTES * 2);
	return err == OTA_OK ? -1 : fail(err, &c->diag);
}

/* The end of keylist and rootlist: everything released; returns RC. */
static int list_cmd_end(int rc, struct common *c, struct kr_verifier *v, struct kr_arena *arena,
			Fleetota__V1__Signed *env, uint8_t *body)
{
	if (env)
		fleetota__v1__signed__free_unpacked(env, NULL);
	free(body);
	kr_arena_release(arena);
	kr_verifier_release(v);
	common_release(c);
	return rc;
}

/* The descriptors of --add. */
static enum ota_err read_adds(const struct list_args *a, struct ota_arena *arena,
			      Fleetota__V1__PublicKey **adds, struct kr_diag *diag)
{
	enum ota_err err = OTA_OK;
	for (size_t i = 0; err == OTA_OK && i < a->add.n; i++)
		err = kr_pubkey_read(a->add.items[i], arena, &adds[i], diag);
	return err;
}

static int cmd_keylist(int argc, char **argv)
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
	if ((rc = list_cmd_start(argc, argv, &c, &a, 0, &v, &prev_arena)) >= 0)
		goto out;
	if (a.rootlist &&
	    (err = load_verified(&v, a.rootlist, kr_verify_root_anchor, &c.diag, NULL)) != OTA_OK)
		goto fail;
	if (a.prev) {
		Fleetota__V1__Signed *penv = NULL;
		if ((err = kr_envelope_read(a.prev, &prev_arena.arena, &penv, &c.diag)) != OTA_OK)
			goto fail;
		if (ota_keylist_parse(penv, &prev_arena.arena, &prev) != OTA_OK) {
			err = kr_fail(&c.diag, OTA_ERR_FORMAT, "%s is not a KeyList", a.prev);
			goto fail;
		}
		v.keylist_floor = prev->version;
	}
	if (strcmp(a.sub, "new") == 0) {
		struct kr_keylist_spec spec = {.prev = prev};
		uint64_t issued = c.now, expires_at = 0;
		if ((a.version_arg && parse_u64_arg(a.version_arg, &spec.version)) ||
		    (a.issued_arg && parse_time_arg(&c, a.issued_arg, &issued)) ||
		    (a.expires_arg && parse_time_arg(&c, a.expires_arg, &expires_at))) {
			rc = EXIT_USAGE;
			goto out;
		}
		if (a.version_arg && spec.version == 0) {
			rc = usage_error("--version must be at least 1%s", "");
			goto out;
		}
		spec.issued_at = issued;
		spec.expires_at = expires_at;
		spec.rootlist_version = v.root ? v.root->version : 0;
		if ((err = read_adds(&a, &prev_arena.arena, adds, &c.diag)) != OTA_OK)
			goto fail;
		for (size_t i = 0; i < a.expire.n; i++) {
			const char *eq = strrchr(a.expire.items[i], '=');
			static char selectors[MAX_LIST_ARGS][OTA_MAX_STRING_BYTES + 1];
			if (!eq || (size_t)(eq - a.expire.items[i]) > OTA_MAX_STRING_BYTES ||
			    parse_time_arg(&c, eq + 1, &expires[i].not_after)) {
				rc = usage_error("--expire wants SEL=TIME, got %s",
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
			goto fail;
	} else if ((err = list_envelope_load(&a, &c.diag, &env)) != OTA_OK) {
		goto fail;
	}
	/* what is about to be signed must be a well-formed KeyList */
	struct kr_arena check = {0};
	Fleetota__V1__KeyList *kl = NULL;
	if ((err = kr_arena_init(&check, OTA_DECODE_ARENA_BYTES)) != OTA_OK)
		goto fail;
	err = ota_keylist_parse(env, &check.arena, &kl);
	uint64_t version = kl ? kl->version : 0;
	kr_arena_release(&check);
	if (err != OTA_OK) {
		kr_fail(&c.diag, err, "not a KeyList");
		goto fail;
	}
	if (prev && version <= prev->version) {
		err = kr_fail(&c.diag, OTA_ERR_KEYLIST_ROLLBACK,
			      "KeyList version %llu does not increase over %llu",
			      (unsigned long long)version, (unsigned long long)prev->version);
		goto fail;
	}
	char root_name[48];
	struct signers roots = {.what = root_name};
	if (v.root) {
		roots.a = v.root->keys;
		roots.n_a = v.root->n_keys;
		snprintf(root_name, sizeof(root_name), "RootList v%llu",
			 (unsigned long long)v.root->version);
	}
	if ((err = sign_all(&c, env, OTA_OBJ_KEYLIST, version, a.keys.items, a.keys.n,
			    v.root ? &roots : NULL)) != OTA_OK)
		goto fail;
	if (v.root) {
		size_t have = 0;
		ota_threshold_count(OTA_OBJ_KEYLIST, env, v.root->keys, v.root->n_keys, &have);
		if (a.finalize) {
			if ((err = kr_verify_keylist(&v, env, &c.diag)) != OTA_OK)
				goto fail;
		}
		printf("KeyList v%llu: %zu of %u root signatures%s\n", (unsigned long long)version,
		       have, v.root->threshold,
		       have >= v.root->threshold ? " (complete)" : " (partial)");
	} else {
		printf("KeyList v%llu: %zu signatures (give --rootlist to count them)\n",
		       (unsigned long long)version, env->n_signatures);
	}
	if ((err = kr_envelope_write(a.out, env, &c.diag)) != OTA_OK)
		goto fail;
	rc = 0;
	goto out;
fail:
	rc = fail(err, &c.diag);
out:
	return list_cmd_end(rc, &c, &v, &prev_arena, env, body);
}

static int cmd_rootlist(int argc, char **argv)
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
	if ((rc = list_cmd_start(argc, argv, &c, &a, 1, &v, &arena)) >= 0)
		goto out;
	/* the current RootList: trusted as the anchor of this step; none for v1 */
	if (a.prev && ((err = kr_envelope_read(a.prev, &arena.arena, &penv, &c.diag)) != OTA_OK ||
		       (err = kr_verify_root_anchor(&v, penv, &c.diag)) != OTA_OK))
		goto fail;
	const Fleetota__V1__RootList *prev = v.root;
	uint64_t prev_version = prev ? prev->version : 0;
	if (strcmp(a.sub, "new") == 0) {
		struct kr_rootlist_spec spec = {.prev = prev};
		uint64_t issued = c.now, expires_at = 0, threshold = 0;
		if ((a.version_arg && parse_u64_arg(a.version_arg, &spec.version)) ||
		    (a.threshold_arg && parse_u64_arg(a.threshold_arg, &threshold)) ||
		    (a.issued_arg && parse_time_arg(&c, a.issued_arg, &issued)) ||
		    (a.expires_arg && parse_time_arg(&c, a.expires_arg, &expires_at))) {
			rc = EXIT_USAGE;
			goto out;
		}
		if (threshold > OTA_MAX_KEYS || (a.threshold_arg && threshold == 0)) {
			rc = usage_error("bad --threshold%s", "");
			goto out;
		}
		spec.threshold = (uint32_t)threshold;
		spec.issued_at = issued;
		spec.expires_at = expires_at;
		if ((err = read_adds(&a, &arena.arena, adds, &c.diag)) != OTA_OK)
			goto fail;
		spec.add = adds;
		spec.n_add = a.add.n;
		spec.remove = a.remove.items;
		spec.n_remove = a.remove.n;
		if ((err = kr_rootlist_build(&spec, &body, &body_len, &c.diag)) != OTA_OK ||
		    (err = kr_envelope_new(body, body_len, &env)) != OTA_OK)
			goto fail;
	} else if ((err = list_envelope_load(&a, &c.diag, &env)) != OTA_OK) {
		goto fail;
	}
	struct kr_arena check = {0};
	Fleetota__V1__RootList *next = NULL;
	if ((err = kr_arena_init(&check, OTA_DECODE_ARENA_BYTES)) != OTA_OK)
		goto fail;
	err = ota_rootlist_parse(env, &check.arena, &next);
	if (err != OTA_OK) {
		kr_arena_release(&check);
		kr_fail(&c.diag, err, "not a RootList");
		goto fail;
	}
	uint64_t version = next->version;
	if (version != prev_version + 1) {
		kr_arena_release(&check);
		err = kr_fail(
			&c.diag, OTA_ERR_ROOT_CHAIN,
			prev ? "RootList v%llu does not follow v%llu"
			     : "RootList v%llu without --prev: only v1 (v%llu + 1) is possible",
			(unsigned long long)version, (unsigned long long)prev_version);
		goto fail;
	}
	char lists_name[64];
	snprintf(lists_name, sizeof(lists_name), "RootList v%llu or v%llu",
		 (unsigned long long)prev_version, (unsigned long long)version);
	struct signers rotation = {prev ? prev->keys : NULL, prev ? prev->n_keys : 0, next->keys,
				   next->n_keys, lists_name};
	err = sign_all(&c, env, OTA_OBJ_ROOT, version, a.keys.items, a.keys.n, &rotation);
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
		goto fail;
	/* kr_verify_root_step: a chain step from prev, or (no prev) an anchor */
	if (a.finalize && (err = kr_verify_root_step(&v, env, &c.diag)) != OTA_OK)
		goto fail;
	if ((err = kr_envelope_write(a.out, env, &c.diag)) != OTA_OK)
		goto fail;
	rc = 0;
	goto out;
fail:
	rc = fail(err, &c.diag);
out:
	return list_cmd_end(rc, &c, &v, &arena, env, body);
}

/* ---- sign: firmware image -> manifest + bundle ---- */

static const char help_sign[] =
	"Usage: ota-keys sign --key OPKEY --keylist KEYLIST --image FILE --product MODEL\n"
	"                     --version SEMVER --version-code N [options]\n"
	"                     [--manifest-out FILE] [--bundle-out FILE.otab]\n"
	"Signs a firmware image into a Signed manifest and/or an .otab bundle. The image\n"
	"is streamed (constant memory) and hashed again while the bundle is written.\n"
	"The operational key must be in the KeyList (OTA_ERR_KEY_UNKNOWN) and valid at\n"
	"--issued (OTA_ERR_KEY_EXPIRED).\n"
	"  --hw-rev REV           hardware revision (repeat; none = any revision)\n"
	"  --security-counter N   anti-rollback counter (default 0)\n"
	"  --min-installed N      version_code the device must already run (default 0)\n"
	"  --allow-downgrade      allow installing below the running version\n"
	"  --security-update      mark as a security update\n"
	"  --issued TIME          default now; --expires TIME default never\n"
	"  --sequence N           default: --issued in seconds\n"
	"  --image-name NAME      default: the image's file name\n"
	"  --rootlist ROOTLIST    verify the KeyList against it and carry it in the bundle\n"
	"  --rootlist-chain FILE  intermediate RootLists for the bundle, oldest first\n"
	"  --no-keylist           do not carry the KeyList in the bundle\n";

static int cmd_sign(int argc, char **argv)
{
	static const struct option options[] = {
		COMMON_OPTIONS,
		{"key", required_argument, NULL, OPT_KEY},
		{"keylist", required_argument, NULL, OPT_KEYLIST},
		{"rootlist", required_argument, NULL, OPT_ROOTLIST},
		{"rootlist-chain", required_argument, NULL, OPT_ROOTLIST_CHAIN},
		{"image", required_argument, NULL, OPT_IMAGE},
		{"product", required_argument, NULL, OPT_PRODUCT},
		{"model", required_argument, NULL, OPT_PRODUCT},
		{"hw-rev", required_argument, NULL, OPT_HW_REV},
		{"version", required_argument, NULL, OPT_VERSION},
		{"version-code", required_argument, NULL, OPT_VERSION_CODE},
		{"security-counter", required_argument, NULL, OPT_SECURITY_COUNTER},
		{"min-installed", required_argument, NULL, OPT_MIN_INSTALLED},
		{"allow-downgrade", no_argument, NULL, OPT_ALLOW_DOWNGRADE},
		{"security-update", no_argument, NULL, OPT_SECURITY_UPDATE},
		{"issued", required_argument, NULL, OPT_ISSUED},
		{"expires", required_argument, NULL, OPT_EXPIRES},
		{"sequence", required_argument, NULL, OPT_SEQUENCE},
		{"image-name", required_argument, NULL, OPT_IMAGE_NAME},
		{"manifest-out", required_argument, NULL, OPT_MANIFEST_OUT},
		{"bundle-out", required_argument, NULL, OPT_BUNDLE_OUT},
		{"no-keylist", no_argument, NULL, OPT_NO_KEYLIST},
		{NULL, 0, NULL, 0},
	};
	struct common c = {.now = (uint64_t)time(NULL)};
	struct kr_manifest_spec spec = {0};
	struct list hw = {0}, chain = {0};
	const char *key = NULL, *keylist = NULL, *rootlist = NULL, *image = NULL;
	const char *manifest_out = NULL, *bundle_out = NULL, *issued_arg = "now";
	const char *expires_arg = "never", *version_code_arg = NULL, *sequence_arg = NULL;
	int no_keylist = 0, rc, opt;
	struct kr_verifier v;
	struct ota_arena *arena = NULL;
	Fleetota__V1__Signed *kenv = NULL, *renv = NULL, *env = NULL;
	Fleetota__V1__Signed *chain_envs[OTA_MAX_ROOT_CHAIN];
	uint8_t *body = NULL, sha[OTA_SHA256_BYTES];
	size_t body_len = 0;
	uint64_t size = 0;
	char *image_copy = NULL;
	enum ota_err err = OTA_OK;

	kr_verifier_init(&v, 0);
	while ((opt = next_option(argc, argv, "", options, &c, help_sign, &rc)) > 0) {
		int bad = 0;
		switch (opt) {
		case OPT_KEY:
			key = optarg;
			break;
		case OPT_KEYLIST:
			keylist = optarg;
			break;
		case OPT_ROOTLIST:
			rootlist = optarg;
			break;
		case OPT_ROOTLIST_CHAIN:
			bad = list_push(&chain, optarg);
			break;
		case OPT_IMAGE:
			image = optarg;
			break;
		case OPT_PRODUCT:
			spec.product = optarg;
			break;
		case OPT_HW_REV:
			bad = list_push(&hw, optarg);
			break;
		case OPT_VERSION:
			spec.version = optarg;
			break;
		case OPT_VERSION_CODE:
			version_code_arg = optarg;
			break;
		case OPT_SECURITY_COUNTER:
			bad = parse_u64_arg(optarg, &spec.security_counter);
			break;
		case OPT_MIN_INSTALLED:
			bad = parse_u64_arg(optarg, &spec.min_installed_version);
			break;
		case OPT_ALLOW_DOWNGRADE:
			spec.allow_downgrade = 1;
			break;
		case OPT_SECURITY_UPDATE:
			spec.is_security_update = 1;
			break;
		case OPT_ISSUED:
			issued_arg = optarg;
			break;
		case OPT_EXPIRES:
			expires_arg = optarg;
			break;
		case OPT_SEQUENCE:
			sequence_arg = optarg;
			break;
		case OPT_IMAGE_NAME:
			spec.image_name = optarg;
			break;
		case OPT_MANIFEST_OUT:
			manifest_out = optarg;
			break;
		case OPT_BUNDLE_OUT:
			bundle_out = optarg;
			break;
		case OPT_NO_KEYLIST:
			no_keylist = 1;
			break;
		}
		if (bad)
			return EXIT_USAGE;
	}
	if (opt < 0)
		return rc;
	if (optind != argc || !key || !keylist || !image || !version_code_arg)
		return usage_error("sign needs --key, --keylist, --image and --version-code%s", "");
	if (!manifest_out && !bundle_out)
		return usage_error("give --manifest-out and/or --bundle-out%s", "");
	if (chain.n > OTA_MAX_ROOT_CHAIN)
		return usage_error("too many --rootlist-chain files%s", "");
	if (parse_u64_arg(version_code_arg, &spec.version_code) ||
	    parse_time_arg(&c, issued_arg, &spec.issued_at) ||
	    parse_time_arg(&c, expires_arg, &spec.expires_at) ||
	    (sequence_arg && parse_u64_arg(sequence_arg, &spec.sequence)))
		return EXIT_USAGE;
	if (!sequence_arg)
		spec.sequence = spec.issued_at;
	spec.hw_revisions = hw.items;
	spec.n_hw_revisions = hw.n;
	if (!spec.image_name) {
		image_copy = strdup(image);
		if (!image_copy)
			return fail(OTA_ERR_NOMEM, NULL);
		spec.image_name = basename(image_copy);
	}
	if ((rc = common_ready(&c)) != 0)
		goto out;
	v.now = c.now;
	if ((err = kr_verifier_arena(&v, KR_HEADER_ARENA_BYTES, &arena)) != OTA_OK)
		goto fail;
	for (size_t i = 0; i < chain.n; i++) {
		if ((err = kr_envelope_read(chain.items[i], arena, &chain_envs[i], &c.diag)) !=
		    OTA_OK)
			goto fail;
	}
	if (rootlist) {
		if ((err = kr_envelope_read(rootlist, arena, &renv, &c.diag)) != OTA_OK ||
		    (err = kr_verify_root_anchor(&v, renv, &c.diag)) != OTA_OK)
			goto fail;
	}
	if ((err = kr_envelope_read(keylist, arena, &kenv, &c.diag)) != OTA_OK)
		goto fail;
	if (v.root) {
		if ((err = kr_verify_keylist(&v, kenv, &c.diag)) != OTA_OK)
			goto fail;
	} else if ((err = ota_keylist_parse(kenv, arena, &v.keylist)) != OTA_OK) {
		kr_fail(&c.diag, err, "%s is not a KeyList", keylist);
		goto fail;
	}
	/* refuse before hashing gigabytes: the key must be listed and valid */
	EVP_PKEY *pkey = NULL;
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES], id[OTA_KEY_ID_BYTES];
	size_t spki_len;
	enum ota_alg alg;
	if ((err = kr_key_load(key, &c.key_opts, &pkey, &c.diag)) != OTA_OK)
		goto fail;
	err = ota_pkey_public(pkey, &alg, spki, &spki_len, id);
	EVP_PKEY_free(pkey);
	if (err != OTA_OK)
		goto fail;
	const Fleetota__V1__PublicKey *op = ota_keylist_find(v.keylist, id, sizeof(id));
	if (!op) {
		err = kr_fail(&c.diag, OTA_ERR_KEY_UNKNOWN,
			      "the signing key is not in KeyList v%llu",
			      (unsigned long long)v.keylist->version);
		goto fail;
	}
	if ((op->not_before && spec.issued_at < op->not_before) ||
	    (op->not_after && spec.issued_at > op->not_after)) {
		char a[40], b[40], t[40];
		err = kr_fail(&c.diag, OTA_ERR_KEY_EXPIRED,
			      "operational key \"%s\" is valid %s .. %s, not at issued_at %s",
			      op->name, kr_time_format(op->not_before, a, sizeof(a)),
			      kr_time_format(op->not_after, b, sizeof(b)),
			      kr_time_format(spec.issued_at, t, sizeof(t)));
		goto fail;
	}
	if ((err = kr_image_hash(image, sha, &size, &c.diag)) != OTA_OK ||
	    (err = kr_manifest_build(&spec, sha, size, &body, &body_len, &c.diag)) != OTA_OK ||
	    (err = kr_envelope_new(body, body_len, &env)) != OTA_OK ||
	    (err = sign_envelope(&c, env, OTA_OBJ_MANIFEST, spec.version_code, key, NULL)) !=
		    OTA_OK)
		goto fail;
	/* the device's own check, before anything is written */
	Fleetota__V1__Manifest *m = NULL;
	struct ota_arena *marena;
	if ((err = kr_verifier_arena(&v, OTA_DECODE_ARENA_BYTES, &marena)) != OTA_OK)
		goto fail;
	uint64_t saved_now = v.now;
	v.now = 0; /* a manifest issued in the future is still well-signed */
	err = kr_verify_manifest(&v, env, marena, &m, &c.diag);
	v.now = saved_now;
	if (err != OTA_OK)
		goto fail;
	if (bundle_out) {
		struct kr_bundle_parts parts = {
			.manifest = env,
			.keylist = no_keylist ? NULL : kenv,
			.rootlist = renv,
			.rootlist_chain = (const Fleetota__V1__Signed *const *)chain_envs,
			.n_rootlist_chain = chain.n,
		};
		if ((err = kr_bundle_write(bundle_out, &parts, image, sha, size, &c.diag)) !=
		    OTA_OK)
			goto fail;
	}
	if (manifest_out && (err = kr_envelope_write(manifest_out, env, &c.diag)) != OTA_OK)
		goto fail;
	char sha_hex[2 * OTA_SHA256_BYTES + 1];
	kr_hex_encode(sha, sizeof(sha), sha_hex);
	printf("manifest %s %s (code %llu, counter %llu) image %llu bytes sha256 %s\n",
	       spec.product, spec.version, (unsigned long long)spec.version_code,
	       (unsigned long long)spec.security_counter, (unsigned long long)size, sha_hex);
	rc = 0;
	goto out;
fail:
	rc = fail(err, &c.diag);
out:
	if (env)
		fleetota__v1__signed__free_unpacked(env, NULL);
	free(body);
	free(image_copy);
	kr_verifier_release(&v);
	common_release(&c);
	return rc;
}

/* ---- verify, inspect, audit-verify ---- */

static const char help_verify[] =
	"Usage: ota-keys verify FILE --rootlist ROOTLIST [--rootlist-chain FILE]...\n"
	"                       [--keylist KEYLIST] [--keylist-floor N] [--image IMAGE]\n"
	"                       [--type rootlist|keylist|manifest|bundle] [--now TIME]\n"
	"Verifies FILE with the device's own code. ROOTLIST is the trust anchor (signed\n"
	"by its own threshold); --rootlist-chain files are walked one version at a time.\n"
	"A RootList FILE must be the next step (or the anchor itself); a KeyList must be\n"
	"signed by a threshold of the roots and above --keylist-floor; a manifest by a\n"
	"key of --keylist valid at its issued_at (--image checks the image too); a\n"
	"bundle is checked whole, image streamed. Exits 0, or 1 with OTA_ERR_X: detail.\n";

static int cmd_verify(int argc, char **argv)
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
	while ((opt = next_option(argc, argv, "", options, &c, help_verify, &rc)) > 0) {
		switch (opt) {
		case OPT_ROOTLIST:
			rootlist = optarg;
			break;
		case OPT_ROOTLIST_CHAIN:
			if (list_push(&chain, optarg))
				return EXIT_USAGE;
			break;
		case OPT_KEYLIST:
			keylist = optarg;
			break;
		case OPT_KEYLIST_FLOOR:
			if (parse_u64_arg(optarg, &floor))
				return EXIT_USAGE;
			break;
		case OPT_IMAGE:
			image = optarg;
			break;
		case OPT_TYPE:
			if (kr_obj_kind_parse(optarg, &kind) != OTA_OK || kind == KR_OBJ_PUBKEY)
				return usage_error("unknown --type %s", optarg);
			break;
		}
	}
	if (opt < 0)
		return rc;
	if (optind + 1 != argc)
		return usage_error("verify takes one FILE%s", "");
	const char *path = argv[optind];
	if (!rootlist)
		return usage_error("--rootlist (the trust anchor) is required%s", "");
	if ((rc = common_ready(&c)) != 0)
		goto out;
	v.now = c.now;
	v.keylist_floor = floor;
	if ((err = load_verified(&v, rootlist, kr_verify_root_anchor, &c.diag, &anchor)) != OTA_OK)
		goto fail;
	for (size_t i = 0; i < chain.n; i++) {
		Fleetota__V1__Signed *step = NULL;
		if ((err = load_verified(&v, chain.items[i], kr_verify_root_step, &c.diag,
					 &step)) != OTA_OK)
			goto fail;
		anchor = step; /* the newest trusted one */
	}
	if ((err = kr_verifier_arena(&v, KR_HEADER_ARENA_BYTES, &arena)) != OTA_OK)
		goto fail;
	if (kind == KR_OBJ_UNKNOWN) {
		/* only the prefix matters for a bundle; objects are small */
		uint8_t head[OTA_BUNDLE_PREFIX_BYTES];
		FILE *f = fopen(path, "rb");
		size_t got = f ? fread(head, 1, sizeof(head), f) : 0;
		if (f)
			fclose(f);
		if (!f) {
			err = kr_fail(&c.diag, OTA_ERR_STORAGE, "cannot open %s", path);
			goto fail;
		}
		uint32_t hl;
		if (got == sizeof(head) && ota_bundle_prefix_parse(head, &hl) == OTA_OK) {
			kind = KR_OBJ_BUNDLE;
		} else {
			if ((err = kr_file_read(path, KR_MAX_OBJECT_FILE_BYTES, &buf, &len,
						&c.diag)) != OTA_OK)
				goto fail;
			kind = kr_obj_detect(buf, len, arena);
			ota_arena_reset(arena);
		}
	}
	if (kind == KR_OBJ_BUNDLE) {
		if (keylist) {
			if ((err = load_verified(&v, keylist, kr_verify_keylist, &c.diag, NULL)) !=
			    OTA_OK)
				goto fail;
			/* a KeyList in the bundle must then be newer than this one */
			v.keylist_floor =
				v.keylist->version > floor ? v.keylist->version - 1 : floor;
		}
		if ((err = kr_verify_bundle_file(&v, path, &c.diag)) != OTA_OK)
			goto fail;
		printf("OK: bundle %s verifies (RootList v%llu, KeyList v%llu, image intact)\n",
		       path, (unsigned long long)v.root->version,
		       (unsigned long long)v.keylist->version);
		rc = 0;
		goto out;
	}
	if (kind == KR_OBJ_UNKNOWN || kind == KR_OBJ_PUBKEY) {
		err = kr_fail(&c.diag, OTA_ERR_FORMAT, "%s is not a signed fleetota object", path);
		goto fail;
	}
	if (!buf &&
	    (err = kr_file_read(path, KR_MAX_OBJECT_FILE_BYTES, &buf, &len, &c.diag)) != OTA_OK)
		goto fail;
	if (ota_envelope_decode(buf, len, arena, &env) != OTA_OK) {
		err = kr_fail(&c.diag, OTA_ERR_FORMAT, "%s is not a signed fleetota object", path);
		goto fail;
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
			goto fail;
		}
		if (r->version != trusted + 1) {
			err = kr_fail(&c.diag, OTA_ERR_ROOT_CHAIN,
				      "RootList v%llu is not the step after trusted v%llu",
				      (unsigned long long)r->version, (unsigned long long)trusted);
			goto fail;
		}
		if ((err = kr_verify_root_step(&v, env, &c.diag)) != OTA_OK)
			goto fail;
		printf("OK: RootList v%llu chains from v%llu (threshold %u of %zu)\n",
		       (unsigned long long)v.root->version, (unsigned long long)trusted,
		       v.root->threshold, v.root->n_keys);
	} else if (kind == KR_OBJ_KEYLIST) {
		if ((err = kr_verify_keylist(&v, env, &c.diag)) != OTA_OK)
			goto fail;
		printf("OK: KeyList v%llu signed by RootList v%llu (%zu keys)\n",
		       (unsigned long long)v.keylist->version, (unsigned long long)v.root->version,
		       v.keylist->n_keys);
	} else {
		Fleetota__V1__Manifest *m = NULL;
		if (!keylist) {
			rc = usage_error("a manifest needs --keylist%s", "");
			goto out;
		}
		if ((err = load_verified(&v, keylist, kr_verify_keylist, &c.diag, NULL)) !=
			    OTA_OK ||
		    (err = kr_verify_manifest(&v, env, arena, &m, &c.diag)) != OTA_OK)
			goto fail;
		if (image && (err = kr_verify_image_file(m, image, &c.diag)) != OTA_OK)
			goto fail;
		printf("OK: manifest %s %s signed by a key of KeyList v%llu%s\n", m->product,
		       m->version, (unsigned long long)v.keylist->version,
		       image ? ", image matches" : "");
	}
	rc = 0;
	goto out;
fail:
	rc = fail(err, &c.diag);
out:
	free(buf);
	kr_verifier_release(&v);
	common_release(&c);
	return rc;
}

static const char help_inspect[] =
	"Usage: ota-keys inspect FILE [--json] [--type rootlist|keylist|manifest|pubkey|bundle]\n"
	"Shows a RootList, KeyList, manifest, key descriptor or bundle (header only)\n"
	"for people, or as JSON. Shows; does not verify: use `ota-keys verify`.\n";

static int cmd_inspect(int argc, char **argv)
{
	static const struct option options[] = {
		{"json", no_argument, NULL, OPT_JSON},
		{"type", required_argument, NULL, OPT_TYPE},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	enum kr_obj_kind kind = KR_OBJ_UNKNOWN;
	struct kr_diag diag = {{0}};
	int as_json = 0, opt, rc = EXIT_REJECTED;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t image_bytes = 0;
	enum ota_err err;

	while ((opt = next_option(argc, argv, "", options, NULL, help_inspect, &rc)) > 0) {
		switch (opt) {
		case OPT_JSON:
			as_json = 1;
			break;
		case OPT_TYPE:
			if (kr_obj_kind_parse(optarg, &kind) != OTA_OK)
				return usage_error("unknown --type %s", optarg);
			break;
		}
	}
	if (opt < 0)
		return rc;
	if (optind + 1 != argc)
		return usage_error("inspect takes one FILE%s", "");
	const char *path = argv[optind];
	FILE *f = fopen(path, "rb");
	if (!f)
		return fail(kr_fail(&diag, OTA_ERR_STORAGE, "cannot open %s", path), &diag);
	uint8_t head[OTA_BUNDLE_PREFIX_BYTES];
	uint32_t header_len = 0;
	size_t got = fread(head, 1, sizeof(head), f);
	if (got == sizeof(head) && ota_bundle_prefix_parse(head, &header_len) == OTA_OK) {
		/* a bundle: the header only, never the image */
		buf = malloc(sizeof(head) + header_len);
		if (buf && fread(buf + sizeof(head), 1, header_len, f) == header_len) {
			memcpy(buf, head, sizeof(head));
			len = sizeof(head) + header_len;
			struct stat st;
			if (fstat(fileno(f), &st) == 0 && (uint64_t)st.st_size >= len)
				image_bytes = (uint64_t)st.st_size - len;
		}
		fclose(f);
		if (!len) {
			err = kr_fail(&diag, OTA_ERR_FORMAT, "%s: truncated bundle header", path);
			goto fail;
		}
	} else {
		fclose(f);
		if ((err = kr_file_read(path, KR_MAX_OBJECT_FILE_BYTES, &buf, &len, &diag)) !=
		    OTA_OK)
			goto fail;
	}
	json_t *tree = kr_inspect_json(buf, len, image_bytes, kind);
	if (!tree) {
		err = kr_fail(&diag, OTA_ERR_FORMAT, "%s: not a fleetota object%s", path,
			      kind != KR_OBJ_UNKNOWN ? " of that type" : "");
		goto fail;
	}
	if (as_json) {
		json_dumpf(tree, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
	} else {
		kr_inspect_print(stdout, tree);
	}
	json_decref(tree);
	rc = 0;
	goto out;
fail:
	rc = fail(err, &diag);
out:
	free(buf);
	return rc;
}

static const char help_audit_verify[] =
	"Usage: ota-keys audit-verify LOG [--expect-head HASH]\n"
	"Checks the hash chain of a signing audit log: every record's hash over its\n"
	"own text, seq counting from 1, every prev equal to the hash before. Names\n"
	"the first bad record (edited, removed, inserted or reordered) and exits 1\n"
	"(OTA_ERR_HASH, or OTA_ERR_FORMAT for a line that is not a record). Prints the\n"
	"head hash; keep it elsewhere and pass it as --expect-head to detect records\n"
	"cut off the end.\n";

static int cmd_audit_verify(int argc, char **argv)
{
	static const struct option options[] = {
		{"expect-head", required_argument, NULL, OPT_EXPECT_HEAD},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	const char *expect = NULL;
	struct kr_diag diag = {{0}};
	struct kr_audit_result result;
	int opt, rc;
	while ((opt = next_option(argc, argv, "", options, NULL, help_audit_verify, &rc)) > 0) {
		switch (opt) {
		case OPT_EXPECT_HEAD:
			expect = optarg;
			break;
		}
	}
	if (opt < 0)
		return rc;
	if (optind + 1 != argc)
		return usage_error("audit-verify takes one LOG%s", "");
	enum ota_err err = kr_audit_verify_file(argv[optind], &result, &diag);
	if (err != OTA_OK)
		return fail(err, &diag);
	if (expect && strcmp(expect, result.head) != 0)
		return fail(kr_fail(&diag, OTA_ERR_HASH,
				    "head %s is not the expected head (records cut off the end?)",
				    result.head[0] ? result.head : "(empty log)"),
			    &diag);
	printf("OK: %llu records, head %s\n", (unsigned long long)result.records,
	       result.head[0] ? result.head : "(empty)");
	return 0;
}

/* ---- dispatch ---- */

static const char help_main[] =
	"Usage: ota-keys COMMAND [options]   (ota-keys COMMAND --help; ota-keys --version)\n"
	"Keys and signing for fleetota (docs/keys.md).\n"
	"  root-init     generate root keys and the first RootList (k of n)\n"
	"  root-new      generate a root key for a rotation\n"
	"  op-new        generate an operational key with a validity window\n"
	"  keylist       new | sign | merge: the next KeyList, signed by k roots\n"
	"  rootlist      new | sign | merge: the next RootList (rotate roots)\n"
	"  sign          firmware image -> signed manifest and .otab bundle\n"
	"  verify        verify any signed object or bundle against a RootList\n"
	"  inspect       show an object (--json)\n"
	"  audit-verify  check the signing audit log's hash chain\n";

int main(int argc, char **argv)
{
	int rc;
	if (argc < 2) {
		fputs(help_main, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	argc--;
	argv++;
	if (strcmp(cmd, "root-init") == 0)
		rc = cmd_root_init(argc, argv);
	else if (strcmp(cmd, "op-new") == 0)
		rc = cmd_key_new(argc, argv, 0);
	else if (strcmp(cmd, "root-new") == 0)
		rc = cmd_key_new(argc, argv, 1);
	else if (strcmp(cmd, "keylist") == 0)
		rc = cmd_keylist(argc, argv);
	else if (strcmp(cmd, "rootlist") == 0)
		rc = cmd_rootlist(argc, argv);
	else if (strcmp(cmd, "sign") == 0)
		rc = cmd_sign(argc, argv);
	else if (strcmp(cmd, "verify") == 0)
		rc = cmd_verify(argc, argv);
	else if (strcmp(cmd, "inspect") == 0)
		rc = cmd_inspect(argc, argv);
	else if (strcmp(cmd, "audit-verify") == 0)
		rc = cmd_audit_verify(argc, argv);
	else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(help_main, stdout);
		rc = 0;
	} else if (strcmp(cmd, "--version") == 0) {
		/* only here: after a command, --version is an option (keylist, sign) */
		printf("ota-keys %s\n", fleetota_version());
		rc = 0;
	} else {
		fprintf(stderr, "OTA_ERR_INVALID_ARG: unknown command %s\n", cmd);
		fputs(help_main, stderr);
		rc = EXIT_USAGE;
	}
	kr_pkcs11_shutdown();
	return rc;
}
