/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encrypted images on the signing side (docs/formats.md "Encrypted
 * images"): a fresh content key and nonce prefix per artifact, the image
 * encrypted chunk by chunk, the key wrapped for each recipient. The
 * primitives are libotaproto's (fleetota/crypt_host.h, OpenSSL 3 EVP).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "fleetota/crypt_host.h"
#include "fleetota/crypto.h"
#include "kr.h"

/* A PEM public key, or a private one (the holder's, for rewrap and decrypt). */
static enum ota_err recipient_file(const char *path, EVP_PKEY **ret_key, struct kr_diag *diag)
{
	uint8_t *file = NULL;
	size_t len = 0;
	enum ota_err err = kr_file_read(path, KR_MAX_KEY_FILE_BYTES, &file, &len, diag);
	if (err != OTA_OK)
		return err;
	BIO *bio = BIO_new_mem_buf(file, (int)len);
	EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	if (bio && !key) {
		(void)BIO_reset(bio);
		key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	}
	ERR_clear_error();
	BIO_free(bio);
	OPENSSL_cleanse(file, len);
	free(file);
	if (!key)
		return kr_fail(diag, OTA_ERR_FORMAT, "%s: not a PEM key", path);
	*ret_key = key;
	return OTA_OK;
}

enum ota_err kr_recipient_read(const char *path, struct kr_key_opts *opts, EVP_PKEY **ret_key,
			       struct kr_diag *diag)
{
	EVP_PKEY *key = NULL;
	/* a P-256 holder key in a token: the ECDH runs in it (libp11's engine) */
	enum ota_err err = strncmp(path, "pkcs11:", 7) == 0
				   ? kr_pkcs11_load(path, opts ? opts->pkcs11_module : NULL,
						    opts ? opts->pin : NULL, &key, diag)
				   : recipient_file(path, &key, diag);
	if (err != OTA_OK)
		return err;
	enum ota_recipient_kind kind;
	if (ota_crypt_key_kind(key, &kind) != OTA_OK) {
		EVP_PKEY_free(key);
		return kr_fail(diag, OTA_ERR_FORMAT,
			       "%s: not an X25519 or P-256 key (ota-keys enc-key-new makes one)",
			       path);
	}
	*ret_key = key;
	return OTA_OK;
}

void kr_encryption_free(Fleetota__V1__Encryption *enc)
{
	if (!enc)
		return;
	for (size_t i = 0; i < enc->n_recipients; i++) {
		Fleetota__V1__Recipient *r = enc->recipients[i];
		if (!r)
			continue;
		free(r->key_id.data);
		free(r->ephemeral_public.data);
		free(r->wrapped_key.data);
		free(r->name);
		free(r);
	}
	free(enc->recipients);
	free(enc->ciphertext_sha256.data);
	free(enc->nonce_prefix.data);
	free(enc->key_check.data);
	free(enc);
}

static uint8_t *dup_bytes(const uint8_t *src, size_t len)
{
	uint8_t *p = malloc(len);
	if (p)
		memcpy(p, src, len);
	return p;
}

/* A heap Encryption with copies of the fields of src and of its recipients. */
static Fleetota__V1__Encryption *encryption_copy(const Fleetota__V1__Encryption *src)
{
	Fleetota__V1__Encryption *enc = calloc(1, sizeof(*enc));
	if (!enc)
		return NULL;
	fleetota__v1__encryption__init(enc);
	enc->alg = src->alg;
	enc->ciphertext_size = src->ciphertext_size;
	enc->chunk_bytes = src->chunk_bytes;
	enc->ciphertext_sha256.data = dup_bytes(src->ciphertext_sha256.data, OTA_SHA256_BYTES);
	enc->ciphertext_sha256.len = OTA_SHA256_BYTES;
	enc->nonce_prefix.data = dup_bytes(src->nonce_prefix.data, OTA_CRYPT_NONCE_PREFIX_BYTES);
	enc->nonce_prefix.len = OTA_CRYPT_NONCE_PREFIX_BYTES;
	enc->key_check.data = dup_bytes(src->key_check.data, OTA_KEY_CHECK_BYTES);
	enc->key_check.len = OTA_KEY_CHECK_BYTES;
	enc->recipients = calloc(OTA_MAX_RECIPIENTS, sizeof(*enc->recipients));
	if (!enc->ciphertext_sha256.data || !enc->nonce_prefix.data || !enc->key_check.data ||
	    !enc->recipients) {
		kr_encryption_free(enc);
		return NULL;
	}
	for (size_t i = 0; i < src->n_recipients && i < OTA_MAX_RECIPIENTS; i++) {
		const Fleetota__V1__Recipient *s = src->recipients[i];
		Fleetota__V1__Recipient *r = calloc(1, sizeof(*r));
		if (!r) {
			kr_encryption_free(enc);
			return NULL;
		}
		fleetota__v1__recipient__init(r);
		enc->recipients[enc->n_recipients++] = r;
		r->kind = s->kind;
		r->key_id.data = dup_bytes(s->key_id.data, OTA_KEY_ID_BYTES);
		r->key_id.len = OTA_KEY_ID_BYTES;
		/* the manifest was checked: the length is its kind's */
		r->ephemeral_public.data =
			dup_bytes(s->ephemeral_public.data, s->ephemeral_public.len);
		r->ephemeral_public.len = s->ephemeral_public.len;
		r->wrapped_key.data = dup_bytes(s->wrapped_key.data, OTA_WRAPPED_KEY_BYTES);
		r->wrapped_key.len = OTA_WRAPPED_KEY_BYTES;
		r->name = strdup(s->name ? s->name : "");
		if (!r->key_id.data || !r->ephemeral_public.data || !r->wrapped_key.data ||
		    !r->name) {
			kr_encryption_free(enc);
			return NULL;
		}
	}
	return enc;
}

enum ota_err kr_recipient_add(Fleetota__V1__Encryption *enc,
			      const uint8_t plaintext_sha256[OTA_SHA256_BYTES],
			      const uint8_t key[OTA_CEK_BYTES], EVP_PKEY *recipient,
			      const char *name, struct kr_diag *diag)
{
	uint8_t id[OTA_KEY_ID_BYTES], context[OTA_CRYPT_WRAP_CONTEXT_BYTES];
	struct ota_crypt_wrapped w;
	if (!name || strlen(name) > OTA_MAX_STRING_BYTES)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "recipient name too long");
	if (enc->n_recipients >= OTA_MAX_RECIPIENTS)
		return kr_fail(diag, OTA_ERR_FORMAT, "more than %u recipients", OTA_MAX_RECIPIENTS);
	enum ota_err err = ota_crypt_recipient_id(recipient, id);
	if (err != OTA_OK)
		return kr_fail(diag, err, "recipient %s is not an X25519 or P-256 key", name);
	for (size_t i = 0; i < enc->n_recipients; i++) {
		if (memcmp(enc->recipients[i]->key_id.data, id, sizeof(id)) == 0)
			return kr_fail(diag, OTA_ERR_INVALID_ARG, "recipient %s is listed twice",
				       name);
	}
	ota_crypt_wrap_context(id, enc->nonce_prefix.data, plaintext_sha256, context);
	err = ota_crypt_wrap(recipient, context, key, &w);
	if (err != OTA_OK)
		return kr_fail(diag, err, "cannot wrap the content key for %s", name);
	Fleetota__V1__Recipient *r = calloc(1, sizeof(*r));
	if (!r)
		return OTA_ERR_NOMEM;
	fleetota__v1__recipient__init(r);
	r->kind = (Fleetota__V1__RecipientKind)w.kind;
	r->key_id.data = dup_bytes(id, sizeof(id));
	r->key_id.len = sizeof(id);
	r->ephemeral_public.data = dup_bytes(w.ephemeral, w.ephemeral_len);
	r->ephemeral_public.len = w.ephemeral_len;
	r->wrapped_key.data = dup_bytes(w.wrapped, sizeof(w.wrapped));
	r->wrapped_key.len = sizeof(w.wrapped);
	r->name = strdup(name);
	/* owned by enc from here: kr_encryption_free releases a partial entry too */
	enc->recipients[enc->n_recipients++] = r;
	if (!r->key_id.data || !r->ephemeral_public.data || !r->wrapped_key.data || !r->name)
		return OTA_ERR_NOMEM;
	return OTA_OK;
}

