/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Records survive one bad copy (issue 12, device side): a deleted state
 * never makes a provisioned device blank, one zeroed / damaged / deleted
 * copy of any record changes nothing, both copies bad give a clear error
 * and the boot step still boots the last good slot. A record that was
 * never written is not an error (a fresh device's first boot logs none);
 * a damaged one is logged as one (issue 19).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent_world.h"
#include "fleetota/freshness.h"

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

enum damage { DAMAGE_ZERO, DAMAGE_FLIP, DAMAGE_DELETE };

static void damage_copy(struct world *w, enum ota_record rec, unsigned copy, enum damage how)
{
	size_t len = 0;
	uint8_t *data = ota_sim_record(w->sim, rec, copy, &len);
	assert_non_null(data);
	if (how == DAMAGE_ZERO)
		memset(data, 0, len);
	else if (how == DAMAGE_FLIP)
		data[len / 2] ^= 0x40;
	else
		ota_sim_record_delete(w->sim, rec, copy);
}

/* Both copies decode and hold the same sequence number (the boot step repaired them). */
static void assert_copies_equal(struct world *w, enum ota_record rec)
{
	struct ota_record_copy c0;
	struct ota_record_copy c1;
	size_t len0 = 0;
	size_t len1 = 0;
	uint8_t *d0 = ota_sim_record(w->sim, rec, 0, &len0);
	uint8_t *d1 = ota_sim_record(w->sim, rec, 1, &len1);
	assert_non_null(d0);
	assert_non_null(d1);
	assert_int_equal(ota_record_copy_decode(d0, len0, &c0), OTA_OK);
	assert_int_equal(ota_record_copy_decode(d1, len1, &c1), OTA_OK);
	assert_int_equal(c0.rec, rec);
	assert_int_equal(c0.seq, c1.seq);
	assert_int_equal(len0, len1);
	assert_memory_equal(d0, d1, len0);
}

static Fleetota__V1__Signed *v2_manifest(struct world *w)
{
	struct ota_fx_manifest spec;
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 20, 7);
	return ota_fx_manifest(&spec);
}

static void provision_other_roots(struct world *w, enum ota_err expected)
{
	EVP_PKEY *other[2] = {ota_fx_key_new(OTA_ALG_ED25519), ota_fx_key_new(OTA_ALG_ED25519)};
	struct ota_fx_rootlist rs = {.version = 1,
				     .threshold = 2,
				     .keys = other,
				     .n_keys = 2,
				     .signers = other,
				     .n_signers = 2};
	struct ota_fx_opkey keys[1] = {{.key = w->stranger}};
	struct ota_fx_keylist ks = {
		.version = 1, .keys = keys, .n_keys = 1, .signers = other, .n_signers = 2};
	Fleetota__V1__Signed *root = ota_fx_rootlist(&rs);
	Fleetota__V1__Signed *kl = ota_fx_keylist(&ks);
	struct ota_fx_buf rb = ota_fx_env_bytes(root);
	struct ota_fx_buf kb = ota_fx_env_bytes(kl);
	enum ota_err err = ota_agent_provision(&w->agent, rb.data, rb.len, kb.data, kb.len);
	assert_string_equal(ota_err_name(err), ota_err_name(expected));
	ota_fx_buf_free(&rb);
	ota_fx_buf_free(&kb);
	ota_fx_env_free(root);
	ota_fx_env_free(kl);
	EVP_PKEY_free(other[0]);
	EVP_PKEY_free(other[1]);
}

