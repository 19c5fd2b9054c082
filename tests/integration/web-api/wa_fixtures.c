/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wa_fixtures DIR: signed objects for the REST API tests (tests/common
 * ota_fixture):
 *   rootlist1.bin        v1, self-signed by root r1 (threshold 1)
 *   rootlist2.bin        v2 {r1, r2}, signed by r1 and r2 (one chain step)
 *   rootlist-foreign.bin v2 signed only by an unknown root (OTA_ERR_ROOT_CHAIN)
 *   keylist1.bin         v1 {op A}, signed by r1
 *   keylist2.bin         v2 {op A, op B}, signed by r1
 *   keylist3-drop-a.bin  v3 {op B}, signed by r1: retires A
 *   keylist-foreign.bin  v3 signed by an unknown root (OTA_ERR_THRESHOLD)
 *   fw1.otab fw2.otab    bundles signed by A (1.1.0/2) and by B (1.2.0/3)
 *   fw-unknown-key.otab  signed by a key in no KeyList (OTA_ERR_KEY_UNKNOWN)
 *   fw-changed-image.otab one image byte flipped (OTA_ERR_HASH)
 *   fw-truncated.otab    the last image byte missing (OTA_ERR_SIZE)
 *   fw-bad-utf8.otab     signed by A, its version "1.5.0\xff\xfe" not UTF-8 (OTA_ERR_FORMAT)
 *   docs.otab            another valid bundle for the docs/api.md examples
 *   fw-sec.otab          a security fix signed by A: 9.1.0/7, fixes
 *                        version codes 1..2, advisory CVE-2026-7777,
 *                        issued an hour before the fixtures were made
 * wa_fixtures DIR BYTES also writes, for the upload session tests:
 *   big.otab             a bundle with a BYTES-byte image, signed by A
 *   chunks.otab          a 20 MiB image (three 8 MiB chunks), signed by A
 *   chunks-changed.otab  the same, one image byte flipped (OTA_ERR_HASH)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ota_fixture.h"

#define IMAGE_BYTES 65536u

static void write_env(const char *dir, const char *name, Fleetota__V1__Signed *env)
{
	char *p = ota_fx_path(dir, name);

	ota_fx_env_write(p, env);
	free(p);
	ota_fx_env_free(env);
}

/* What a security fix's manifest adds (NULL: a functional release). */
struct security_fix {
	uint64_t fixes_min, fixes_max;
	const char *advisory;
	uint64_t issued_at;
};

static struct ota_fx_buf bundle_of(EVP_PKEY *signer, const char *version, uint64_t code,
				   uint8_t seed, size_t image_len, const struct security_fix *fix)
{
	uint8_t *image = malloc(image_len);
	struct ota_fx_manifest m;
	struct ota_fx_bundle b = {0};
	Fleetota__V1__Signed *menv;
	struct ota_fx_buf out;

	if (image == NULL)
		abort();
	for (size_t i = 0; i < image_len; i++)
		image[i] = (uint8_t)((i * 131u + seed) ^ (i >> 7));
	ota_fx_manifest_init(&m, image, image_len);
	m.product = "fx-model";
	m.version = version;
	m.version_code = code;
	m.security_counter = code;
	m.sequence = code;
	m.image_name = "firmware.bin";
	m.signers = &signer;
	m.n_signers = 1;
	if (fix) {
		m.is_security_update = true;
		m.fixes_version_code_min = fix->fixes_min;
		m.fixes_version_code_max = fix->fixes_max;
		m.advisory = fix->advisory;
		m.issued_at = fix->issued_at;
	}
	menv = ota_fx_manifest(&m);
	b.manifest = menv;
	b.image = image;
	b.image_len = image_len;
	out = ota_fx_bundle_bytes(&b);
	ota_fx_env_free(menv);
	free(image);
	return out;
}

static struct ota_fx_buf bundle(EVP_PKEY *signer, const char *version, uint64_t code, uint8_t seed)
{
	return bundle_of(signer, version, code, seed, IMAGE_BYTES, NULL);
}

static void write_buf(const char *dir, const char *name, struct ota_fx_buf *buf)
{
	char *p = ota_fx_path(dir, name);

	ota_fx_write_file(p, buf->data, buf->len);
	free(p);
	ota_fx_buf_free(buf);
}

