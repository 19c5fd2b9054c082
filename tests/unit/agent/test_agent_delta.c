/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Delta updates in the core (issue 15): a delta from the running image
 * installs and boots byte for byte; every attack is refused with its exact
 * error name and leaves the device as it was (status, running image, also
 * after a restart and a boot step); the checks of a full image all hold.
 * The power-cut loop over a delta apply is in test_agent_lifecycle.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "agent_world.h"
#include "fleetota/bundle.h"
#include "fleetota/delta.h"
#include "ota_delta_make.h"

#define T_CHUNK W_DELTA_CHUNK
#define T_NEW_LEN W_NEXT_LEN

struct delta_world {
	struct world w;
	uint8_t next[T_NEW_LEN];
	struct world_delta d;
};

static int setup(void **state)
{
	struct delta_world *dw = calloc(1, sizeof(*dw));
	if (!dw)
		return -1;
	world_setup(&dw->w);
	world_next_image(&dw->w, dw->next);
	world_delta_make(&dw->d, dw->w.v1, W_V1_LEN, dw->next, T_NEW_LEN, T_CHUNK);
	*state = dw;
	return 0;
}

static int teardown(void **state)
{
	struct delta_world *dw = *state;
	world_delta_free(&dw->d);
	world_teardown(&dw->w);
	free(dw);
	return 0;
}

/* The delta manifest of next (code 20, counter 7), signed by the world's key. */
static void delta_spec(struct delta_world *dw, struct ota_fx_manifest *spec)
{
	world_manifest(&dw->w, spec, dw->next, T_NEW_LEN, 20, 7);
	spec->delta = &dw->d.info;
}

static void slot_sha(struct world *w, unsigned slot, size_t len, uint8_t out[32])
{
	SHA256(ota_sim_slot(w->sim, slot), len, out);
}

/* Installs m with payload and expects err; nothing a device runs changed. */
static void expect_rejected(struct delta_world *dw, const Fleetota__V1__Signed *m,
			    const uint8_t *payload, size_t len, enum ota_err expected)
{
	struct world *w = &dw->w;
	struct world_snapshot snap;
	world_snapshot(w, &snap);
	enum ota_err err = world_install(w, m, NULL, NULL, payload, len);
	assert_string_equal(ota_err_name(err), ota_err_name(expected));
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_string_equal(ota_err_name(st.last_error), ota_err_name(expected));
	assert_int_equal(st.phase, OTA_PHASE_IDLE);
	struct ota_event ev;
	assert_int_equal(ota_agent_event(&w->agent, st.next_event_seq - 1, &ev), OTA_OK);
	assert_int_equal(ev.kind, OTA_EVENT_REJECTED);
	assert_int_equal(ev.error, expected);
	world_assert_unchanged(w, &snap);
}

static void expect_spec_rejected(struct delta_world *dw, const struct ota_fx_manifest *spec,
				 const uint8_t *payload, size_t len, enum ota_err expected)
{
	Fleetota__V1__Signed *m = ota_fx_manifest(spec);
	expect_rejected(dw, m, payload, len, expected);
	ota_fx_env_free(m);
}

/* Installs dw->d, boots and confirms: the device runs next, byte for byte. */
static void expect_delta_update(struct delta_world *dw)
{
	struct world *w = &dw->w;
	struct ota_fx_manifest spec;
	delta_spec(dw, &spec);
	/* the delta is a fraction of the image: most of it comes from the base */
	assert_true(dw->d.len < T_NEW_LEN * 3 / 4);
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_update(w, m, dw->d.payload, dw->d.len);
	ota_fx_env_free(m);
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.confirmed.version_code, 20);
	assert_int_equal(st.confirmed.size, T_NEW_LEN);
	assert_int_equal(st.security_counter, 7);
	uint8_t want[32], got[32];
	SHA256(dw->next, T_NEW_LEN, want);
	slot_sha(w, st.confirmed_slot, T_NEW_LEN, got);
	assert_memory_equal(want, got, 32);
	assert_memory_equal(st.confirmed.sha256, want, 32);
}