/* The reproduction of the report: delete the state record, provision other roots. */
static void test_state_deleted_stays_provisioned(void **state)
{
	struct world *w = *state;
	struct world_snapshot snap;
	world_snapshot(w, &snap);
	unsigned v1_slot = snap.status.confirmed_slot;
	for (unsigned copy = 0; copy < OTA_RECORD_COPIES; copy++)
		ota_sim_record_delete(w->sim, OTA_REC_STATE, copy);
	world_restart(w);
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_true(st.provisioned);
	assert_string_equal(ota_err_name(st.last_error), "OTA_ERR_STORAGE");
	assert_string_equal(st.last_error_detail,
			    "state record unreadable (both copies); the boot step rebuilds it");
	assert_int_equal(st.security_counter, 5);
	assert_int_equal(st.keylist_version, 2);
	assert_int_equal(st.rootlist_version, 1);
	/* other roots are refused; nothing was written */
	provision_other_roots(w, OTA_ERR_BUSY);
	assert_null(ota_sim_record(w->sim, OTA_REC_STATE, 0, &(size_t){0}));
	world_restart(w);
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.security_counter, 5);
	assert_int_equal(st.rootlist_version, 1);
	/* every step but the boot step is refused with the same clear error */
	Fleetota__V1__Signed *m = v2_manifest(w);
	assert_string_equal(ota_err_name(world_install(w, m, NULL, NULL, w->v2, sizeof(w->v2))),
			    "OTA_ERR_STORAGE");
	assert_string_equal(ota_err_name(ota_agent_confirm(&w->agent)), "OTA_ERR_STORAGE");
	struct ota_fx_buf kl = ota_fx_env_bytes(w->kl2);
	assert_string_equal(ota_err_name(ota_agent_update_keylist(&w->agent, kl.data, kl.len)),
			    "OTA_ERR_STORAGE");
	ota_fx_buf_free(&kl);
	/* the boot step boots the last good slot from the boot record and rebuilds */
	unsigned slot = 9;
	assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
	assert_int_equal(slot, v1_slot);
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.phase, OTA_PHASE_IDLE);
	assert_int_equal(st.confirmed_slot, v1_slot);
	assert_memory_equal(&st.confirmed, &snap.status.confirmed, sizeof(st.confirmed));
	assert_int_equal(st.security_counter, 5);
	assert_string_equal(st.last_error_detail,
			    "state record lost; rebuilt from the boot record");
	/* the event numbers continue after the newest event in the ring */
	assert_true(st.next_event_seq > snap.status.next_event_seq);
	struct ota_event ev;
	assert_int_equal(ota_agent_event(&w->agent, st.next_event_seq - 1, &ev), OTA_OK);
	assert_int_equal(ev.error, OTA_ERR_STORAGE);
	world_assert_unchanged(w, &snap);
	assert_copies_equal(w, OTA_REC_STATE);
	/* and the device updates again */
	world_update(w, m, w->v2, sizeof(w->v2));
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.security_counter, 7);
	ota_fx_env_free(m);
}

/* State and boot record both lost: the slot manifests decide. */
static void test_state_and_boot_record_lost(void **state)
{
	struct world *w = *state;
	struct world_snapshot snap;
	world_snapshot(w, &snap);
	for (unsigned copy = 0; copy < OTA_RECORD_COPIES; copy++) {
		damage_copy(w, OTA_REC_STATE, copy, DAMAGE_ZERO);
		damage_copy(w, OTA_REC_BOOT, copy, DAMAGE_FLIP);
	}
	/* the other slot holds half an image under a manifest: it must not win */
	world_restart(w);
	provision_other_roots(w, OTA_ERR_BUSY);
	unsigned slot = 9;
	assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
	assert_int_equal(slot, snap.status.confirmed_slot);
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_string_equal(st.last_error_detail,
			    "state record lost; rebuilt from the slot manifests");
	world_assert_unchanged(w, &snap);
	assert_copies_equal(w, OTA_REC_BOOT);
}

/* Both copies of the state bad and the running slot rotten: nothing verified to boot. */
static void test_state_lost_and_slot_rotten(void **state)
{
	struct world *w = *state;
	unsigned running = w->agent.state.confirmed_slot;
	for (unsigned copy = 0; copy < OTA_RECORD_COPIES; copy++)
		damage_copy(w, OTA_REC_STATE, copy, DAMAGE_FLIP);
	ota_sim_slot_damage(w->sim, running, 3, 0x01);
	world_restart(w);
	unsigned slot = 9;
	assert_string_equal(ota_err_name(ota_agent_boot(&w->agent, &slot)), "OTA_ERR_HASH");
	assert_int_equal(slot, 9);
	/* the state was not rebuilt around an image that does not verify */
	assert_true(w->agent.state_lost);
}

/* Records that every command reads; damaged one copy at a time. */
static const enum ota_record k_records[] = {OTA_REC_STATE, OTA_REC_COUNTER, OTA_REC_ROOTLIST,
					    OTA_REC_KEYLIST, OTA_REC_BOOT};

static void test_one_bad_copy_changes_nothing(void **state)
{
	struct world *w = *state;
	Fleetota__V1__Signed *m = NULL;
	unsigned cases = 0;
	for (size_t r = 0; r < sizeof(k_records) / sizeof(k_records[0]); r++) {
		for (unsigned copy = 0; copy < OTA_RECORD_COPIES; copy++) {
			for (int how = DAMAGE_ZERO; how <= DAMAGE_DELETE; how++) {
				world_teardown(w);
				world_setup(w);
				ota_fx_env_free(m);
				m = v2_manifest(w);
				struct world_snapshot snap;
				world_snapshot(w, &snap);
				damage_copy(w, k_records[r], copy, (enum damage)how);
				world_restart(w);
				assert_false(w->agent.state_lost);
				/* status, a refused install, boot: all as before */
				provision_other_roots(w, OTA_ERR_BUSY);
				world_assert_unchanged(w, &snap);
				/* the boot step repaired the copy */
				assert_copies_equal(w, k_records[r]);
				/* install, boot, confirm work */
				world_update(w, m, w->v2, sizeof(w->v2));
				world_restart(w);
				struct ota_agent_status st;
				ota_agent_status(&w->agent, &st);
				assert_int_equal(st.security_counter, 7);
				assert_int_equal(st.confirmed.version_code, 20);
				cases++;
			}
		}
	}
	/* the same for a copy damaged without a boot step in between */
	for (size_t r = 0; r < sizeof(k_records) / sizeof(k_records[0]); r++) {
		world_teardown(w);
		world_setup(w);
		ota_fx_env_free(m);
		m = v2_manifest(w);
		damage_copy(w, k_records[r], 1, DAMAGE_ZERO);
		world_restart(w);
		assert_int_equal(world_install(w, m, NULL, NULL, w->v2, sizeof(w->v2)), OTA_OK);
		world_restart(w);
		unsigned slot = 9;
		assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
		assert_int_equal(w->agent.state.phase, OTA_PHASE_TRIAL);
		assert_int_equal(ota_agent_confirm(&w->agent), OTA_OK);
		cases++;
	}
	print_message("%u damaged-copy cases: nothing changed\n", cases);
	ota_fx_env_free(m);
}

