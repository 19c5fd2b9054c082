/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys rewrap: new recipients for an encrypted bundle, same ciphertext. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"

static const char help_rewrap[] =
	"Usage: ota-keys rewrap --in OLD.otab --holder-key RECIPIENT.key --key OPKEY\n"
	"                       --keylist KEYLIST --bundle-out NEW.otab\n"
	"                       [--encrypt-to KEY.pub [--recipient-name NAME]]...\n"
	"                       [--remove-recipient NAME]... [--manifest-out FILE]\n"
	"Adds recipients to (or drops them from) an encrypted bundle without\n"
	"re-encrypting it: the content key is unwrapped with --holder-key (the\n"
	"private key of a recipient, which ota-keys holds and the server never\n"
	"does), wrapped for each --encrypt-to key, and the manifest is signed\n"
	"again with OPKEY (it must verify against KEYLIST). The ciphertext, its\n"
	"digest and every other manifest field stay the same. Upload NEW.otab as a\n"
	"new artifact.\n";

struct rewrap_args {
	const char *in, *holder;
	struct list remove;
	struct cli_signing out;
};

/* Drops the entries named (label) by remove; each name must match one. */
static enum ota_err recipients_remove(Fleetota__V1__Encryption *enc, const struct list *remove,
				      struct kr_diag *diag)
{
	for (size_t i = 0; i < remove->n; i++) {
		size_t j = 0;
		while (j < enc->n_recipients && strcmp(enc->recipients[j]->name, remove->items[i]))
			j++;
		if (j == enc->n_recipients)
			return kr_fail(diag, OTA_ERR_NOT_FOUND, "no recipient named %s",
				       remove->items[i]);
		Fleetota__V1__Recipient *gone = enc->recipients[j];
		memmove(enc->recipients + j, enc->recipients + j + 1,
			(enc->n_recipients - j - 1) * sizeof(*enc->recipients));
		enc->recipients[--enc->n_recipients] = NULL;
		free(gone->key_id.data);
		free(gone->ephemeral_public.data);
		free(gone->wrapped_key.data);
		free(gone->name);
		free(gone);
	}
	if (enc->n_recipients == 0)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "no recipient would be left");
	return OTA_OK;
}

/* The new recipient list: the old one, minus --remove-recipient, plus --encrypt-to. */
static enum ota_err recipients_build(struct rewrap_args *a, struct common *c,
				     const Fleetota__V1__Manifest *m, EVP_PKEY *holder)
{
	struct cli_encrypt *e = &a->out.crypt;
	uint8_t key[OTA_CEK_BYTES];
	enum ota_err err = kr_content_key(m, holder, key, &c->diag);
	if (err != OTA_OK)
		return err;
	err = kr_encryption_dup(m->encryption, &e->enc);
	if (err == OTA_OK)
		err = recipients_remove(e->enc, &a->remove, &c->diag);
	for (size_t i = 0; err == OTA_OK && i < e->to.n; i++) {
		err = kr_recipient_read(e->to.items[i], &c->key_opts, &e->keys[i], &c->diag);
		if (err == OTA_OK) {
			e->n_keys = i + 1;
			err = kr_recipient_add(e->enc, m->image->sha256.data, key, e->keys[i],
					       cli_encrypt_name(e, i), &c->diag);
		}
	}
	OPENSSL_cleanse(key, sizeof(key));
	return err;
}