static void test_delta_update_boots_the_new_image(void **state)
{
	expect_delta_update(*state);
}

/*
 * The base is mapped once for the whole apply (not again for each
 * frame), the port hears between frames which image range comes next,
 * always inside the mapping, and the mapping ends with the apply.
 */
static void test_base_mapped_once(void **state)
{
	struct delta_world *dw = *state;
	struct world *w = &dw->w;
	struct ota_fx_manifest spec;
	struct ota_sim_map_stats before, after;
	delta_spec(dw, &spec);
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	ota_sim_map_stats(w->sim, &before);
	assert_int_equal(world_install(w, m, NULL, NULL, dw->d.payload, dw->d.len), OTA_OK);
	ota_sim_map_stats(w->sim, &after);
	ota_fx_env_free(m);
	unsigned frames = (T_NEW_LEN + T_CHUNK - 1) / T_CHUNK;
	assert_true(frames > 2);
	assert_int_equal(after.maps - before.maps, 1);
	assert_int_equal(after.advises - before.advises, frames - 1);
	assert_int_equal(after.advise_misuses, 0);
	assert_int_equal(after.mapped, 0);
	assert_int_equal(w->agent.state.phase, OTA_PHASE_PENDING);
}

/* The index matcher's payload (ota_delta_make.h) installs like zstd's. */
static void test_index_matcher_update(void **state)
{
	struct delta_world *dw = *state;
	world_delta_free(&dw->d);
	world_delta_make_with(&dw->d, dw->w.v1, W_V1_LEN, dw->next, T_NEW_LEN, T_CHUNK,
			      OTA_DELTA_MATCH_INDEX);
	expect_delta_update(dw);
}

/* Deterministic bytes (xorshift). */
static void fill_random(uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		p[i] = (uint8_t)seed;
	}
}

/*
 * A 1 MiB random base and a new image built from it the way firmware
 * changes: pieces moved and shifted by odd amounts, a run of zeros, a
 * piece repeated inside the image, a changed byte, new random bytes. Both
 * matchers' payloads (256 KiB chunks) decode to the image through the
 * device's applier, fed in odd-sized pieces; both are a small fraction.
 */
static void test_matchers_round_trip(void **state)
{
	(void)state;
	enum { BASE = 1u << 20, IMG = (1u << 20) + 41257u, CH = 256u * 1024u };
	uint8_t *base = malloc(BASE), *img = malloc(IMG);
	struct world_buf o = {0};
	assert_non_null(base);
	assert_non_null(img);
	fill_random(base, BASE, 0x1234567u);
	size_t at = 0;
	memcpy(img + at, base + 333333u, 233333u); /* moved back */
	at += 233333u;
	fill_random(img + at, 20000u, 99u); /* new */
	at += 20000u;
	memcpy(img + at, base + 3u, 300000u); /* moved forward, odd shift */
	img[at + 4567u] ^= 0x5a; /* a changed byte inside */
	at += 300000u;
	memset(img + at, 0, 100000u); /* zeros: matches inside the image */
	at += 100000u;
	memcpy(img + at, img + 50000u, 70000u); /* repeated inside the image */
	at += 70000u;
	memcpy(img + at, base + 600000u, IMG - at); /* the rest of the base */
	for (int matcher = OTA_DELTA_MATCH_ZSTD; matcher <= OTA_DELTA_MATCH_INDEX; matcher++) {
		struct world_delta d;
		world_delta_make_with(&d, base, BASE, img, IMG, CH, matcher);
		assert_true(d.len < IMG / 20);
		size_t work_len = ota_delta_work_bytes(CH);
		void *work = malloc(work_len);
		struct ota_delta ad;
		assert_non_null(work);
		assert_int_equal(ota_delta_open(&ad, work, work_len, base, BASE, CH, IMG), OTA_OK);
		o.len = 0;
		for (size_t off = 0; off < d.len; off += 7777u)
			assert_int_equal(ota_delta_feed(&ad, d.payload + off,
							d.len - off < 7777u ? d.len - off : 7777u,
							world_buf_put, &o),
					 OTA_OK);
		assert_true(ota_delta_complete(&ad));
		assert_int_equal(o.len, IMG);
		assert_memory_equal(o.data, img, IMG);
		ota_delta_close(&ad);
		free(work);
		world_delta_free(&d);
	}
	free(base);
	free(img);
	free(o.data);
}

