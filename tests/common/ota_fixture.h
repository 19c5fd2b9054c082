/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_FIXTURE_H
#define OTA_FIXTURE_H

/*
 * ota_fixture: test-only builders for signed fleetota objects (keys,
 * RootList, KeyList, Manifest envelopes, .otab bundles) on top of
 * fleetota/sign.h. Link with `ota_fixture_dep`.
 *
 * Conventions:
 * - A fixture never fails silently: an internal failure (OpenSSL, out of
 *   memory, an I/O error) prints a message and aborts the test process, so
 *   callers need no error checks. Inputs that are deliberately wrong (a
 *   manifest signed as "keylist", a bundle with trailing bytes) are made on
 *   purpose and are not internal failures.
 * - Envelopes are heap objects (protobuf-c default allocator); free them
 *   with ota_fx_env_free(). Keys are EVP_PKEY; free with EVP_PKEY_free().
 * - struct ota_fx_buf owns its bytes; free with ota_fx_buf_free().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "fleetota/crypto.h"
#include "fleetota/envelope.h"
#include "ota.pb-c.h"

/* ---- bytes ---------------------------------------------------------- */

struct ota_fx_buf {
	uint8_t *data;
	size_t len;
};

void ota_fx_buf_free(struct ota_fx_buf *buf);
/* Appends len bytes (a bundle with trailing garbage, a longer image). */
void ota_fx_buf_append(struct ota_fx_buf *buf, const void *data, size_t len);
/* Drops the last n bytes (n > len drops everything). */
void ota_fx_buf_truncate(struct ota_fx_buf *buf, size_t n);

/* ---- keys ----------------------------------------------------------- */

/* A fresh key pair: OTA_ALG_ED25519 or OTA_ALG_ECDSA_P256_SHA256. */
EVP_PKEY *ota_fx_key_new(enum ota_alg alg);
/*
 * A deterministic Ed25519 key: the private key is 32 bytes of seed. For
 * inputs that must verify across runs (fuzz seed corpora); never for
 * anything but tests.
 */
EVP_PKEY *ota_fx_key_seeded(uint8_t seed);
/* The key id (SHA-256 of the SubjectPublicKeyInfo DER). */
void ota_fx_key_id(EVP_PKEY *key, uint8_t ret_id[OTA_KEY_ID_BYTES]);
/* Writes the private key (PKCS#8 PEM) or only the public key (SPKI PEM). */
void ota_fx_key_write_pem(const char *path, EVP_PKEY *key, bool private_key);

/* ---- envelopes ------------------------------------------------------ */

/* Signs body as an object of type (any type: cross-type attacks). */
Fleetota__V1__Signed *ota_fx_sign_body(enum ota_obj_type type, const uint8_t *body, size_t len,
				       EVP_PKEY *const *signers, size_t n_signers);
void ota_fx_env_free(Fleetota__V1__Signed *env);
/* Serialized envelope bytes. */
struct ota_fx_buf ota_fx_env_bytes(const Fleetota__V1__Signed *env);
/* A deep copy (decode of the serialized form). */
Fleetota__V1__Signed *ota_fx_env_dup(const Fleetota__V1__Signed *env);
/* Writes the serialized envelope to path. */
void ota_fx_env_write(const char *path, const Fleetota__V1__Signed *env);

/* RootList: keys[] are the root keys; signers sign it (type "root"). */
struct ota_fx_rootlist {
	uint64_t version;
	uint32_t threshold;
	EVP_PKEY *const *keys;
	size_t n_keys;
	uint64_t issued_at;
	uint64_t expires_at;
	EVP_PKEY *const *signers;
	size_t n_signers;
};
Fleetota__V1__Signed *ota_fx_rootlist(const struct ota_fx_rootlist *spec);

/* One operational key of a KeyList with its validity window (0 = open). */
struct ota_fx_opkey {
	EVP_PKEY *key;
	uint64_t not_before;
	uint64_t not_after;
	Fleetota__V1__KeyRole role; /* 0: operational (signs manifests) */
};

/* KeyList signed (type "keylist") by signers, normally root keys. */
struct ota_fx_keylist {
	uint64_t version;
	uint64_t issued_at;
	uint64_t expires_at;
	uint64_t rootlist_version;
	const struct ota_fx_opkey *keys;
	size_t n_keys;
	EVP_PKEY *const *signers;
	size_t n_signers;
};
Fleetota__V1__Signed *ota_fx_keylist(const struct ota_fx_keylist *spec);

