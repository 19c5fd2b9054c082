/* SPDX-License-Identifier: Apache-2.0 */
/* The OpenSSL 3 backend of fleetota/crypto.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fleetota/crypto.h"
#include "fleetota/limits.h"

enum ota_err ota_sha256_init(struct ota_sha256_ctx *ctx)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md)
		return OTA_ERR_NOMEM;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return OTA_ERR_INTERNAL;
	}
	ctx->impl = md;
	return OTA_OK;
}

enum ota_err ota_sha256_update(struct ota_sha256_ctx *ctx, const void *data, size_t len)
{
	if (!ctx->impl)
		return OTA_ERR_INVALID_ARG;
	if (len && EVP_DigestUpdate(ctx->impl, data, len) != 1)
		return OTA_ERR_INTERNAL;
	return OTA_OK;
}

enum ota_err ota_sha256_final(struct ota_sha256_ctx *ctx, uint8_t out[OTA_SHA256_BYTES])
{
	unsigned int out_len = 0;
	if (!ctx->impl)
		return OTA_ERR_INVALID_ARG;
	int ok = EVP_DigestFinal_ex(ctx->impl, out, &out_len);
	ota_sha256_abort(ctx);
	return ok == 1 && out_len == 32 ? OTA_OK : OTA_ERR_INTERNAL;
}

void ota_sha256_abort(struct ota_sha256_ctx *ctx)
{
	if (!ctx)
		return;
	EVP_MD_CTX_free(ctx->impl);
	ctx->impl = NULL;
}

enum ota_err ota_sha256(const void *data, size_t len, uint8_t out[OTA_SHA256_BYTES])
{
	unsigned int out_len = 0;
	if (EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL) != 1 || out_len != 32)
		return OTA_ERR_INTERNAL;
	return OTA_OK;
}

/* Parses spki and checks it is a key of alg; the caller frees the key. */
static enum ota_err load_key(enum ota_alg alg, const uint8_t *spki, size_t spki_len,
			     EVP_PKEY **ret_pkey)
{
	char group[OTA_EC_GROUP_NAME_BYTES] = {0};
	if (!spki || spki_len == 0 || spki_len > OTA_MAX_PUBKEY_DER_BYTES)
		return OTA_ERR_FORMAT;
	const unsigned char *p = spki;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)spki_len);
	if (!pkey)
		return OTA_ERR_FORMAT;
	/* trailing bytes after the DER would let two encodings share a key */
	if (p != spki + spki_len)
		goto bad;
	switch (alg) {
	case OTA_ALG_ED25519:
		if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519)
			goto bad;
		break;
	case OTA_ALG_ECDSA_P256_SHA256:
		if (EVP_PKEY_get_id(pkey) != EVP_PKEY_EC ||
		    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof(group), NULL) != 1 ||
		    strcmp(group, "prime256v1") != 0)
			goto bad;
		break;
	default:
		goto bad;
	}
	*ret_pkey = pkey;
	return OTA_OK;
bad:
	EVP_PKEY_free(pkey);
	return OTA_ERR_FORMAT;
}

/*
 * Decoding a public key costs more than checking a signature with it, and a
 * verifier sees the same few keys (its KeyList, its roots) again and again:
 * keep the last decoded keys, keyed by their exact DER bytes. Shared by all
 * threads under one lock; a key handed out carries its own reference, so
 * eviction never frees a key in use.
 */
#define KEY_CACHE_SLOTS OTA_KEY_CACHE_SLOTS

struct key_cache_entry {
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES];
	size_t spki_len;
	enum ota_alg alg;
	EVP_PKEY *pkey;
	uint64_t last_used;
};

static struct key_cache_entry key_cache[KEY_CACHE_SLOTS];
static uint64_t key_cache_clock;
static pthread_mutex_t key_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static EVP_PKEY *key_cache_get(enum ota_alg alg, const uint8_t *spki, size_t spki_len)
{
	EVP_PKEY *found = NULL;
	pthread_mutex_lock(&key_cache_lock);
	for (size_t i = 0; i < KEY_CACHE_SLOTS; i++) {
		struct key_cache_entry *e = &key_cache[i];
		if (e->pkey && e->alg == alg && e->spki_len == spki_len &&
		    memcmp(e->spki, spki, spki_len) == 0) {
			if (EVP_PKEY_up_ref(e->pkey) == 1) {
				found = e->pkey;
				e->last_used = ++key_cache_clock;
			}
			break;
		}
	}
	pthread_mutex_unlock(&key_cache_lock);
	return found;
}

