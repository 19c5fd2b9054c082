/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ota-keys command line: what every command shares (options, secrets,
 * signing with a list of keys, loading a verified list). One file per
 * command, cmd_NAME.c, each with its own help; main.c holds the table.
 */
#ifndef KR_CLI_H
#define KR_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "fleetota/sign.h"
#include "kr.h"

#define EXIT_REJECTED 1
#define EXIT_USAGE 2
#define MAX_LIST_ARGS OTA_MAX_KEYS

/* ---- options shared by every command ---- */

enum {
	OPT_PASS_ENV = 1000,
	OPT_PASS_FILE,
	OPT_PIN_ENV,
	OPT_PIN_FILE,
	OPT_MODULE,
	OPT_AUDIT,
	OPT_SIGNER,
	OPT_NOW,
	OPT_HELP,
	/* command options */
	OPT_OUT,
	OPT_OUT_DIR,
	OPT_IN,
	OPT_KEY,
	OPT_ALG,
	OPT_NAME,
	OPT_NOT_BEFORE,
	OPT_NOT_AFTER,
	OPT_ISSUED,
	OPT_EXPIRES,
	OPT_VERSION,
	OPT_PREV,
	OPT_ROOTLIST,
	OPT_ROOTLIST_CHAIN,
	OPT_KEYLIST,
	OPT_ADD,
	OPT_REMOVE,
	OPT_EXPIRE,
	OPT_THRESHOLD,
	OPT_FINALIZE,
	OPT_IMAGE,
	OPT_PRODUCT,
	OPT_HW_REV,
	OPT_VERSION_CODE,
	OPT_SECURITY_COUNTER,
	OPT_MIN_INSTALLED,
	OPT_ALLOW_DOWNGRADE,
	OPT_SECURITY_UPDATE,
	OPT_FIXES,
	OPT_ADVISORY,
	OPT_SEQUENCE,
	OPT_IMAGE_NAME,
	OPT_MANIFEST_OUT,
	OPT_BUNDLE_OUT,
	OPT_NO_KEYLIST,
	OPT_TYPE,
	OPT_JSON,
	OPT_KEYLIST_FLOOR,
	OPT_EXPECT_HEAD,
	OPT_COUNT,
	OPT_ARTIFACT,
	OPT_MANIFEST,
	/* encrypted images (cli_encrypt.c) */
	OPT_ENCRYPT_TO,
	OPT_RECIPIENT_NAME,
	OPT_CHUNK_SIZE,
	OPT_CIPHERTEXT_OUT,
	OPT_HOLDER_KEY,
	OPT_REMOVE_RECIPIENT,
	OPT_BASE,
	OPT_DELTA_CHUNK,
	OPT_DELTA_LEVEL,
	OPT_DELTA_MATCHER,
};

#define COMMON_OPTIONS                                                       \
	{"passphrase-env", required_argument, NULL, OPT_PASS_ENV},           \
		{"passphrase-file", required_argument, NULL, OPT_PASS_FILE}, \
		{"pin-env", required_argument, NULL, OPT_PIN_ENV},           \
		{"pin-file", required_argument, NULL, OPT_PIN_FILE},         \
		{"pkcs11-module", required_argument, NULL, OPT_MODULE},      \
		{"audit-log", required_argument, NULL, OPT_AUDIT},           \
		{"signer", required_argument, NULL, OPT_SIGNER},             \
		{"now", required_argument, NULL, OPT_NOW},                   \
	{                                                                    \
		"help", no_argument, NULL, OPT_HELP                          \
	}

#define COMMON_HELP                                                                            \
	"Common options:\n"                                                                    \
	"  --passphrase-env VAR   passphrase of encrypted key files (new and loaded)\n"        \
	"  --passphrase-file FILE the same, first line of FILE\n"                              \
	"  --pin-env VAR | --pin-file FILE   PIN for pkcs11: keys\n"                           \
	"  --pkcs11-module PATH   PKCS#11 module (default $OTA_PKCS11_MODULE, else p11-kit)\n" \
	"  --audit-log FILE       signing audit log (default $OTA_KEYS_AUDIT_LOG,\n"           \
	"                         else ./ota-keys-audit.log)\n"                                \
	"  --signer NAME          who signs, for the audit log (default $USER)\n"              \
	"  --now TIME             the current time (default: the clock)\n"                     \
	"TIME: 2026-01-31T12:00:00Z, 2026-01-31, @EPOCH, EPOCH, now, never, +90d, -1h\n"

