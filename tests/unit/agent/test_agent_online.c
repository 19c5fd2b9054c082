/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The core's online install policy (agent/src/online.c) on the simulator
 * port with a fake transport (the port's fetch and wait operations):
 * manifest first, a newer KeyList on OTA_ERR_KEY_UNKNOWN, Range resume
 * after a stall or a cut, back-off (Retry-After, 1 2 4 s, capped), retries
 * bounded, SIZE and PIN final, endless data and a short image refused by
 * the core, a stop request, and the simulator's power cut (port/sim).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent_world.h"
#include "fleetota/hex.h"
#include "fleetota/online.h"
#include "ota_sim_faults.h"

#define ART "fw-2"
#define CHUNK 1000u
#define MAX_FETCHES 16u

enum fault {
	F_NONE = 0,
	F_STALL, /* fault_at bytes, then the transport's deadline: OTA_ERR_TIMEOUT */
	F_CUT, /* fault_at bytes, then the connection drops: OTA_ERR_TRANSPORT */
	F_ENDLESS, /* the image, then more bytes, past max_bytes */
	F_SHORT, /* one byte less than the image, and success */
	F_PIN, /* the server's key is not pinned */
	F_BUSY, /* 429 with Retry-After */
};

struct fake {
	struct ota_fx_buf manifest;
	struct ota_fx_buf keylist; /* data NULL: 404 */
	const uint8_t *image;
	size_t image_len;
	enum fault faults[MAX_FETCHES]; /* per image fetch */
	size_t fault_at[MAX_FETCHES];
	unsigned retry_after;
	bool stop;
	/* what the transport saw */
	unsigned fetches[5];
	uint64_t offsets[MAX_FETCHES];
	unsigned n_image;
	uint64_t image_bytes;
	unsigned waits[MAX_FETCHES];
	unsigned n_waits;
	Fleetota__V1__DeviceState states[64];
	uint32_t progress[64];
	bool health_known[64];
	uint32_t reboots[64];
	uint32_t health[64];
	unsigned n_states;
	unsigned retries;
	enum ota_err outcome;
	/* delta delivery: the manifest without ?full=1, the payload at ?base= */
	struct ota_fx_buf delta_manifest;
	const uint8_t *delta;
	size_t delta_len;
	char delta_path[160];
	unsigned full_manifests;
	unsigned delta_fetches;
};

static struct fake fk;
static struct ota_port_ops fake_ops;
static struct ota_sim_faults sim_faults;
static struct ota_port_ops faulty_ops;
static uint8_t online_work[OTA_ONLINE_WORK_BYTES];

static enum ota_err deliver(const uint8_t *data, size_t len, uint64_t max, size_t stop_at,
			    ota_port_sink_fn sink, void *arg, struct ota_fetch_result *ret)
{
	if (len > max)
		return OTA_ERR_SIZE; /* announced too long */
	for (size_t off = 0; off < len && off < stop_at;) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;
		if (n > stop_at - off)
			n = stop_at - off;
		enum ota_err err = sink(arg, data + off, n);
		ret->body_bytes += n;
		if (err != OTA_OK)
			return err;
		off += n;
	}
	return OTA_OK;
}

