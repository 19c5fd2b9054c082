/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signed freshness on the device (fleetota/freshness.h) through the core's
 * online policy (ota_online_freshness) on the simulator port, whose clock
 * is trusted, with a fake transport (the port's fetch operation): a stale
 * Timestamp opens the freeze report (OTA_ERR_FROZEN, event, report field)
 * and a fresh one closes it, across a restart; the timestamp key cannot
 * sign a manifest or a KeyList and an operational key cannot sign a
 * Timestamp (OTA_ERR_KEY_ROLE, nothing changed); expires_at = 0 and
 * over-long lifetimes are refused; an older Timestamp changes nothing; one
 * dated ahead of the trusted clock is refused and none raises the latest
 * trusted time; a rotated timestamp key counts from scratch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent_world.h"
#include "fleetota/freshness.h"
#include "fleetota/online.h"

#define NOW (W_ISSUED + 100000u)
#define MAX_AGE 3600u

struct fx {
	struct world w;
	EVP_PKEY *ts_key;
	Fleetota__V1__Signed *kl3; /* op + the timestamp key */
	struct ota_fx_buf served; /* what /v1/timestamp/MODEL returns; NULL data: 404 */
	char last_path[64];
	Fleetota__V1__StatusReport *last_report;
	unsigned reports;
};

static struct fx *cur;
static struct ota_port_ops fake_ops;
static uint8_t online_work[OTA_ONLINE_WORK_BYTES];

static enum ota_err fake_fetch(void *ctx, const struct ota_fetch_request *req,
			       ota_port_sink_fn sink, void *sink_arg, struct ota_fetch_result *ret)
{
	(void)ctx;
	memset(ret, 0, sizeof(*ret));
	assert_int_equal(req->what, OTA_FETCH_TIMESTAMP);
	snprintf(cur->last_path, sizeof(cur->last_path), "%s", req->path);
	if (!cur->served.data) {
		ret->status = 404;
		return OTA_ERR_TRANSPORT;
	}
	ret->status = 200;
	if (cur->served.len > req->max_bytes)
		return OTA_ERR_SIZE;
	ret->body_bytes = cur->served.len;
	return sink(sink_arg, cur->served.data, cur->served.len);
}

static bool report_begin(void *arg, const struct ota_agent_status *st, uint64_t *seq)
{
	(void)st;
	struct fx *f = arg;
	*seq = ++f->reports;
	return true;
}

static void report_send(void *arg, const uint8_t *buf, size_t len)
{
	struct fx *f = arg;
	if (f->last_report)
		fleetota__v1__status_report__free_unpacked(f->last_report, NULL);
	f->last_report = fleetota__v1__status_report__unpack(NULL, len, buf);
	assert_non_null(f->last_report);
}

/* The agent again, with freshness detection and the fake transport (a restart). */
static void start(struct fx *f)
{
	struct ota_agent_config cfg = {.model = W_MODEL,
				       .hw_revision = W_HW,
				       .checkpoint_bytes = W_CHECKPOINT,
				       .freshness_max_age_s = MAX_AGE};
	struct ota_port port = ota_sim_port(f->w.sim);
	ota_agent_close(&f->w.agent);
	assert_int_equal(ota_agent_init(&f->w.agent, &port, &cfg, f->w.work, OTA_AGENT_WORK_BYTES),
			 OTA_OK);
	fake_ops = *f->w.agent.port.ops;
	fake_ops.fetch = fake_fetch;
	f->w.agent.port.ops = &fake_ops;
}

static struct ota_online online_of(struct fx *f)
{
	return (struct ota_online){.agent = &f->w.agent,
				   .device_id = "dev-1",
				   .model = W_MODEL,
				   .hw_revision = W_HW,
				   .work = online_work,
				   .arg = f,
				   .report_begin = report_begin,
				   .report_send = report_send};
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	world_setup(&f->w);
	f->ts_key = ota_fx_key_new(OTA_ALG_ED25519);
	struct ota_fx_opkey keys[2] = {
		{.key = f->w.op},
		{.key = f->ts_key, .role = FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP}};
	struct ota_fx_keylist ks = {.version = 3,
				    .issued_at = W_ISSUED - 800,
				    .keys = keys,
				    .n_keys = 2,
				    .signers = f->w.roots,
				    .n_signers = 2};
	f->kl3 = ota_fx_keylist(&ks);
	struct ota_fx_buf kl3 = ota_fx_env_bytes(f->kl3);
	assert_int_equal(ota_agent_update_keylist(&f->w.agent, kl3.data, kl3.len), OTA_OK);
	ota_fx_buf_free(&kl3);
	ota_sim_set_clock(f->w.sim, NOW);
	cur = f;
	start(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	world_teardown(&f->w);
	EVP_PKEY_free(f->ts_key);
	ota_fx_env_free(f->kl3);
	ota_fx_buf_free(&f->served);
	if (f->last_report)
		fleetota__v1__status_report__free_unpacked(f->last_report, NULL);
	free(f);
	return 0;
}

/* A Timestamp of the device's product line issued at issued, alive for life seconds. */
static struct ota_fx_buf timestamp_bytes(EVP_PKEY *signer, enum ota_obj_type type,
					 const char *product, uint64_t issued, uint64_t life)
{
	struct ota_fx_timestamp spec = {.product = product,
					.issued_at = issued,
					.expires_at = life ? issued + life : 0,
					.keylist_version = 3,
					.version = "2.0.0",
					.version_code = 20,
					.security_counter = 6,
					.artifact = "fw-2",
					.sign_type = type,
					.signers = &signer,
					.n_signers = 1};
	Fleetota__V1__Signed *env = ota_fx_timestamp(&spec);
	struct ota_fx_buf buf = ota_fx_env_bytes(env);
	ota_fx_env_free(env);
	return buf;
}

static void serve(struct fx *f, struct ota_fx_buf buf)
{
	ota_fx_buf_free(&f->served);
	f->served = buf;
}

/* The newest event of the log. */
static struct ota_event last_event(struct fx *f)
{
	struct ota_agent_status st;
	struct ota_event ev;
	ota_agent_status(&f->w.agent, &st);
	assert_int_equal(ota_agent_event(&f->w.agent, st.next_event_seq - 1, &ev), OTA_OK);
	return ev;
}

static void stale_reports_frozen_and_fresh_clears(void **state)
{
	struct fx *f = *state;
	struct ota_online o = online_of(f);
	enum ota_err ts_err = OTA_OK;

	/* a frozen server keeps serving the last Timestamp it signed: expired now */
	serve(f, timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, W_MODEL, NOW - 20000, 10000));
	assert_int_equal(ota_online_freshness(&o, &ts_err), OTA_ERR_FROZEN);
	assert_string_equal(f->last_path, "/v1/timestamp/" W_MODEL);
	assert_string_equal(ota_err_name(ts_err), "OTA_ERR_EXPIRED");
	struct ota_event ev = last_event(f);
	assert_int_equal(ev.kind, OTA_EVENT_FREEZE_SUSPECTED);
	assert_string_equal(ota_err_name(ev.error), "OTA_ERR_FROZEN");
	assert_non_null(f->last_report);
	assert_string_equal(f->last_report->freshness_error, "OTA_ERR_FROZEN");
	unsigned reports = f->reports;

	/* the report is opened once, and it survives a restart */
	assert_int_equal(ota_online_freshness(&o, &ts_err), OTA_ERR_FROZEN);
	assert_int_equal(f->reports, reports);
	start(f);
	struct ota_freshness fresh;
	assert_int_equal(ota_agent_freshness(&f->w.agent, &fresh), OTA_OK);
	assert_true(fresh.frozen);
	assert_int_equal(fresh.issued_at, NOW - 20000);

	/* a fresh Timestamp closes it */
	serve(f, timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, W_MODEL, NOW - 10, 3600));
	assert_int_equal(ota_online_freshness(&o, &ts_err), OTA_OK);
	assert_int_equal(ts_err, OTA_OK);
	assert_int_equal(f->reports, reports + 1);
	assert_string_equal(f->last_report->freshness_error, "");
	assert_int_equal(f->last_report->timestamp_issued_at, NOW - 10);
	assert_int_equal(f->last_report->current_version_code, 20);
	ev = last_event(f);
	assert_int_equal(ev.kind, OTA_EVENT_FRESHNESS_RESTORED);
	start(f);
	assert_int_equal(ota_agent_freshness(&f->w.agent, &fresh), OTA_OK);
	assert_false(fresh.frozen);
	assert_int_equal(fresh.expires_at, NOW - 10 + 3600);
	assert_string_equal(fresh.version, "2.0.0");

	/* time passes without a new one: frozen again once max_age is over */
	ota_sim_set_clock(f->w.sim, NOW - 10 + 3600 + MAX_AGE - 1);
	assert_int_equal(ota_agent_freshness_check(&f->w.agent), OTA_OK);
	ota_sim_set_clock(f->w.sim, NOW - 10 + 3600 + MAX_AGE);
	assert_int_equal(ota_agent_freshness_check(&f->w.agent), OTA_ERR_FROZEN);
}

