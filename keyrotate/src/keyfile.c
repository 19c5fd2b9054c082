/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "fleetota/sign.h"
#include "kr.h"

enum ota_err kr_alg_parse(const char *text, enum ota_alg *ret_alg)
{
	if (!text)
		return OTA_ERR_INVALID_ARG;
	if (strcmp(text, "ed25519") == 0) {
		*ret_alg = OTA_ALG_ED25519;
		return OTA_OK;
	}
	if (strcmp(text, "p256") == 0 || strcmp(text, "ecdsa-p256") == 0) {
		*ret_alg = OTA_ALG_ECDSA_P256_SHA256;
		return OTA_OK;
	}
	return OTA_ERR_INVALID_ARG;
}

const char *kr_alg_name(int alg)
{
	switch (alg) {
	case OTA_ALG_ED25519:
		return "ed25519";
	case OTA_ALG_ECDSA_P256_SHA256:
		return "ecdsa-p256-sha256";
	default:
		return "unknown";
	}
}

void kr_secret_wipe(struct kr_secret *secret)
{
	if (!secret || !secret->buf)
		return;
	OPENSSL_cleanse(secret->buf, secret->len);
	free(secret->buf);
	secret->buf = NULL;
	secret->len = 0;
}

static enum ota_err secret_set(const char *text, size_t len, struct kr_secret *ret)
{
	char *copy = malloc(len + 1);
	if (!copy)
		return OTA_ERR_NOMEM;
	memcpy(copy, text, len);
	copy[len] = '\0';
	ret->buf = copy;
	ret->len = len;
	return OTA_OK;
}

enum ota_err kr_secret_from_env(const char *var, struct kr_secret *ret, struct kr_diag *diag)
{
	const char *value = getenv(var);
	if (!value || !*value)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "environment variable %s is not set",
			       var);
	size_t len = strlen(value);
	if (len > KR_MAX_SECRET_BYTES)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "secret in %s is too long", var);
	return secret_set(value, len, ret);
}

enum ota_err kr_secret_from_file(const char *path, struct kr_secret *ret, struct kr_diag *diag)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	enum ota_err err = kr_file_read(path, KR_MAX_SECRET_BYTES + 2, &buf, &len, diag);
	if (err != OTA_OK)
		return err;
	/* the first line; a trailing newline is not part of the secret */
	size_t line = 0;
	while (line < len && buf[line] != '\n' && buf[line] != '\r')
		line++;
	if (line == 0 || line > KR_MAX_SECRET_BYTES)
		err = kr_fail(diag, OTA_ERR_INVALID_ARG, "secret file %s: empty or too long", path);
	else
		err = secret_set((const char *)buf, line, ret);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return err;
}

enum ota_err kr_key_generate(enum ota_alg alg, EVP_PKEY **ret_pkey, struct kr_diag *diag)
{
	EVP_PKEY *pkey = NULL;
	if (alg == OTA_ALG_ED25519)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else if (alg == OTA_ALG_ECDSA_P256_SHA256)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "unknown algorithm %d", (int)alg);
	if (!pkey)
		return kr_fail(diag, OTA_ERR_INTERNAL, "key generation failed");
	*ret_pkey = pkey;
	return OTA_OK;
}

enum ota_err kr_key_write_private(const char *path, EVP_PKEY *pkey,
				  const struct kr_secret *passphrase, struct kr_diag *diag)
{
	enum ota_err err = OTA_OK;
	BIO *mem = BIO_new(BIO_s_mem());
	int fd = -1;
	if (!mem)
		return OTA_ERR_NOMEM;
	int ok = 0;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	X509_SIG *p8enc = NULL;
	if (passphrase && passphrase->buf) {
		/* PBES2: PBKDF2-HMAC-SHA256 (more rounds than OpenSSL's default
		 * 2048), AES-256-CBC, random salt and IV */
		p8 = EVP_PKEY2PKCS8(pkey);
		if (p8)
			p8enc = PKCS8_encrypt(-1, EVP_aes_256_cbc(), passphrase->buf,
					      (int)passphrase->len, NULL, 0, KR_KEY_PBKDF2_ROUNDS,
					      p8);
		ok = p8enc && PEM_write_bio_PKCS8(mem, p8enc) == 1;
		X509_SIG_free(p8enc);
		PKCS8_PRIV_KEY_INFO_free(p8);
	} else {
		ok = PEM_write_bio_PKCS8PrivateKey(mem, pkey, NULL, NULL, 0, NULL, NULL) == 1;
	}
	if (!ok) {
		err = kr_fail(diag, OTA_ERR_INTERNAL, "cannot encode private key");
		goto out;
	}
	char *pem = NULL;
	long pem_len = BIO_get_mem_data(mem, &pem);
	/* O_EXCL: never replace a key; 0600 from the first byte on */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot create key file %s: %s", path,
			      strerror(errno));
		goto out;
	}
	long done = 0;
	while (done < pem_len) {
		ssize_t put = write(fd, pem + done, (size_t)(pem_len - done));
		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			break;
		done += put;
	}
	if (done != pem_len || fsync(fd) != 0) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot write key file %s: %s", path,
			      strerror(errno));
		unlink(path);
	}