static enum ota_err fake_fetch(void *ctx, const struct ota_fetch_request *req,
			       ota_port_sink_fn sink, void *sink_arg, struct ota_fetch_result *ret)
{
	(void)ctx;
	memset(ret, 0, sizeof(*ret));
	assert_true((unsigned)req->what < 5u);
	fk.fetches[req->what]++;
	switch (req->what) {
	case OTA_FETCH_MANIFEST:
		if (strcmp(req->artifact, "refused-here") == 0) {
			/* the server refused the handshake: no status, the transport's detail */
			snprintf(ret->detail, sizeof(ret->detail),
				 "TLS alert certificate revoked (44)");
			return OTA_ERR_TRANSPORT;
		}
		if (strcmp(req->artifact, ART) != 0) {
			assert_string_equal(req->path, "/v1/manifests/nothing-here");
			ret->status = 404;
			return OTA_ERR_TRANSPORT;
		}
		assert_int_equal(req->offset, 0);
		ret->status = 200;
		if (strcmp(req->path, "/v1/manifests/" ART "?full=1") == 0) {
			fk.full_manifests++;
		} else {
			assert_string_equal(req->path, "/v1/manifests/" ART);
			if (fk.delta_manifest.data)
				return deliver(fk.delta_manifest.data, fk.delta_manifest.len,
					       req->max_bytes, SIZE_MAX, sink, sink_arg, ret);
		}
		return deliver(fk.manifest.data, fk.manifest.len, req->max_bytes, SIZE_MAX, sink,
			       sink_arg, ret);
	case OTA_FETCH_KEYLIST:
		assert_string_equal(req->path, "/v1/keylist");
		if (!fk.keylist.data) {
			ret->status = 404;
			return OTA_ERR_TRANSPORT;
		}
		ret->status = 200;
		return deliver(fk.keylist.data, fk.keylist.len, req->max_bytes, SIZE_MAX, sink,
			       sink_arg, ret);
	case OTA_FETCH_ROOTLIST:
	case OTA_FETCH_TIMESTAMP:
		ret->status = 404;
		return OTA_ERR_TRANSPORT;
	case OTA_FETCH_IMAGE:
		break;
	}
	if (strchr(req->path, '?')) {
		assert_string_equal(req->path, fk.delta_path);
		assert_int_equal(req->max_bytes, fk.delta_len - req->offset);
		fk.delta_fetches++;
		ret->status = 200;
		return deliver(fk.delta + req->offset, fk.delta_len - (size_t)req->offset,
			       req->max_bytes, SIZE_MAX, sink, sink_arg, ret);
	}
	assert_string_equal(req->path, "/v1/images/" ART);
	assert_true(fk.n_image < MAX_FETCHES);
	unsigned i = fk.n_image++;
	fk.offsets[i] = req->offset;
	assert_true(req->offset <= fk.image_len);
	assert_int_equal(req->max_bytes, fk.image_len - req->offset);
	const uint8_t *rest = fk.image + req->offset;
	size_t rest_len = fk.image_len - (size_t)req->offset;
	enum ota_err err;
	ret->status = req->offset ? 206 : 200;
	switch (fk.faults[i]) {
	case F_STALL:
	case F_CUT:
		err = deliver(rest, rest_len, req->max_bytes, fk.fault_at[i], sink, sink_arg, ret);
		if (err == OTA_OK && fk.fault_at[i] < rest_len)
			err = fk.faults[i] == F_STALL ? OTA_ERR_TIMEOUT : OTA_ERR_TRANSPORT;
		break;
	case F_ENDLESS: {
		/* a server that never stops: the bound must hold on the device */
		static uint8_t junk[CHUNK];
		err = deliver(rest, rest_len, SIZE_MAX, SIZE_MAX, sink, sink_arg, ret);
		for (unsigned n = 0; err == OTA_OK && n < 1000u; n++)
			err = deliver(junk, sizeof(junk), SIZE_MAX, SIZE_MAX, sink, sink_arg, ret);
		break;
	}
	case F_SHORT:
		err = deliver(rest, rest_len - 1, req->max_bytes, SIZE_MAX, sink, sink_arg, ret);
		break;
	case F_PIN:
		ret->status = 0;
		err = OTA_ERR_PIN;
		break;
	case F_BUSY:
		ret->status = 429;
		ret->retry_after_s = fk.retry_after;
		err = OTA_ERR_TRANSPORT;
		break;
	default:
		err = deliver(rest, rest_len, req->max_bytes, SIZE_MAX, sink, sink_arg, ret);
		break;
	}
	fk.image_bytes += ret->body_bytes;
	return err;
}

static void fake_wait(void *ctx, unsigned seconds)
{
	(void)ctx;
	assert_true(fk.n_waits < MAX_FETCHES);
	fk.waits[fk.n_waits++] = seconds;
}

/* The agent's port: the simulator's storage, the fake transport. */
static void use_fake_transport(struct world *w)
{
	fake_ops = *w->agent.port.ops;
	fake_ops.fetch = fake_fetch;
	fake_ops.wait = fake_wait;
	w->agent.port.ops = &fake_ops;
}

static bool stopping(void *arg)
{
	(void)arg;
	return fk.stop;
}

static bool report_begin(void *arg, const struct ota_agent_status *st, uint64_t *seq)
{
	(void)arg;
	(void)st;
	*seq = fk.n_states + 1;
	return true;
}

static void report_send(void *arg, const uint8_t *buf, size_t len)
{
	(void)arg;
	Fleetota__V1__StatusReport *r = fleetota__v1__status_report__unpack(NULL, len, buf);
	assert_non_null(r);
	assert_string_equal(r->device_id, "dev-online");
	assert_string_equal(r->model, W_MODEL);
	assert_true(fk.n_states < 64u);
	fk.states[fk.n_states] = r->state;
	fk.progress[fk.n_states] = r->progress_permille;
	fk.health_known[fk.n_states] = r->health_known;
	fk.reboots[fk.n_states] = r->unexpected_reboots;
	fk.health[fk.n_states] = r->health_permille;
	fk.n_states++;
	fleetota__v1__status_report__free_unpacked(r, NULL);
}

