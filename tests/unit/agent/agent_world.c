/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "agent_world.h"
#include "fleetota/bundle.h"
#include "fleetota/crypt_host.h"
#include "ota_delta_make.h"

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

/* The sim's key_unwrap: the device holds w->dev_keys (a secure element's role). */
static enum ota_err world_unwrap(void *arg, const struct ota_key_unwrap_request *req,
				 uint8_t ret_key[32])
{
	struct world *w = arg;
	if (w->unwrap_refusal != OTA_OK)
		return w->unwrap_refusal;
	for (size_t i = 0; i < W_DEV_KEYS; i++) {
		uint8_t id[OTA_KEY_ID_BYTES];
		if (!w->dev_keys[i] || ota_crypt_recipient_id(w->dev_keys[i], id) != OTA_OK ||
		    memcmp(id, req->key_id, sizeof(id)) != 0)
			continue;
		return ota_crypt_unwrap(w->dev_keys[i], req->ephemeral_public,
					req->ephemeral_public_len, req->context, req->wrapped_key,
					ret_key);
	}
	return OTA_ERR_NOT_FOUND;
}

unsigned world_beside_calls;
static struct ota_port_ops beside_ops;

struct beside_job {
	void (*fn)(void *arg);
	void *arg;
};

static void *beside_thread(void *p)
{
	struct beside_job *job = p;
	job->fn(job->arg);
	return NULL;
}

static void thread_beside(void *ctx, void (*beside)(void *arg), void *beside_arg,
			  void (*own)(void *arg), void *own_arg)
{
	(void)ctx;
	struct beside_job job = {beside, beside_arg};
	pthread_t thread;
	world_beside_calls++;
	assert_int_equal(pthread_create(&thread, NULL, beside_thread, &job), 0);
	own(own_arg);
	assert_int_equal(pthread_join(thread, NULL), 0);
}

void world_use_beside(struct world *w)
{
	beside_ops = *ota_sim_port(w->sim).ops;
	beside_ops.run_beside = thread_beside;
	w->ops = &beside_ops;
}

static void agent_start(struct world *w)
{
	struct ota_agent_config cfg = {.model = W_MODEL,
				       .hw_revision = W_HW,
				       .checkpoint_bytes =
					       w->checkpoint ? w->checkpoint : W_CHECKPOINT,
				       .delta_work = w->delta_work,
				       .delta_work_len = OTA_DELTA_WORK_BYTES};
	struct ota_port port = ota_sim_port(w->sim);
	if (w->ops)
		port.ops = w->ops;
	assert_int_equal(ota_agent_init(&w->agent, &port, &cfg, w->work, OTA_AGENT_WORK_BYTES),
			 OTA_OK);
}

void world_restart(struct world *w)
{
	ota_agent_close(&w->agent);
	agent_start(w);
}

void world_fresh_device(struct world *w)
{
	if (w->sim) {
		ota_agent_close(&w->agent);
		ota_sim_free(w->sim);
	}
	w->sim = ota_sim_new(W_SLOT_BYTES);
	assert_non_null(w->sim);
	ota_sim_set_key_unwrap(w->sim, world_unwrap, w);
	agent_start(w);
	world_provision(w);
}

void world_provision(struct world *w)
{
	struct ota_fx_buf root = ota_fx_env_bytes(w->root1);
	struct ota_fx_buf kl = ota_fx_env_bytes(w->kl1);
	assert_int_equal(ota_agent_provision(&w->agent, root.data, root.len, kl.data, kl.len),
			 OTA_OK);
	ota_fx_buf_free(&root);
	ota_fx_buf_free(&kl);
}

void world_manifest(struct world *w, struct ota_fx_manifest *spec, const uint8_t *image, size_t len,
		    uint64_t version_code, uint64_t counter)
{
	ota_fx_manifest_init(spec, image, len);
	spec->product = W_MODEL;
	spec->version_code = version_code;
	spec->security_counter = counter;
	spec->version = version_code >= 20 ? "2.0.0" : "1.0.0";
	spec->signers = &w->op;
	spec->n_signers = 1;
}

