/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys decrypt: an encrypted bundle -> its image, with a recipient key. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "fleetota/decrypt.h"

static const char help_decrypt[] =
	"Usage: ota-keys decrypt --in BUNDLE.otab --key RECIPIENT.key --out IMAGE\n"
	"Decrypts an encrypted bundle's image with a recipient's private key, the\n"
	"way a device does: every chunk's tag, then the plaintext SHA-256 and size\n"
	"of the manifest. It does not check the manifest's signature (`ota-keys\n"
	"verify` does). OTA_ERR_NOT_RECIPIENT, OTA_ERR_KEY_UNWRAP, OTA_ERR_DECRYPT,\n"
	"OTA_ERR_SIZE, OTA_ERR_HASH name what is wrong; no output is left then.\n";

/* Feeds the ciphertext from fd through d into out, hashing the plaintext. */
static enum ota_err decrypt_fd(int fd, int out, struct ota_decrypt *d, struct ota_sha256_ctx *hash,
			       struct kr_diag *diag)
{
	enum ota_err err = OTA_ERR_NOMEM;
	uint8_t *in = malloc(KR_IO_CHUNK);
	uint8_t *plain = malloc(KR_IO_CHUNK);
	if (!in || !plain)
		goto out;
	err = OTA_OK;
	while (err == OTA_OK) {
		ssize_t got = read(fd, in, KR_IO_CHUNK);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			if (got < 0)
				err = kr_fail(diag, OTA_ERR_STORAGE, "read: %s", strerror(errno));
			break;
		}
		for (size_t at = 0; err == OTA_OK && at < (size_t)got;) {
			size_t used = 0, made = 0;
			bool end = false;
			err = ota_decrypt_feed(d, in + at, (size_t)got - at, plain, KR_IO_CHUNK,
					       &used, &made, &end);
			if (err == OTA_ERR_DECRYPT)
				err = kr_fail(diag, err, "chunk %llu fails authentication",
					      (unsigned long long)d->index);
			else if (err == OTA_ERR_SIZE)
				err = kr_fail(diag, err, "more than the manifest's %llu bytes",
					      (unsigned long long)d->wire_size);
			if (err == OTA_OK)
				err = ota_sha256_update(hash, plain, made);
			if (err == OTA_OK && made && write(out, plain, made) != (ssize_t)made)
				err = kr_fail(diag, OTA_ERR_STORAGE, "write: %s", strerror(errno));
			at += used;
		}
	}
	if (err == OTA_OK && !ota_decrypt_done(d))
		err = kr_fail(diag, OTA_ERR_SIZE, "ciphertext ends at byte %llu of %llu",
			      (unsigned long long)d->wire_done, (unsigned long long)d->wire_size);
out:
	if (plain)
		OPENSSL_cleanse(plain, KR_IO_CHUNK);
	free(in);
	free(plain);
	return err;
}

int cli_cmd_decrypt(int argc, char **argv)
{
	static const struct option options[] = {
		COMMON_OPTIONS,
		{"in", required_argument, NULL, OPT_IN},
		{"key", required_argument, NULL, OPT_KEY},
		{"out", required_argument, NULL, OPT_OUT},
		{NULL, 0, NULL, 0},
	};
	struct common c = {.now = (uint64_t)time(NULL)};
	const char *in = NULL, *key_path = NULL, *out_path = NULL;
	struct kr_verifier v;
	struct ota_arena *arena = NULL;
	Fleetota__V1__BundleHeader *hdr = NULL;
	Fleetota__V1__Manifest *m = NULL;
	struct ota_decrypt d;
	struct ota_sha256_ctx hash;
	uint8_t key[OTA_CEK_BYTES], digest[OTA_SHA256_BYTES];
	uint64_t offset = 0;
	EVP_PKEY *holder = NULL;
	int fd = -1, out = -1, rc, opt, hashing = 0;
	enum ota_err err;

	memset(&d, 0, sizeof(d));
	kr_verifier_init(&v, 0);
	while ((opt = cli_next_option(argc, argv, "", options, &c, help_decrypt, &rc)) > 0) {
		if (opt == OPT_IN)
			in = optarg;
		else if (opt == OPT_KEY)
			key_path = optarg;
		else if (opt == OPT_OUT)
			out_path = optarg;
	}
	if (opt < 0)
		return rc;
	if (optind != argc || !in || !key_path || !out_path)
		return cli_usage_error("decrypt needs --in, --key and --out%s", "");
	if ((rc = cli_common_ready(&c)) != 0)
		goto out;
	fd = open(in, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = kr_fail(&c.diag, OTA_ERR_STORAGE, "cannot open %s: %s", in, strerror(errno));
		goto cli_fail;
	}
	if ((err = kr_bundle_header_read(&v, fd, in, &hdr, &offset, &c.diag)) != OTA_OK ||
	    (err = kr_verifier_arena(&v, OTA_DECODE_ARENA_BYTES, &arena)) != OTA_OK)
		goto cli_fail;
	if ((err = ota_manifest_parse(hdr->manifest, arena, &m)) != OTA_OK) {
		err = kr_fail(&c.diag, err, "%s: malformed manifest", in);
		goto cli_fail;
	}
	if ((err = kr_recipient_read(key_path, &c.key_opts, &holder, &c.diag)) != OTA_OK ||
	    (err = kr_content_key(m, holder, key, &c.diag)) != OTA_OK)
		goto cli_fail;
	err = ota_decrypt_open(&d, m->encryption, m->image->size, key);
	OPENSSL_cleanse(key, sizeof(key));
	if (err != OTA_OK || (err = ota_sha256_init(&hash)) != OTA_OK)
		goto cli_fail;
	hashing = 1;
	out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		err = kr_fail(&c.diag, OTA_ERR_STORAGE, "cannot create %s: %s", out_path,
			      strerror(errno));
		goto cli_fail;
	}
	if ((err = decrypt_fd(fd, out, &d, &hash, &c.diag)) != OTA_OK)
		goto cli_fail;
	hashing = 0;
	if ((err = ota_sha256_final(&hash, digest)) != OTA_OK)
		goto cli_fail;
	if (memcmp(digest, m->image->sha256.data, sizeof(digest)) != 0) {
		err = kr_fail(&c.diag, OTA_ERR_HASH, "plaintext SHA-256 differs from the manifest");
		goto cli_fail;
	}
	printf("decrypted %llu bytes of %s %s into %s\n", (unsigned long long)m->image->size,
	       m->product, m->version, out_path);
	rc = 0;
	goto out;
cli_fail:
	rc = cli_fail(err, &c.diag);
	if (out >= 0)
		unlink(out_path);
out:
	if (hashing)
		ota_sha256_abort(&hash);
	ota_decrypt_close(&d);
	if (out >= 0)
		close(out);
	if (fd >= 0)
		close(fd);
	EVP_PKEY_free(holder);
	kr_verifier_release(&v);
	cli_common_release(&c);
	return rc;
}
