/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys: the signing and encryption options that sign and rewrap share (cli.h). */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_encrypt_option(struct cli_encrypt *e, int opt, const char *arg)
{
	uint64_t v = 0;
	switch (opt) {
	case OPT_ENCRYPT_TO:
		return cli_list_push(&e->to, arg) ? EXIT_USAGE : 0;
	case OPT_RECIPIENT_NAME:
		return cli_list_push(&e->names, arg) ? EXIT_USAGE : 0;
	case OPT_CIPHERTEXT_OUT:
		e->ciphertext_out = arg;
		return 0;
	case OPT_CHUNK_SIZE:
		if (cli_parse_u64(arg, &v))
			return EXIT_USAGE;
		if (v < OTA_MIN_CRYPT_CHUNK_BYTES || v > OTA_MAX_CRYPT_CHUNK_BYTES)
			return cli_usage_error("--chunk-size must be %u..%u",
					       OTA_MIN_CRYPT_CHUNK_BYTES,
					       OTA_MAX_CRYPT_CHUNK_BYTES);
		e->chunk_bytes = (uint32_t)v;
		return 0;
	}
	return -1;
}

int cli_signing_option(struct cli_signing *s, int opt, const char *arg)
{
	switch (opt) {
	case OPT_KEY:
		s->key = arg;
		return 0;
	case OPT_KEYLIST:
		s->keylist = arg;
		return 0;
	case OPT_MANIFEST_OUT:
		s->manifest_out = arg;
		return 0;
	case OPT_BUNDLE_OUT:
		s->bundle_out = arg;
		return 0;
	}
	return cli_encrypt_option(&s->crypt, opt, arg);
}

enum ota_err cli_signing_write(const struct cli_signing *s, const struct kr_bundle_parts *parts,
			       const char *payload, uint64_t offset,
			       const uint8_t sha256[OTA_SHA256_BYTES], uint64_t size,
			       struct kr_diag *diag)
{
	enum ota_err err = OTA_OK;
	if (s->bundle_out)
		err = kr_bundle_write_from(s->bundle_out, parts, payload, offset, sha256, size,
					   diag);
	if (err == OTA_OK && s->manifest_out)
		err = kr_envelope_write(s->manifest_out, parts->manifest, diag);
	return err;
}

const char *cli_encrypt_name(const struct cli_encrypt *e, size_t i)
{
	if (i < e->names.n)
		return e->names.items[i];
	/* the file's base name, without a directory (basename may modify: no copy kept) */
	const char *slash = strrchr(e->to.items[i], '/');
	return slash ? slash + 1 : e->to.items[i];
}

/* Reads every --encrypt-to key into e->keys. */
static enum ota_err keys_read(struct cli_encrypt *e, struct common *c)
{
	for (size_t i = 0; i < e->to.n; i++) {
		enum ota_err err =
			kr_recipient_read(e->to.items[i], &c->key_opts, &e->keys[i], &c->diag);
		if (err != OTA_OK)
			return err;
		e->n_keys = i + 1;
	}
	return OTA_OK;
}

enum ota_err cli_encrypt_image(struct cli_encrypt *e, struct common *c, const char *image,
			       const uint8_t sha256[OTA_SHA256_BYTES], uint64_t size,
			       const char *bundle_out, struct kr_manifest_spec *spec,
			       const char **ret_payload, const uint8_t **ret_payload_sha,
			       uint64_t *ret_payload_size)
{
	const char *names[OTA_MAX_RECIPIENTS];
	const char *out = e->ciphertext_out;
	if (e->names.n > e->to.n)
		return kr_fail(&c->diag, OTA_ERR_INVALID_ARG,
			       "more --recipient-name than --encrypt-to");
	enum ota_err err = keys_read(e, c);
	if (err != OTA_OK)
		return err;
	if (!out) {
		if (snprintf(e->tmp_path, sizeof(e->tmp_path), "%s.ciphertext.tmp", bundle_out) >=
		    (int)sizeof(e->tmp_path))
			return kr_fail(&c->diag, OTA_ERR_INVALID_ARG, "path too long");
		out = e->tmp_path;
	}
	for (size_t i = 0; i < e->to.n; i++)
		names[i] = cli_encrypt_name(e, i);
	err = kr_encrypt_image(image, sha256, size,
			       e->chunk_bytes ? e->chunk_bytes : OTA_CRYPT_CHUNK_DEFAULT, e->keys,
			       names, e->n_keys, out, &e->enc, &c->diag);
	if (err != OTA_OK) {
		e->tmp_path[0] = '\0';
		return err;
	}
	spec->encryption = e->enc;
	*ret_payload = out;
	*ret_payload_sha = e->enc->ciphertext_sha256.data;
	*ret_payload_size = e->enc->ciphertext_size;
	return OTA_OK;
}

enum ota_err cli_encrypt_combination(bool encrypted, bool delta, struct kr_diag *diag)
{
	if (encrypted && delta)
		return kr_fail(diag, OTA_ERR_UNSUPPORTED,
			       "a delta update cannot be encrypted (docs/decisions.md): sign "
			       "the delta plain or encrypt the full image");
	return OTA_OK;
}

void cli_encrypt_release(struct cli_encrypt *e)
{
	for (size_t i = 0; i < e->n_keys; i++)
		EVP_PKEY_free(e->keys[i]);
	e->n_keys = 0;
	kr_encryption_free(e->enc);
	e->enc = NULL;
	if (e->tmp_path[0])
		unlink(e->tmp_path);
	e->tmp_path[0] = '\0';
}