/* A heap Encryption with fresh nonce prefix and key check, no recipients. */
static enum ota_err encryption_new(uint32_t chunk_bytes, uint64_t size,
				   const uint8_t key[OTA_CEK_BYTES],
				   Fleetota__V1__Encryption **ret_enc)
{
	Fleetota__V1__Encryption *enc = calloc(1, sizeof(*enc));
	if (!enc)
		return OTA_ERR_NOMEM;
	fleetota__v1__encryption__init(enc);
	enc->alg = FLEETOTA__V1__ENCRYPTION_ALG__ENCRYPTION_ALG_AES256GCM_X25519_HKDF_AESKW;
	enc->chunk_bytes = chunk_bytes;
	enc->ciphertext_size = ota_crypt_ciphertext_size(size, chunk_bytes);
	enc->ciphertext_sha256.data = calloc(1, OTA_SHA256_BYTES);
	enc->ciphertext_sha256.len = OTA_SHA256_BYTES;
	enc->nonce_prefix.data = malloc(OTA_CRYPT_NONCE_PREFIX_BYTES);
	enc->nonce_prefix.len = OTA_CRYPT_NONCE_PREFIX_BYTES;
	enc->key_check.data = malloc(OTA_KEY_CHECK_BYTES);
	enc->key_check.len = OTA_KEY_CHECK_BYTES;
	enc->recipients = calloc(OTA_MAX_RECIPIENTS, sizeof(*enc->recipients));
	enum ota_err err = OTA_ERR_NOMEM;
	if (enc->ciphertext_sha256.data && enc->nonce_prefix.data && enc->key_check.data &&
	    enc->recipients)
		err = ota_crypt_random(enc->nonce_prefix.data, OTA_CRYPT_NONCE_PREFIX_BYTES);
	if (err == OTA_OK)
		err = ota_crypt_key_check(key, enc->nonce_prefix.data, enc->key_check.data);
	if (err != OTA_OK) {
		kr_encryption_free(enc);
		return err;
	}
	*ret_enc = enc;
	return OTA_OK;
}

