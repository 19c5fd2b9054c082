/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_KR_H
#define FLEETOTA_KR_H

/*
 * ota-keys internals: one header for the modules of keyrotate/src, which
 * are built into one static library that the tool and the unit tests link.
 * Prefix kr_<module>_*. Functions that can fail return enum ota_err and
 * write one line of detail for people into a struct kr_diag (never a
 * secret); results go to ret_ out-parameters, written only on success.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>

#include "fleetota/arena.h"
#include "fleetota/bundle.h"
#include "fleetota/crypt.h"
#include "fleetota/envelope.h"
#include "fleetota/err.h"
#include "fleetota/hex.h"
#include "fleetota/limits.h"
#include "fleetota/trust.h"

/* ---- limits of the tool (wire limits are in fleetota/limits.h) ---- */

/* A signed object or key descriptor file read whole. */
#define KR_MAX_OBJECT_FILE_BYTES OTA_MAX_ENVELOPE_BYTES
/* A PEM private key file. */
#define KR_MAX_KEY_FILE_BYTES (16u * 1024u)
/* A passphrase or PIN. */
#define KR_MAX_SECRET_BYTES 1024u
/* One audit log line, newline included. */
#define KR_MAX_AUDIT_LINE 2048u
/* The signer name recorded in the audit log. */
#define KR_MAX_SIGNER_BYTES 64u
/* PBKDF2 rounds for passphrase-encrypted key files. */
#define KR_KEY_PBKDF2_ROUNDS 200000
/* Streaming buffer for images. */
#define KR_IO_CHUNK (64u * 1024u)
/* Arena for a decoded bundle header with its envelopes. */
#define KR_HEADER_ARENA_BYTES (4u * OTA_MAX_BUNDLE_HEADER_BYTES)
/* A file name the tool builds (PREFIX.key, a temporary next to an output). */
#define KR_MAX_PATH_BYTES 4096u
/* Room for a suffix (.key, .pub, .pem) after a prefix of KR_MAX_PATH_BYTES. */
#define KR_PATH_SUFFIX_BYTES 104u
/* A time as kr_time_format writes it ("2026-01-31T12:00:00Z", "never"). */
#define KR_TIME_TEXT_BYTES 40u
/* The time column of an audit line. */
#define KR_AUDIT_TIME_BYTES 32u
/* A decimal uint64 and its NUL (also a duration text such as "90d"). */
#define KR_U64_TEXT_BYTES 24u
/* The detail of a refused list, and the names of the lists it names. */
#define KR_DETAIL_BYTES 96u
#define KR_LIST_NAME_BYTES 64u
#define KR_ROOT_NAME_BYTES 48u
/* A diagnostic message. */
#define KR_DIAG_BYTES 512u
/* Buffers in flight while a stream is read ahead (stream.c). */
#define KR_STREAM_RING 4u
/* Latest time ota-keys accepts (9999-12-31T23:59:59Z). */
#define KR_TIME_MAX 253402300799ull

/* ---- diagnostics ---- */

struct kr_diag {
	char msg[KR_DIAG_BYTES];
};

