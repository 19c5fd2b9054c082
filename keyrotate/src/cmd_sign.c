/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys sign: firmware image -> signed manifest and .otab bundle. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "ota_delta_make.h"

static const char help_sign[] =
	"Usage: ota-keys sign --key OPKEY --keylist KEYLIST --image FILE --product MODEL\n"
	"                     --version SEMVER --version-code N [options]\n"
	"                     [--manifest-out FILE] [--bundle-out FILE.otab]\n"
	"Signs a firmware image into a Signed manifest and/or an .otab bundle. The image\n"
	"is streamed (constant memory) and hashed again while the bundle is written.\n"
	"The operational key must be in the KeyList (OTA_ERR_KEY_UNKNOWN) and valid at\n"
	"--issued (OTA_ERR_KEY_EXPIRED).\n"
	"  --hw-rev REV           hardware revision (repeat; none = any revision)\n"
	"  --security-counter N   anti-rollback counter (default 0)\n"
	"  --min-installed N      version_code the device must already run (default 0)\n"
	"  --allow-downgrade      allow installing below the running version\n"
	"  --security-update      mark as a security update\n"
	"  --fixes MIN-MAX        with --security-update: the version codes it fixes\n"
	"                         (inclusive; MAX below --version-code)\n"
	"  --advisory TEXT        with --security-update: advisory id(s), e.g. CVE-2026-1234\n"
	"  --issued TIME          default now; --expires TIME default never\n"
	"  --sequence N           default: --issued in seconds\n"
	"  --image-name NAME      default: the image's file name\n"
	"  --rootlist ROOTLIST    verify the KeyList against it and carry it in the bundle\n"
	"  --rootlist-chain FILE  intermediate RootLists for the bundle, oldest first\n"
	"  --no-keylist           do not carry the KeyList in the bundle\n"
	"  --base FILE            a delta bundle: the payload is the delta from FILE (the\n"
	"                         image devices must run) to --image; the manifest binds\n"
	"                         both images' hashes and the delta's (docs/keys.md)\n"
	"  --delta-chunk N        image bytes per delta frame, the device's RAM (default\n"
	"                         1048576, at most 1048576)\n"
	"  --delta-level N        zstd level of the delta (default 19)\n"
	"  --delta-matcher M      auto (default), zstd or index: who finds the delta's\n"
	"                         matches; auto is index for bases of 16 MiB and more\n"
	"  --encrypt-to KEY.pub   encrypt the image for this X25519 recipient key (repeat:\n"
	"                         a product line's key, device keys; ota-keys enc-key-new);\n"
	"                         the bundle then carries the ciphertext\n"
	"  --recipient-name NAME  label of the matching --encrypt-to entry (default: its file)\n"
	"  --chunk-size N         plaintext bytes per encrypted chunk (default 65536)\n"
	"  --ciphertext-out FILE  also keep the ciphertext (needed without --bundle-out)\n";

/* "MIN-MAX": two version codes; the order and the flag are release.c's to check. */
static int parse_fixes(const char *arg, struct kr_manifest_spec *spec)
{
	char min_text[KR_U64_TEXT_BYTES];
	const char *dash = strchr(arg, '-');
	size_t len = dash ? (size_t)(dash - arg) : 0;

	if (!dash || len == 0 || len >= sizeof(min_text))
		return cli_usage_error("--fixes wants MIN-MAX version codes, not %s", arg);
	memcpy(min_text, arg, len);
	min_text[len] = '\0';
	if (cli_parse_u64(min_text, &spec->fixes_version_code_min) ||
	    cli_parse_u64(dash + 1, &spec->fixes_version_code_max))
		return EXIT_USAGE;
	return 0;
}

