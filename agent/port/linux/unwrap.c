/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Linux port's key_unwrap: recipient private keys in PEM files
 * (config decrypt_key, product_key), read for each encrypted manifest and
 * freed right after, so the key is in memory only during the unwrap.
 * A key in a PKCS#11 token or a TPM would replace the file read (the
 * derive step then runs in the token); it needs a P-256 recipient kind
 * first: SoftHSM2 2.6 and most tokens have no X25519 (docs/porting.md,
 * "A recipient key in a token").
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "fleetota/crypt_host.h"
#include "ota_linux.h"

static EVP_PKEY *key_read(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return key;
}

enum ota_err ota_linux_key_unwrap(void *ctx, const struct ota_key_unwrap_request *req,
				  uint8_t ret_key[OTA_CEK_BYTES])
{
	struct ota_linux_port *lx = ctx;
	if (req->context_len != OTA_CRYPT_WRAP_CONTEXT_BYTES)
		return OTA_ERR_INVALID_ARG;
	for (size_t i = 0; i < sizeof(lx->unwrap_keys) / sizeof(lx->unwrap_keys[0]); i++) {
		uint8_t id[OTA_KEY_ID_BYTES];
		if (!lx->unwrap_keys[i] || !lx->unwrap_keys[i][0])
			continue;
		EVP_PKEY *key = key_read(lx->unwrap_keys[i]);
		if (!key)
			continue;
		enum ota_err err = ota_crypt_recipient_id(key, id);
		if (err == OTA_OK && memcmp(id, req->key_id, sizeof(id)) == 0) {
			err = ota_crypt_unwrap(key, req->ephemeral_public, req->context,
					       req->wrapped_key, ret_key);
			EVP_PKEY_free(key);
			return err;
		}
		EVP_PKEY_free(key);
	}
	return OTA_ERR_NOT_FOUND;
}
