/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attack matrix of issue 4 against the core: every case checks the
 * exact error name AND that the device (status, running image, also after
 * a restart) did not change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent_world.h"

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	world_setup(w);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	world_teardown(*state);
	free(*state);
	return 0;
}

/* A v2 manifest spec (code 20, counter 7) that installs fine as is. */
static void good_spec(struct world *w, struct ota_fx_manifest *spec)
{
	world_manifest(w, spec, w->v2, sizeof(w->v2), 20, 7);
}

static void expect_spec_rejected(struct world *w, const struct ota_fx_manifest *spec,
				 enum ota_err expected)
{
	Fleetota__V1__Signed *m = ota_fx_manifest(spec);
	world_expect_rejected(w, m, NULL, NULL, w->v2, sizeof(w->v2), expected);
	ota_fx_env_free(m);
}

static void test_good_update_changes_state(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_update(w, m, w->v2, sizeof(w->v2));
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.confirmed.version_code, 20);
	assert_int_equal(st.security_counter, 7);
	assert_string_equal(st.confirmed.version, "2.0.0");
	ota_fx_env_free(m);
}

static void test_tampered_image_byte(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	uint8_t *bad = malloc(sizeof(w->v2));
	assert_non_null(bad);
	memcpy(bad, w->v2, sizeof(w->v2));
	bad[sizeof(w->v2) / 2] ^= 0x40;
	world_expect_rejected(w, m, NULL, NULL, bad, sizeof(w->v2), OTA_ERR_HASH);
	free(bad);
	ota_fx_env_free(m);
}

static void test_tampered_manifest_byte(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	/* "2.0.0" -> "3.0.0": still a well-formed manifest, no longer the signed one */
	uint8_t *body = m->body.data;
	uint8_t *hit = NULL;
	for (size_t i = 0; i + 5 <= m->body.len; i++) {
		if (memcmp(body + i, "2.0.0", 5) == 0)
			hit = body + i;
	}
	assert_non_null(hit);
	hit[0] = '3';
	world_expect_rejected(w, m, NULL, NULL, w->v2, sizeof(w->v2), OTA_ERR_SIGNATURE);
	ota_fx_env_free(m);
}

static void test_unsigned(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.n_signers = 0; /* trust.h: an envelope without signatures is OTA_ERR_SIGNATURE */
	expect_spec_rejected(w, &spec, OTA_ERR_SIGNATURE);
}

static void test_unknown_key(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.signers = &w->stranger;
	expect_spec_rejected(w, &spec, OTA_ERR_KEY_UNKNOWN);
}

static void test_revoked_key(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.signers = &w->revoked; /* in KeyList 1, dropped by KeyList 2 */
	expect_spec_rejected(w, &spec, OTA_ERR_KEY_UNKNOWN);
}

static void test_expired_key(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.signers = &w->old;
	expect_spec_rejected(w, &spec, OTA_ERR_KEY_EXPIRED);
}

static void test_keylist_signature_as_manifest(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.sign_type = OTA_OBJ_KEYLIST; /* a valid signature, for another type */
	expect_spec_rejected(w, &spec, OTA_ERR_SIGNATURE);
}

static void test_older_version(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 9, 5);
	expect_spec_rejected(w, &spec, OTA_ERR_DOWNGRADE);
	/* the same version again is not newer either */
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 10, 5);
	expect_spec_rejected(w, &spec, OTA_ERR_DOWNGRADE);
}

static void test_lower_counter(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 20, 4);
	expect_spec_rejected(w, &spec, OTA_ERR_ROLLBACK);
}

static void test_downgrade_allowed_lower_counter(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 9, 4);
	spec.allow_downgrade = true;
	expect_spec_rejected(w, &spec, OTA_ERR_ROLLBACK);
}

static void test_downgrade_allowed_equal_counter(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 9, 5);
	spec.allow_downgrade = true;
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_update(w, m, w->v2, sizeof(w->v2));
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.confirmed.version_code, 9);
	assert_int_equal(st.security_counter, 5);
	ota_fx_env_free(m);
}

static void test_wrong_model(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.product = "other-model";
	expect_spec_rejected(w, &spec, OTA_ERR_HW_MISMATCH);
}

static void test_wrong_hw_revision(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	const char *revs[] = {"revB", "revC"};
	good_spec(w, &spec);
	spec.hw_revisions = revs;
	spec.n_hw_revisions = 2;
	expect_spec_rejected(w, &spec, OTA_ERR_HW_MISMATCH);
	/* listed revision passes */
	const char *ok_revs[] = {"revB", W_HW};
	spec.hw_revisions = ok_revs;
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_update(w, m, w->v2, sizeof(w->v2));
	ota_fx_env_free(m);
}

static void test_expired_manifest(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.expires_at = W_ISSUED + 100;
	ota_sim_set_clock(w->sim, W_ISSUED + 200); /* a trusted clock says it is late */
	expect_spec_rejected(w, &spec, OTA_ERR_EXPIRED);
	ota_sim_set_clock(w->sim, 0);
}

