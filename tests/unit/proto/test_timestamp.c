/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signed freshness in libotaproto (proto/src/timestamp.c, trust.c): the
 * Timestamp's shape (expiry required and at most 7 days), the "timestamp"
 * signing type, and the key roles: only a timestamp-role key of the
 * KeyList signs a Timestamp, never a manifest; a RootList lists no role; a
 * KeyList's timestamp key is never a root key; an unknown role is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleetota/trust.h"
#include "ota_fixture.h"

#define ISSUED 1767225600u

struct fx {
	EVP_PKEY *root, *op, *ts;
	Fleetota__V1__Signed *root_env;
	uint8_t mem[OTA_DECODE_ARENA_BYTES * 4];
	struct ota_arena arena;
	Fleetota__V1__RootList *rootlist;
	Fleetota__V1__KeyList *kl;
};

static Fleetota__V1__Signed *keylist_env(struct fx *f, EVP_PKEY *ts_key, int ts_role)
{
	struct ota_fx_opkey keys[2] = {{.key = f->op},
				       {.key = ts_key, .role = (Fleetota__V1__KeyRole)ts_role}};
	struct ota_fx_keylist spec = {.version = 2,
				      .issued_at = ISSUED - 10,
				      .keys = keys,
				      .n_keys = 2,
				      .signers = &f->root,
				      .n_signers = 1};
	return ota_fx_keylist(&spec);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->root = ota_fx_key_new(OTA_ALG_ED25519);
	f->op = ota_fx_key_new(OTA_ALG_ECDSA_P256_SHA256);
	f->ts = ota_fx_key_new(OTA_ALG_ED25519);
	struct ota_fx_rootlist rs = {.version = 1,
				     .threshold = 1,
				     .keys = &f->root,
				     .n_keys = 1,
				     .signers = &f->root,
				     .n_signers = 1};
	f->root_env = ota_fx_rootlist(&rs);
	ota_arena_init(&f->arena, f->mem, sizeof(f->mem));
	assert_int_equal(ota_rootlist_verify_initial(f->root_env, &f->arena, &f->rootlist), OTA_OK);
	Fleetota__V1__Signed *kl =
		keylist_env(f, f->ts, FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP);
	assert_int_equal(ota_keylist_verify(f->rootlist, kl, 1, 0, &f->arena, &f->kl), OTA_OK);
	ota_fx_env_free(kl);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	EVP_PKEY_free(f->root);
	EVP_PKEY_free(f->op);
	EVP_PKEY_free(f->ts);
	ota_fx_env_free(f->root_env);
	free(f);
	return 0;
}

static Fleetota__V1__Signed *ts_env(EVP_PKEY *signer, enum ota_obj_type type, uint64_t issued,
				    uint64_t expires)
{
	struct ota_fx_timestamp spec = {.issued_at = issued,
					.expires_at = expires,
					.version = "1.4.7",
					.version_code = 147,
					.sign_type = type,
					.signers = &signer,
					.n_signers = 1};
	return ota_fx_timestamp(&spec);
}

static enum ota_err verify_ts(struct fx *f, Fleetota__V1__Signed *env)
{
	Fleetota__V1__Timestamp *ts = NULL;
	enum ota_err err = ota_timestamp_verify(f->kl, env, &f->arena, &ts, NULL);
	ota_fx_env_free(env);
	return err;
}

static void timestamp_roles(void **state)
{
	struct fx *f = *state;
	Fleetota__V1__Timestamp *ts = NULL;
	const Fleetota__V1__PublicKey *signer = NULL;
	Fleetota__V1__Signed *env = ts_env(f->ts, OTA_OBJ_TIMESTAMP, ISSUED, ISSUED + 3600);
	assert_int_equal(ota_timestamp_verify(f->kl, env, &f->arena, &ts, &signer), OTA_OK);
	assert_int_equal(signer->role, FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP);
	assert_string_equal(ts->version, "1.4.7");
	assert_true(ota_timestamp_fresh(ts, ISSUED + 3599));
	assert_false(ota_timestamp_fresh(ts, ISSUED + 3600));
	assert_false(ota_timestamp_fresh(ts, 0));
	ota_fx_env_free(env);
	/* an operational key's signature is refused without being checked */
	assert_string_equal(
		ota_err_name(verify_ts(f, ts_env(f->op, OTA_OBJ_TIMESTAMP, ISSUED, ISSUED + 3600))),
		"OTA_ERR_KEY_ROLE");
	/* the timestamp key's signature made for another type is void */
	assert_string_equal(
		ota_err_name(verify_ts(f, ts_env(f->ts, OTA_OBJ_MANIFEST, ISSUED, ISSUED + 3600))),
		"OTA_ERR_SIGNATURE");
	/* both signed, as a captured server might try: the role decides */
	EVP_PKEY *both[2] = {f->op, f->ts};
	struct ota_fx_timestamp spec = {.issued_at = ISSUED,
					.expires_at = ISSUED + 60,
					.sign_type = OTA_OBJ_TIMESTAMP,
					.signers = both,
					.n_signers = 2};
	assert_int_equal(verify_ts(f, ota_fx_timestamp(&spec)), OTA_OK);
}