struct common {
	const char *pass_env, *pass_file, *pin_env, *pin_file;
	const char *audit_log;
	const char *signer;
	uint64_t now;
	struct kr_secret pass, pin;
	struct kr_key_opts key_opts;
	struct kr_diag diag;
};

/* Repeated option values. */
struct list {
	const char *items[MAX_LIST_ARGS];
	size_t n;
};

/* The keys a signer must be among (a root list, or old and new for a rotation). */
struct signers {
	Fleetota__V1__PublicKey *const *a;
	size_t n_a;
	Fleetota__V1__PublicKey *const *b;
	size_t n_b;
	const char *what;
};

typedef enum ota_err (*verify_fn)(struct kr_verifier *v, const Fleetota__V1__Signed *env,
				  struct kr_diag *diag);

struct list_args {
	const char *sub;
	const char *out, *in, *prev, *rootlist;
	const char *version_arg, *issued_arg, *expires_arg, *threshold_arg;
	struct list keys, add, remove, expire, inputs;
	int finalize;
};

int cli_list_push(struct list *list, const char *value);

int cli_fail(enum ota_err err, const struct kr_diag *diag);

int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cli_common_option(struct common *c, int opt, const char *arg);

int cli_next_option(int argc, char **argv, const char *shortopts, const struct option *options,
		    struct common *c, const char *help, int *rc);

int cli_common_ready(struct common *c);

void cli_common_release(struct common *c);

int cli_parse_time(const struct common *c, const char *arg, uint64_t *ret);

int cli_parse_u64(const char *arg, uint64_t *ret);

int cli_key_listed(Fleetota__V1__PublicKey *const *keys, size_t n, const uint8_t *id);

enum ota_err cli_sign_envelope(struct common *c, Fleetota__V1__Signed *env, enum ota_obj_type type,
			       uint64_t version, const char *key_spec,
			       const struct signers *allowed);

enum ota_err cli_sign_all(struct common *c, Fleetota__V1__Signed *env, enum ota_obj_type type,
			  uint64_t version, const char *const *keys, size_t n,
			  const struct signers *allowed);

enum ota_err cli_load_verified(struct kr_verifier *v, const char *path, verify_fn verify,
			       struct kr_diag *diag, Fleetota__V1__Signed **ret_env);

/*
 * The KeyList a signing key must be in: KEYLIST read into ARENA and
 * verified against ROOTLIST (the trust anchor) when one is given, else only
 * parsed. Sets v->root and v->keylist; the envelopes go to ret_renv (NULL
 * without ROOTLIST) and ret_kenv when those are not NULL.
 */
enum ota_err cli_load_signer_keylist(struct kr_verifier *v, struct ota_arena *arena,
				     const char *rootlist, const char *keylist,
				     struct kr_diag *diag, Fleetota__V1__Signed **ret_renv,
				     Fleetota__V1__Signed **ret_kenv);

void cli_print_key_id(FILE *out, const uint8_t *id);

int cli_write_descriptor(const char *prefix, const Fleetota__V1__PublicKey *key,
			 struct kr_diag *diag);

/*
 * --out and --alg of the commands that make keys: 0 when OPT is one of
 * them, EXIT_USAGE for an unknown algorithm, -1 when OPT is another option.
 */
int cli_key_option(int opt, const char *arg, const char **out, enum ota_alg *alg);

enum ota_err cli_make_key(struct common *c, const char *spec, enum ota_alg alg, const char *prefix,
			  const char *label, uint64_t not_before, uint64_t not_after,
			  Fleetota__V1__KeyRole role, char **ret_spec,
			  Fleetota__V1__PublicKey **ret_pub);

/* keylist and rootlist (cmd_list.c): one command's state */
struct list_cmd {
	struct common c;
	struct list_args a;
	struct kr_verifier v;
	struct kr_arena arena; /* the previous list and the --add descriptors */
	struct kr_arena check; /* the list about to be signed, parsed */
	Fleetota__V1__Signed *env;
	uint8_t *body; /* new: the list built */
	size_t body_len;
};

/* What `new` takes besides keys: 0 where not given, issued = now. */
struct list_numbers {
	uint64_t version, threshold, issued, expires;
};

/*
 * The start of keylist and rootlist: L zeroed but for c.now, arguments
 * parsed, secrets read, the verifier's clock set and the arena ready.
 * Returns -1 to go on, else the command's exit status (0 after --help).
 */
int cli_list_start(int argc, char **argv, int is_root, struct list_cmd *l);

/* --version, --threshold, --issued and --expires: 0, or EXIT_USAGE. */
int cli_list_numbers(const struct list_cmd *l, struct list_numbers *ret);

