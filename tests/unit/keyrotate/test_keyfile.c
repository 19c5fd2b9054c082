/* SPDX-License-Identifier: Apache-2.0 */
#include <sys/stat.h>

#include "helpers.h"

static int same_public(EVP_PKEY *a, EVP_PKEY *b)
{
	return EVP_PKEY_eq(a, b) == 1;
}

static void write_and_load(enum ota_alg alg, const struct kr_secret *pass)
{
	char dir[64], path[128];
	struct stat st;
	EVP_PKEY *pkey = key_new(alg), *back = NULL;
	struct kr_key_opts opts = {.passphrase = pass};
	struct kr_diag diag = {{0}};
	tmpdir_make(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/k.key", dir);
	assert_int_equal(kr_key_write_private(path, pkey, pass, &diag), OTA_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(kr_key_load(path, &opts, &back, &diag), OTA_OK);
	assert_true(same_public(pkey, back));
	/* never replaces a key */
	assert_int_equal(kr_key_write_private(path, pkey, pass, &diag), OTA_ERR_STORAGE);
	EVP_PKEY_free(back);
	EVP_PKEY_free(pkey);
	tmpdir_remove(dir);
}

static void test_plain_keys(void **state)
{
	(void)state;
	write_and_load(OTA_ALG_ED25519, NULL);
	write_and_load(OTA_ALG_ECDSA_P256_SHA256, NULL);
}

static void test_encrypted_keys(void **state)
{
	char secret[] = "s3cret passphrase";
	struct kr_secret pass = {secret, sizeof(secret) - 1};
	(void)state;
	write_and_load(OTA_ALG_ED25519, &pass);
	write_and_load(OTA_ALG_ECDSA_P256_SHA256, &pass);
}

static void test_refusals(void **state)
{
	char dir[64], path[128], other[128];
	char secret[] = "right", wrong_text[] = "wrong";
	struct kr_secret pass = {secret, 5}, wrong = {wrong_text, 5};
	struct kr_key_opts with_pass = {.passphrase = &pass}, with_wrong = {.passphrase = &wrong};
	struct kr_key_opts none = {0};
	struct kr_diag diag = {{0}};
	EVP_PKEY *pkey = key_new(OTA_ALG_ED25519), *back = NULL;
	(void)state;
	tmpdir_make(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/enc.key", dir);
	assert_int_equal(kr_key_write_private(path, pkey, &pass, &diag), OTA_OK);
	assert_int_equal(kr_key_load(path, &none, &back, &diag), OTA_ERR_INVALID_ARG);
	assert_non_null(strstr(diag.msg, "encrypted"));
	assert_int_equal(kr_key_load(path, &with_wrong, &back, &diag), OTA_ERR_FORMAT);
	assert_non_null(strstr(diag.msg, "wrong passphrase"));
	assert_null(back);
	assert_int_equal(kr_key_load(path, &with_pass, &back, &diag), OTA_OK);
	EVP_PKEY_free(back);
	back = NULL;

	/* group/world access is refused, like ssh does */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(kr_key_load(path, &with_pass, &back, &diag), OTA_ERR_STORAGE);
	assert_non_null(strstr(diag.msg, "too open"));

	snprintf(other, sizeof(other), "%s/missing.key", dir);
	assert_int_equal(kr_key_load(other, &none, &back, &diag), OTA_ERR_STORAGE);

	/* not PEM; a PEM that is not PKCS#8; an RSA key */
	snprintf(other, sizeof(other), "%s/junk.key", dir);
	write_bytes(other, "junk\n", 5);
	chmod(other, 0600);
	assert_int_equal(kr_key_load(other, &none, &back, &diag), OTA_ERR_FORMAT);
	static const char cert_pem[] =
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
	write_bytes(other, cert_pem, sizeof(cert_pem) - 1);
	assert_int_equal(kr_key_load(other, &none, &back, &diag), OTA_ERR_FORMAT);
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	assert_non_null(rsa);
	snprintf(other, sizeof(other), "%s/rsa.key", dir);
	assert_int_equal(kr_key_write_private(other, rsa, NULL, &diag), OTA_OK);
	assert_int_equal(kr_key_load(other, &none, &back, &diag), OTA_ERR_FORMAT);
	assert_non_null(strstr(diag.msg, "neither Ed25519 nor ECDSA P-256"));
	assert_null(back);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(pkey);
	tmpdir_remove(dir);
}

static void test_secrets(void **state)
{
	char dir[64], path[128];
	struct kr_secret s = {0};
	struct kr_diag diag;
	(void)state;
	tmpdir_make(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/pass", dir);
	write_bytes(path, "line one\nline two\n", 18);
	assert_int_equal(kr_secret_from_file(path, &s, &diag), OTA_OK);
	assert_string_equal(s.buf, "line one");
	assert_int_equal(s.len, 8);
	kr_secret_wipe(&s);
	assert_null(s.buf);
	write_bytes(path, "\n", 1);
	assert_int_equal(kr_secret_from_file(path, &s, &diag), OTA_ERR_INVALID_ARG);
	setenv("KR_TEST_SECRET", "from-env", 1);
	assert_int_equal(kr_secret_from_env("KR_TEST_SECRET", &s, &diag), OTA_OK);
	assert_string_equal(s.buf, "from-env");
	kr_secret_wipe(&s);
	unsetenv("KR_TEST_SECRET");
	assert_int_equal(kr_secret_from_env("KR_TEST_SECRET", &s, &diag), OTA_ERR_INVALID_ARG);
	kr_secret_wipe(NULL);
	tmpdir_remove(dir);
}

static void test_alg_names(void **state)
{
	enum ota_alg alg;
	(void)state;
	assert_int_equal(kr_alg_parse("ed25519", &alg), OTA_OK);
	assert_int_equal(alg, OTA_ALG_ED25519);
	assert_int_equal(kr_alg_parse("p256", &alg), OTA_OK);
	assert_int_equal(alg, OTA_ALG_ECDSA_P256_SHA256);
	assert_int_equal(kr_alg_parse("rsa", &alg), OTA_ERR_INVALID_ARG);
	assert_string_equal(kr_alg_name(OTA_ALG_ED25519), "ed25519");
	assert_string_equal(kr_alg_name(99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_keys), cmocka_unit_test(test_encrypted_keys),
		cmocka_unit_test(test_refusals),   cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_alg_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