static void test_expired_by_latest_trusted_time(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	/* no clock: a verified newer issued_at is what moves time forward */
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 20, 7);
	spec.issued_at = W_ISSUED + 5000;
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_update(w, m, w->v2, sizeof(w->v2));
	ota_fx_env_free(m);
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.latest_time, W_ISSUED + 5000);
	/* an old manifest that expired before that time is refused */
	world_manifest(w, &spec, w->v1, sizeof(w->v1), 30, 7);
	spec.issued_at = W_ISSUED;
	spec.expires_at = W_ISSUED + 1000;
	expect_spec_rejected(w, &spec, OTA_ERR_EXPIRED);
	/* the latest trusted time never goes back across restarts */
	world_restart(w);
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.latest_time, W_ISSUED + 5000);
}

static void test_min_installed_version(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.min_installed_version = 11;
	expect_spec_rejected(w, &spec, OTA_ERR_MIN_VERSION);
}

static void test_image_longer(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.image_size = sizeof(w->v2) - 10; /* hash of the full image, size shorter */
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_expect_rejected(w, m, NULL, NULL, w->v2, sizeof(w->v2), OTA_ERR_SIZE);
	ota_fx_env_free(m);
}

static void test_image_shorter(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_expect_rejected(w, m, NULL, NULL, w->v2, sizeof(w->v2) - 1, OTA_ERR_SIZE);
	ota_fx_env_free(m);
}

static void test_image_larger_than_slot(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.image_size = W_SLOT_BYTES + 1;
	expect_spec_rejected(w, &spec, OTA_ERR_SIZE);
}

static void test_keylist_rollback(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	/* a bundle that carries KeyList 1 (which still trusts the revoked key) */
	world_expect_rejected(w, m, w->kl1, NULL, w->v2, sizeof(w->v2), OTA_ERR_KEYLIST_ROLLBACK);
	ota_fx_env_free(m);
	/* and the online path */
	struct world_snapshot snap;
	world_snapshot(w, &snap);
	struct ota_fx_buf kl1 = ota_fx_env_bytes(w->kl1);
	assert_string_equal(ota_err_name(ota_agent_update_keylist(&w->agent, kl1.data, kl1.len)),
			    "OTA_ERR_KEYLIST_ROLLBACK");
	ota_fx_buf_free(&kl1);
	world_assert_unchanged(w, &snap);
}

static void test_keylist_too_few_roots(void **state)
{
	struct world *w = *state;
	struct ota_fx_opkey keys[1] = {{.key = w->stranger}};
	struct ota_fx_keylist ks = {
		.version = 3, .keys = keys, .n_keys = 1, .signers = w->roots, .n_signers = 1};
	Fleetota__V1__Signed *kl = ota_fx_keylist(&ks);
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.signers = &w->stranger;
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_expect_rejected(w, m, kl, NULL, w->v2, sizeof(w->v2), OTA_ERR_THRESHOLD);
	ota_fx_env_free(m);
	ota_fx_env_free(kl);
}

static void test_rootlist_too_few_old_roots(void **state)
{
	struct world *w = *state;
	EVP_PKEY *new_roots[2] = {ota_fx_key_new(OTA_ALG_ED25519), ota_fx_key_new(OTA_ALG_ED25519)};
	EVP_PKEY *signers[3] = {w->roots[0], new_roots[0], new_roots[1]};
	struct ota_fx_rootlist rs = {.version = 2,
				     .threshold = 2,
				     .keys = new_roots,
				     .n_keys = 2,
				     .signers = signers,
				     .n_signers = 3}; /* one old root of the two required */
	Fleetota__V1__Signed *root2 = ota_fx_rootlist(&rs);
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_expect_rejected(w, m, NULL, root2, w->v2, sizeof(w->v2), OTA_ERR_ROOT_CHAIN);
	/* and the online path */
	struct world_snapshot snap;
	world_snapshot(w, &snap);
	struct ota_fx_buf b = ota_fx_env_bytes(root2);
	const uint8_t *bufs[1] = {b.data};
	size_t lens[1] = {b.len};
	assert_string_equal(ota_err_name(ota_agent_update_rootlist(&w->agent, bufs, lens, 1)),
			    "OTA_ERR_ROOT_CHAIN");
	world_assert_unchanged(w, &snap);
	ota_fx_buf_free(&b);
	ota_fx_env_free(m);
	ota_fx_env_free(root2);
	EVP_PKEY_free(new_roots[0]);
	EVP_PKEY_free(new_roots[1]);
}