static void note(void *arg, enum ota_online_note what, enum ota_err err)
{
	(void)arg;
	if (what == OTA_ONLINE_RETRY)
		fk.retries++;
	if (what == OTA_ONLINE_DOWNLOAD_END)
		fk.outcome = err;
}

static struct ota_online policy(struct world *w)
{
	return (struct ota_online){.agent = &w->agent,
				   .device_id = "dev-online",
				   .model = W_MODEL,
				   .hw_revision = W_HW,
				   .download_retries = 5,
				   .work = online_work,
				   .stopping = stopping,
				   .report_begin = report_begin,
				   .report_send = report_send,
				   .note = note};
}

static void serve_manifest(struct world *w, EVP_PKEY *signer)
{
	struct ota_fx_manifest spec;
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 20, 7);
	if (signer)
		spec.signers = &signer;
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	fk.manifest = ota_fx_env_bytes(m);
	ota_fx_env_free(m);
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	world_setup(w);
	memset(&fk, 0, sizeof(fk));
	fk.image = w->v2;
	fk.image_len = sizeof(w->v2);
	use_fake_transport(w);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	ota_fx_buf_free(&fk.manifest);
	ota_fx_buf_free(&fk.keylist);
	ota_fx_buf_free(&fk.delta_manifest);
	world_teardown(w);
	free(w);
	return 0;
}

/* Runs version, nothing staged (or, with a kept prefix, still staging). */
static void assert_runs_in(struct world *w, const char *version, uint64_t counter,
			   enum ota_phase phase)
{
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.phase, phase);
	assert_int_equal(st.running_slot, st.confirmed_slot);
	assert_string_equal(st.confirmed.version, version);
	assert_int_equal(st.security_counter, counter);
}

static void assert_runs(struct world *w, const char *version, uint64_t counter)
{
	assert_runs_in(w, version, counter, OTA_PHASE_IDLE);
}

static void assert_states(const Fleetota__V1__DeviceState *want, unsigned n)
{
	assert_int_equal(fk.n_states, n);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(fk.states[i], want[i]);
}

#define S(x) FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_##x

static void test_install_confirms(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_manifest(w, NULL);
	assert_int_equal(ota_online_install(&o, ART), OTA_OK);
	assert_runs(w, "2.0.0", 7);
	const Fleetota__V1__DeviceState want[] = {S(DOWNLOADING), S(VERIFYING), S(DOWNLOADING),
						  S(PENDING),	  S(TRIAL),	S(CONFIRMED)};
	assert_states(want, 6);
	assert_int_equal(fk.progress[3], 1000);
	assert_int_equal(fk.fetches[OTA_FETCH_MANIFEST], 1);
	assert_int_equal(fk.fetches[OTA_FETCH_KEYLIST], 0);
	assert_int_equal(fk.n_image, 1);
	assert_int_equal(fk.offsets[0], 0);
	assert_int_equal(fk.image_bytes, sizeof(w->v2));
	assert_int_equal(fk.n_waits, 0);
	assert_string_equal(o.artifact, ART);
	assert_int_equal(fk.outcome, OTA_OK);
}

/*
 * Delta delivery: the server offers a delta from the running v1 (the
 * manifest names its base; the payload is fetched at ?base=HEX). With a
 * good payload the device installs it; with a bad one it refuses it (by
 * name, in the report) and fetches the full image once (?full=1).
 */
static void delta_serve(struct world *w, struct world_delta *d, uint8_t *next, bool tamper)
{
	struct ota_fx_manifest spec;
	world_next_image(w, next);
	world_delta_make(d, w->v1, sizeof(w->v1), next, W_NEXT_LEN, W_DELTA_CHUNK);
	if (tamper) /* after the maker hashed it: the manifest binds the good payload */
		d->payload[d->len / 2] ^= 0x10;
	world_manifest(w, &spec, next, W_NEXT_LEN, 20, 7);
	Fleetota__V1__Signed *full = ota_fx_manifest(&spec);
	fk.manifest = ota_fx_env_bytes(full);
	ota_fx_env_free(full);
	spec.delta = &d->info;
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	fk.delta_manifest = ota_fx_env_bytes(m);
	ota_fx_env_free(m);
	fk.image = next;
	fk.image_len = W_NEXT_LEN;
	fk.delta = d->payload;
	fk.delta_len = d->len;
	int at = sprintf(fk.delta_path, "/v1/images/" ART "?base=");
	ota_hex_encode(d->base_sha256, 32, fk.delta_path + at);
}