int main(int argc, char **argv)
{
	EVP_PKEY *r1, *r2, *rx, *a, *b, *x;
	struct ota_fx_opkey ops[2];
	struct ota_fx_buf buf;
	const char *dir;

	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: wa_fixtures DIR [BIG_IMAGE_BYTES]\n");
		return 2;
	}
	dir = argv[1];
	r1 = ota_fx_key_new(OTA_ALG_ED25519);
	r2 = ota_fx_key_new(OTA_ALG_ECDSA_P256_SHA256);
	rx = ota_fx_key_new(OTA_ALG_ED25519);
	a = ota_fx_key_new(OTA_ALG_ED25519);
	b = ota_fx_key_new(OTA_ALG_ED25519);
	x = ota_fx_key_new(OTA_ALG_ED25519);
	{
		EVP_PKEY *keys1[] = {r1}, *keys2[] = {r1, r2}, *signers2[] = {r1, r2};
		struct ota_fx_rootlist rl = {.version = 1,
					     .threshold = 1,
					     .keys = keys1,
					     .n_keys = 1,
					     .issued_at = 1700000000,
					     .signers = keys1,
					     .n_signers = 1};

		write_env(dir, "rootlist1.bin", ota_fx_rootlist(&rl));
		rl.version = 2;
		rl.keys = keys2;
		rl.n_keys = 2;
		rl.signers = signers2;
		rl.n_signers = 2;
		write_env(dir, "rootlist2.bin", ota_fx_rootlist(&rl));
		rl.keys = &rx;
		rl.n_keys = 1;
		rl.signers = &rx;
		rl.n_signers = 1;
		write_env(dir, "rootlist-foreign.bin", ota_fx_rootlist(&rl));
	}
	{
		struct ota_fx_keylist kl = {.version = 1,
					    .issued_at = 1700000000,
					    .rootlist_version = 1,
					    .keys = ops,
					    .n_keys = 1,
					    .signers = &r1,
					    .n_signers = 1};

		ops[0] = (struct ota_fx_opkey){a, 0, 0};
		ops[1] = (struct ota_fx_opkey){b, 0, 0};
		write_env(dir, "keylist1.bin", ota_fx_keylist(&kl));
		kl.version = 2;
		kl.n_keys = 2;
		write_env(dir, "keylist2.bin", ota_fx_keylist(&kl));
		kl.version = 3;
		kl.keys = &ops[1];
		kl.n_keys = 1;
		write_env(dir, "keylist3-drop-a.bin", ota_fx_keylist(&kl));
		kl.keys = ops;
		kl.n_keys = 2;
		kl.signers = &rx;
		write_env(dir, "keylist-foreign.bin", ota_fx_keylist(&kl));
	}
	buf = bundle(a, "1.1.0", 2, 1);
	write_buf(dir, "fw1.otab", &buf);
	buf = bundle(b, "1.2.0", 3, 2);
	write_buf(dir, "fw2.otab", &buf);
	buf = bundle(a, "2.0.0", 4, 3);
	write_buf(dir, "docs.otab", &buf);
	{
		struct security_fix fix = {.fixes_min = 1,
					   .fixes_max = 2,
					   .advisory = "CVE-2026-7777",
					   .issued_at = (uint64_t)time(NULL) - 3600};

		buf = bundle_of(a, "9.1.0", 7, 10, IMAGE_BYTES, &fix);
		write_buf(dir, "fw-sec.otab", &buf);
	}
	buf = bundle(x, "6.6.6", 66, 4);
	write_buf(dir, "fw-unknown-key.otab", &buf);
	buf = bundle(a, "1.3.0", 5, 5);
	ota_fx_bundle_corrupt(&buf, OTA_FX_PART_IMAGE, 1000);
	write_buf(dir, "fw-changed-image.otab", &buf);
	buf = bundle(a, "1.4.0", 6, 6);
	ota_fx_buf_truncate(&buf, 1);
	write_buf(dir, "fw-truncated.otab", &buf);
	buf = bundle(a, "1.5.0\xff\xfe", 7, 10);
	write_buf(dir, "fw-bad-utf8.otab", &buf);
	if (argc == 3) {
		size_t big = strtoul(argv[2], NULL, 10);

		buf = bundle_of(a, "3.0.0", 10, 7, big, NULL);
		write_buf(dir, "big.otab", &buf);
		buf = bundle_of(a, "2.5.0", 8, 8, 20u << 20, NULL);
		write_buf(dir, "chunks.otab", &buf);
		buf = bundle_of(a, "2.6.0", 9, 9, 20u << 20, NULL);
		ota_fx_bundle_corrupt(&buf, OTA_FX_PART_IMAGE, 17u << 20);
		write_buf(dir, "chunks-changed.otab", &buf);
	}
	EVP_PKEY_free(r1);
	EVP_PKEY_free(r2);
	EVP_PKEY_free(rx);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	EVP_PKEY_free(x);
	return 0;
}