static void timestamp_must_expire_soon(void **state)
{
	struct fx *f = *state;
	assert_string_equal(ota_err_name(verify_ts(f, ts_env(f->ts, OTA_OBJ_TIMESTAMP, ISSUED, 0))),
			    "OTA_ERR_FORMAT");
	assert_string_equal(
		ota_err_name(verify_ts(f, ts_env(f->ts, OTA_OBJ_TIMESTAMP, ISSUED, ISSUED))),
		"OTA_ERR_FORMAT");
	assert_string_equal(
		ota_err_name(verify_ts(f, ts_env(f->ts, OTA_OBJ_TIMESTAMP, ISSUED,
						 ISSUED + OTA_MAX_TIMESTAMP_LIFETIME_S + 1))),
		"OTA_ERR_FORMAT");
	assert_int_equal(verify_ts(f, ts_env(f->ts, OTA_OBJ_TIMESTAMP, ISSUED,
					     ISSUED + OTA_MAX_TIMESTAMP_LIFETIME_S)),
			 OTA_OK);
}

/* Its strings are UTF-8 (proto3; protobuf-c does not check): else malformed. */
static void timestamp_strings_utf8(void **state)
{
	struct fx *f = *state;
	struct ota_fx_timestamp spec = {.issued_at = ISSUED,
					.expires_at = ISSUED + 60,
					.sign_type = OTA_OBJ_TIMESTAMP,
					.signers = &f->ts,
					.n_signers = 1};
	for (int field = 0; field < 3; field++) {
		struct ota_fx_timestamp bad = spec;
		if (field == 0)
			bad.product = "fx-model\xff";
		else if (field == 1)
			bad.version = "1.4.7\xc0\xaf";
		else
			bad.artifact = "art-\xed\xa0\x80";
		assert_string_equal(ota_err_name(verify_ts(f, ota_fx_timestamp(&bad))),
				    "OTA_ERR_FORMAT");
	}
	spec.version = "1.4.7-caf\xc3\xa9";
	assert_int_equal(verify_ts(f, ota_fx_timestamp(&spec)), OTA_OK);
}

static void manifest_never_by_timestamp_key(void **state)
{
	struct fx *f = *state;
	static const uint8_t image[16] = {1};
	struct ota_fx_manifest spec;
	Fleetota__V1__Manifest *m = NULL;
	ota_fx_manifest_init(&spec, image, sizeof(image));
	spec.signers = &f->ts;
	spec.n_signers = 1;
	Fleetota__V1__Signed *env = ota_fx_manifest(&spec);
	assert_string_equal(ota_err_name(ota_manifest_verify(f->kl, env, &f->arena, &m, NULL)),
			    "OTA_ERR_KEY_ROLE");
	assert_true(
		ota_keylist_signed_by_role(f->kl, env, FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP));
	ota_fx_env_free(env);
	spec.signers = &f->op;
	env = ota_fx_manifest(&spec);
	assert_int_equal(ota_manifest_verify(f->kl, env, &f->arena, &m, NULL), OTA_OK);
	assert_false(
		ota_keylist_signed_by_role(f->kl, env, FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP));
	ota_fx_env_free(env);
}

static void roles_in_lists(void **state)
{
	struct fx *f = *state;
	Fleetota__V1__KeyList *kl = NULL;
	Fleetota__V1__RootList *root = NULL;
	/* the timestamp key may not be a root key as well */
	Fleetota__V1__Signed *env =
		keylist_env(f, f->root, FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP);
	assert_string_equal(
		ota_err_name(ota_keylist_verify(f->rootlist, env, 1, 0, &f->arena, &kl)),
		"OTA_ERR_KEY_ROLE");
	ota_fx_env_free(env);
	/* an unknown role is malformed */
	env = keylist_env(f, f->ts, 7);
	assert_string_equal(ota_err_name(ota_keylist_parse(env, &f->arena, &kl)), "OTA_ERR_FORMAT");
	ota_fx_env_free(env);
	/* a RootList key carries no role */
	Fleetota__V1__RootList *parsed = NULL;
	assert_int_equal(ota_rootlist_parse(f->root_env, &f->arena, &parsed), OTA_OK);
	parsed->keys[0]->role = FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP;
	size_t len = fleetota__v1__root_list__get_packed_size(parsed);
	uint8_t *body = malloc(len);
	assert_non_null(body);
	fleetota__v1__root_list__pack(parsed, body);
	env = ota_fx_sign_body(OTA_OBJ_ROOT, body, len, &f->root, 1);
	free(body);
	assert_string_equal(ota_err_name(ota_rootlist_parse(env, &f->arena, &root)),
			    "OTA_ERR_FORMAT");
	ota_fx_env_free(env);
	assert_string_equal(ota_obj_type_name(OTA_OBJ_TIMESTAMP), "timestamp");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(timestamp_roles, setup, teardown),
		cmocka_unit_test_setup_teardown(timestamp_must_expire_soon, setup, teardown),
		cmocka_unit_test_setup_teardown(timestamp_strings_utf8, setup, teardown),
		cmocka_unit_test_setup_teardown(manifest_never_by_timestamp_key, setup, teardown),
		cmocka_unit_test_setup_teardown(roles_in_lists, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