static void test_delta_install(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	struct world_delta d;
	uint8_t next[W_NEXT_LEN];
	delta_serve(w, &d, next, false);
	assert_int_equal(ota_online_install(&o, ART), OTA_OK);
	assert_runs(w, "2.0.0", 7);
	assert_int_equal(w->agent.state.slots[w->agent.state.confirmed_slot].size, W_NEXT_LEN);
	assert_int_equal(fk.delta_fetches, 1);
	assert_int_equal(fk.n_image, 0);
	assert_int_equal(fk.full_manifests, 0);
	assert_int_equal(fk.outcome, OTA_OK);
	world_delta_free(&d);
}

static void test_delta_fails_then_full(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	struct world_delta d;
	uint8_t next[W_NEXT_LEN];
	delta_serve(w, &d, next, true);
	assert_int_equal(ota_online_install(&o, ART), OTA_OK);
	assert_runs(w, "2.0.0", 7);
	assert_int_equal(fk.delta_fetches, 1);
	assert_int_equal(fk.full_manifests, 1);
	assert_int_equal(fk.n_image, 1);
	assert_int_equal(fk.image_bytes, W_NEXT_LEN);
	/* the refused delta was reported by name before the full image came */
	bool rejected = false;
	for (unsigned i = 0; i < fk.n_states; i++)
		rejected = rejected || fk.states[i] == S(REJECTED);
	assert_true(rejected);
	struct ota_event ev;
	bool hash_event = false;
	for (uint64_t seq = 1; seq < w->agent.state.next_event_seq; seq++) {
		if (ota_agent_event(&w->agent, seq, &ev) == OTA_OK &&
		    ev.kind == OTA_EVENT_REJECTED && ev.error == OTA_ERR_HASH)
			hash_event = true;
	}
	assert_true(hash_event);
	world_delta_free(&d);
}

/* A stall after 9000 bytes: the next request resumes from the checkpoint. */
static void test_stall_resumes_with_range(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_manifest(w, NULL);
	fk.faults[0] = F_STALL;
	fk.fault_at[0] = 9000;
	assert_int_equal(ota_online_install(&o, ART), OTA_OK);
	assert_runs(w, "2.0.0", 7);
	assert_int_equal(fk.n_image, 2);
	assert_true(fk.offsets[1] > 0 && fk.offsets[1] <= 9000);
	/* only the part after the kept prefix came again */
	assert_int_equal(fk.image_bytes, 9000 + sizeof(w->v2) - fk.offsets[1]);
	assert_int_equal(fk.retries, 1);
	assert_int_equal(fk.n_waits, 1);
	assert_int_equal(fk.waits[0], 1);
}

/* The encrypted v2 (issue 16) in chunks of 4096 for keys; the fake serves its ciphertext. */
static struct ota_fx_crypt *serve_encrypted(struct world *w, EVP_PKEY *const *keys, size_t n)
{
	struct ota_fx_manifest spec;
	struct ota_fx_crypt *crypt = ota_fx_encrypt(w->v2, sizeof(w->v2), 4096, keys, n);
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 20, 7);
	spec.encryption = crypt->enc;
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	fk.manifest = ota_fx_env_bytes(m);
	ota_fx_env_free(m);
	fk.image = crypt->ciphertext.data;
	fk.image_len = crypt->ciphertext.len;
	return crypt;
}

/* An encrypted image stalls after 9000 bytes: Range resumes at a chunk boundary. */
static void test_encrypted_stall_resumes_at_chunk(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	struct ota_fx_crypt *crypt = serve_encrypted(w, w->dev_keys, 1);
	fk.faults[0] = F_STALL;
	fk.fault_at[0] = 9000;
	assert_int_equal(ota_online_install(&o, ART), OTA_OK);
	assert_runs(w, "2.0.0", 7);
	assert_memory_equal(ota_sim_slot(w->sim, w->agent.state.confirmed_slot), w->v2,
			    sizeof(w->v2));
	assert_int_equal(fk.n_image, 2);
	/* a checkpoint after every chunk of 4096 + 16: two authenticated before byte 9000 */
	assert_int_equal(fk.offsets[1], 2 * 4112);
	assert_int_equal(fk.image_bytes, 9000 + crypt->ciphertext.len - 2 * 4112);
	ota_fx_crypt_free(crypt);
}