/* The descriptors of --add, into l->arena. */
enum ota_err cli_read_adds(struct list_cmd *l, Fleetota__V1__PublicKey **adds);

/*
 * The envelope to sign: new's body (l->body) in a fresh envelope, or the
 * file of sign, or the partial files of merge, joined; and l->check ready.
 */
enum ota_err cli_list_envelope(struct list_cmd *l);

/* The end of keylist and rootlist: everything released; returns RC. */
int cli_list_end(struct list_cmd *l, int rc);

/* ---- encrypted images (cli_encrypt.c): options of sign and rewrap ---- */

#define ENCRYPT_OPTIONS                                                          \
	{"encrypt-to", required_argument, NULL, OPT_ENCRYPT_TO},                 \
		{"recipient-name", required_argument, NULL, OPT_RECIPIENT_NAME}, \
		{"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},         \
	{                                                                        \
		"ciphertext-out", required_argument, NULL, OPT_CIPHERTEXT_OUT    \
	}

struct cli_encrypt {
	struct list to; /* recipient public key files */
	struct list names; /* their labels, in order (may be fewer) */
	const char *ciphertext_out;
	uint32_t chunk_bytes; /* 0 = OTA_CRYPT_CHUNK_DEFAULT */
	char tmp_path
		[KR_MAX_PATH_BYTES]; /* a ciphertext written next to the bundle, removed at release */
	Fleetota__V1__Encryption *enc;
	EVP_PKEY *keys[OTA_MAX_RECIPIENTS];
	size_t n_keys;
};

/* An encryption option (0), a usage error (EXIT_USAGE), or -1: not one of them. */
int cli_encrypt_option(struct cli_encrypt *e, int opt, const char *arg);

/* What sign and rewrap share: the signing key, its KeyList, the outputs. */
struct cli_signing {
	const char *key, *keylist, *manifest_out, *bundle_out;
	struct cli_encrypt crypt;
};

/* --key, --keylist, --manifest-out, --bundle-out or an encryption option (0), a usage error (EXIT_USAGE), or -1. */
int cli_signing_option(struct cli_signing *s, int opt, const char *arg);

/*
 * Writes --bundle-out (parts, then size bytes of payload from byte offset,
 * which must hash to sha256), then --manifest-out (parts->manifest).
 */
enum ota_err cli_signing_write(const struct cli_signing *s, const struct kr_bundle_parts *parts,
			       const char *payload, uint64_t offset,
			       const uint8_t sha256[OTA_SHA256_BYTES], uint64_t size,
			       struct kr_diag *diag);

/*
 * Encrypts the image for the recipients (into --ciphertext-out, or a
 * temporary file next to bundle_out) and sets spec->encryption and what
 * the bundle must carry (the ciphertext, its digest and size).
 */
enum ota_err cli_encrypt_image(struct cli_encrypt *e, struct common *c, const char *image,
			       const uint8_t sha256[OTA_SHA256_BYTES], uint64_t size,
			       const char *bundle_out, struct kr_manifest_spec *spec,
			       const char **ret_payload, const uint8_t **ret_payload_sha,
			       uint64_t *ret_payload_size);

/*
 * A manifest may not be both a delta and encrypted (docs/decisions.md):
 * OTA_ERR_UNSUPPORTED.
 */
enum ota_err cli_encrypt_combination(bool encrypted, bool delta, struct kr_diag *diag);

/* Frees keys, the Encryption and a temporary ciphertext. */
void cli_encrypt_release(struct cli_encrypt *e);

/* Labels: names[i] when given, else the key file's base name. */
const char *cli_encrypt_name(const struct cli_encrypt *e, size_t i);

/* The commands: argv[0] is the command's name; each returns the exit status. */
int cli_cmd_root_init(int argc, char **argv);
int cli_cmd_op_new(int argc, char **argv);
int cli_cmd_root_new(int argc, char **argv);
int cli_cmd_timestamp_new(int argc, char **argv);
int cli_cmd_timestamp(int argc, char **argv);
int cli_cmd_keylist(int argc, char **argv);
int cli_cmd_rootlist(int argc, char **argv);
int cli_cmd_sign(int argc, char **argv);
int cli_cmd_verify(int argc, char **argv);
int cli_cmd_inspect(int argc, char **argv);
int cli_cmd_audit_verify(int argc, char **argv);
int cli_cmd_enc_key_new(int argc, char **argv);
int cli_cmd_rewrap(int argc, char **argv);
int cli_cmd_decrypt(int argc, char **argv);

#endif