out:
	if (fd >= 0)
		close(fd);
	BIO_free_all(mem); /* BIO_s_mem frees its buffer; it held the key */
	return err;
}

static enum ota_err key_check_alg(EVP_PKEY *pkey, const char *spec, struct kr_diag *diag)
{
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES];
	uint8_t id[OTA_KEY_ID_BYTES];
	size_t spki_len;
	enum ota_alg alg;
	if (ota_pkey_public(pkey, &alg, spki, &spki_len, id) != OTA_OK)
		return kr_fail(diag, OTA_ERR_FORMAT, "%s: key is neither Ed25519 nor ECDSA P-256",
			       spec);
	return OTA_OK;
}

static enum ota_err key_load_file(const char *path, const struct kr_key_opts *opts,
				  EVP_PKEY **ret_pkey, struct kr_diag *diag)
{
	struct stat st;
	uint8_t *file = NULL;
	size_t file_len = 0;
	BIO *bio = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long der_len = 0;
	X509_SIG *p8enc = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	EVP_PKEY *pkey = NULL;
	enum ota_err err;

	if (stat(path, &st) != 0)
		return kr_fail(diag, OTA_ERR_STORAGE, "cannot read key file %s: %s", path,
			       strerror(errno));
	if (S_ISREG(st.st_mode) && (st.st_mode & 077) != 0)
		return kr_fail(diag, OTA_ERR_STORAGE,
			       "key file %s: permissions %04o are too open (want 0600)", path,
			       (unsigned)(st.st_mode & 07777));
	err = kr_file_read(path, KR_MAX_KEY_FILE_BYTES, &file, &file_len, diag);
	if (err != OTA_OK)
		return err;
	bio = BIO_new_mem_buf(file, (int)file_len);
	if (!bio) {
		err = OTA_ERR_NOMEM;
		goto out;
	}
	if (PEM_read_bio(bio, &name, &header, &der, &der_len) != 1) {
		err = kr_fail(diag, OTA_ERR_FORMAT, "key file %s: not PEM", path);
		goto out;
	}
	const unsigned char *p = der;
	if (strcmp(name, PEM_STRING_PKCS8) == 0) {
		if (!opts || !opts->passphrase || !opts->passphrase->buf) {
			err = kr_fail(diag, OTA_ERR_INVALID_ARG,
				      "key file %s is encrypted: give --passphrase-env VAR or "
				      "--passphrase-file FILE",
				      path);
			goto out;
		}
		p8enc = d2i_X509_SIG(NULL, &p, der_len);
		if (p8enc)
			p8 = PKCS8_decrypt(p8enc, opts->passphrase->buf,
					   (int)opts->passphrase->len);
		if (!p8) {
			err = kr_fail(diag, OTA_ERR_FORMAT,
				      "key file %s: cannot decrypt (wrong passphrase?)", path);
			goto out;
		}
	} else if (strcmp(name, PEM_STRING_PKCS8INF) == 0) {
		p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, der_len);
	} else {
		err = kr_fail(diag, OTA_ERR_FORMAT,
			      "key file %s: \"%s\" is not a PKCS#8 private key", path, name);
		goto out;
	}
	if (p8)
		pkey = EVP_PKCS82PKEY(p8);
	if (!pkey) {
		err = kr_fail(diag, OTA_ERR_FORMAT, "key file %s: unreadable PKCS#8 key", path);
		goto out;
	}
	err = key_check_alg(pkey, path, diag);
	if (err != OTA_OK)
		goto out;
	*ret_pkey = pkey;
	pkey = NULL;
out:
	ERR_clear_error();
	EVP_PKEY_free(pkey);
	PKCS8_PRIV_KEY_INFO_free(p8);
	X509_SIG_free(p8enc);
	if (der) {
		OPENSSL_cleanse(der, (size_t)der_len);
		OPENSSL_free(der);
	}
	OPENSSL_free(name);
	OPENSSL_free(header);
	BIO_free(bio);
	OPENSSL_cleanse(file, file_len);
	free(file);
	return err;
}

enum ota_err kr_key_load(const char *spec, const struct kr_key_opts *opts, EVP_PKEY **ret_pkey,
			 struct kr_diag *diag)
{
	if (!spec || !*spec)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "no key given");
	if (strncmp(spec, "pkcs11:", 7) == 0) {
		EVP_PKEY *pkey = NULL;
		enum ota_err err = kr_pkcs11_load(spec, opts ? opts->pkcs11_module : NULL,
						  opts ? opts->pin : NULL, &pkey, diag);
		if (err != OTA_OK)
			return err;
		err = key_check_alg(pkey, "token key", diag);
		if (err != OTA_OK) {
			EVP_PKEY_free(pkey);
			return err;
		}
		*ret_pkey = pkey;
		return OTA_OK;
	}
	return key_load_file(spec, opts, ret_pkey, diag);
}