/* A device that is no recipient never asks for the image. */
static void test_encrypted_not_recipient_no_download(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	EVP_PKEY *other = ota_fx_x25519_new();
	struct ota_fx_crypt *crypt = serve_encrypted(w, &other, 1);
	assert_string_equal(ota_err_name(ota_online_install(&o, ART)), "OTA_ERR_NOT_RECIPIENT");
	assert_int_equal(fk.fetches[OTA_FETCH_IMAGE], 0);
	assert_runs(w, "1.0.0", 5);
	ota_fx_crypt_free(crypt);
	EVP_PKEY_free(other);
}

/* Two cuts: each attempt resumes where the last one's checkpoint is; 1 s then 2 s. */
static void test_cuts_resume_and_back_off(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_manifest(w, NULL);
	fk.faults[0] = F_CUT;
	fk.fault_at[0] = 6500;
	fk.faults[1] = F_CUT;
	fk.fault_at[1] = 5000;
	assert_int_equal(ota_online_install(&o, ART), OTA_OK);
	assert_runs(w, "2.0.0", 7);
	assert_int_equal(fk.n_image, 3);
	assert_true(fk.offsets[1] > 0 && fk.offsets[1] <= 6500);
	assert_true(fk.offsets[2] > fk.offsets[1] && fk.offsets[2] <= fk.offsets[1] + 5000);
	assert_int_equal(fk.n_waits, 2);
	assert_int_equal(fk.waits[0], 1);
	assert_int_equal(fk.waits[1], 2);
}

/* Retry-After is honoured, at most OTA_ONLINE_MAX_BACKOFF_S. */
static void test_retry_after(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_manifest(w, NULL);
	fk.faults[0] = F_BUSY;
	fk.faults[1] = F_BUSY;
	fk.retry_after = 7;
	assert_int_equal(ota_online_install(&o, ART), OTA_OK);
	assert_int_equal(fk.n_waits, 2);
	assert_int_equal(fk.waits[0], 7);
	assert_int_equal(fk.waits[1], 7);
}

/* download_retries resumed attempts, then the failure is final. */
static void test_retries_bounded(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	o.download_retries = 2;
	serve_manifest(w, NULL);
	for (unsigned i = 0; i < MAX_FETCHES; i++) {
		fk.faults[i] = F_STALL;
		fk.fault_at[i] = 0;
	}
	assert_int_equal(ota_online_install(&o, ART), OTA_ERR_TIMEOUT);
	assert_int_equal(fk.n_image, 3);
	assert_int_equal(fk.n_waits, 2);
	assert_int_equal(fk.waits[1], 2);
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.last_error, OTA_ERR_TIMEOUT);
	assert_string_equal(st.last_error_detail, "image download: status 200");
	assert_string_equal(st.confirmed.version, "1.0.0");
	assert_int_equal(fk.states[fk.n_states - 1], S(FAILED));
	assert_int_equal(fk.outcome, OTA_ERR_TIMEOUT);
}

/* A server asking for long waits is capped. */
static void test_backoff_capped(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_manifest(w, NULL);
	fk.faults[0] = F_BUSY;
	fk.retry_after = 100000;
	assert_int_equal(ota_online_install(&o, ART), OTA_OK);
	assert_int_equal(fk.n_waits, 1);
	assert_int_equal(fk.waits[0], OTA_ONLINE_MAX_BACKOFF_S);
}

/* One image fetch with fault f ends the install with want, no retry. */
static void final_fault(struct world *w, enum fault f, enum ota_err want, enum ota_phase phase,
			Fleetota__V1__DeviceState last)
{
	struct ota_online o = policy(w);
	serve_manifest(w, NULL);
	fk.faults[0] = f;
	assert_int_equal(ota_online_install(&o, ART), want);
	assert_int_equal(fk.n_image, 1);
	assert_int_equal(fk.n_waits, 0);
	assert_runs_in(w, "1.0.0", 5, phase);
	assert_int_equal(fk.states[fk.n_states - 1], last);
}

/* Endless data: the core takes no byte past the manifest's size. */
static void test_endless_data(void **state)
{
	struct world *w = *state;
	final_fault(w, F_ENDLESS, OTA_ERR_SIZE, OTA_PHASE_IDLE, S(REJECTED));
	assert_true(fk.image_bytes <= sizeof(w->v2) + CHUNK);
}