void world_setup(struct world *w)
{
	memset(w, 0, sizeof(*w));
	w->work = malloc(OTA_AGENT_WORK_BYTES);
	assert_non_null(w->work);
	w->delta_work = malloc(OTA_DELTA_WORK_BYTES);
	assert_non_null(w->delta_work);
	for (int i = 0; i < 3; i++)
		w->roots[i] = ota_fx_key_new(i == 1 ? OTA_ALG_ECDSA_P256_SHA256 : OTA_ALG_ED25519);
	w->op = ota_fx_key_new(OTA_ALG_ED25519);
	w->revoked = ota_fx_key_new(OTA_ALG_ECDSA_P256_SHA256);
	w->old = ota_fx_key_new(OTA_ALG_ED25519);
	w->stranger = ota_fx_key_new(OTA_ALG_ED25519);
	for (size_t i = 0; i < W_DEV_KEYS; i++)
		w->dev_keys[i] = i == W_DEV_P256 ? ota_fx_p256_new() : ota_fx_x25519_new();
	struct ota_fx_rootlist rs = {.version = 1,
				     .threshold = 2,
				     .keys = w->roots,
				     .n_keys = 3,
				     .issued_at = W_ISSUED - 1000,
				     .signers = w->roots,
				     .n_signers = 2};
	w->root1 = ota_fx_rootlist(&rs);
	struct ota_fx_opkey keys1[3] = {
		{.key = w->op}, {.key = w->revoked}, {.key = w->old, .not_after = W_ISSUED - 500}};
	struct ota_fx_keylist ks = {.version = 1,
				    .issued_at = W_ISSUED - 900,
				    .keys = keys1,
				    .n_keys = 3,
				    .signers = w->roots,
				    .n_signers = 2};
	w->kl1 = ota_fx_keylist(&ks);
	struct ota_fx_opkey keys2[2] = {{.key = w->op},
					{.key = w->old, .not_after = W_ISSUED - 500}};
	ks.version = 2;
	ks.keys = keys2;
	ks.n_keys = 2;
	w->kl2 = ota_fx_keylist(&ks);
	fill(w->v1, sizeof(w->v1), 1);
	fill(w->v2, sizeof(w->v2), 2);

	world_fresh_device(w);
	struct ota_fx_buf kl2 = ota_fx_env_bytes(w->kl2);
	assert_int_equal(ota_agent_update_keylist(&w->agent, kl2.data, kl2.len), OTA_OK);
	ota_fx_buf_free(&kl2);
	struct ota_fx_manifest spec;
	world_manifest(w, &spec, w->v1, sizeof(w->v1), 10, 5);
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	world_update(w, m, w->v1, sizeof(w->v1));
	ota_fx_env_free(m);
}

void world_teardown(struct world *w)
{
	ota_agent_close(&w->agent);
	ota_sim_free(w->sim);
	ota_fx_env_free(w->root1);
	ota_fx_env_free(w->kl1);
	ota_fx_env_free(w->kl2);
	for (int i = 0; i < 3; i++)
		EVP_PKEY_free(w->roots[i]);
	EVP_PKEY_free(w->op);
	EVP_PKEY_free(w->revoked);
	EVP_PKEY_free(w->old);
	EVP_PKEY_free(w->stranger);
	for (size_t i = 0; i < W_DEV_KEYS; i++)
		EVP_PKEY_free(w->dev_keys[i]);
	free(w->work);
	free(w->delta_work);
}

void world_next_image(const struct world *w, uint8_t out[W_NEXT_LEN])
{
	memcpy(out, w->v1, W_V1_LEN);
	for (size_t i = 100; i < W_V1_LEN; i += 997)
		out[i] ^= 0x5a;
	memcpy(out + W_V1_LEN, w->v2, W_NEXT_LEN - W_V1_LEN);
}