static void never_seen_counts_from_first_check(void **state)
{
	struct fx *f = *state;
	struct ota_online o = online_of(f);
	enum ota_err ts_err = OTA_OK;
	/* the server has no timestamp role: 404, and the clock starts at the first check */
	assert_int_equal(ota_online_freshness(&o, &ts_err), OTA_OK);
	assert_string_equal(ota_err_name(ts_err), "OTA_ERR_TRANSPORT");
	ota_sim_set_clock(f->w.sim, NOW + MAX_AGE - 1);
	assert_int_equal(ota_online_freshness(&o, &ts_err), OTA_OK);
	ota_sim_set_clock(f->w.sim, NOW + MAX_AGE);
	assert_int_equal(ota_online_freshness(&o, &ts_err), OTA_ERR_FROZEN);
	assert_string_equal(f->last_report->freshness_error, "OTA_ERR_FROZEN");
}

/* What a refused Timestamp must not change. */
static void assert_refused(struct fx *f, struct ota_fx_buf buf, const char *want)
{
	struct ota_freshness before, after;
	struct world_snapshot snap;
	assert_int_equal(ota_agent_freshness(&f->w.agent, &before), OTA_OK);
	world_snapshot(&f->w, &snap);
	enum ota_err err = ota_agent_timestamp(&f->w.agent, buf.data, buf.len);
	assert_string_equal(ota_err_name(err), want);
	ota_fx_buf_free(&buf);
	world_assert_unchanged(&f->w, &snap);
	start(f);
	assert_int_equal(ota_agent_freshness(&f->w.agent, &after), OTA_OK);
	assert_memory_equal(&before, &after, sizeof(before));
}