/* One byte short, and the transport says done: the core refuses it. */
static void test_wrong_size(void **state)
{
	final_fault(*state, F_SHORT, OTA_ERR_SIZE, OTA_PHASE_IDLE, S(REJECTED));
}

/* A server that is not pinned: no retry; the hashed prefix is kept for later. */
static void test_pin_is_final(void **state)
{
	final_fault(*state, F_PIN, OTA_ERR_PIN, OTA_PHASE_STAGING, S(FAILED));
}

/* The server offers KeyList 3: op and, with_stranger, the stranger's key. */
static void serve_keylist3(struct world *w, bool with_stranger)
{
	struct ota_fx_opkey keys[2] = {{.key = w->op}, {.key = w->stranger}};
	struct ota_fx_keylist ks = {.version = 3,
				    .issued_at = W_ISSUED - 800,
				    .keys = keys,
				    .n_keys = with_stranger ? 2 : 1,
				    .signers = w->roots,
				    .n_signers = 2};
	Fleetota__V1__Signed *kl3 = ota_fx_keylist(&ks);
	fk.keylist = ota_fx_env_bytes(kl3);
	ota_fx_env_free(kl3);
}

/* The manifest's key is only in a newer KeyList: fetched, applied, one more try. */
static void test_key_unknown_then_newer_keylist(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_keylist3(w, true);
	serve_manifest(w, w->stranger);
	assert_int_equal(ota_online_install(&o, ART), OTA_OK);
	assert_runs(w, "2.0.0", 7);
	assert_int_equal(w->agent.keylist_version, 3);
	assert_int_equal(fk.fetches[OTA_FETCH_KEYLIST], 1);
	const Fleetota__V1__DeviceState want[] = {S(DOWNLOADING), S(VERIFYING), S(VERIFYING),
						  S(DOWNLOADING), S(PENDING),	S(TRIAL),
						  S(CONFIRMED)};
	assert_states(want, 7);
}

/* The newer KeyList does not have it either: rejected before one image byte. */
static void test_key_unknown_everywhere(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_keylist3(w, false);
	serve_manifest(w, w->stranger);
	assert_int_equal(ota_online_install(&o, ART), OTA_ERR_KEY_UNKNOWN);
	assert_int_equal(fk.fetches[OTA_FETCH_IMAGE], 0);
	assert_int_equal(fk.fetches[OTA_FETCH_KEYLIST], 1);
	assert_runs(w, "1.0.0", 5);
	assert_int_equal(fk.states[fk.n_states - 1], S(REJECTED));
}

/* No KeyList to be had (404): the manifest's own error, no image byte. */
static void test_key_unknown_no_keylist(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_manifest(w, w->stranger);
	assert_int_equal(ota_online_install(&o, ART), OTA_ERR_KEY_UNKNOWN);
	assert_int_equal(fk.fetches[OTA_FETCH_IMAGE], 0);
	assert_int_equal(w->agent.keylist_version, 2);
}

/* A failed manifest fetch: the detail names what and the status. */
static void test_manifest_missing(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	assert_int_equal(ota_online_install(&o, "nothing-here"), OTA_ERR_TRANSPORT);
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.last_error, OTA_ERR_TRANSPORT);
	assert_string_equal(st.last_error_detail, "GET /v1/manifests/nothing-here: status 404");
	assert_int_equal(fk.fetches[OTA_FETCH_IMAGE], 0);
	assert_int_equal(fk.states[fk.n_states - 1], S(FAILED));
}

/* A fetch that failed without a status: the detail is the transport's (a TLS alert). */
static void test_manifest_refused(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	assert_int_equal(ota_online_install(&o, "refused-here"), OTA_ERR_TRANSPORT);
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.last_error, OTA_ERR_TRANSPORT);
	assert_string_equal(st.last_error_detail,
			    "GET /v1/manifests/refused-here: TLS alert certificate revoked (44)");
	assert_int_equal(fk.fetches[OTA_FETCH_IMAGE], 0);
}

/* A stop request ends the retries. */
static void test_stop(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_manifest(w, NULL);
	fk.faults[0] = F_CUT;
	fk.fault_at[0] = 3000;
	fk.stop = true;
	assert_int_equal(ota_online_install(&o, ART), OTA_ERR_TRANSPORT);
	assert_int_equal(fk.n_image, 1);
	/* the hashed prefix is kept for a later resume */
	assert_runs_in(w, "1.0.0", 5, OTA_PHASE_STAGING);
	assert_int_equal(fk.states[fk.n_states - 1], S(FAILED));
}

