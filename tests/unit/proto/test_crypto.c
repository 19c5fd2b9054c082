/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OpenSSL backend, and the independence check: signatures made by the
 * `openssl pkeyutl` command line over the documented signing input verify
 * with the library, and the library's signatures verify with the command
 * line, so the format is not only self-consistent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>

#include "fleetota/limits.h"
#include "proto_test_util.h"

static char workdir[] = "/tmp/ota-proto-crypto-XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(workdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_sha256_known_answer(void **state)
{
	(void)state;
	static const uint8_t abc_digest[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
					       0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
					       0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
					       0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	uint8_t out[32];
	struct ota_sha256_ctx ctx = {0};
	assert_int_equal(ota_sha256("abc", 3, out), OTA_OK);
	assert_memory_equal(out, abc_digest, 32);
	/* streamed in pieces, same digest */
	assert_int_equal(ota_sha256_init(&ctx), OTA_OK);
	assert_int_equal(ota_sha256_update(&ctx, "a", 1), OTA_OK);
	assert_int_equal(ota_sha256_update(&ctx, "", 0), OTA_OK);
	assert_int_equal(ota_sha256_update(&ctx, "bc", 2), OTA_OK);
	assert_int_equal(ota_sha256_final(&ctx, out), OTA_OK);
	assert_memory_equal(out, abc_digest, 32);
	/* a finished context refuses more work; abort is safe twice */
	assert_int_equal(ota_sha256_update(&ctx, "x", 1), OTA_ERR_INVALID_ARG);
	ota_sha256_abort(&ctx);
	ota_sha256_abort(&ctx);
	ota_sha256_abort(NULL);
}

static void test_verify_rejects_wrong_key_kinds(void **state)
{
	(void)state;
	EVP_PKEY *ed = ptu_keygen(OTA_ALG_ED25519);
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES + 8], id[32], sig[OTA_MAX_SIG_BYTES];
	size_t spki_len = 0, sig_len = 0;
	enum ota_alg alg;
	uint8_t body[] = "body";
	uint8_t prefix[OTA_MAX_SIGNING_PREFIX];
	size_t prefix_len = ota_signing_prefix(OTA_OBJ_MANIFEST, prefix, sizeof(prefix));

	assert_int_equal(ota_pkey_public(ed, &alg, spki, &spki_len, id), OTA_OK);
	assert_int_equal(ota_sign(OTA_OBJ_MANIFEST, body, 4, ed, &alg, id, sig, &sig_len), OTA_OK);
	assert_int_equal(sig_len, 64);
	assert_int_equal(ota_crypto_verify(OTA_ALG_ED25519, spki, spki_len, prefix, prefix_len,
					   body, 4, sig, sig_len),
			 OTA_OK);
	/* claimed as the other algorithm */
	assert_int_equal(ota_crypto_verify(OTA_ALG_ECDSA_P256_SHA256, spki, spki_len, prefix,
					   prefix_len, body, 4, sig, sig_len),
			 OTA_ERR_FORMAT);
	/* trailing bytes after the key DER */
	spki[spki_len] = 0;
	assert_int_equal(ota_crypto_key_check(OTA_ALG_ED25519, spki, spki_len + 1), OTA_ERR_FORMAT);
	assert_int_equal(ota_crypto_key_check(OTA_ALG_ED25519, spki, spki_len - 1), OTA_ERR_FORMAT);
	assert_int_equal(ota_crypto_key_check((enum ota_alg)7, spki, spki_len), OTA_ERR_FORMAT);
	/* empty or oversized signatures */
	assert_int_equal(ota_crypto_verify(OTA_ALG_ED25519, spki, spki_len, prefix, prefix_len,
					   body, 4, sig, 0),
			 OTA_ERR_SIGNATURE);
	assert_int_equal(ota_crypto_verify(OTA_ALG_ED25519, spki, spki_len, prefix, prefix_len,
					   body, 4, sig, 63),
			 OTA_ERR_SIGNATURE);
	EVP_PKEY_free(ed);
}

/* More keys than the decoded-key cache holds, in rounds: every key keeps
 * verifying its own signatures and never another key's. */
static void test_key_cache_never_confuses_keys(void **state)
{
	(void)state;
	enum { N_KEYS = 40 };
	EVP_PKEY *keys[N_KEYS];
	uint8_t spki[N_KEYS][OTA_MAX_PUBKEY_DER_BYTES], sig[N_KEYS][OTA_MAX_SIG_BYTES], id[32];
	size_t spki_len[N_KEYS], sig_len[N_KEYS];
	enum ota_alg alg[N_KEYS];
	uint8_t body[] = "cache";
	uint8_t prefix[OTA_MAX_SIGNING_PREFIX];
	size_t prefix_len = ota_signing_prefix(OTA_OBJ_ROOT, prefix, sizeof(prefix));

	for (int i = 0; i < N_KEYS; i++) {
		keys[i] = ptu_keygen(i % 3 ? OTA_ALG_ED25519 : OTA_ALG_ECDSA_P256_SHA256);
		assert_int_equal(ota_pkey_public(keys[i], &alg[i], spki[i], &spki_len[i], id),
				 OTA_OK);
		assert_int_equal(ota_sign(OTA_OBJ_ROOT, body, sizeof(body), keys[i], &alg[i], id,
					  sig[i], &sig_len[i]),
				 OTA_OK);
	}
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N_KEYS; i++) {
			int other = (i + 1 + round) % N_KEYS;
			assert_int_equal(ota_crypto_verify(alg[i], spki[i], spki_len[i], prefix,
							   prefix_len, body, sizeof(body), sig[i],
							   sig_len[i]),
					 OTA_OK);
			enum ota_err err =
				ota_crypto_verify(alg[i], spki[i], spki_len[i], prefix, prefix_len,
						  body, sizeof(body), sig[other], sig_len[other]);
			assert_int_equal(err, OTA_ERR_SIGNATURE);
		}
	}
	for (int i = 0; i < N_KEYS; i++)
		EVP_PKEY_free(keys[i]);
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t len = fread(buf, 1, cap, f);
	fclose(f);
	return len;
}

