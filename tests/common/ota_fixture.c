/* SPDX-License-Identifier: Apache-2.0 */
/* nftw() is XSI */
#define _XOPEN_SOURCE 700
#include "ota_fixture.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/sha.h>

#include "fleetota/bundle.h"
#include "fleetota/crypt_host.h"
#include "fleetota/limits.h"
#include "fleetota/sign.h"

#define FX_MAX_READ (64u * 1024u * 1024u)

__attribute__((format(printf, 1, 2), noreturn)) static void fx_die(const char *fmt, ...);

static void fx_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ota_fixture: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

static void *fx_alloc(size_t len)
{
	void *p = calloc(1, len ? len : 1);
	if (!p)
		fx_die("out of memory");
	return p;
}

static char *fx_strdup(const char *s)
{
	char *d = strdup(s ? s : "");
	if (!d)
		fx_die("out of memory");
	return d;
}

static void fx_bytes(ProtobufCBinaryData *dst, const void *src, size_t len)
{
	dst->data = fx_alloc(len);
	if (len)
		memcpy(dst->data, src, len);
	dst->len = len;
}

/* ---- bytes ---------------------------------------------------------- */

void ota_fx_buf_free(struct ota_fx_buf *buf)
{
	if (!buf)
		return;
	free(buf->data);
	buf->data = NULL;
	buf->len = 0;
}

void ota_fx_buf_append(struct ota_fx_buf *buf, const void *data, size_t len)
{
	uint8_t *grown = realloc(buf->data, buf->len + len + 1);
	if (!grown)
		fx_die("out of memory");
	if (len)
		memcpy(grown + buf->len, data, len);
	buf->data = grown;
	buf->len += len;
}

void ota_fx_buf_truncate(struct ota_fx_buf *buf, size_t n)
{
	buf->len = n > buf->len ? 0 : buf->len - n;
}

/* ---- keys ----------------------------------------------------------- */

EVP_PKEY *ota_fx_key_new(enum ota_alg alg)
{
	EVP_PKEY *key = NULL;
	if (alg == OTA_ALG_ED25519)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else if (alg == OTA_ALG_ECDSA_P256_SHA256)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!key)
		fx_die("key generation failed (alg %d)", (int)alg);
	return key;
}

EVP_PKEY *ota_fx_key_seeded(uint8_t seed)
{
	uint8_t raw[32];
	memset(raw, seed, sizeof(raw));
	EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, sizeof(raw));
	if (!key)
		fx_die("seeded key failed");
	return key;
}

void ota_fx_key_id(EVP_PKEY *key, uint8_t ret_id[OTA_KEY_ID_BYTES])
{
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES];
	size_t spki_len = 0;
	enum ota_alg alg;
	if (ota_pkey_public(key, &alg, spki, &spki_len, ret_id) != OTA_OK)
		fx_die("unusable key");
}

void ota_fx_key_write_pem(const char *path, EVP_PKEY *key, bool private_key)
{
	FILE *f = fopen(path, "w");
	if (!f)
		fx_die("open %s: %s", path, strerror(errno));
	int ok = private_key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
			     : PEM_write_PUBKEY(f, key);
	if (fclose(f) != 0 || ok != 1)
		fx_die("write %s failed", path);
}

/* ---- envelopes ------------------------------------------------------ */

Fleetota__V1__Signed *ota_fx_sign_body(enum ota_obj_type type, const uint8_t *body, size_t len,
				       EVP_PKEY *const *signers, size_t n_signers)
{
	Fleetota__V1__Signed *env = fx_alloc(sizeof(*env));
	fleetota__v1__signed__init(env);
	fx_bytes(&env->body, body, len);
	for (size_t i = 0; i < n_signers; i++) {
		if (ota_envelope_add_signature(env, type, signers[i]) != OTA_OK)
			fx_die("signing failed");
	}
	return env;
}

void ota_fx_env_free(Fleetota__V1__Signed *env)
{
	if (env)
		fleetota__v1__signed__free_unpacked(env, NULL);
}