/* The pending slot's manifest and an event, one copy damaged. */
static void test_one_bad_copy_manifest_and_event(void **state)
{
	struct world *w = *state;
	Fleetota__V1__Signed *m = v2_manifest(w);
	assert_int_equal(world_install(w, m, NULL, NULL, w->v2, sizeof(w->v2)), OTA_OK);
	unsigned target = w->agent.state.target_slot;
	enum ota_record mrec = target == 0 ? OTA_REC_MANIFEST_0 : OTA_REC_MANIFEST_1;
	damage_copy(w, mrec, 0, DAMAGE_ZERO);
	uint64_t last = w->agent.state.next_event_seq - 1;
	enum ota_record erec = (enum ota_record)(OTA_REC_EVENT_0 + last % OTA_AGENT_EVENT_RECORDS);
	damage_copy(w, erec, 1, DAMAGE_FLIP);
	world_restart(w);
	struct ota_event ev;
	assert_int_equal(ota_agent_event(&w->agent, last, &ev), OTA_OK);
	assert_int_equal(ev.kind, OTA_EVENT_PENDING);
	unsigned slot = 9;
	assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
	assert_int_equal(slot, target);
	assert_int_equal(w->agent.state.phase, OTA_PHASE_TRIAL);
	assert_int_equal(ota_agent_confirm(&w->agent), OTA_OK);
	ota_fx_env_free(m);
}

/* Both copies of a trust list or the counter bad: clear errors, the slot still boots. */
static void test_both_copies_bad(void **state)
{
	struct world *w = *state;
	static const enum ota_record trust[] = {OTA_REC_ROOTLIST, OTA_REC_KEYLIST, OTA_REC_COUNTER};
	Fleetota__V1__Signed *m = NULL;
	for (size_t r = 0; r < sizeof(trust) / sizeof(trust[0]); r++) {
		world_teardown(w);
		world_setup(w);
		ota_fx_env_free(m);
		m = v2_manifest(w);
		struct world_snapshot snap;
		world_snapshot(w, &snap);
		damage_copy(w, trust[r], 0, DAMAGE_ZERO);
		damage_copy(w, trust[r], 1, DAMAGE_FLIP);
		world_restart(w);
		provision_other_roots(w, OTA_ERR_BUSY);
		struct ota_agent_status st;
		ota_agent_status(&w->agent, &st);
		/* a lost counter never drops below the running image's */
		assert_int_equal(st.security_counter, 5);
		unsigned slot = 9;
		assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
		assert_int_equal(slot, snap.status.confirmed_slot);
		enum ota_err err = world_install(w, m, NULL, NULL, w->v2, sizeof(w->v2));
		if (trust[r] == OTA_REC_COUNTER) {
			/* the boot step stored the counter again */
			assert_copies_equal(w, OTA_REC_COUNTER);
			assert_int_equal(err, OTA_OK);
			continue;
		}
		assert_string_equal(ota_err_name(err), "OTA_ERR_STORAGE");
		ota_agent_status(&w->agent, &st);
		assert_string_equal(st.last_error_detail, "stored trust anchors unreadable");
		assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
		assert_int_equal(slot, snap.status.confirmed_slot);
	}
	ota_fx_env_free(m);
}

/* A pending image whose manifest cannot be read: the confirmed slot boots. */
static void test_pending_manifest_unreadable(void **state)
{
	struct world *w = *state;
	Fleetota__V1__Signed *m = v2_manifest(w);
	unsigned confirmed = w->agent.state.confirmed_slot;
	assert_int_equal(world_install(w, m, NULL, NULL, w->v2, sizeof(w->v2)), OTA_OK);
	enum ota_record mrec =
		w->agent.state.target_slot == 0 ? OTA_REC_MANIFEST_0 : OTA_REC_MANIFEST_1;
	damage_copy(w, mrec, 0, DAMAGE_ZERO);
	damage_copy(w, mrec, 1, DAMAGE_ZERO);
	world_restart(w);
	unsigned slot = 9;
	assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
	assert_int_equal(slot, confirmed);
	/* a new install replaces the pending one */
	world_update(w, m, w->v2, sizeof(w->v2));
	ota_fx_env_free(m);
}