static void operational_key_cannot_sign_timestamp(void **state)
{
	struct fx *f = *state;
	assert_refused(f, timestamp_bytes(f->w.op, OTA_OBJ_TIMESTAMP, W_MODEL, NOW, 3600),
		       "OTA_ERR_KEY_ROLE");
	/* a stranger's key is unknown; the timestamp key's signature as "manifest" is void */
	assert_refused(f, timestamp_bytes(f->w.stranger, OTA_OBJ_TIMESTAMP, W_MODEL, NOW, 3600),
		       "OTA_ERR_KEY_UNKNOWN");
	assert_refused(f, timestamp_bytes(f->ts_key, OTA_OBJ_MANIFEST, W_MODEL, NOW, 3600),
		       "OTA_ERR_SIGNATURE");
	assert_refused(f, timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, "other-model", NOW, 3600),
		       "OTA_ERR_HW_MISMATCH");
}

static void expires_at_zero_and_long_lives_refused(void **state)
{
	struct fx *f = *state;
	assert_refused(f, timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, W_MODEL, NOW, 0),
		       "OTA_ERR_FORMAT");
	assert_refused(f,
		       timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, W_MODEL, NOW,
				       OTA_MAX_TIMESTAMP_LIFETIME_S + 1),
		       "OTA_ERR_FORMAT");
	/* the longest allowed life is fine */
	struct ota_fx_buf ok = timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, W_MODEL, NOW,
					       OTA_MAX_TIMESTAMP_LIFETIME_S);
	assert_int_equal(ota_agent_timestamp(&f->w.agent, ok.data, ok.len), OTA_OK);
	ota_fx_buf_free(&ok);
}