enum ota_err world_buf_put(void *arg, const uint8_t *data, size_t len)
{
	struct world_buf *b = arg;
	if (b->len + len > b->cap) {
		size_t cap = (b->len + len) * 2;
		uint8_t *p = realloc(b->data, cap);
		if (!p)
			return OTA_ERR_NOMEM;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return OTA_OK;
}

void world_delta_make(struct world_delta *d, const uint8_t *base, size_t base_len,
		      const uint8_t *image, size_t len, uint32_t chunk_bytes)
{
	world_delta_make_with(d, base, base_len, image, len, chunk_bytes, OTA_DELTA_MATCH_AUTO);
}

void world_delta_make_with(struct world_delta *d, const uint8_t *base, size_t base_len,
			   const uint8_t *image, size_t len, uint32_t chunk_bytes, int matcher)
{
	struct world_buf b = {0};
	uint64_t size = 0;
	memset(d, 0, sizeof(*d));
	assert_int_equal(ota_delta_make_with(base, base_len, image, len, chunk_bytes, 19,
					     (enum ota_delta_matcher)matcher, world_buf_put, &b,
					     &size),
			 OTA_OK);
	d->payload = b.data;
	d->len = b.len;
	assert_int_equal(size, d->len);
	SHA256(base, base_len, d->base_sha256);
	SHA256(d->payload, d->len, d->sha256);
	fleetota__v1__delta_info__init(&d->info);
	d->info.base_sha256.data = d->base_sha256;
	d->info.base_sha256.len = 32;
	d->info.sha256.data = d->sha256;
	d->info.sha256.len = 32;
	d->info.size = d->len;
	d->info.algorithm = FLEETOTA__V1__DELTA_ALGORITHM__DELTA_ALGORITHM_ZSTD_CHUNKED;
	d->info.chunk_bytes = chunk_bytes;
	d->info.base_size = base_len;
}

void world_delta_free(struct world_delta *d)
{
	free(d->payload);
	memset(d, 0, sizeof(*d));
}

enum ota_err world_install(struct world *w, const Fleetota__V1__Signed *manifest,
			   const Fleetota__V1__Signed *keylist,
			   const Fleetota__V1__Signed *rootlist, const uint8_t *image, size_t len)
{
	struct ota_fx_bundle bs = {.manifest = manifest, .keylist = keylist, .rootlist = rootlist};
	struct ota_fx_buf b = ota_fx_bundle_bytes(&bs);
	uint32_t hlen = 0;
	assert_int_equal(ota_bundle_prefix_parse(b.data, &hlen), OTA_OK);
	enum ota_err err =
		ota_agent_begin_bundle(&w->agent, b.data + OTA_BUNDLE_PREFIX_BYTES, hlen);
	ota_fx_buf_free(&b);
	if (err != OTA_OK)
		return err;
	size_t piece = w->piece ? w->piece : 1000;
	struct ota_decrypt dec;
	bool ahead = w->ahead && ota_agent_ahead_open(&w->agent, &dec) == OTA_OK;
	w->ahead_plain = ahead ? malloc(piece) : NULL;
	assert_true(!ahead || w->ahead_plain);
	for (size_t off = (size_t)ota_agent_offset(&w->agent); off < len && err == OTA_OK;) {
		size_t n = len - off < piece ? len - off : piece;
		if (ahead) {
			struct ota_decrypt_ahead a;
			size_t whole = ota_decrypt_ahead_whole(&dec, off, piece);
			size_t sealed = (size_t)dec.chunk_bytes + OTA_CRYPT_TAG_BYTES;
			if (w->ahead_in_place && whole > 0 && whole * sealed == n) {
				uint8_t tags[64 * OTA_CRYPT_TAG_BYTES];
				assert_true(whole <= 64);
				for (size_t i = 0; i < whole; i++) {
					const uint8_t *c = image + off + i * sealed;
					memcpy(w->ahead_plain + i * dec.chunk_bytes, c,
					       dec.chunk_bytes);
					memcpy(tags + i * OTA_CRYPT_TAG_BYTES, c + dec.chunk_bytes,
					       OTA_CRYPT_TAG_BYTES);
				}
				ota_decrypt_ahead_in_place(&dec, off, w->ahead_plain, tags, whole,
							   &a);
				assert_null(a.in);
			} else {
				ota_decrypt_ahead(&dec, off, image + off, n, w->ahead_plain, piece,
						  &a);
			}
			if (w->ahead_hook)
				w->ahead_hook(w, &a);
			err = ota_agent_write_ahead(&w->agent, &a);
		} else {
			err = ota_agent_write(&w->agent, image + off, n);
		}
		off += n;
	}
	if (ahead)
		ota_decrypt_close(&dec);
	free(w->ahead_plain);
	w->ahead_plain = NULL;
	return err == OTA_OK ? ota_agent_finish(&w->agent) : err;
}

void world_update(struct world *w, const Fleetota__V1__Signed *manifest, const uint8_t *image,
		  size_t len)
{
	unsigned slot = 9;
	assert_int_equal(world_install(w, manifest, NULL, NULL, image, len), OTA_OK);
	assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
	assert_int_equal(slot, w->agent.state.target_slot);
	assert_int_equal(w->agent.state.phase, OTA_PHASE_TRIAL);
	assert_int_equal(ota_agent_confirm(&w->agent), OTA_OK);
	assert_int_equal(w->agent.state.phase, OTA_PHASE_IDLE);
	assert_int_equal(w->agent.state.confirmed_slot, slot);
}

void world_snapshot(struct world *w, struct world_snapshot *snap)
{
	ota_agent_status(&w->agent, &snap->status);
	SHA256(ota_sim_slot(w->sim, snap->status.running_slot), snap->status.confirmed.size,
	       snap->running_sha);
}

static void assert_same(struct world *w, const struct world_snapshot *snap)
{
	struct world_snapshot now;
	world_snapshot(w, &now);
	assert_int_equal(now.status.phase, snap->status.phase);
	assert_int_equal(now.status.running_slot, snap->status.running_slot);
	assert_int_equal(now.status.confirmed_slot, snap->status.confirmed_slot);
	assert_memory_equal(&now.status.confirmed, &snap->status.confirmed,
			    sizeof(now.status.confirmed));
	assert_int_equal(now.status.security_counter, snap->status.security_counter);
	assert_int_equal(now.status.keylist_version, snap->status.keylist_version);
	assert_int_equal(now.status.rootlist_version, snap->status.rootlist_version);
	assert_memory_equal(now.running_sha, snap->running_sha, sizeof(now.running_sha));
}

void world_assert_unchanged(struct world *w, const struct world_snapshot *snap)
{
	assert_same(w, snap);
	world_restart(w);
	assert_same(w, snap);
	unsigned slot = 9;
	assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
	assert_int_equal(slot, snap->status.running_slot);
}

/* Installs m (+ optional trust objects) with image and expects err, nothing changed. */
void world_expect_rejected(struct world *w, const Fleetota__V1__Signed *m,
			   const Fleetota__V1__Signed *kl, const Fleetota__V1__Signed *root,
			   const uint8_t *image, size_t len, enum ota_err expected)
{
	struct world_snapshot snap;
	world_snapshot(w, &snap);
	enum ota_err err = world_install(w, m, kl, root, image, len);
	assert_string_equal(ota_err_name(err), ota_err_name(expected));
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_string_equal(ota_err_name(st.last_error), ota_err_name(expected));
	/* the rejection is in the event log */
	struct ota_event ev;
	assert_int_equal(ota_agent_event(&w->agent, st.next_event_seq - 1, &ev), OTA_OK);
	assert_int_equal(ev.kind, OTA_EVENT_REJECTED);
	assert_int_equal(ev.error, expected);
	world_assert_unchanged(w, &snap);
}