/* ---- the simulator's power cut (agent/port/sim/sim_faults.c) ---------- */

static unsigned power_cycles;

static enum ota_err faulty_fetch(void *ctx, const struct ota_fetch_request *req,
				 ota_port_sink_fn sink, void *sink_arg,
				 struct ota_fetch_result *ret)
{
	(void)ctx;
	return ota_sim_faults_fetch(&sim_faults, req, sink, sink_arg, ret);
}

static void use_faulty_transport(struct world *w)
{
	faulty_ops = *w->agent.port.ops;
	faulty_ops.fetch = faulty_fetch;
	faulty_ops.wait = fake_wait;
	w->agent.port.ops = &faulty_ops;
}

/* The device boots again from its records. */
static void power_cycle(void *arg)
{
	struct world *w = arg;
	unsigned slot = 0;
	power_cycles++;
	world_restart(w);
	use_faulty_transport(w);
	assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
}

static void test_sim_power_cut(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_manifest(w, NULL);
	power_cycles = 0;
	sim_faults = (struct ota_sim_faults){
		.inner_ops = &fake_ops, .power_cut = true, .power_cycle = power_cycle, .arg = w};
	use_faulty_transport(w);
	assert_int_equal(ota_online_install(&o, ART), OTA_OK);
	assert_int_equal(power_cycles, 1);
	assert_false(sim_faults.power_cut);
	assert_runs(w, "2.0.0", 7);
	assert_int_equal(fk.n_image, 2);
	/* the cut came half way; the restart resumed from the checkpoint before it */
	assert_true(fk.offsets[1] <= sizeof(w->v2) / 2);
	/* a restart is not a retry: no back-off */
	assert_int_equal(fk.n_waits, 0);
}

/* Without a fetch operation the policy refuses at once. */
static void test_no_transport(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	fake_ops.fetch = NULL;
	assert_int_equal(ota_online_install(&o, ART), OTA_ERR_INVALID_ARG);
	assert_runs(w, "1.0.0", 5);
}

/* Notify dedup: the real agent and the simulator drop the same hints. */
static Fleetota__V1__Notify notify_of(uint64_t seq, Fleetota__V1__NotifyKind kind, char *artifact,
				      char *campaign)
{
	Fleetota__V1__Notify n = FLEETOTA__V1__NOTIFY__INIT;
	n.seq = seq;
	n.kind = kind;
	n.artifact = artifact;
	n.campaign_id = campaign;
	return n;
}

static void test_notify_duplicates(void **state)
{
	(void)state;
	const Fleetota__V1__NotifyKind fw = FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_FIRMWARE;
	const Fleetota__V1__NotifyKind kl = FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_KEYLIST;
	char art[] = "fw-2", other[] = "fw-3", camp[] = "c-1", camp2[] = "c-2", empty[] = "";
	struct ota_online_install_ref busy[3] = {{NULL, NULL}, {"", ""}, {"fw-2", "c-1"}};
	uint64_t last = 0;
	Fleetota__V1__Notify n = notify_of(5, kl, empty, empty);

	assert_false(ota_online_notify_duplicate(&last, &n, NULL, 0));
	assert_int_equal(last, 5);
	/* the same seq again, and an older one: dropped, last unchanged */
	assert_true(ota_online_notify_duplicate(&last, &n, NULL, 0));
	n.seq = 4;
	assert_true(ota_online_notify_duplicate(&last, &n, NULL, 0));
	assert_int_equal(last, 5);
	/* seq 0 (no seq) is never a duplicate by seq */
	n.seq = 0;
	assert_false(ota_online_notify_duplicate(&last, &n, NULL, 0));
	assert_int_equal(last, 5);
	/* a re-issued firmware Notify (new seq) for an install queued, running or done */
	n = notify_of(9, fw, art, camp);
	assert_true(ota_online_notify_duplicate(&last, &n, busy, 3));
	assert_int_equal(last, 9);
	/* another campaign or another artifact is new */
	n = notify_of(10, fw, art, camp2);
	assert_false(ota_online_notify_duplicate(&last, &n, busy, 3));
	n = notify_of(11, fw, other, camp);
	assert_false(ota_online_notify_duplicate(&last, &n, busy, 3));
	/* empty or missing artifacts never match */
	n = notify_of(12, fw, NULL, NULL);
	assert_false(ota_online_notify_duplicate(&last, &n, busy, 3));
	n = notify_of(13, fw, empty, empty);
	assert_false(ota_online_notify_duplicate(&last, &n, busy, 3));
	/* a non-firmware Notify is not matched against installs */
	n = notify_of(14, kl, art, camp);
	assert_false(ota_online_notify_duplicate(&last, &n, busy, 3));
}