/* A base that is not the running image: refused at begin, no payload byte read. */
static void test_wrong_base(void **state)
{
	struct delta_world *dw = *state;
	struct world *w = &dw->w;
	struct world_delta other;
	world_delta_make(&other, w->v2, W_V2_LEN, dw->next, T_NEW_LEN, T_CHUNK);
	struct ota_fx_manifest spec;
	world_manifest(w, &spec, dw->next, T_NEW_LEN, 20, 7);
	spec.delta = &other.info;
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	unsigned inactive = w->agent.state.confirmed_slot ? 0u : 1u;
	uint8_t before[32], after[32];
	slot_sha(w, inactive, W_SLOT_BYTES, before);
	/* begin alone refuses it: the transport is never asked for the payload */
	struct ota_fx_bundle bs = {.manifest = m};
	struct ota_fx_buf b = ota_fx_bundle_bytes(&bs);
	uint32_t hlen = 0;
	assert_int_equal(ota_bundle_prefix_parse(b.data, &hlen), OTA_OK);
	assert_string_equal(ota_err_name(ota_agent_begin_bundle(
				    &w->agent, b.data + OTA_BUNDLE_PREFIX_BYTES, hlen)),
			    "OTA_ERR_DELTA_BASE");
	assert_int_equal(ota_agent_image_size(&w->agent), 0);
	ota_fx_buf_free(&b);
	slot_sha(w, inactive, W_SLOT_BYTES, after);
	assert_memory_equal(before, after, 32);
	expect_rejected(dw, m, other.payload, other.len, OTA_ERR_DELTA_BASE);
	ota_fx_env_free(m);
	world_delta_free(&other);
	/* a base of the running image's size that differs in one byte */
	uint8_t near[W_V1_LEN];
	memcpy(near, w->v1, W_V1_LEN);
	near[W_V1_LEN / 2] ^= 0x01;
	world_delta_make(&other, near, W_V1_LEN, dw->next, T_NEW_LEN, T_CHUNK);
	spec.delta = &other.info;
	m = ota_fx_manifest(&spec);
	expect_rejected(dw, m, other.payload, other.len, OTA_ERR_DELTA_BASE);
	ota_fx_env_free(m);
	world_delta_free(&other);
}

/* The running image's hash is right but its size is not the base's. */
static void test_base_size_mismatch(void **state)
{
	struct delta_world *dw = *state;
	struct ota_fx_manifest spec;
	Fleetota__V1__DeltaInfo info = dw->d.info;
	info.base_size = W_V1_LEN + 1;
	delta_spec(dw, &spec);
	spec.delta = &info;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_DELTA_BASE);
}

static void test_tampered_delta(void **state)
{
	struct delta_world *dw = *state;
	struct ota_fx_manifest spec;
	delta_spec(dw, &spec);
	/* one flipped bit in each place: a length prefix, frame bodies, the last byte */
	const size_t spots[] = {0, 3, 10, dw->d.len / 2, dw->d.len - 1};
	for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
		uint8_t *bad = malloc(dw->d.len);
		assert_non_null(bad);
		memcpy(bad, dw->d.payload, dw->d.len);
		bad[spots[i]] ^= 0x01;
		expect_spec_rejected(dw, &spec, bad, dw->d.len, OTA_ERR_HASH);
		free(bad);
	}
}

/* The delta is the signed one but the image it makes is not what is signed. */
static void test_output_hash_wrong(void **state)
{
	struct delta_world *dw = *state;
	struct ota_fx_manifest spec;
	delta_spec(dw, &spec);
	spec.image_sha256[5] ^= 0x80;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_HASH);
}