struct ota_fx_buf ota_fx_env_bytes(const Fleetota__V1__Signed *env)
{
	struct ota_fx_buf out = {0};
	out.len = fleetota__v1__signed__get_packed_size(env);
	out.data = fx_alloc(out.len);
	fleetota__v1__signed__pack(env, out.data);
	return out;
}

Fleetota__V1__Signed *ota_fx_env_dup(const Fleetota__V1__Signed *env)
{
	struct ota_fx_buf bytes = ota_fx_env_bytes(env);
	Fleetota__V1__Signed *copy = fleetota__v1__signed__unpack(NULL, bytes.len, bytes.data);
	ota_fx_buf_free(&bytes);
	if (!copy)
		fx_die("envelope copy failed");
	return copy;
}

void ota_fx_env_write(const char *path, const Fleetota__V1__Signed *env)
{
	struct ota_fx_buf bytes = ota_fx_env_bytes(env);
	ota_fx_write_file(path, bytes.data, bytes.len);
	ota_fx_buf_free(&bytes);
}

/* Packs a message with protobuf-c's generic entry points. */
static Fleetota__V1__Signed *fx_sign_message(enum ota_obj_type type, const ProtobufCMessage *msg,
					     EVP_PKEY *const *signers, size_t n_signers)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *body = fx_alloc(len);
	protobuf_c_message_pack(msg, body);
	Fleetota__V1__Signed *env = ota_fx_sign_body(type, body, len, signers, n_signers);
	free(body);
	return env;
}

static Fleetota__V1__PublicKey **fx_pubkeys(EVP_PKEY *const *keys, const uint64_t *not_before,
					    const uint64_t *not_after, size_t n_keys)
{
	Fleetota__V1__PublicKey **out = fx_alloc(n_keys * sizeof(*out));
	for (size_t i = 0; i < n_keys; i++) {
		char name[32];
		snprintf(name, sizeof(name), "fx-key-%zu", i);
		if (ota_pubkey_from_pkey(keys[i], name, not_before ? not_before[i] : 0,
					 not_after ? not_after[i] : 0, &out[i]) != OTA_OK)
			fx_die("public key export failed");
	}
	return out;
}

static void fx_pubkeys_free(Fleetota__V1__PublicKey **keys, size_t n_keys)
{
	for (size_t i = 0; i < n_keys; i++)
		fleetota__v1__public_key__free_unpacked(keys[i], NULL);
	free(keys);
}

Fleetota__V1__Signed *ota_fx_rootlist(const struct ota_fx_rootlist *spec)
{
	Fleetota__V1__RootList root = FLEETOTA__V1__ROOT_LIST__INIT;
	root.version = spec->version;
	root.threshold = spec->threshold;
	root.issued_at = spec->issued_at;
	root.expires_at = spec->expires_at;
	root.n_keys = spec->n_keys;
	root.keys = fx_pubkeys(spec->keys, NULL, NULL, spec->n_keys);
	Fleetota__V1__Signed *env =
		fx_sign_message(OTA_OBJ_ROOT, &root.base, spec->signers, spec->n_signers);
	fx_pubkeys_free(root.keys, root.n_keys);
	return env;
}

Fleetota__V1__Signed *ota_fx_keylist(const struct ota_fx_keylist *spec)
{
	Fleetota__V1__KeyList kl = FLEETOTA__V1__KEY_LIST__INIT;
	EVP_PKEY **keys = fx_alloc(spec->n_keys * sizeof(*keys));
	uint64_t *nb = fx_alloc(spec->n_keys * sizeof(*nb));
	uint64_t *na = fx_alloc(spec->n_keys * sizeof(*na));
	for (size_t i = 0; i < spec->n_keys; i++) {
		keys[i] = spec->keys[i].key;
		nb[i] = spec->keys[i].not_before;
		na[i] = spec->keys[i].not_after;
	}
	kl.version = spec->version;
	kl.issued_at = spec->issued_at;
	kl.expires_at = spec->expires_at;
	kl.rootlist_version = spec->rootlist_version;
	kl.n_keys = spec->n_keys;
	kl.keys = fx_pubkeys(keys, nb, na, spec->n_keys);
	for (size_t i = 0; i < spec->n_keys; i++)
		kl.keys[i]->role = spec->keys[i].role;
	Fleetota__V1__Signed *env =
		fx_sign_message(OTA_OBJ_KEYLIST, &kl.base, spec->signers, spec->n_signers);
	fx_pubkeys_free(kl.keys, kl.n_keys);
	free(keys);
	free(nb);
	free(na);
	return env;
}