/* Streams in -> out chunk by chunk; checks the plaintext again, hashes the ciphertext. */
static enum ota_err encrypt_stream(int in, int out, const Fleetota__V1__Encryption *enc,
				   const uint8_t key[OTA_CEK_BYTES],
				   const uint8_t sha256[OTA_SHA256_BYTES], uint64_t size,
				   const char *image_path, struct kr_diag *diag)
{
	struct ota_sha256_ctx plain, cipher;
	uint8_t digest[OTA_SHA256_BYTES];
	uint64_t done = 0;
	enum ota_err err = OTA_ERR_NOMEM;
	uint8_t *buf = malloc(enc->chunk_bytes);
	uint8_t *sealed = malloc((size_t)enc->chunk_bytes + OTA_CRYPT_TAG_BYTES);
	if (!buf || !sealed)
		goto out;
	if ((err = ota_sha256_init(&plain)) != OTA_OK)
		goto out;
	if ((err = ota_sha256_init(&cipher)) != OTA_OK) {
		ota_sha256_abort(&plain);
		goto out;
	}
	for (uint64_t index = 0;; index++) {
		ssize_t got = kr_read_some(in, buf, enc->chunk_bytes);
		if (got < 0) {
			err = kr_fail(diag, OTA_ERR_STORAGE, "cannot read image %s: %s", image_path,
				      strerror(errno));
			break;
		}
		if (got == 0)
			break;
		done += (uint64_t)got;
		if (done > size) {
			err = kr_fail(diag, OTA_ERR_SIZE, "image %s grew after it was hashed",
				      image_path);
			break;
		}
		size_t n = (size_t)got;
		if ((err = ota_sha256_update(&plain, buf, n)) != OTA_OK ||
		    (err = ota_crypt_seal_chunk(key, enc->nonce_prefix.data, index, done == size,
						buf, n, sealed)) != OTA_OK ||
		    (err = ota_sha256_update(&cipher, sealed, n + OTA_CRYPT_TAG_BYTES)) != OTA_OK)
			break;
		if (kr_write_all(out, sealed, n + OTA_CRYPT_TAG_BYTES) != 0) {
			err = kr_fail(diag, OTA_ERR_STORAGE, "cannot write the ciphertext: %s",
				      strerror(errno));
			break;
		}
		if (done == size)
			break;
	}
	if (err != OTA_OK) {
		ota_sha256_abort(&plain);
		ota_sha256_abort(&cipher);
		goto out;
	}
	if ((err = ota_sha256_final(&plain, digest)) != OTA_OK) {
		ota_sha256_abort(&cipher);
		goto out;
	}
	if ((err = ota_sha256_final(&cipher, enc->ciphertext_sha256.data)) != OTA_OK)
		goto out;
	if (done != size || memcmp(digest, sha256, OTA_SHA256_BYTES) != 0)
		err = kr_fail(diag, OTA_ERR_HASH, "image %s changed after it was hashed",
			      image_path);
out:
	if (buf)
		OPENSSL_cleanse(buf, enc->chunk_bytes);
	free(buf);
	free(sealed);
	return err;
}