static void older_timestamp_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct ota_fx_buf newer = timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, W_MODEL, NOW, 3600);
	assert_int_equal(ota_agent_timestamp(&f->w.agent, newer.data, newer.len), OTA_OK);
	/* the same one again is no change and no error */
	assert_int_equal(ota_agent_timestamp(&f->w.agent, newer.data, newer.len), OTA_OK);
	ota_fx_buf_free(&newer);
	assert_refused(f, timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, W_MODEL, NOW - 60, 3600),
		       "OTA_ERR_TIMESTAMP_ROLLBACK");
}

static void future_timestamp_refused(void **state)
{
	struct fx *f = *state;
	/* a stolen timestamp key dates one far ahead to hold the ratchet */
	assert_refused(f,
		       timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, W_MODEL,
				       NOW + OTA_TIMESTAMP_MAX_SKEW_S + 1, 3600),
		       "OTA_ERR_EXPIRED");
	struct ota_fx_buf ok = timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, W_MODEL,
					       NOW + OTA_TIMESTAMP_MAX_SKEW_S, 3600);
	struct ota_agent_status before, after;
	ota_agent_status(&f->w.agent, &before);
	assert_int_equal(ota_agent_timestamp(&f->w.agent, ok.data, ok.len), OTA_OK);
	ota_fx_buf_free(&ok);
	/* a Timestamp never raises the latest trusted time (its key is online) */
	ota_agent_status(&f->w.agent, &after);
	assert_int_equal(after.latest_time, before.latest_time);
}

static void rotated_key_counts_from_scratch(void **state)
{
	struct fx *f = *state;
	struct ota_fx_buf first = timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, W_MODEL, NOW, 3600);
	assert_int_equal(ota_agent_timestamp(&f->w.agent, first.data, first.len), OTA_OK);
	ota_fx_buf_free(&first);
	/* the roots replace the timestamp key (KeyList v4) */
	EVP_PKEY *next_key = ota_fx_key_new(OTA_ALG_ECDSA_P256_SHA256);
	struct ota_fx_opkey keys[2] = {
		{.key = f->w.op},
		{.key = next_key, .role = FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP}};
	struct ota_fx_keylist ks = {.version = 4,
				    .issued_at = W_ISSUED,
				    .keys = keys,
				    .n_keys = 2,
				    .signers = f->w.roots,
				    .n_signers = 2};
	Fleetota__V1__Signed *kl4 = ota_fx_keylist(&ks);
	struct ota_fx_buf kl4_bytes = ota_fx_env_bytes(kl4);
	assert_int_equal(ota_agent_update_keylist(&f->w.agent, kl4_bytes.data, kl4_bytes.len),
			 OTA_OK);
	/* the old key is gone; the new one's Timestamps are not compared with its */
	struct ota_fx_buf old =
		timestamp_bytes(f->ts_key, OTA_OBJ_TIMESTAMP, W_MODEL, NOW + 1, 3600);
	assert_string_equal(ota_err_name(ota_agent_timestamp(&f->w.agent, old.data, old.len)),
			    "OTA_ERR_KEY_UNKNOWN");
	struct ota_fx_buf next =
		timestamp_bytes(next_key, OTA_OBJ_TIMESTAMP, W_MODEL, NOW - 100, 3600);
	assert_int_equal(ota_agent_timestamp(&f->w.agent, next.data, next.len), OTA_OK);
	struct ota_freshness fresh;
	assert_int_equal(ota_agent_freshness(&f->w.agent, &fresh), OTA_OK);
	assert_int_equal(fresh.issued_at, NOW - 100);
	ota_fx_buf_free(&old);
	ota_fx_buf_free(&next);
	ota_fx_buf_free(&kl4_bytes);
	ota_fx_env_free(kl4);
	EVP_PKEY_free(next_key);
}