/*
 * Manifest: every field settable. ota_fx_manifest_init() fills defaults
 * (product "fx-model", no hw revisions = any, version "1.0.0" code 1,
 * counter 1, issued_at 1700000000, no expiry, sign_type manifest) and the
 * image sha256/size of image[0..image_len).
 */
struct ota_fx_manifest {
	uint64_t sequence;
	const char *product;
	const char *const *hw_revisions;
	size_t n_hw_revisions;
	const char *version;
	uint64_t version_code;
	uint64_t security_counter;
	uint64_t min_installed_version;
	bool allow_downgrade;
	bool is_security_update;
	uint64_t fixes_version_code_min; /* the signed fix range (Manifest 30..31) */
	uint64_t fixes_version_code_max;
	const char *advisory; /* NULL = none */
	uint64_t issued_at;
	uint64_t expires_at;
	uint8_t image_sha256[OTA_SHA256_BYTES];
	uint64_t image_size;
	const char *image_name;
	const Fleetota__V1__Encryption *encryption; /* NULL = a plain image */
	enum ota_obj_type sign_type;
	EVP_PKEY *const *signers;
	size_t n_signers;
	const Fleetota__V1__DeltaInfo *delta; /* a delta manifest; NULL = full image */
};
void ota_fx_manifest_init(struct ota_fx_manifest *spec, const uint8_t *image, size_t image_len);
Fleetota__V1__Signed *ota_fx_manifest(const struct ota_fx_manifest *spec);

/*
 * Timestamp (signed freshness) signed as sign_type (OTA_OBJ_TIMESTAMP for
 * a real one) by signers; product NULL = "fx-model".
 */
struct ota_fx_timestamp {
	const char *product;
	uint64_t issued_at;
	uint64_t expires_at;
	uint64_t keylist_version;
	const char *version;
	uint64_t version_code;
	uint64_t security_counter;
	const char *artifact;
	enum ota_obj_type sign_type;
	EVP_PKEY *const *signers;
	size_t n_signers;
};
Fleetota__V1__Signed *ota_fx_timestamp(const struct ota_fx_timestamp *spec);

/* ---- encrypted images ---------------------------------------------- */

/* An image encrypted by ota_fx_encrypt (fleetota/crypt_host.h does the crypto). */
struct ota_fx_crypt {
	Fleetota__V1__Encryption *enc; /* for struct ota_fx_manifest.encryption */
	struct ota_fx_buf ciphertext;
	uint8_t key[32]; /* the content key (tests craft attacks with it) */
};

/* A fresh X25519 recipient key. */
EVP_PKEY *ota_fx_x25519_new(void);
/* A fresh P-256 recipient key pair (caller frees). */
EVP_PKEY *ota_fx_p256_new(void);
/* Encrypts image in chunks of chunk_bytes for the recipients. Free with ota_fx_crypt_free. */
struct ota_fx_crypt *ota_fx_encrypt(const uint8_t *image, size_t len, uint32_t chunk_bytes,
				    EVP_PKEY *const *recipients, size_t n_recipients);
void ota_fx_crypt_free(struct ota_fx_crypt *crypt);

/* ---- bundles -------------------------------------------------------- */

/* Pieces of a .otab; keylist, rootlist and chain are optional (NULL/0). */
struct ota_fx_bundle {
	const Fleetota__V1__Signed *manifest;
	const Fleetota__V1__Signed *keylist;
	const Fleetota__V1__Signed *rootlist;
	const Fleetota__V1__Signed *const *chain;
	size_t n_chain;
	const uint8_t *image;
	size_t image_len;
};

/* "OTAB" + big-endian header length + BundleHeader + image. */
struct ota_fx_buf ota_fx_bundle_bytes(const struct ota_fx_bundle *spec);

/* Which part of a bundle a corruption targets. */
enum ota_fx_part {
	OTA_FX_PART_PREFIX,
	OTA_FX_PART_HEADER,
	OTA_FX_PART_IMAGE,
};

/* XORs 0x01 into byte offset (relative to the part) of a bundle buffer. */
void ota_fx_bundle_corrupt(struct ota_fx_buf *bundle, enum ota_fx_part part, size_t offset);

/* ---- files ---------------------------------------------------------- */

void ota_fx_write_file(const char *path, const void *data, size_t len);
/* Reads a whole file (at most 64 MiB). */
struct ota_fx_buf ota_fx_read_file(const char *path);
/* A new private directory under $TMPDIR (or /tmp); caller frees the string. */
char *ota_fx_tempdir_new(void);
/* Removes the directory tree and frees path (NULL is fine). */
void ota_fx_tempdir_remove(char *path);
/* dir + "/" + name as a heap string (caller frees). */
char *ota_fx_path(const char *dir, const char *name);

#endif