static void test_artifact_names(void **state)
{
	(void)state;
	char longest[OTA_ONLINE_ARTIFACT_MAX + 2];
	memset(longest, 'a', sizeof(longest));
	longest[OTA_ONLINE_ARTIFACT_MAX] = '\0';
	assert_true(ota_online_artifact_ok("fw-1.2_3"));
	assert_true(ota_online_artifact_ok(longest));
	longest[OTA_ONLINE_ARTIFACT_MAX] = 'a';
	longest[OTA_ONLINE_ARTIFACT_MAX + 1] = '\0';
	assert_false(ota_online_artifact_ok(longest));
	assert_false(ota_online_artifact_ok(""));
	assert_false(ota_online_artifact_ok(".hidden"));
	assert_false(ota_online_artifact_ok("../x"));
	assert_false(ota_online_artifact_ok("a/b"));
	assert_false(ota_online_artifact_ok("a b"));
	assert_false(ota_online_artifact_ok("a%2f"));
}

/* Post-install health: a confirm opens the window; reports then carry the
 * port's health and the boots it did not ask for since the confirm. */
static void test_health_after_confirm(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_manifest(w, NULL);
	ota_sim_set_health(w->sim, 1000, 4); /* boots before the update do not count */
	ota_online_report(&o, S(IDLE));
	assert_false(fk.health_known[0]);
	assert_int_equal(ota_online_install(&o, ART), OTA_OK);
	unsigned last = fk.n_states - 1;
	assert_int_equal(fk.states[last], S(CONFIRMED));
	assert_false(fk.health_known[last - 1]); /* the trial report */
	assert_true(fk.health_known[last]);
	assert_int_equal(fk.reboots[last], 0);
	assert_int_equal(fk.health[last], 1000);
	ota_sim_set_health(w->sim, 400, 6);
	ota_online_report(&o, S(IDLE));
	last = fk.n_states - 1;
	assert_true(fk.health_known[last]);
	assert_int_equal(fk.reboots[last], 2);
	assert_int_equal(fk.health[last], 400);
	ota_online_health_close(&o);
	ota_online_report(&o, S(IDLE));
	assert_false(fk.health_known[fk.n_states - 1]);
}

static enum ota_err failing_selftest(void *ctx, unsigned slot)
{
	(void)ctx;
	(void)slot;
	return OTA_ERR_SELFTEST;
}

/* A revert opens no window; a port without the hook reports healthy. */
static void test_health_revert_and_no_hook(void **state)
{
	struct world *w = *state;
	struct ota_online o = policy(w);
	serve_manifest(w, NULL);
	fake_ops.selftest = failing_selftest;
	o.selftest = true;
	assert_int_equal(ota_online_install(&o, ART), OTA_ERR_SELFTEST);
	assert_false(o.health_open);
	assert_false(fk.health_known[fk.n_states - 1]);
	fake_ops.health = NULL;
	ota_online_health_open(&o);
	ota_online_report(&o, S(IDLE));
	assert_true(fk.health_known[fk.n_states - 1]);
	assert_int_equal(fk.health[fk.n_states - 1], 1000);
	assert_int_equal(fk.reboots[fk.n_states - 1], 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_install_confirms),
		T(test_health_after_confirm),
		T(test_health_revert_and_no_hook),
		T(test_delta_install),
		T(test_delta_fails_then_full),
		T(test_stall_resumes_with_range),
		T(test_encrypted_stall_resumes_at_chunk),
		T(test_encrypted_not_recipient_no_download),
		T(test_cuts_resume_and_back_off),
		T(test_retry_after),
		T(test_retries_bounded),
		T(test_backoff_capped),
		T(test_endless_data),
		T(test_wrong_size),
		T(test_pin_is_final),
		T(test_key_unknown_then_newer_keylist),
		T(test_key_unknown_everywhere),
		T(test_key_unknown_no_keylist),
		T(test_manifest_missing),
		T(test_manifest_refused),
		T(test_stop),
		T(test_sim_power_cut),
		T(test_no_transport),
		cmocka_unit_test(test_notify_duplicates),
		cmocka_unit_test(test_artifact_names),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