int cli_cmd_sign(int argc, char **argv)
{
	static const struct option options[] = {
		COMMON_OPTIONS,
		{"key", required_argument, NULL, OPT_KEY},
		{"keylist", required_argument, NULL, OPT_KEYLIST},
		{"rootlist", required_argument, NULL, OPT_ROOTLIST},
		{"rootlist-chain", required_argument, NULL, OPT_ROOTLIST_CHAIN},
		{"image", required_argument, NULL, OPT_IMAGE},
		{"product", required_argument, NULL, OPT_PRODUCT},
		{"model", required_argument, NULL, OPT_PRODUCT},
		{"hw-rev", required_argument, NULL, OPT_HW_REV},
		{"version", required_argument, NULL, OPT_VERSION},
		{"version-code", required_argument, NULL, OPT_VERSION_CODE},
		{"security-counter", required_argument, NULL, OPT_SECURITY_COUNTER},
		{"min-installed", required_argument, NULL, OPT_MIN_INSTALLED},
		{"allow-downgrade", no_argument, NULL, OPT_ALLOW_DOWNGRADE},
		{"security-update", no_argument, NULL, OPT_SECURITY_UPDATE},
		{"fixes", required_argument, NULL, OPT_FIXES},
		{"advisory", required_argument, NULL, OPT_ADVISORY},
		{"issued", required_argument, NULL, OPT_ISSUED},
		{"expires", required_argument, NULL, OPT_EXPIRES},
		{"sequence", required_argument, NULL, OPT_SEQUENCE},
		{"image-name", required_argument, NULL, OPT_IMAGE_NAME},
		{"manifest-out", required_argument, NULL, OPT_MANIFEST_OUT},
		{"bundle-out", required_argument, NULL, OPT_BUNDLE_OUT},
		{"no-keylist", no_argument, NULL, OPT_NO_KEYLIST},
		{"base", required_argument, NULL, OPT_BASE},
		{"delta-chunk", required_argument, NULL, OPT_DELTA_CHUNK},
		{"delta-level", required_argument, NULL, OPT_DELTA_LEVEL},
		{"delta-matcher", required_argument, NULL, OPT_DELTA_MATCHER},
		ENCRYPT_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct common c = {.now = (uint64_t)time(NULL)};
	struct kr_manifest_spec spec = {0};
	struct list hw = {0}, chain = {0};
	struct cli_signing signing = {0};
	const char *rootlist = NULL, *image = NULL, *issued_arg = "now";
	const char *expires_arg = "never", *version_code_arg = NULL, *sequence_arg = NULL;
	int no_keylist = 0, rc, opt;
	struct kr_verifier v;
	struct ota_arena *arena = NULL;
	Fleetota__V1__Signed *kenv = NULL, *renv = NULL, *env = NULL;
	Fleetota__V1__Signed *chain_envs[OTA_MAX_ROOT_CHAIN];
	uint8_t *body = NULL, sha[OTA_SHA256_BYTES];
	size_t body_len = 0;
	uint64_t size = 0;
	char *image_copy = NULL;
	enum ota_err err = OTA_OK;
	const char *base = NULL;
	uint64_t delta_chunk = OTA_DELTA_DEFAULT_CHUNK_BYTES, delta_level = OTA_DELTA_DEFAULT_LEVEL;
	Fleetota__V1__DeltaInfo delta;
	struct kr_delta_hashes delta_hashes;
	char delta_path[KR_MAX_PATH_BYTES] = "";
	int delta_matcher = OTA_DELTA_MATCH_AUTO;

	kr_verifier_init(&v, 0);
	while ((opt = cli_next_option(argc, argv, "", options, &c, help_sign, &rc)) > 0) {
		int bad = 0;
		switch (opt) {
		case OPT_ROOTLIST:
			rootlist = optarg;
			break;
		case OPT_ROOTLIST_CHAIN:
			bad = cli_list_push(&chain, optarg);
			break;
		case OPT_IMAGE:
			image = optarg;
			break;
		case OPT_PRODUCT:
			spec.product = optarg;
			break;
		case OPT_HW_REV:
			bad = cli_list_push(&hw, optarg);
			break;
		case OPT_VERSION:
			spec.version = optarg;
			break;
		case OPT_VERSION_CODE:
			version_code_arg = optarg;
			break;
		case OPT_SECURITY_COUNTER:
			bad = cli_parse_u64(optarg, &spec.security_counter);
			break;
		case OPT_MIN_INSTALLED:
			bad = cli_parse_u64(optarg, &spec.min_installed_version);
			break;
		case OPT_ALLOW_DOWNGRADE:
			spec.allow_downgrade = 1;
			break;
		case OPT_SECURITY_UPDATE:
			spec.is_security_update = 1;
			break;
		case OPT_FIXES:
			bad = parse_fixes(optarg, &spec);
			break;
		case OPT_ADVISORY:
			spec.advisory = optarg;
			break;
		case OPT_ISSUED:
			issued_arg = optarg;
			break;
		case OPT_EXPIRES:
			expires_arg = optarg;
			break;
		case OPT_SEQUENCE:
			sequence_arg = optarg;
			break;
		case OPT_IMAGE_NAME:
			spec.image_name = optarg;
			break;
		case OPT_NO_KEYLIST:
			no_keylist = 1;
			break;
		case OPT_BASE:
			base = optarg;
			break;
		case OPT_DELTA_CHUNK:
			bad = cli_parse_u64(optarg, &delta_chunk);
			break;
		case OPT_DELTA_LEVEL:
			bad = cli_parse_u64(optarg, &delta_level);
			break;
		case OPT_DELTA_MATCHER:
			delta_matcher = ota_delta_matcher_parse(optarg);
			if (delta_matcher < 0)
				bad = cli_usage_error("--delta-matcher auto, zstd or index, not %s",
						      optarg);
			break;
		default:
			bad = cli_signing_option(&signing, opt, optarg);
			break;
		}
		if (bad)
			return EXIT_USAGE;
	}
	if (opt < 0)
		return rc;
	if (optind != argc || !signing.key || !signing.keylist || !image || !version_code_arg)
		return cli_usage_error("sign needs --key, --keylist, --image and --version-code%s",
				       "");
	if (!signing.manifest_out && !signing.bundle_out)
		return cli_usage_error("give --manifest-out and/or --bundle-out%s", "");
	if (base &&
	    (!signing.bundle_out || delta_chunk == 0 || delta_chunk > OTA_DELTA_MAX_CHUNK_BYTES ||
	     delta_level < 1 || delta_level > 22))
		return cli_usage_error("--base needs --bundle-out, --delta-chunk 1..1048576 and "
				       "--delta-level 1..22%s",
				       "");
	if (signing.crypt.to.n && !signing.bundle_out && !signing.crypt.ciphertext_out)
		return cli_usage_error(
			"an encrypted image needs --bundle-out or --ciphertext-out%s", "");
	if (chain.n > OTA_MAX_ROOT_CHAIN)
		return cli_usage_error("too many --rootlist-chain files%s", "");
	if (cli_parse_u64(version_code_arg, &spec.version_code) ||
	    cli_parse_time(&c, issued_arg, &spec.issued_at) ||
	    cli_parse_time(&c, expires_arg, &spec.expires_at) ||
	    (sequence_arg && cli_parse_u64(sequence_arg, &spec.sequence)))
		return EXIT_USAGE;
	if (!sequence_arg)
		spec.sequence = spec.issued_at;
	spec.hw_revisions = hw.items;
	spec.n_hw_revisions = hw.n;
	if (!spec.image_name) {
		image_copy = strdup(image);
		if (!image_copy)
			return cli_fail(OTA_ERR_NOMEM, NULL);
		spec.image_name = basename(image_copy);
	}
	if ((rc = cli_common_ready(&c)) != 0)
		goto out;
	/* before the delta is made or the image encrypted */
	if ((err = cli_encrypt_combination(signing.crypt.to.n > 0, base != NULL, &c.diag)) !=
	    OTA_OK)
		goto cli_fail;
	v.now = c.now;
	if ((err = kr_verifier_arena(&v, KR_HEADER_ARENA_BYTES, &arena)) != OTA_OK)
		goto cli_fail;
	for (size_t i = 0; i < chain.n; i++) {
		if ((err = kr_envelope_read(chain.items[i], arena, &chain_envs[i], &c.diag)) !=
		    OTA_OK)
			goto cli_fail;
	}
	if ((err = cli_load_signer_keylist(&v, arena, rootlist, signing.keylist, &c.diag, &renv,
					   &kenv)) != OTA_OK)
		goto cli_fail;
	/* refuse before hashing gigabytes: the key must be listed and valid */
	EVP_PKEY *pkey = NULL;
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES], id[OTA_KEY_ID_BYTES];
	size_t spki_len;
	enum ota_alg alg;
	if ((err = kr_key_load(signing.key, &c.key_opts, &pkey, &c.diag)) != OTA_OK)
		goto cli_fail;
	err = ota_pkey_public(pkey, &alg, spki, &spki_len, id);
	EVP_PKEY_free(pkey);
	if (err != OTA_OK)
		goto cli_fail;
	const Fleetota__V1__PublicKey *op = ota_keylist_find(v.keylist, id, sizeof(id));
	if (!op) {
		err = kr_fail(&c.diag, OTA_ERR_KEY_UNKNOWN,
			      "the signing key is not in KeyList v%llu",
			      (unsigned long long)v.keylist->version);
		goto cli_fail;
	}
	if (op->role != FLEETOTA__V1__KEY_ROLE__KEY_ROLE_OPERATIONAL) {
		err = kr_fail(
			&c.diag, OTA_ERR_KEY_ROLE,
			"\"%s\" is the timestamp key of KeyList v%llu: it signs timestamps only",
			op->name, (unsigned long long)v.keylist->version);
		goto cli_fail;
	}
	if ((op->not_before && spec.issued_at < op->not_before) ||
	    (op->not_after && spec.issued_at > op->not_after)) {
		char a[KR_TIME_TEXT_BYTES], b[KR_TIME_TEXT_BYTES], t[KR_TIME_TEXT_BYTES];
		err = kr_fail(&c.diag, OTA_ERR_KEY_EXPIRED,
			      "operational key \"%s\" is valid %s .. %s, not at issued_at %s",
			      op->name, kr_time_format(op->not_before, a, sizeof(a)),
			      kr_time_format(op->not_after, b, sizeof(b)),
			      kr_time_format(spec.issued_at, t, sizeof(t)));
		goto cli_fail;
	}
	if (base) {
		/* the payload is the delta: the bundle streams it instead of the image */
		if (snprintf(delta_path, sizeof(delta_path), "%s.delta.tmp", signing.bundle_out) >=
		    (int)sizeof(delta_path)) {
			err = kr_fail(&c.diag, OTA_ERR_INVALID_ARG, "path too long");
			goto cli_fail;
		}
		if ((err = kr_delta_build(base, image, delta_path, (uint32_t)delta_chunk,
					  (int)delta_level, delta_matcher, &delta, &delta_hashes,
					  &c.diag)) != OTA_OK)
			goto cli_fail;
		spec.delta = &delta;
	}
	/* what the bundle carries: the image, its delta, or its ciphertext */
	const char *payload = image;
	const uint8_t *payload_sha = sha;
	uint64_t payload_size = 0;
	if ((err = kr_image_hash(image, sha, &size, &c.diag)) != OTA_OK)
		goto cli_fail;
	payload_size = size;
	if (base) {
		payload = delta_path;
		payload_sha = delta_hashes.sha256;
		payload_size = delta.size;
	}
	if (signing.crypt.to.n &&
	    (err = cli_encrypt_image(&signing.crypt, &c, image, sha, size, signing.bundle_out,
				     &spec, &payload, &payload_sha, &payload_size)) != OTA_OK)
		goto cli_fail;
	if ((err = kr_manifest_build(&spec, sha, size, &body, &body_len, &c.diag)) != OTA_OK ||
	    (err = kr_envelope_new(body, body_len, &env)) != OTA_OK ||
	    (err = cli_sign_envelope(&c, env, OTA_OBJ_MANIFEST, spec.version_code, signing.key,
				     NULL)) != OTA_OK)
		goto cli_fail;
	/* the device's own check, before anything is written */
	Fleetota__V1__Manifest *m = NULL;
	struct ota_arena *marena;
	if ((err = kr_verifier_arena(&v, OTA_DECODE_ARENA_BYTES, &marena)) != OTA_OK)
		goto cli_fail;
	uint64_t saved_now = v.now;
	v.now = 0; /* a manifest issued in the future is still well-signed */
	err = kr_verify_manifest(&v, env, marena, &m, &c.diag);
	v.now = saved_now;
	if (err == OTA_OK)
		err = cli_encrypt_combination(m->encryption != NULL, m->delta != NULL, &c.diag);
	if (err != OTA_OK)
		goto cli_fail;
	struct kr_bundle_parts parts = {
		.manifest = env,
		.keylist = no_keylist ? NULL : kenv,
		.rootlist = renv,
		.rootlist_chain = (const Fleetota__V1__Signed *const *)chain_envs,
		.n_rootlist_chain = chain.n,
	};
	if ((err = cli_signing_write(&signing, &parts, payload, 0, payload_sha, payload_size,
				     &c.diag)) != OTA_OK)
		goto cli_fail;
	char sha_hex[2 * OTA_SHA256_BYTES + 1];
	ota_hex_encode(sha, sizeof(sha), sha_hex);
	printf("manifest %s %s (code %llu, counter %llu) image %llu bytes sha256 %s\n",
	       spec.product, spec.version, (unsigned long long)spec.version_code,
	       (unsigned long long)spec.security_counter, (unsigned long long)size, sha_hex);
	if (base)
		printf("delta %llu bytes (%.1f %% of the image) from base of %llu bytes\n",
		       (unsigned long long)delta.size, 100.0 * (double)delta.size / (double)size,
		       (unsigned long long)delta.base_size);
	rc = 0;
	goto out;
cli_fail:
	rc = cli_fail(err, &c.diag);
out:
	if (env)
		fleetota__v1__signed__free_unpacked(env, NULL);
	if (delta_path[0])
		unlink(delta_path);
	free(body);
	free(image_copy);
	cli_encrypt_release(&signing.crypt);
	kr_verifier_release(&v);
	cli_common_release(&c);
	return rc;
}