/* Formats the detail into diag (if any) and returns err, for `return kr_fail(...)`. */
enum ota_err kr_fail(struct kr_diag *diag, enum ota_err err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- util.c: files (hex: ota_hex_encode, fleetota/hex.h) ---- */

/* Reads a whole file of at most max bytes (heap; caller frees). */
enum ota_err kr_file_read(const char *path, size_t max, uint8_t **ret_buf, size_t *ret_len,
			  struct kr_diag *diag);
/*
 * Writes a file atomically (temp file in the same directory, fsync,
 * rename) with the given mode. An existing file is replaced.
 */
enum ota_err kr_file_write(const char *path, const uint8_t *buf, size_t len, unsigned mode,
			   struct kr_diag *diag);

/* ---- timefmt.c ---- */

/*
 * Parses a time: "now", "never"/"0" (0 = not set), seconds since the epoch
 * ("1767225600" or "@1767225600"), RFC 3339 UTC ("2026-01-01T00:00:00Z",
 * or a date "2026-01-01"), or an offset from now ("+90d", "+12h", "+30m",
 * "+45s", "-1d"). OTA_OK or OTA_ERR_FORMAT.
 */
enum ota_err kr_time_parse(const char *text, uint64_t now, uint64_t *ret_time);
/* RFC 3339 UTC into buf (>= 32 bytes); "unset" for 0. Returns buf. */
const char *kr_time_format(uint64_t t, char *buf, size_t cap);
/* Parses a decimal uint64 (no sign, no junk). OTA_OK or OTA_ERR_FORMAT. */
enum ota_err kr_u64_parse(const char *text, uint64_t *ret_value);

/* ---- keyfile.c: key files and secrets ---- */

struct kr_secret {
	char *buf;
	size_t len;
};

/* From an environment variable / a file (first line). Wipe with kr_secret_wipe. */
enum ota_err kr_secret_from_env(const char *var, struct kr_secret *ret, struct kr_diag *diag);
enum ota_err kr_secret_from_file(const char *path, struct kr_secret *ret, struct kr_diag *diag);
void kr_secret_wipe(struct kr_secret *secret);

struct kr_key_opts {
	const struct kr_secret *passphrase; /* for encrypted key files, or NULL */
	const struct kr_secret *pin; /* for pkcs11: keys, or NULL */
	const char *pkcs11_module; /* NULL: $OTA_PKCS11_MODULE, else p11-kit */
};

enum ota_err kr_key_generate(enum ota_alg alg, EVP_PKEY **ret_pkey, struct kr_diag *diag);
/*
 * Writes pkey as PEM PKCS#8 to a new file (mode 0600, refuses to replace
 * an existing one), encrypted (PBES2: PBKDF2-HMAC-SHA256, KR_KEY_PBKDF2_ROUNDS, AES-256-CBC)
 * when passphrase is set.
 */
enum ota_err kr_key_write_private(const char *path, EVP_PKEY *pkey,
				  const struct kr_secret *passphrase, struct kr_diag *diag);
/*
 * Loads a signing key: a PEM PKCS#8 file, or a "pkcs11:" URI (RFC 7512)
 * whose key stays in the token. Refuses group/world-accessible files.
 * Errors: OTA_ERR_STORAGE (unreadable, too open), OTA_ERR_FORMAT (not a
 * PKCS#8 key, wrong passphrase, unsupported algorithm), OTA_ERR_INVALID_ARG
 * (encrypted but no passphrase given), OTA_ERR_NOT_FOUND (token key).
 */
enum ota_err kr_key_load(const char *spec, const struct kr_key_opts *opts, EVP_PKEY **ret_pkey,
			 struct kr_diag *diag);
/* Parses "ed25519" / "p256" (also "ecdsa-p256"). */
enum ota_err kr_alg_parse(const char *text, enum ota_alg *ret_alg);
const char *kr_alg_name(int alg);

/* ---- pkcs11.c: the one file that touches the ENGINE API ---- */

enum ota_err kr_pkcs11_load(const char *uri, const char *module, const struct kr_secret *pin,
			    EVP_PKEY **ret_pkey, struct kr_diag *diag);
/* Releases the engine; call after every EVP_PKEY from it was freed. */
void kr_pkcs11_shutdown(void);

/* ---- objects.c: signed objects, descriptors, detection ---- */

enum kr_obj_kind {
	KR_OBJ_UNKNOWN = 0,
	KR_OBJ_ROOTLIST,
	KR_OBJ_KEYLIST,
	KR_OBJ_MANIFEST,
	KR_OBJ_PUBKEY, /* a PublicKey descriptor written by op-new / root-new */
	KR_OBJ_BUNDLE,
	KR_OBJ_TIMESTAMP, /* signed freshness (ota-keys timestamp) */
};

const char *kr_obj_kind_name(enum kr_obj_kind kind);
/* "rootlist"/"root", "keylist", "manifest", "pubkey", "bundle", "timestamp". */
enum ota_err kr_obj_kind_parse(const char *text, enum kr_obj_kind *ret_kind);
/* The signing type of a signed kind; OTA_ERR_INVALID_ARG for others. */
enum ota_err kr_obj_sign_type(enum kr_obj_kind kind, enum ota_obj_type *ret_type);

/*
 * Detects what buf holds (only the prefix is needed for a bundle) by
 * trial decoding into arena. Never fails: KR_OBJ_UNKNOWN if nothing fits.
 */
enum kr_obj_kind kr_obj_detect(const uint8_t *buf, size_t len, struct ota_arena *arena);

/* A heap arena of cap bytes (wraps struct ota_arena). */
struct kr_arena {
	struct ota_arena arena;
	void *mem;
};
enum ota_err kr_arena_init(struct kr_arena *arena, size_t cap);
void kr_arena_release(struct kr_arena *arena);

/* Reads a Signed envelope file into arena (shape-checked). */
enum ota_err kr_envelope_read(const char *path, struct ota_arena *arena,
			      Fleetota__V1__Signed **ret_env, struct kr_diag *diag);
/* Reads a Signed envelope file onto the heap (protobuf-c default allocator). */
enum ota_err kr_envelope_read_heap(const char *path, Fleetota__V1__Signed **ret_env,
				   struct kr_diag *diag);
/* Serializes env and writes it atomically (mode 0644). */
enum ota_err kr_envelope_write(const char *path, const Fleetota__V1__Signed *env,
			       struct kr_diag *diag);
/* Reads a PublicKey descriptor file into arena; checks it with ota_pubkey_check. */
enum ota_err kr_pubkey_read(const char *path, struct ota_arena *arena,
			    Fleetota__V1__PublicKey **ret_key, struct kr_diag *diag);
enum ota_err kr_pubkey_write(const char *path, const Fleetota__V1__PublicKey *key,
			     struct kr_diag *diag);
/* SubjectPublicKeyInfo PEM of a descriptor, for other tools. */
enum ota_err kr_pubkey_write_pem(const char *path, const Fleetota__V1__PublicKey *key,
				 struct kr_diag *diag);

/*
 * Selects keys[i] by name or by a hex key id prefix of at least 8 digits;
 * exactly one key must match. OTA_ERR_NOT_FOUND / OTA_ERR_INVALID_ARG.
 */
enum ota_err kr_key_select(Fleetota__V1__PublicKey *const *keys, size_t n_keys, const char *sel,
			   size_t *ret_index, struct kr_diag *diag);

/* ---- lists.c: building the next KeyList / RootList, merging signatures ---- */

struct kr_expire {
	const char *selector;
	uint64_t not_after;
};

struct kr_keylist_spec {
	const Fleetota__V1__KeyList *prev; /* NULL for the first list */
	uint64_t version; /* 0: prev->version + 1, or 1 */
	uint64_t issued_at;
	uint64_t expires_at;
	uint64_t rootlist_version;
	Fleetota__V1__PublicKey *const *add;
	size_t n_add;
	const char *const *remove;
	size_t n_remove;
	const struct kr_expire *expire;
	size_t n_expire;
};

/*
 * Packs the next KeyList body (heap; caller frees). OTA_ERR_KEYLIST_ROLLBACK
 * when the version does not increase; OTA_ERR_NOT_FOUND for a selector
 * that names no key; OTA_ERR_INVALID_ARG for a duplicate or an empty list.
 */
enum ota_err kr_keylist_build(const struct kr_keylist_spec *spec, uint8_t **ret_body,
			      size_t *ret_len, struct kr_diag *diag);

struct kr_rootlist_spec {
	const Fleetota__V1__RootList *prev; /* NULL for the first list */
	uint64_t version; /* 0: prev->version + 1, or 1 */
	uint32_t threshold; /* 0: prev's */
	uint64_t issued_at;
	uint64_t expires_at;
	Fleetota__V1__PublicKey *const *add;
	size_t n_add;
	const char *const *remove;
	size_t n_remove;
};

/* Packs the next RootList body (heap). OTA_ERR_ROOT_CHAIN for a version gap. */
enum ota_err kr_rootlist_build(const struct kr_rootlist_spec *spec, uint8_t **ret_body,
			       size_t *ret_len, struct kr_diag *diag);

/* A heap Signed envelope holding a copy of body and no signatures. */
enum ota_err kr_envelope_new(const uint8_t *body, size_t len, Fleetota__V1__Signed **ret_env);

/*
 * Adds to into the signatures of from that into lacks (same body required:
 * OTA_ERR_INVALID_ARG otherwise). Both heap envelopes.
 */
enum ota_err kr_envelope_merge(Fleetota__V1__Signed *into, const Fleetota__V1__Signed *from,
			       struct kr_diag *diag);

/* ---- audit.c: the hash-chained signing audit log ---- */

struct kr_audit_entry {
	uint64_t time;
	const char *who;
	const char *object; /* "root", "keylist", "manifest" */
	uint64_t version;
	uint8_t key_id[OTA_KEY_ID_BYTES];
	uint8_t sha256[OTA_SHA256_BYTES]; /* of the signed body */
};

/* Appends one record under an exclusive lock; fsyncs. */
enum ota_err kr_audit_append(const char *path, const struct kr_audit_entry *entry,
			     struct kr_diag *diag);

struct kr_audit_result {
	uint64_t records;
	char head[2 * OTA_SHA256_BYTES + 1]; /* hash of the last record, "" if none */
	uint64_t bad_record; /* 1-based line of the first bad record */
};

/*
 * Checks a whole log held in buf: every line a record, its hash over its
 * own text, seq counting from 1, each prev equal to the previous hash.
 * OTA_OK, or OTA_ERR_HASH (edited / removed / reordered) or OTA_ERR_FORMAT
 * (unparseable) with result->bad_record naming the first bad record.
 */
enum ota_err kr_audit_verify_buf(const char *buf, size_t len, struct kr_audit_result *result,
				 struct kr_diag *diag);
/* The same over a file, streamed line by line. */
enum ota_err kr_audit_verify_file(const char *path, struct kr_audit_result *result,
				  struct kr_diag *diag);

/* ---- release.c: manifests and bundles ---- */

struct kr_manifest_spec {
	uint64_t sequence;
	const char *product;
	const char *const *hw_revisions;
	size_t n_hw_revisions;
	const char *version;
	uint64_t version_code;
	uint64_t security_counter;
	uint64_t min_installed_version;
	int allow_downgrade;
	int is_security_update;
	/* with is_security_update: the version_code range it fixes (max 0 = not stated) */
	uint64_t fixes_version_code_min;
	uint64_t fixes_version_code_max;
	const char *advisory; /* optional, e.g. a CVE id */
	uint64_t issued_at;
	uint64_t expires_at;
	const char *image_name;
	/* an encrypted image (encrypt.c): copied into the manifest; NULL = plain */
	const Fleetota__V1__Encryption *encryption;
	/* a delta bundle's DeltaInfo (keyrotate/src/delta.c), NULL for a full image */
	const Fleetota__V1__DeltaInfo *delta;
};

/*
 * kr_stream (stream.c): reads in to its end through sha, and writes every
 * byte to out too when out >= 0, with reading, hashing and writing
 * overlapped (a reader and a writer thread, a ring of KR_STREAM_CHUNK
 * buffers). Only
 * hashed bytes are written; out's blocks are reserved for in's size first
 * (fallocate, the size kept) and what was not written is given back.
 * OTA_ERR_SIZE once more than limit bytes were
 * read; OTA_ERR_STORAGE on a read or write error (its errno in ret);
 * ret->bytes is what was read. The caller finishes or aborts sha.
 */
#define KR_STREAM_CHUNK (1024u * 1024u)
struct ota_sha256_ctx;
struct kr_stream_result {
	uint64_t bytes;
	int read_errno;
	int write_errno;
};
enum ota_err kr_stream(int in, int out, uint64_t limit, struct ota_sha256_ctx *sha,
		       struct kr_stream_result *ret);

/*
 * Plain file I/O of every command (stream.c): kr_write_all writes all of
 * buf in 64 KiB writes, 0 or an errno; kr_read_some reads until cap bytes
 * or the end of the file, the count (0 at the end) or -errno.
 */
int kr_write_all(int fd, const uint8_t *buf, size_t len);
ssize_t kr_read_some(int fd, uint8_t *buf, size_t cap);

/* Streams a file through SHA-256 (kr_stream). */
enum ota_err kr_image_hash(const char *path, uint8_t ret_sha256[OTA_SHA256_BYTES],
			   uint64_t *ret_size, struct kr_diag *diag);
/* Packs a Manifest body for an image of that digest and size (heap). */
enum ota_err kr_manifest_build(const struct kr_manifest_spec *spec,
			       const uint8_t sha256[OTA_SHA256_BYTES], uint64_t size,
			       uint8_t **ret_body, size_t *ret_len, struct kr_diag *diag);

/*
 * Delta bundles (keyrotate/src/delta.c): makes the payload of image
 * against base into payload_path (checked by applying it back with the
 * device's applier) and fills *ret_info (pointing into *ret_hashes, the
 * caller's storage) for the manifest.
 */
struct kr_delta_hashes {
	uint8_t base_sha256[OTA_SHA256_BYTES];
	uint8_t sha256[OTA_SHA256_BYTES];
};
enum ota_err kr_delta_build(const char *base_path, const char *image_path, const char *payload_path,
			    uint32_t chunk_bytes, int level, int matcher,
			    Fleetota__V1__DeltaInfo *ret_info, struct kr_delta_hashes *ret_hashes,
			    struct kr_diag *diag);

struct kr_bundle_parts {
	const Fleetota__V1__Signed *manifest;
	const Fleetota__V1__Signed *keylist; /* optional */
	const Fleetota__V1__Signed *rootlist; /* optional */
	const Fleetota__V1__Signed *const *rootlist_chain;
	size_t n_rootlist_chain;
};

/*
 * Writes a .otab: prefix, header, then the image streamed from image_path
 * and hashed again on the way; an image that no longer matches sha256 and
 * size is OTA_ERR_HASH / OTA_ERR_SIZE and leaves no output.
 */
enum ota_err kr_bundle_write(const char *path, const struct kr_bundle_parts *parts,
			     const char *image_path, const uint8_t sha256[OTA_SHA256_BYTES],
			     uint64_t size, struct kr_diag *diag);
/* The same with the image read from image_path from byte image_offset to its end. */
enum ota_err kr_bundle_write_from(const char *path, const struct kr_bundle_parts *parts,
				  const char *image_path, uint64_t image_offset,
				  const uint8_t sha256[OTA_SHA256_BYTES], uint64_t size,
				  struct kr_diag *diag);

/*
 * A bundle in one pass (ota-keys sign): kr_bundle_stage creates a temp
 * file next to path and streams the image into it from byte data_offset
 * (the prefix and header size the caller expects, kr_bundle_data_offset
 * of a header like the final one), hashing it on the way, so the bundle
 * carries exactly the bytes that were hashed and the image is read once.
 * kr_bundle_commit then writes the prefix and the header of parts in
 * front, fsyncs and renames the file to path; a header of another size
 * (an ECDSA signature's DER length varies by a byte or two) makes it copy
 * the staged image into a new bundle instead (kr_bundle_write_from: a
 * second pass, checked against the digest). kr_bundle_stage_release
 * removes what is left (NULL and a committed stage are fine).
 */
struct kr_bundle_stage {
	char tmp[KR_MAX_PATH_BYTES];
	int fd;
	uint64_t data_offset;
	uint64_t size; /* of the image, as hashed */
	uint8_t sha256[OTA_SHA256_BYTES];
};
enum ota_err kr_bundle_data_offset(const struct kr_bundle_parts *parts, uint64_t *ret_offset,
				   struct kr_diag *diag);
enum ota_err kr_bundle_stage(const char *path, const char *image_path, uint64_t data_offset,
			     struct kr_bundle_stage *ret, struct kr_diag *diag);
enum ota_err kr_bundle_commit(struct kr_bundle_stage *st, const char *path,
			      const struct kr_bundle_parts *parts, struct kr_diag *diag);
void kr_bundle_stage_release(struct kr_bundle_stage *st);

/* ---- encrypt.c: encrypted images (fleetota/crypt.h) ---- */

/* Reads an X25519 or P-256 recipient key: a public key (SPKI PEM) or a private key (PEM). */
enum ota_err kr_recipient_read(const char *path, struct kr_key_opts *opts, EVP_PKEY **ret_key,
			       struct kr_diag *diag);

/*
 * Encrypts the image at image_path (its plaintext digest and size already
 * known; a file that changed since is OTA_ERR_HASH) into out_path with a
 * fresh content key and nonce prefix, and wraps the key for every
 * recipient (names[i] is the entry's label). *ret_enc is a heap
 * Encryption (kr_encryption_free). The content key is wiped before return.
 */
enum ota_err kr_encrypt_image(const char *image_path, const uint8_t sha256[OTA_SHA256_BYTES],
			      uint64_t size, uint32_t chunk_bytes, EVP_PKEY *const *recipients,
			      const char *const *names, size_t n, const char *out_path,
			      Fleetota__V1__Encryption **ret_enc, struct kr_diag *diag);
void kr_encryption_free(Fleetota__V1__Encryption *enc);

/*
 * The content key of manifest m, unwrapped with holder (a recipient's
 * private key) and checked against key_check. OTA_ERR_NOT_RECIPIENT when
 * holder has no entry, OTA_ERR_KEY_UNWRAP when it does not unwrap.
 */
enum ota_err kr_content_key(const Fleetota__V1__Manifest *m, EVP_PKEY *holder,
			    uint8_t ret_key[OTA_CEK_BYTES], struct kr_diag *diag);

/*
 * Adds an entry wrapping key for recipient to enc (heap) of the image
 * with that plaintext digest. A key listed already is OTA_ERR_INVALID_ARG.
 */
enum ota_err kr_recipient_add(Fleetota__V1__Encryption *enc,
			      const uint8_t plaintext_sha256[OTA_SHA256_BYTES],
			      const uint8_t key[OTA_CEK_BYTES], EVP_PKEY *recipient,
			      const char *name, struct kr_diag *diag);
/* A heap copy (for kr_recipient_add) of a decoded Encryption. */
enum ota_err kr_encryption_dup(const Fleetota__V1__Encryption *src,
			       Fleetota__V1__Encryption **ret_enc);

/* ---- verify.c: verification with libotaproto ---- */

struct kr_verifier {
	uint64_t now; /* 0: expiry not judged */
	uint64_t keylist_floor; /* a KeyList must be above this version */
	Fleetota__V1__RootList *root; /* trusted root after the chain walk */
	Fleetota__V1__KeyList *keylist;
	struct kr_arena arenas[OTA_MAX_ROOT_CHAIN + 8];
	size_t n_arenas;
};

void kr_verifier_init(struct kr_verifier *v, uint64_t now);
void kr_verifier_release(struct kr_verifier *v);
/* A fresh arena owned by the verifier. */
enum ota_err kr_verifier_arena(struct kr_verifier *v, size_t cap, struct ota_arena **ret_arena);

/* Trust anchor: a RootList signed by its own threshold. */
enum ota_err kr_verify_root_anchor(struct kr_verifier *v, const Fleetota__V1__Signed *env,
				   struct kr_diag *diag);
/*
 * One more RootList: same version as the trusted one (must be identical:
 * ignored) or the next version (a chain step).
 */
enum ota_err kr_verify_root_step(struct kr_verifier *v, const Fleetota__V1__Signed *env,
				 struct kr_diag *diag);
enum ota_err kr_verify_keylist(struct kr_verifier *v, const Fleetota__V1__Signed *env,
			       struct kr_diag *diag);
/*
 * A Timestamp signed by the trusted KeyList's timestamp key; expired at
 * now (when set) is OTA_ERR_EXPIRED.
 */
enum ota_err kr_verify_timestamp(struct kr_verifier *v, const Fleetota__V1__Signed *env,
				 struct ota_arena *arena, Fleetota__V1__Timestamp **ret_ts,
				 struct kr_diag *diag);
/* Signature by the trusted KeyList, then expiry at now. */
enum ota_err kr_verify_manifest(struct kr_verifier *v, const Fleetota__V1__Signed *env,
				struct ota_arena *arena, Fleetota__V1__Manifest **ret_manifest,
				struct kr_diag *diag);
/* An image file against a manifest's sha256 and size. */
enum ota_err kr_verify_image_file(const Fleetota__V1__Manifest *manifest, const char *path,
				  struct kr_diag *diag);
/*
 * A whole bundle: rootlists it carries (chained from the verifier's root
 * when one is set), its KeyList (or the verifier's), the manifest, then
 * the image streamed: hash, exact size, no trailing bytes.
 */
enum ota_err kr_verify_bundle_file(struct kr_verifier *v, const char *path, struct kr_diag *diag);
/*
 * Reads a bundle's prefix and header from fd (at its start) into an arena
 * of v; *ret_image_offset is where the image (or ciphertext) begins. No
 * signature is checked here.
 */
enum ota_err kr_bundle_header_read(struct kr_verifier *v, int fd, const char *path,
				   Fleetota__V1__BundleHeader **ret_hdr, uint64_t *ret_image_offset,
				   struct kr_diag *diag);

/* ---- inspect.c ---- */

/*
 * Describes an object as a JSON tree (jansson; caller json_decref).
 * For a bundle, buf holds the prefix and header and image_bytes the size of
 * what follows. Returns NULL for an unknown object.
 */
struct json_t;
struct json_t *kr_inspect_json(const uint8_t *buf, size_t len, uint64_t image_bytes,
			       enum kr_obj_kind kind);
/* Human-readable rendering of such a tree. */
void kr_inspect_print(FILE *out, const struct json_t *tree);

#endif