static void timestamp_key_cannot_sign_manifest(void **state)
{
	struct fx *f = *state;
	struct world_snapshot snap;
	struct ota_fx_manifest spec;
	world_manifest(&f->w, &spec, f->w.v2, sizeof(f->w.v2), 20, 6);
	spec.signers = &f->ts_key;
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_snapshot(&f->w, &snap);
	assert_string_equal(
		ota_err_name(world_install(&f->w, m, NULL, NULL, f->w.v2, sizeof(f->w.v2))),
		"OTA_ERR_KEY_ROLE");
	world_assert_unchanged(&f->w, &snap);
	ota_fx_env_free(m);
}

static void timestamp_key_cannot_sign_keylist(void **state)
{
	struct fx *f = *state;
	struct world_snapshot snap;
	/* a captured server holds the timestamp key: it tries to add its own key */
	struct ota_fx_opkey keys[3] = {
		{.key = f->w.op},
		{.key = f->ts_key, .role = FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP},
		{.key = f->w.stranger}};
	EVP_PKEY *signers[2] = {f->ts_key, f->w.roots[0]};
	for (size_t n = 1; n <= 2; n++) {
		struct ota_fx_keylist ks = {.version = 4,
					    .issued_at = W_ISSUED,
					    .keys = keys,
					    .n_keys = 3,
					    .signers = signers,
					    .n_signers = n};
		Fleetota__V1__Signed *kl = ota_fx_keylist(&ks);
		struct ota_fx_buf buf = ota_fx_env_bytes(kl);
		world_snapshot(&f->w, &snap);
		assert_string_equal(
			ota_err_name(ota_agent_update_keylist(&f->w.agent, buf.data, buf.len)),
			"OTA_ERR_KEY_ROLE");
		world_assert_unchanged(&f->w, &snap);
		assert_int_equal(snap.status.keylist_version, 3);
		ota_fx_buf_free(&buf);
		ota_fx_env_free(kl);
	}
	/* nor may the roots make the timestamp key one of their own */
	struct ota_fx_opkey root_as_ts[2] = {
		{.key = f->w.op},
		{.key = f->w.roots[2], .role = FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP}};
	struct ota_fx_keylist ks = {.version = 4,
				    .issued_at = W_ISSUED,
				    .keys = root_as_ts,
				    .n_keys = 2,
				    .signers = f->w.roots,
				    .n_signers = 2};
	Fleetota__V1__Signed *kl = ota_fx_keylist(&ks);
	struct ota_fx_buf buf = ota_fx_env_bytes(kl);
	world_snapshot(&f->w, &snap);
	assert_string_equal(ota_err_name(ota_agent_update_keylist(&f->w.agent, buf.data, buf.len)),
			    "OTA_ERR_KEY_ROLE");
	world_assert_unchanged(&f->w, &snap);
	ota_fx_buf_free(&buf);
	ota_fx_env_free(kl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(stale_reports_frozen_and_fresh_clears, setup,
						teardown),
		cmocka_unit_test_setup_teardown(never_seen_counts_from_first_check, setup,
						teardown),
		cmocka_unit_test_setup_teardown(operational_key_cannot_sign_timestamp, setup,
						teardown),
		cmocka_unit_test_setup_teardown(expires_at_zero_and_long_lives_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(older_timestamp_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(future_timestamp_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(rotated_key_counts_from_scratch, setup, teardown),
		cmocka_unit_test_setup_teardown(timestamp_key_cannot_sign_manifest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(timestamp_key_cannot_sign_keylist, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