static void key_cache_put(enum ota_alg alg, const uint8_t *spki, size_t spki_len, EVP_PKEY *pkey)
{
	EVP_PKEY *evicted = NULL;
	pthread_mutex_lock(&key_cache_lock);
	struct key_cache_entry *victim = &key_cache[0];
	for (size_t i = 0; i < KEY_CACHE_SLOTS; i++) {
		struct key_cache_entry *e = &key_cache[i];
		if (e->pkey && e->alg == alg && e->spki_len == spki_len &&
		    memcmp(e->spki, spki, spki_len) == 0) {
			victim = NULL; /* another thread cached it meanwhile */
			break;
		}
		if (!e->pkey || (victim->pkey && e->last_used < victim->last_used))
			victim = e;
	}
	if (victim && EVP_PKEY_up_ref(pkey) == 1) {
		evicted = victim->pkey;
		memcpy(victim->spki, spki, spki_len);
		victim->spki_len = spki_len;
		victim->alg = alg;
		victim->pkey = pkey;
		victim->last_used = ++key_cache_clock;
	}
	pthread_mutex_unlock(&key_cache_lock);
	EVP_PKEY_free(evicted);
}

/* load_key through the cache; the caller frees its reference. */
static enum ota_err load_key_cached(enum ota_alg alg, const uint8_t *spki, size_t spki_len,
				    EVP_PKEY **ret_pkey)
{
	if (!spki || spki_len == 0 || spki_len > OTA_MAX_PUBKEY_DER_BYTES)
		return OTA_ERR_FORMAT;
	EVP_PKEY *pkey = key_cache_get(alg, spki, spki_len);
	if (!pkey) {
		enum ota_err err = load_key(alg, spki, spki_len, &pkey);
		if (err != OTA_OK)
			return err;
		key_cache_put(alg, spki, spki_len, pkey);
	}
	*ret_pkey = pkey;
	return OTA_OK;
}

enum ota_err ota_crypto_key_check(enum ota_alg alg, const uint8_t *spki, size_t spki_len)
{
	EVP_PKEY *pkey = NULL;
	enum ota_err err = load_key_cached(alg, spki, spki_len, &pkey);
	EVP_PKEY_free(pkey);
	return err;
}

enum ota_err ota_crypto_verify(enum ota_alg alg, const uint8_t *spki, size_t spki_len,
			       const uint8_t *prefix, size_t prefix_len, const uint8_t *body,
			       size_t body_len, const uint8_t *sig, size_t sig_len)
{
	/* manifests and key lists are small: sign them from the stack */
	uint8_t stack_msg[OTA_VERIFY_STACK_MSG_BYTES];
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *md = NULL;
	uint8_t *msg = NULL;
	enum ota_err err = load_key_cached(alg, spki, spki_len, &pkey);
	if (err != OTA_OK)
		return err;
	err = OTA_ERR_SIGNATURE;
	if (!sig || sig_len == 0 || sig_len > OTA_MAX_SIG_BYTES)
		goto out;
	md = EVP_MD_CTX_new();
	if (!md) {
		err = OTA_ERR_NOMEM;
		goto out;
	}
	if (alg == OTA_ALG_ED25519) {
		/* pure Ed25519 signs the whole message in one pass */
		msg = prefix_len + body_len <= sizeof(stack_msg) ? stack_msg
								 : malloc(prefix_len + body_len);
		if (!msg) {
			err = OTA_ERR_NOMEM;
			goto out;
		}
		memcpy(msg, prefix, prefix_len);
		memcpy(msg + prefix_len, body, body_len);
		if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, pkey) == 1 &&
		    EVP_DigestVerify(md, sig, sig_len, msg, prefix_len + body_len) == 1)
			err = OTA_OK;
	} else {
		if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
		    EVP_DigestVerifyUpdate(md, prefix, prefix_len) == 1 &&
		    EVP_DigestVerifyUpdate(md, body, body_len) == 1 &&
		    EVP_DigestVerifyFinal(md, sig, sig_len) == 1)
			err = OTA_OK;
	}
out:
	if (msg != stack_msg)
		free(msg);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	return err;
}