void ota_fx_manifest_init(struct ota_fx_manifest *spec, const uint8_t *image, size_t image_len)
{
	memset(spec, 0, sizeof(*spec));
	spec->sequence = 1;
	spec->product = "fx-model";
	spec->version = "1.0.0";
	spec->version_code = 1;
	spec->security_counter = 1;
	spec->issued_at = 1700000000u;
	spec->image_name = "firmware.bin";
	spec->sign_type = OTA_OBJ_MANIFEST;
	spec->image_size = image_len;
	SHA256(image, image_len, spec->image_sha256);
}

Fleetota__V1__Signed *ota_fx_manifest(const struct ota_fx_manifest *spec)
{
	Fleetota__V1__Manifest m = FLEETOTA__V1__MANIFEST__INIT;
	Fleetota__V1__ImageInfo image = FLEETOTA__V1__IMAGE_INFO__INIT;
	m.sequence = spec->sequence;
	m.product = (char *)(spec->product ? spec->product : "");
	m.hw_revisions = (char **)spec->hw_revisions;
	m.n_hw_revisions = spec->n_hw_revisions;
	m.version = (char *)(spec->version ? spec->version : "");
	m.version_code = spec->version_code;
	m.security_counter = spec->security_counter;
	m.min_installed_version = spec->min_installed_version;
	m.allow_downgrade = spec->allow_downgrade;
	m.is_security_update = spec->is_security_update;
	m.fixes_version_code_min = spec->fixes_version_code_min;
	m.fixes_version_code_max = spec->fixes_version_code_max;
	m.advisory = (char *)(spec->advisory ? spec->advisory : "");
	m.issued_at = spec->issued_at;
	m.expires_at = spec->expires_at;
	image.sha256.data = (uint8_t *)spec->image_sha256;
	image.sha256.len = sizeof(spec->image_sha256);
	image.size = spec->image_size;
	image.name = (char *)(spec->image_name ? spec->image_name : "");
	m.image = &image;
	m.encryption = (Fleetota__V1__Encryption *)spec->encryption;
	m.delta = (Fleetota__V1__DeltaInfo *)spec->delta;
	return fx_sign_message(spec->sign_type, &m.base, spec->signers, spec->n_signers);
}

Fleetota__V1__Signed *ota_fx_timestamp(const struct ota_fx_timestamp *spec)
{
	Fleetota__V1__Timestamp ts = FLEETOTA__V1__TIMESTAMP__INIT;
	ts.product = (char *)(spec->product ? spec->product : "fx-model");
	ts.issued_at = spec->issued_at;
	ts.expires_at = spec->expires_at;
	ts.keylist_version = spec->keylist_version;
	ts.version = (char *)(spec->version ? spec->version : "");
	ts.version_code = spec->version_code;
	ts.security_counter = spec->security_counter;
	ts.artifact = (char *)(spec->artifact ? spec->artifact : "");
	return fx_sign_message(spec->sign_type, &ts.base, spec->signers, spec->n_signers);
}

/* ---- encrypted images ---------------------------------------------- */

EVP_PKEY *ota_fx_x25519_new(void)
{
	EVP_PKEY *key = ota_crypt_keygen();
	if (!key)
		fx_die("X25519 keygen failed");
	return key;
}

