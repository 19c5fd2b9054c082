/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys enc-key-new: an X25519 recipient key for encrypted images. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "cli.h"
#include "fleetota/crypt_host.h"

static const char help_enc_key_new[] =
	"Usage: ota-keys enc-key-new --out PREFIX\n"
	"Generates an X25519 recipient key for encrypted images: PREFIX.key (0600,\n"
	"PEM PKCS#8; goes to the device, or to every device of a product line, as\n"
	"its decrypt_key / product_key) and PREFIX.pub (PEM SubjectPublicKeyInfo, for\n"
	"`sign --encrypt-to` and `rewrap --encrypt-to`). Prints the key id. Keep one\n"
	"holder key (a recipient of every artifact) off the server: `rewrap` needs it.\n";

int cli_cmd_enc_key_new(int argc, char **argv)
{
	static const struct option options[] = {
		COMMON_OPTIONS,
		{"out", required_argument, NULL, OPT_OUT},
		{NULL, 0, NULL, 0},
	};
	struct common c = {.now = (uint64_t)time(NULL)};
	const char *out = NULL;
	char path[KR_MAX_PATH_BYTES];
	uint8_t id[OTA_KEY_ID_BYTES];
	EVP_PKEY *key = NULL;
	int rc, opt;
	enum ota_err err;

	while ((opt = cli_next_option(argc, argv, "", options, &c, help_enc_key_new, &rc)) > 0) {
		if (opt == OPT_OUT)
			out = optarg;
	}
	if (opt < 0)
		return rc;
	if (optind != argc || !out)
		return cli_usage_error("enc-key-new needs --out PREFIX%s", "");
	if ((rc = cli_common_ready(&c)) != 0)
		goto out;
	key = ota_crypt_keygen();
	if (!key) {
		err = OTA_ERR_INTERNAL;
		goto cli_fail;
	}
	if ((err = ota_crypt_recipient_id(key, id)) != OTA_OK)
		goto cli_fail;
	snprintf(path, sizeof(path), "%s.key", out);
	/* never passphrase-encrypted: the device reads it unattended */
	if ((err = kr_key_write_private(path, key, NULL, &c.diag)) != OTA_OK)
		goto cli_fail;
	snprintf(path, sizeof(path), "%s.pub", out);
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long pem_len = 0;
	if (!bio || PEM_write_bio_PUBKEY(bio, key) != 1 ||
	    (pem_len = BIO_get_mem_data(bio, &pem)) <= 0) {
		BIO_free(bio);
		err = OTA_ERR_INTERNAL;
		goto cli_fail;
	}
	err = kr_file_write(path, (const uint8_t *)pem, (size_t)pem_len, 0644, &c.diag);
	BIO_free(bio);
	if (err != OTA_OK)
		goto cli_fail;
	printf("recipient key ");
	cli_print_key_id(stdout, id);
	printf(" -> %s.key, %s.pub\n", out, out);
	rc = 0;
	goto out;
cli_fail:
	rc = cli_fail(err, &c.diag);
out:
	EVP_PKEY_free(key);
	cli_common_release(&c);
	return rc;
}