static int rewrap_parse(int argc, char **argv, struct common *c, struct rewrap_args *a)
{
	static const struct option options[] = {
		COMMON_OPTIONS,
		{"in", required_argument, NULL, OPT_IN},
		{"holder-key", required_argument, NULL, OPT_HOLDER_KEY},
		{"key", required_argument, NULL, OPT_KEY},
		{"keylist", required_argument, NULL, OPT_KEYLIST},
		{"bundle-out", required_argument, NULL, OPT_BUNDLE_OUT},
		{"manifest-out", required_argument, NULL, OPT_MANIFEST_OUT},
		{"remove-recipient", required_argument, NULL, OPT_REMOVE_RECIPIENT},
		ENCRYPT_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	int rc, opt;
	while ((opt = cli_next_option(argc, argv, "", options, c, help_rewrap, &rc)) > 0) {
		int bad = 0;
		switch (opt) {
		case OPT_IN:
			a->in = optarg;
			break;
		case OPT_HOLDER_KEY:
			a->holder = optarg;
			break;
		case OPT_REMOVE_RECIPIENT:
			bad = cli_list_push(&a->remove, optarg);
			break;
		default:
			bad = cli_signing_option(&a->out, opt, optarg) != 0;
			break;
		}
		if (bad)
			return EXIT_USAGE;
	}
	if (opt < 0)
		return rc;
	if (optind != argc || !a->in || !a->holder || !a->out.key || !a->out.keylist ||
	    !a->out.bundle_out)
		return cli_usage_error(
			"rewrap needs --in, --holder-key, --key, --keylist and --bundle-out%s", "");
	if (a->out.crypt.to.n == 0 && a->remove.n == 0)
		return cli_usage_error("nothing to do: give --encrypt-to or --remove-recipient%s",
				       "");
	if (a->out.crypt.names.n > a->out.crypt.to.n)
		return cli_usage_error("more --recipient-name than --encrypt-to%s", "");
	return -1;
}

int cli_cmd_rewrap(int argc, char **argv)
{
	struct common c = {.now = (uint64_t)time(NULL)};
	struct rewrap_args a;
	struct kr_verifier v;
	struct ota_arena *arena = NULL;
	Fleetota__V1__BundleHeader *hdr = NULL;
	Fleetota__V1__Signed *kenv = NULL, *env = NULL;
	Fleetota__V1__Manifest *m = NULL, *check = NULL;
	EVP_PKEY *holder = NULL;
	uint8_t *body = NULL;
	uint64_t offset = 0;
	int fd = -1, rc;
	enum ota_err err;

	memset(&a, 0, sizeof(a));
	kr_verifier_init(&v, 0);
	if ((rc = rewrap_parse(argc, argv, &c, &a)) >= 0)
		return rc;
	if ((rc = cli_common_ready(&c)) != 0)
		goto out;
	fd = open(a.in, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = kr_fail(&c.diag, OTA_ERR_STORAGE, "cannot open %s: %s", a.in,
			      strerror(errno));
		goto cli_fail;
	}
	if ((err = kr_bundle_header_read(&v, fd, a.in, &hdr, &offset, &c.diag)) != OTA_OK ||
	    (err = kr_verifier_arena(&v, OTA_DECODE_ARENA_BYTES, &arena)) != OTA_OK ||
	    (err = kr_envelope_read(a.out.keylist, arena, &kenv, &c.diag)) != OTA_OK)
		goto cli_fail;
	if ((err = ota_keylist_parse(kenv, arena, &v.keylist)) != OTA_OK) {
		err = kr_fail(&c.diag, err, "%s is not a KeyList", a.out.keylist);
		goto cli_fail;
	}
	/* the bundle must be a good one before its key is handed on */
	if ((err = kr_verify_manifest(&v, hdr->manifest, arena, &m, &c.diag)) != OTA_OK ||
	    (err = cli_encrypt_combination(m->encryption != NULL, m->delta != NULL, &c.diag)) !=
		    OTA_OK)
		goto cli_fail;
	if (!m->encryption) {
		err = kr_fail(&c.diag, OTA_ERR_INVALID_ARG, "%s is not encrypted", a.in);
		goto cli_fail;
	}
	if ((err = kr_recipient_read(a.holder, &c.key_opts, &holder, &c.diag)) != OTA_OK ||
	    (err = recipients_build(&a, &c, m, holder)) != OTA_OK)
		goto cli_fail;
	m->encryption = a.out.crypt.enc;
	size_t len = fleetota__v1__manifest__get_packed_size(m);
	if (len > OTA_MAX_BODY_BYTES) {
		err = kr_fail(&c.diag, OTA_ERR_FORMAT, "manifest too large");
		goto cli_fail;
	}
	body = malloc(len);
	if (!body) {
		err = OTA_ERR_NOMEM;
		goto cli_fail;
	}
	fleetota__v1__manifest__pack(m, body);
	if ((err = kr_envelope_new(body, len, &env)) != OTA_OK ||
	    (err = cli_sign_envelope(&c, env, OTA_OBJ_MANIFEST, m->version_code, a.out.key,
				     NULL)) != OTA_OK ||
	    (err = kr_verify_manifest(&v, env, arena, &check, &c.diag)) != OTA_OK)
		goto cli_fail;
	struct kr_bundle_parts parts = {
		.manifest = env,
		.keylist = hdr->keylist ? hdr->keylist : kenv,
		.rootlist = hdr->rootlist,
		.rootlist_chain = (const Fleetota__V1__Signed *const *)hdr->rootlist_chain,
		.n_rootlist_chain = hdr->n_rootlist_chain,
	};
	if ((err = cli_signing_write(&a.out, &parts, a.in, offset,
				     check->encryption->ciphertext_sha256.data,
				     check->encryption->ciphertext_size, &c.diag)) != OTA_OK)
		goto cli_fail;
	printf("rewrapped %s %s for %zu recipients -> %s\n", check->product, check->version,
	       check->encryption->n_recipients, a.out.bundle_out);
	rc = 0;
	goto out;
cli_fail:
	rc = cli_fail(err, &c.diag);
out:
	if (env)
		fleetota__v1__signed__free_unpacked(env, NULL);
	free(body);
	if (fd >= 0)
		close(fd);
	EVP_PKEY_free(holder);
	cli_encrypt_release(&a.out.crypt);
	kr_verifier_release(&v);
	cli_common_release(&c);
	return rc;
}