EVP_PKEY *ota_fx_p256_new(void)
{
	EVP_PKEY *key = ota_crypt_keygen_kind(OTA_RECIPIENT_P256);
	if (!key)
		fx_die("P-256 keygen failed");
	return key;
}

struct ota_fx_crypt *ota_fx_encrypt(const uint8_t *image, size_t len, uint32_t chunk_bytes,
				    EVP_PKEY *const *recipients, size_t n_recipients)
{
	uint8_t sha[OTA_SHA256_BYTES];
	struct ota_fx_crypt *c = fx_alloc(sizeof(*c));
	Fleetota__V1__Encryption *enc = fx_alloc(sizeof(*enc));
	memset(c, 0, sizeof(*c));
	fleetota__v1__encryption__init(enc);
	c->enc = enc;
	SHA256(image, len, sha);
	if (ota_crypt_random(c->key, sizeof(c->key)) != OTA_OK)
		fx_die("random failed");
	uint8_t prefix[OTA_CRYPT_NONCE_PREFIX_BYTES], check[OTA_KEY_CHECK_BYTES];
	if (ota_crypt_random(prefix, sizeof(prefix)) != OTA_OK ||
	    ota_crypt_key_check(c->key, prefix, check) != OTA_OK)
		fx_die("key check failed");
	enc->alg = FLEETOTA__V1__ENCRYPTION_ALG__ENCRYPTION_ALG_AES256GCM_X25519_HKDF_AESKW;
	enc->chunk_bytes = chunk_bytes;
	enc->ciphertext_size = ota_crypt_ciphertext_size(len, chunk_bytes);
	fx_bytes(&enc->nonce_prefix, prefix, sizeof(prefix));
	fx_bytes(&enc->key_check, check, sizeof(check));
	enc->n_recipients = n_recipients;
	enc->recipients = fx_alloc(n_recipients * sizeof(*enc->recipients) + 1);
	for (size_t i = 0; i < n_recipients; i++) {
		uint8_t id[OTA_KEY_ID_BYTES], context[OTA_CRYPT_WRAP_CONTEXT_BYTES];
		struct ota_crypt_wrapped w;
		Fleetota__V1__Recipient *r = fx_alloc(sizeof(*r));
		fleetota__v1__recipient__init(r);
		if (ota_crypt_recipient_id(recipients[i], id) != OTA_OK)
			fx_die("recipient id failed");
		ota_crypt_wrap_context(id, prefix, sha, context);
		if (ota_crypt_wrap(recipients[i], context, c->key, &w) != OTA_OK)
			fx_die("wrap failed");
		r->kind = (Fleetota__V1__RecipientKind)w.kind;
		fx_bytes(&r->key_id, id, sizeof(id));
		fx_bytes(&r->ephemeral_public, w.ephemeral, w.ephemeral_len);
		fx_bytes(&r->wrapped_key, w.wrapped, sizeof(w.wrapped));
		r->name = fx_strdup("fx-recipient");
		enc->recipients[i] = r;
	}
	c->ciphertext.len = (size_t)enc->ciphertext_size;
	c->ciphertext.data = fx_alloc(c->ciphertext.len + 1);
	size_t out = 0;
	for (uint64_t index = 0, at = 0; at < len; index++) {
		size_t n = len - at < chunk_bytes ? len - at : chunk_bytes;
		if (ota_crypt_seal_chunk(c->key, prefix, index, at + n == len, image + at, n,
					 c->ciphertext.data + out) != OTA_OK)
			fx_die("seal failed");
		at += n;
		out += n + OTA_CRYPT_TAG_BYTES;
	}
	uint8_t ct_sha[OTA_SHA256_BYTES];
	SHA256(c->ciphertext.data, c->ciphertext.len, ct_sha);
	fx_bytes(&enc->ciphertext_sha256, ct_sha, sizeof(ct_sha));
	return c;
}

void ota_fx_crypt_free(struct ota_fx_crypt *crypt)
{
	if (!crypt)
		return;
	fleetota__v1__encryption__free_unpacked(crypt->enc, NULL);
	ota_fx_buf_free(&crypt->ciphertext);
	free(crypt);
}