static void test_root_rotation_then_new_keylist(void **state)
{
	struct world *w = *state;
	EVP_PKEY *r2[2] = {ota_fx_key_new(OTA_ALG_ED25519), ota_fx_key_new(OTA_ALG_ED25519)};
	EVP_PKEY *r3[2] = {ota_fx_key_new(OTA_ALG_ED25519), ota_fx_key_new(OTA_ALG_ED25519)};
	EVP_PKEY *s2[4] = {w->roots[0], w->roots[2], r2[0], r2[1]};
	EVP_PKEY *s3[4] = {r2[0], r2[1], r3[0], r3[1]};
	struct ota_fx_rootlist rs2 = {.version = 2,
				      .threshold = 2,
				      .keys = r2,
				      .n_keys = 2,
				      .signers = s2,
				      .n_signers = 4};
	struct ota_fx_rootlist rs3 = {.version = 3,
				      .threshold = 2,
				      .keys = r3,
				      .n_keys = 2,
				      .signers = s3,
				      .n_signers = 4};
	Fleetota__V1__Signed *root2 = ota_fx_rootlist(&rs2);
	Fleetota__V1__Signed *root3 = ota_fx_rootlist(&rs3);
	EVP_PKEY *op3 = ota_fx_key_new(OTA_ALG_ECDSA_P256_SHA256);
	struct ota_fx_opkey keys[1] = {{.key = op3}};
	struct ota_fx_keylist ks = {
		.version = 3, .keys = keys, .n_keys = 1, .signers = r3, .n_signers = 2};
	Fleetota__V1__Signed *kl3 = ota_fx_keylist(&ks);
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	spec.signers = &op3;
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);

	/* skipping RootList 2 is not a chain */
	world_expect_rejected(w, m, kl3, root3, w->v2, sizeof(w->v2), OTA_ERR_ROOT_CHAIN);

	/* the whole chain, step by step, through a bundle */
	struct ota_fx_bundle bs = {.manifest = m, .keylist = kl3, .rootlist = root3};
	const Fleetota__V1__Signed *chain[1] = {root2};
	bs.chain = chain;
	bs.n_chain = 1;
	struct ota_fx_buf b = ota_fx_bundle_bytes(&bs);
	uint32_t hlen = ((uint32_t)b.data[4] << 24) | ((uint32_t)b.data[5] << 16) |
			((uint32_t)b.data[6] << 8) | b.data[7];
	assert_int_equal(ota_agent_begin_bundle(&w->agent, b.data + 8, hlen), OTA_OK);
	assert_int_equal(ota_agent_write(&w->agent, w->v2, sizeof(w->v2)), OTA_OK);
	assert_int_equal(ota_agent_finish(&w->agent), OTA_OK);
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.rootlist_version, 3);
	assert_int_equal(st.keylist_version, 3);
	world_restart(w);
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.rootlist_version, 3);
	assert_int_equal(st.keylist_version, 3);
	assert_int_equal(st.phase, OTA_PHASE_PENDING);

	ota_fx_buf_free(&b);
	ota_fx_env_free(m);
	ota_fx_env_free(kl3);
	ota_fx_env_free(root2);
	ota_fx_env_free(root3);
	EVP_PKEY_free(op3);
	for (int i = 0; i < 2; i++) {
		EVP_PKEY_free(r2[i]);
		EVP_PKEY_free(r3[i]);
	}
}

static void test_malformed_header(void **state)
{
	struct world *w = *state;
	struct world_snapshot snap;
	world_snapshot(w, &snap);
	uint8_t junk[64];
	memset(junk, 0x5a, sizeof(junk));
	assert_string_equal(ota_err_name(ota_agent_begin_bundle(&w->agent, junk, sizeof(junk))),
			    "OTA_ERR_FORMAT");
	world_assert_unchanged(w, &snap);
}

static void test_consent(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	good_spec(w, &spec);
	ota_sim_set_consent(w->sim, true, false);
	world_restart(w);
	expect_spec_rejected(w, &spec, OTA_ERR_CONSENT);
	/* a security update does not wait for the owner */
	spec.is_security_update = true;
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_update(w, m, w->v2, sizeof(w->v2));
	ota_fx_env_free(m);
	ota_sim_set_consent(w->sim, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_good_update_changes_state),
		T(test_tampered_image_byte),
		T(test_tampered_manifest_byte),
		T(test_unsigned),
		T(test_unknown_key),
		T(test_revoked_key),
		T(test_expired_key),
		T(test_keylist_signature_as_manifest),
		T(test_older_version),
		T(test_lower_counter),
		T(test_downgrade_allowed_lower_counter),
		T(test_downgrade_allowed_equal_counter),
		T(test_wrong_model),
		T(test_wrong_hw_revision),
		T(test_expired_manifest),
		T(test_expired_by_latest_trusted_time),
		T(test_min_installed_version),
		T(test_image_longer),
		T(test_image_shorter),
		T(test_image_larger_than_slot),
		T(test_keylist_rollback),
		T(test_keylist_too_few_roots),
		T(test_rootlist_too_few_old_roots),
		T(test_root_rotation_then_new_keylist),
		T(test_malformed_header),
		T(test_consent),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