static int run(const char *cmd)
{
	int rc = system(cmd);
	return rc;
}

/* Both directions for one algorithm; keys made by the command line. */
static void independence(const char *genpkey_args, const char *digest_args, enum ota_alg want)
{
	char key_path[512], pub_path[512], msg_path[512], sig_path[512], cmd[2048];
	snprintf(key_path, sizeof(key_path), "%s/key.pem", workdir);
	snprintf(pub_path, sizeof(pub_path), "%s/pub.pem", workdir);
	snprintf(msg_path, sizeof(msg_path), "%s/input.bin", workdir);
	snprintf(sig_path, sizeof(sig_path), "%s/sig.bin", workdir);

	snprintf(cmd, sizeof(cmd), "openssl genpkey %s -out '%s' 2>/dev/null", genpkey_args,
		 key_path);
	assert_int_equal(run(cmd), 0);
	snprintf(cmd, sizeof(cmd), "openssl pkey -in '%s' -pubout -out '%s'", key_path, pub_path);
	assert_int_equal(run(cmd), 0);

	FILE *f = fopen(key_path, "r");
	assert_non_null(f);
	EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(pkey);
	uint8_t spki[OTA_MAX_PUBKEY_DER_BYTES], id[32];
	size_t spki_len = 0;
	enum ota_alg alg;
	assert_int_equal(ota_pkey_public(pkey, &alg, spki, &spki_len, id), OTA_OK);
	assert_int_equal(alg, want);

	/* the documented signing input, built by hand: "fleetota/v1/manifest\0" body */
	static const uint8_t body[] = {0x08, 0x01, 0x12, 0x02, 'm', '1'};
	static const char prefix[] = "fleetota/v1/manifest";
	uint8_t input[64];
	memcpy(input, prefix, sizeof(prefix)); /* includes the NUL */
	memcpy(input + sizeof(prefix), body, sizeof(body));
	write_file(msg_path, input, sizeof(prefix) + sizeof(body));

	/* command line signs, library verifies */
	snprintf(cmd, sizeof(cmd), "openssl pkeyutl -sign -rawin %s -inkey '%s' -in '%s' -out '%s'",
		 digest_args, key_path, msg_path, sig_path);
	assert_int_equal(run(cmd), 0);
	uint8_t sig[OTA_MAX_SIG_BYTES * 2];
	size_t sig_len = read_file(sig_path, sig, sizeof(sig));
	assert_true(sig_len > 0 && sig_len <= OTA_MAX_SIG_BYTES);
	uint8_t lib_prefix[OTA_MAX_SIGNING_PREFIX];
	size_t lib_prefix_len =
		ota_signing_prefix(OTA_OBJ_MANIFEST, lib_prefix, sizeof(lib_prefix));
	assert_int_equal(ota_crypto_verify(alg, spki, spki_len, lib_prefix, lib_prefix_len, body,
					   sizeof(body), sig, sig_len),
			 OTA_OK);
	/* and not as another type */
	lib_prefix_len = ota_signing_prefix(OTA_OBJ_KEYLIST, lib_prefix, sizeof(lib_prefix));
	assert_int_equal(ota_crypto_verify(alg, spki, spki_len, lib_prefix, lib_prefix_len, body,
					   sizeof(body), sig, sig_len),
			 OTA_ERR_SIGNATURE);

	/* library signs, command line verifies */
	uint8_t lib_sig[OTA_MAX_SIG_BYTES];
	size_t lib_sig_len = 0;
	assert_int_equal(ota_sign(OTA_OBJ_MANIFEST, body, sizeof(body), pkey, &alg, id, lib_sig,
				  &lib_sig_len),
			 OTA_OK);
	write_file(sig_path, lib_sig, lib_sig_len);
	snprintf(cmd, sizeof(cmd),
		 "openssl pkeyutl -verify -rawin %s -pubin -inkey '%s' -in '%s' -sigfile '%s' "
		 ">/dev/null",
		 digest_args, pub_path, msg_path, sig_path);
	assert_int_equal(run(cmd), 0);
	/* a flipped bit is refused by the command line too: the check can fail */
	lib_sig[lib_sig_len / 2] ^= 0x01;
	write_file(sig_path, lib_sig, lib_sig_len);
	assert_int_not_equal(run(cmd), 0);
	EVP_PKEY_free(pkey);
}

static void test_independent_ed25519(void **state)
{
	(void)state;
	independence("-algorithm ed25519", "", OTA_ALG_ED25519);
}

static void test_independent_ecdsa_p256(void **state)
{
	(void)state;
	independence("-algorithm EC -pkeyopt ec_paramgen_curve:P-256", "-digest sha256",
		     OTA_ALG_ECDSA_P256_SHA256);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_known_answer),
		cmocka_unit_test(test_verify_rejects_wrong_key_kinds),
		cmocka_unit_test(test_key_cache_never_confuses_keys),
		cmocka_unit_test(test_independent_ed25519),
		cmocka_unit_test(test_independent_ecdsa_p256),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