/* ---- bundles -------------------------------------------------------- */

struct ota_fx_buf ota_fx_bundle_bytes(const struct ota_fx_bundle *spec)
{
	Fleetota__V1__BundleHeader hdr = FLEETOTA__V1__BUNDLE_HEADER__INIT;
	struct ota_fx_buf out = {0};
	hdr.manifest = (Fleetota__V1__Signed *)spec->manifest;
	hdr.keylist = (Fleetota__V1__Signed *)spec->keylist;
	hdr.rootlist = (Fleetota__V1__Signed *)spec->rootlist;
	hdr.rootlist_chain = (Fleetota__V1__Signed **)spec->chain;
	hdr.n_rootlist_chain = spec->n_chain;
	size_t hdr_len = fleetota__v1__bundle_header__get_packed_size(&hdr);
	uint8_t prefix[OTA_BUNDLE_PREFIX_BYTES];
	if (hdr_len > UINT32_MAX || ota_bundle_prefix_write((uint32_t)hdr_len, prefix) != OTA_OK)
		fx_die("bundle header of %zu bytes cannot be framed", hdr_len);
	out.len = sizeof(prefix) + hdr_len + spec->image_len;
	out.data = fx_alloc(out.len);
	memcpy(out.data, prefix, sizeof(prefix));
	fleetota__v1__bundle_header__pack(&hdr, out.data + sizeof(prefix));
	if (spec->image_len)
		memcpy(out.data + sizeof(prefix) + hdr_len, spec->image, spec->image_len);
	return out;
}

void ota_fx_bundle_corrupt(struct ota_fx_buf *bundle, enum ota_fx_part part, size_t offset)
{
	size_t start = 0;
	uint32_t hdr_len = 0;
	if (bundle->len < OTA_BUNDLE_PREFIX_BYTES)
		fx_die("not a bundle");
	hdr_len = ((uint32_t)bundle->data[4] << 24) | ((uint32_t)bundle->data[5] << 16) |
		  ((uint32_t)bundle->data[6] << 8) | (uint32_t)bundle->data[7];
	if (part == OTA_FX_PART_HEADER)
		start = OTA_BUNDLE_PREFIX_BYTES;
	else if (part == OTA_FX_PART_IMAGE)
		start = OTA_BUNDLE_PREFIX_BYTES + (size_t)hdr_len;
	if (start + offset >= bundle->len)
		fx_die("corrupt offset %zu beyond the bundle", offset);
	bundle->data[start + offset] ^= 0x01;
}

/* ---- files ---------------------------------------------------------- */

void ota_fx_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		fx_die("open %s: %s", path, strerror(errno));
	size_t written = len ? fwrite(data, 1, len, f) : 0;
	if (fclose(f) != 0 || written != len)
		fx_die("write %s failed", path);
}

struct ota_fx_buf ota_fx_read_file(const char *path)
{
	struct ota_fx_buf out = {0};
	FILE *f = fopen(path, "rb");
	if (!f)
		fx_die("open %s: %s", path, strerror(errno));
	uint8_t chunk[8192];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (out.len + got > FX_MAX_READ)
			fx_die("%s is too large", path);
		ota_fx_buf_append(&out, chunk, got);
	}
	fclose(f);
	if (!out.data)
		out.data = fx_alloc(1);
	return out;
}

char *ota_fx_tempdir_new(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[4096];
	snprintf(tmpl, sizeof(tmpl), "%s/ota-test-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpl))
		fx_die("mkdtemp: %s", strerror(errno));
	return fx_strdup(tmpl);
}

static int fx_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void ota_fx_tempdir_remove(char *path)
{
	if (!path)
		return;
	(void)nftw(path, fx_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(path);
}

char *ota_fx_path(const char *dir, const char *name)
{
	size_t len = strlen(dir) + 1 + strlen(name) + 1;
	char *p = fx_alloc(len);
	snprintf(p, len, "%s/%s", dir, name);
	return p;
}