enum ota_err kr_encrypt_image(const char *image_path, const uint8_t sha256[OTA_SHA256_BYTES],
			      uint64_t size, uint32_t chunk_bytes, EVP_PKEY *const *recipients,
			      const char *const *names, size_t n, const char *out_path,
			      Fleetota__V1__Encryption **ret_enc, struct kr_diag *diag)
{
	uint8_t key[OTA_CEK_BYTES];
	Fleetota__V1__Encryption *enc = NULL;
	int in = -1, out = -1;
	if (chunk_bytes < OTA_MIN_CRYPT_CHUNK_BYTES || chunk_bytes > OTA_MAX_CRYPT_CHUNK_BYTES)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "--chunk-size must be %u..%u bytes",
			       OTA_MIN_CRYPT_CHUNK_BYTES, OTA_MAX_CRYPT_CHUNK_BYTES);
	if (n == 0 || n > OTA_MAX_RECIPIENTS)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "give 1..%u recipients",
			       OTA_MAX_RECIPIENTS);
	if (size / chunk_bytes >= UINT32_MAX)
		return kr_fail(diag, OTA_ERR_SIZE, "image too large for --chunk-size %u",
			       chunk_bytes);
	enum ota_err err = ota_crypt_random(key, sizeof(key));
	if (err == OTA_OK)
		err = encryption_new(chunk_bytes, size, key, &enc);
	for (size_t i = 0; err == OTA_OK && i < n; i++)
		err = kr_recipient_add(enc, sha256, key, recipients[i], names[i], diag);
	if (err != OTA_OK)
		goto out;
	in = open(image_path, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot open image %s: %s", image_path,
			      strerror(errno));
		goto out;
	}
	out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot create %s: %s", out_path,
			      strerror(errno));
		goto out;
	}
	err = encrypt_stream(in, out, enc, key, sha256, size, image_path, diag);
	if (err == OTA_OK && fsync(out) != 0)
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot write %s: %s", out_path,
			      strerror(errno));
out:
	OPENSSL_cleanse(key, sizeof(key));
	if (in >= 0)
		close(in);
	if (out >= 0) {
		close(out);
		if (err != OTA_OK)
			unlink(out_path);
	}
	if (err != OTA_OK) {
		kr_encryption_free(enc);
		return err;
	}
	*ret_enc = enc;
	return OTA_OK;
}

enum ota_err kr_content_key(const Fleetota__V1__Manifest *m, EVP_PKEY *holder,
			    uint8_t ret_key[OTA_CEK_BYTES], struct kr_diag *diag)
{
	uint8_t id[OTA_KEY_ID_BYTES], context[OTA_CRYPT_WRAP_CONTEXT_BYTES];
	uint8_t key[OTA_CEK_BYTES], check[OTA_KEY_CHECK_BYTES];
	const Fleetota__V1__Encryption *enc = m->encryption;
	if (!enc)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "the manifest's image is not encrypted");
	enum ota_err err = ota_crypt_recipient_id(holder, id);
	if (err != OTA_OK)
		return kr_fail(diag, err, "the key is not an X25519 or P-256 key");
	for (size_t i = 0; i < enc->n_recipients; i++) {
		const Fleetota__V1__Recipient *r = enc->recipients[i];
		if (memcmp(r->key_id.data, id, sizeof(id)) != 0)
			continue;
		ota_crypt_wrap_context(id, enc->nonce_prefix.data, m->image->sha256.data, context);
		err = ota_crypt_unwrap(holder, r->ephemeral_public.data, r->ephemeral_public.len,
				       context, r->wrapped_key.data, key);
		if (err == OTA_OK)
			err = ota_crypt_key_check(key, enc->nonce_prefix.data, check);
		if (err == OTA_OK &&
		    !ota_crypt_equal(check, enc->key_check.data, OTA_KEY_CHECK_BYTES))
			err = OTA_ERR_KEY_UNWRAP;
		if (err == OTA_OK)
			memcpy(ret_key, key, sizeof(key));
		OPENSSL_cleanse(key, sizeof(key));
		if (err != OTA_OK)
			return kr_fail(diag, err, "the content key does not unwrap with this key");
		return OTA_OK;
	}
	return kr_fail(diag, OTA_ERR_NOT_RECIPIENT, "the key is not among the %zu recipients",
		       enc->n_recipients);
}

enum ota_err kr_encryption_dup(const Fleetota__V1__Encryption *src,
			       Fleetota__V1__Encryption **ret_enc)
{
	Fleetota__V1__Encryption *enc = encryption_copy(src);
	if (!enc)
		return OTA_ERR_NOMEM;
	*ret_enc = enc;
	return OTA_OK;
}