/* ---- what the core logs: a port whose log op keeps the errors ---- */

static unsigned error_lines;
static char last_error[OTA_AGENT_DETAIL_BYTES];
static struct ota_port_ops logging_ops;

static void keep_errors(void *ctx, enum ota_log_level level, const char *msg)
{
	(void)ctx;
	if (level != OTA_LOG_ERROR)
		return;
	error_lines++;
	snprintf(last_error, sizeof(last_error), "%s", msg);
}

/* The agent opened again from its records (a restart), through a port that logs. */
static void restart_logging(struct world *w)
{
	struct ota_agent_config cfg = {.model = W_MODEL,
				       .hw_revision = W_HW,
				       .checkpoint_bytes = W_CHECKPOINT,
				       .freshness_max_age_s = 3600};
	struct ota_port port = ota_sim_port(w->sim);
	logging_ops = *port.ops;
	logging_ops.log = keep_errors;
	port.ops = &logging_ops;
	ota_agent_close(&w->agent);
	error_lines = 0;
	last_error[0] = '\0';
	assert_int_equal(ota_agent_init(&w->agent, &port, &cfg, w->work, OTA_AGENT_WORK_BYTES),
			 OTA_OK);
}

/* A fresh device: nothing written yet is blank, not unreadable. */
static void test_first_boot_logs_no_error(void **state)
{
	struct world *w = *state;
	struct ota_agent_status st;
	struct ota_freshness fresh;
	/* blank storage: not provisioned, no error */
	ota_agent_close(&w->agent);
	ota_sim_free(w->sim);
	w->sim = ota_sim_new(W_SLOT_BYTES);
	assert_non_null(w->sim);
	restart_logging(w);
	ota_agent_status(&w->agent, &st);
	assert_false(st.provisioned);
	assert_int_equal(error_lines, 0);
	/* provisioned, no state written by a boot yet, no freshness record */
	world_provision(w);
	restart_logging(w);
	assert_null(ota_sim_record(w->sim, OTA_REC_FRESHNESS, 0, &(size_t){0}));
	assert_int_equal(ota_agent_freshness(&w->agent, &fresh), OTA_OK);
	assert_int_equal(fresh.issued_at, 0);
	ota_agent_status(&w->agent, &st);
	assert_true(st.provisioned);
	assert_int_equal(st.last_error, OTA_OK);
	/* its first freshness check starts the record: still no error */
	ota_sim_set_clock(w->sim, W_ISSUED);
	assert_int_equal(ota_agent_freshness_check(&w->agent), OTA_OK);
	assert_non_null(ota_sim_record(w->sim, OTA_REC_FRESHNESS, 0, &(size_t){0}));
	assert_int_equal(error_lines, 0);
}

/* Damaged records are still errors: the freshness record, then the state. */
static void test_damaged_records_log_errors(void **state)
{
	struct world *w = *state;
	struct ota_freshness fresh;
	restart_logging(w);
	ota_sim_set_clock(w->sim, W_ISSUED);
	assert_int_equal(ota_agent_freshness_check(&w->agent), OTA_OK);
	assert_int_equal(error_lines, 0);
	for (unsigned copy = 0; copy < OTA_RECORD_COPIES; copy++)
		damage_copy(w, OTA_REC_FRESHNESS, copy, DAMAGE_FLIP);
	restart_logging(w);
	assert_int_equal(error_lines, 0); /* read when first needed */
	assert_int_equal(ota_agent_freshness(&w->agent, &fresh), OTA_OK);
	assert_int_equal(error_lines, 1);
	assert_string_equal(last_error, "freshness record unreadable, starting over");

	for (unsigned copy = 0; copy < OTA_RECORD_COPIES; copy++)
		damage_copy(w, OTA_REC_STATE, copy, DAMAGE_ZERO);
	restart_logging(w);
	assert_int_equal(error_lines, 1);
	assert_string_equal(last_error,
			    "state record unreadable (both copies); the boot step rebuilds it");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_state_deleted_stays_provisioned), T(test_state_and_boot_record_lost),
		T(test_state_lost_and_slot_rotten),	 T(test_one_bad_copy_changes_nothing),
		T(test_one_bad_copy_manifest_and_event), T(test_both_copies_bad),
		T(test_pending_manifest_unreadable),	 T(test_first_boot_logs_no_error),
		T(test_damaged_records_log_errors),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