/* A delta to another image, signed as if it made next (hash of next, its size). */
static void test_delta_to_other_image(void **state)
{
	struct delta_world *dw = *state;
	struct world *w = &dw->w;
	uint8_t *other = malloc(T_NEW_LEN);
	assert_non_null(other);
	memcpy(other, dw->next, T_NEW_LEN);
	other[T_NEW_LEN - 7] ^= 0xff;
	struct world_delta od;
	world_delta_make(&od, w->v1, W_V1_LEN, other, T_NEW_LEN, T_CHUNK);
	struct ota_fx_manifest spec;
	world_manifest(w, &spec, dw->next, T_NEW_LEN, 20, 7);
	spec.delta = &od.info;
	expect_spec_rejected(dw, &spec, od.payload, od.len, OTA_ERR_HASH);
	world_delta_free(&od);
	free(other);
}

/*
 * A payload that decodes to the right image but is not the signed payload
 * (another encoding, its size declared): the delta's own hash refuses it.
 */
static void test_unsigned_payload_same_output(void **state)
{
	struct delta_world *dw = *state;
	struct world_delta od;
	world_delta_make(&od, dw->w.v1, W_V1_LEN, dw->next, T_NEW_LEN, T_CHUNK * 2);
	assert_true(od.len != dw->d.len || memcmp(od.payload, dw->d.payload, od.len) != 0);
	Fleetota__V1__DeltaInfo info = od.info;
	info.sha256 = dw->d.info.sha256;
	struct ota_fx_manifest spec;
	delta_spec(dw, &spec);
	spec.delta = &info;
	expect_spec_rejected(dw, &spec, od.payload, od.len, OTA_ERR_HASH);
	world_delta_free(&od);
}

static void test_untrusted_signer(void **state)
{
	struct delta_world *dw = *state;
	struct ota_fx_manifest spec;
	delta_spec(dw, &spec);
	spec.signers = &dw->w.stranger;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_KEY_UNKNOWN);
	spec.signers = &dw->w.revoked;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_KEY_UNKNOWN);
}

/* More payload than the manifest declares: refused at the first extra byte. */
static void test_delta_bigger_than_declared(void **state)
{
	struct delta_world *dw = *state;
	struct ota_fx_manifest spec;
	delta_spec(dw, &spec);
	uint8_t *longer = malloc(dw->d.len + 1000);
	assert_non_null(longer);
	memcpy(longer, dw->d.payload, dw->d.len);
	memset(longer + dw->d.len, 0, 1000);
	expect_spec_rejected(dw, &spec, longer, dw->d.len + 1000, OTA_ERR_SIZE);
	/* declared smaller than it is: the same, mid-payload */
	Fleetota__V1__DeltaInfo info = dw->d.info;
	info.size = dw->d.len - 100;
	spec.delta = &info;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_SIZE);
	free(longer);
}

/* A payload that stops early (fewer frames): the size, at finish. */
static void test_delta_shorter_than_declared(void **state)
{
	struct delta_world *dw = *state;
	struct ota_fx_manifest spec;
	delta_spec(dw, &spec);
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len - 1, OTA_ERR_SIZE);
}

/* A final image bigger than the chunk frames produce: declared size wrong. */
static void test_image_size_wrong(void **state)
{
	struct delta_world *dw = *state;
	struct ota_fx_manifest spec;
	delta_spec(dw, &spec);
	spec.image_size = T_NEW_LEN + T_CHUNK;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_HASH);
	spec.image_size = T_NEW_LEN - 1;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_HASH);
}

/* Every check of a full image holds for a delta. */
static void test_full_image_checks_hold(void **state)
{
	struct delta_world *dw = *state;
	struct ota_fx_manifest spec;
	delta_spec(dw, &spec);
	spec.product = "other-model";
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_HW_MISMATCH);
	delta_spec(dw, &spec);
	spec.security_counter = 4;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_ROLLBACK);
	delta_spec(dw, &spec);
	spec.version_code = 10;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_DOWNGRADE);
	delta_spec(dw, &spec);
	spec.expires_at = W_ISSUED + 10;
	spec.issued_at = W_ISSUED;
	ota_sim_set_clock(dw->w.sim, W_ISSUED + 100);
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_EXPIRED);
	ota_sim_set_clock(dw->w.sim, 0);
	delta_spec(dw, &spec);
	spec.signers = &dw->w.old;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_KEY_EXPIRED);
	delta_spec(dw, &spec);
	spec.sign_type = OTA_OBJ_KEYLIST;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_SIGNATURE);
}

