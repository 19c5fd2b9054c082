/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys: options, secrets and signing shared by the commands (cli.h). */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"

int cli_list_push(struct list *list, const char *value)
{
	if (list->n >= MAX_LIST_ARGS) {
		fprintf(stderr, "OTA_ERR_INVALID_ARG: too many values (at most %u)\n",
			MAX_LIST_ARGS);
		return -1;
	}
	list->items[list->n++] = value;
	return 0;
}

int cli_fail(enum ota_err err, const struct kr_diag *diag)
{
	fprintf(stderr, "%s: %s\n", ota_err_name(err),
		diag && diag->msg[0] ? diag->msg : ota_err_describe(err));
	return err == OTA_ERR_INVALID_ARG ? EXIT_USAGE : EXIT_REJECTED;
}

int cli_usage_error(const char *fmt, ...)
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
int cli_common_option(struct common *c, int opt, const char *arg)
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
			cli_usage_error("bad time %s", arg);
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
int cli_next_option(int argc, char **argv, const char *shortopts, const struct option *options,
		    struct common *c, const char *help, int *rc)
{
	int opt;
	/* Every path leaves *rc defined: callers read it whenever this returns < 0. */
	*rc = 0;
	while ((opt = getopt_long(argc, argv, shortopts, options, NULL)) != -1) {
		int used = c ? cli_common_option(c, opt, optarg) : 0;
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
			*rc = cli_usage_error("unknown option%s", "");
			return -1;
		}
		return opt;
	}
	return 0;
}

/* Secrets are read once the options are parsed. */
int cli_common_ready(struct common *c)
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
		return cli_fail(err, &c->diag);
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
		return cli_usage_error("--signer: at most 64 bytes%s", "");
	return 0;
}

void cli_common_release(struct common *c)
{
	kr_secret_wipe(&c->pass);
	kr_secret_wipe(&c->pin);
}

int cli_parse_time(const struct common *c, const char *arg, uint64_t *ret)
{
	if (kr_time_parse(arg, c->now, ret) != OTA_OK) {
		cli_usage_error("bad time \"%s\"", arg);
		return -1;
	}
	return 0;
}

int cli_parse_u64(const char *arg, uint64_t *ret)
{
	if (kr_u64_parse(arg, ret) != OTA_OK) {
		cli_usage_error("bad number \"%s\"", arg);
		return -1;
	}
	return 0;
}

/* ---- signing: every signature goes through here, and into the audit log ---- */

int cli_key_listed(Fleetota__V1__PublicKey *const *keys, size_t n, const uint8_t *id)
{
	for (size_t i = 0; i < n; i++) {
		if (keys[i]->key_id.len == OTA_KEY_ID_BYTES &&
		    memcmp(keys[i]->key_id.data, id, OTA_KEY_ID_BYTES) == 0)
			return 1;
	}
	return 0;
}

enum ota_err cli_sign_envelope(struct common *c, Fleetota__V1__Signed *env, enum ota_obj_type type,
			       uint64_t version, const char *key_spec,
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
	if (err == OTA_OK && allowed && !cli_key_listed(allowed->a, allowed->n_a, entry.key_id) &&
	    !cli_key_listed(allowed->b, allowed->n_b, entry.key_id)) {
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
enum ota_err cli_sign_all(struct common *c, Fleetota__V1__Signed *env, enum ota_obj_type type,
			  uint64_t version, const char *const *keys, size_t n,
			  const struct signers *allowed)
{
	enum ota_err err = OTA_OK;
	for (size_t i = 0; err == OTA_OK && i < n; i++)
		err = cli_sign_envelope(c, env, type, version, keys[i], allowed);
	return err;
}

/* Reads PATH into an arena of the verifier and has VERIFY check it. */
enum ota_err cli_load_verified(struct kr_verifier *v, const char *path, verify_fn verify,
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

enum ota_err cli_load_signer_keylist(struct kr_verifier *v, struct ota_arena *arena,
				     const char *rootlist, const char *keylist,
				     struct kr_diag *diag, Fleetota__V1__Signed **ret_renv,
				     Fleetota__V1__Signed **ret_kenv)
{
	Fleetota__V1__Signed *renv = NULL, *kenv = NULL;
	enum ota_err err;
	if (rootlist && ((err = kr_envelope_read(rootlist, arena, &renv, diag)) != OTA_OK ||
			 (err = kr_verify_root_anchor(v, renv, diag)) != OTA_OK))
		return err;
	if ((err = kr_envelope_read(keylist, arena, &kenv, diag)) != OTA_OK)
		return err;
	if (v->root)
		err = kr_verify_keylist(v, kenv, diag);
	else if ((err = ota_keylist_parse(kenv, arena, &v->keylist)) != OTA_OK)
		kr_fail(diag, err, "%s is not a KeyList", keylist);
	if (err == OTA_OK && ret_renv)
		*ret_renv = renv;
	if (err == OTA_OK && ret_kenv)
		*ret_kenv = kenv;
	return err;
}

void cli_print_key_id(FILE *out, const uint8_t *id)
{
	char hex[2 * OTA_KEY_ID_BYTES + 1];
	ota_hex_encode(id, OTA_KEY_ID_BYTES, hex);
	fprintf(out, "%s", hex);
}

/* ---- key making: root-init, op-new, root-new ---- */

int cli_write_descriptor(const char *prefix, const Fleetota__V1__PublicKey *key,
			 struct kr_diag *diag)
{
	char path[KR_MAX_PATH_BYTES];
	snprintf(path, sizeof(path), "%s.pub", prefix);
	enum ota_err err = kr_pubkey_write(path, key, diag);
	if (err == OTA_OK) {
		snprintf(path, sizeof(path), "%s.pem", prefix);
		err = kr_pubkey_write_pem(path, key, diag);
	}
	return err;
}

int cli_key_option(int opt, const char *arg, const char **out, enum ota_alg *alg)
{
	if (opt == OPT_OUT) {
		*out = arg;
		return 0;
	}
	if (opt != OPT_ALG)
		return -1;
	if (kr_alg_parse(arg, alg) != OTA_OK)
		return cli_usage_error("unknown algorithm %s", arg);
	return 0;
}

/*
 * A key and its descriptor PREFIX.pub and PREFIX.pem: loaded from SPEC, or
 * generated into PREFIX.key. With ret_spec, where the key is (to sign with).
 */
enum ota_err cli_make_key(struct common *c, const char *spec, enum ota_alg alg, const char *prefix,
			  const char *label, uint64_t not_before, uint64_t not_after,
			  Fleetota__V1__KeyRole role, char **ret_spec,
			  Fleetota__V1__PublicKey **ret_pub)
{
	char path[KR_MAX_PATH_BYTES + KR_PATH_SUFFIX_BYTES];
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
		(*ret_pub)->role = role;
	if (err == OTA_OK)
		err = cli_write_descriptor(prefix, *ret_pub, &c->diag);
	return err;
}