/* What this device cannot apply: refused before the payload, by name. */
static void test_unsupported(void **state)
{
	struct delta_world *dw = *state;
	struct ota_fx_manifest spec;
	Fleetota__V1__DeltaInfo info = dw->d.info;
	delta_spec(dw, &spec);
	spec.delta = &info;
	info.algorithm = FLEETOTA__V1__DELTA_ALGORITHM__DELTA_ALGORITHM_UNSPECIFIED;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_DELTA_UNSUPPORTED);
	info = dw->d.info;
	info.chunk_bytes = OTA_DELTA_MAX_CHUNK_BYTES + 1;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_DELTA_UNSUPPORTED);
	/* a device that lends no work area takes no deltas */
	dw->w.agent.config.delta_work = NULL;
	info = dw->d.info;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_DELTA_UNSUPPORTED);
}

/* A manifest whose DeltaInfo is malformed is a malformed manifest. */
static void test_malformed_delta_info(void **state)
{
	struct delta_world *dw = *state;
	struct ota_fx_manifest spec;
	Fleetota__V1__DeltaInfo info = dw->d.info;
	delta_spec(dw, &spec);
	spec.delta = &info;
	info.chunk_bytes = 0;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_FORMAT);
	info = dw->d.info;
	info.base_sha256.len = 31;
	expect_spec_rejected(dw, &spec, dw->d.payload, dw->d.len, OTA_ERR_FORMAT);
}

/* Interrupted mid-payload: the next attempt starts over and succeeds. */
static void test_interrupted_delta_starts_over(void **state)
{
	struct delta_world *dw = *state;
	struct world *w = &dw->w;
	struct ota_fx_manifest spec;
	delta_spec(dw, &spec);
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	struct ota_fx_bundle bs = {.manifest = m};
	struct ota_fx_buf b = ota_fx_bundle_bytes(&bs);
	uint32_t hlen = 0;
	assert_int_equal(ota_bundle_prefix_parse(b.data, &hlen), OTA_OK);
	assert_int_equal(ota_agent_begin_bundle(&w->agent, b.data + OTA_BUNDLE_PREFIX_BYTES, hlen),
			 OTA_OK);
	assert_int_equal(ota_agent_image_size(&w->agent), dw->d.len);
	assert_true(ota_agent_install_is_delta(&w->agent, NULL));
	assert_int_equal(ota_agent_write(&w->agent, dw->d.payload, dw->d.len / 2), OTA_OK);
	assert_int_equal(ota_agent_abort(&w->agent, OTA_ERR_TRANSPORT, "cut", true), OTA_OK);
	world_restart(w);
	assert_int_equal(ota_agent_begin_bundle(&w->agent, b.data + OTA_BUNDLE_PREFIX_BYTES, hlen),
			 OTA_OK);
	assert_int_equal(ota_agent_offset(&w->agent), 0);
	assert_int_equal(ota_agent_write(&w->agent, dw->d.payload, dw->d.len), OTA_OK);
	assert_int_equal(ota_agent_finish(&w->agent), OTA_OK);
	assert_int_equal(w->agent.state.phase, OTA_PHASE_PENDING);
	ota_fx_buf_free(&b);
	ota_fx_env_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_delta_update_boots_the_new_image, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_base_mapped_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_matcher_update, setup, teardown),
		cmocka_unit_test(test_matchers_round_trip),
		cmocka_unit_test_setup_teardown(test_wrong_base, setup, teardown),
		cmocka_unit_test_setup_teardown(test_base_size_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tampered_delta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_hash_wrong, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delta_to_other_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsigned_payload_same_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_signer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delta_bigger_than_declared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delta_shorter_than_declared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_size_wrong, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_image_checks_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_delta_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_delta_starts_over, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
