/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encrypted images in the agent core (issue 16): a good update, then the
 * attack matrix (not a recipient, wrong key, tampered ciphertext in the
 * first, a middle and the last chunk, swapped chunks, truncated tag, a
 * wrapped key replayed from another artifact, delta + encryption), each
 * checking the exact error name and that the device did not change
 * (world_expect_rejected); a resume at a chunk boundary; and the number of
 * storage operations of a staging against a plain one. The update and the
 * attack cases run again with a port that runs a job on a second thread
 * (run_beside): the core then decrypts runs of whole chunks on two threads;
 * and again with the pieces decrypted ahead (ota_decrypt_ahead, as the
 * Linux port's read-ahead thread does) and taken back by
 * ota_agent_write_ahead.
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
#include "fleetota/crypt_host.h"
#include "fleetota/trust.h"

/* 20000-byte v2 in chunks of 4096: four full chunks and one of 3616. */
#define CHUNK 4096u
#define SEALED (CHUNK + OTA_CRYPT_TAG_BYTES)
#define N_CHUNKS 5u

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

/* An encrypted v2 (code 20, counter 7) for recipients, and its signed manifest. */
struct enc_update {
	struct ota_fx_crypt *crypt;
	Fleetota__V1__Signed *m;
};

/* The same, in chunks of chunk bytes. */
static void enc_update_make_chunks(struct world *w, struct enc_update *u, const uint8_t *image,
				   size_t len, uint32_t chunk, EVP_PKEY *const *recipients,
				   size_t n)
{
	struct ota_fx_manifest spec;
	u->crypt = ota_fx_encrypt(image, len, chunk, recipients, n);
	world_manifest(w, &spec, image, len, 20, 7);
	spec.encryption = u->crypt->enc;
	u->m = ota_fx_manifest(&spec);
}

static void enc_update_make(struct world *w, struct enc_update *u, const uint8_t *image, size_t len,
			    EVP_PKEY *const *recipients, size_t n)
{
	enc_update_make_chunks(w, u, image, len, CHUNK, recipients, n);
}

/* The manifest again, after a test changed u->crypt->enc. */
static void enc_update_resign(struct world *w, struct enc_update *u, const uint8_t *image,
			      size_t len)
{
	struct ota_fx_manifest spec;
	ota_fx_env_free(u->m);
	world_manifest(w, &spec, image, len, 20, 7);
	spec.encryption = u->crypt->enc;
	u->m = ota_fx_manifest(&spec);
}

static void enc_update_free(struct enc_update *u)
{
	ota_fx_env_free(u->m);
	ota_fx_crypt_free(u->crypt);
}

static void expect_enc_rejected(struct world *w, struct enc_update *u, enum ota_err expected)
{
	world_expect_rejected(w, u->m, NULL, NULL, u->crypt->ciphertext.data,
			      u->crypt->ciphertext.len, expected);
}

static void assert_running_v2(struct world *w)
{
	struct ota_agent_status st;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(st.confirmed.version_code, 20);
	assert_memory_equal(ota_sim_slot(w->sim, st.running_slot), w->v2, sizeof(w->v2));
}

static void test_encrypted_update(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	assert_int_equal(u.crypt->ciphertext.len, sizeof(w->v2) + N_CHUNKS * OTA_CRYPT_TAG_BYTES);
	world_update(w, u.m, u.crypt->ciphertext.data, u.crypt->ciphertext.len);
	assert_running_v2(w);
	enc_update_free(&u);
}

/* A product line's key among strangers' keys: the device finds its entry. */
static void test_product_line_key(void **state)
{
	struct world *w = *state;
	EVP_PKEY *keys[3] = {ota_fx_x25519_new(), w->dev_keys[1], ota_fx_x25519_new()};
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), keys, 3);
	world_update(w, u.m, u.crypt->ciphertext.data, u.crypt->ciphertext.len);
	assert_running_v2(w);
	enc_update_free(&u);
	EVP_PKEY_free(keys[0]);
	EVP_PKEY_free(keys[2]);
}

/*
 * An image for strangers' keys only: refused by begin, before one image
 * byte (the online path never fetches the image); then frees the keys.
 */
static void expect_not_recipient(struct world *w, EVP_PKEY **strangers, size_t n)
{
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), strangers, n);
	struct ota_fx_buf env = ota_fx_env_bytes(u.m);
	assert_string_equal(
		ota_err_name(ota_agent_begin(&w->agent, env.data, env.len, NULL, 0, NULL, NULL, 0)),
		"OTA_ERR_NOT_RECIPIENT");
	assert_int_equal(ota_agent_image_size(&w->agent), 0);
	ota_fx_buf_free(&env);
	expect_enc_rejected(w, &u, OTA_ERR_NOT_RECIPIENT);
	enc_update_free(&u);
	for (size_t i = 0; i < n; i++)
		EVP_PKEY_free(strangers[i]);
}

static void test_not_recipient(void **state)
{
	EVP_PKEY *other = ota_fx_x25519_new();
	expect_not_recipient(*state, &other, 1);
}

/* The device's key id, but the key was wrapped for another key. */
static void test_wrong_key(void **state)
{
	struct world *w = *state;
	EVP_PKEY *other = ota_fx_x25519_new();
	uint8_t id[OTA_KEY_ID_BYTES];
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &other, 1);
	assert_int_equal(ota_crypt_recipient_id(w->dev_keys[0], id), OTA_OK);
	memcpy(u.crypt->enc->recipients[0]->key_id.data, id, sizeof(id));
	enc_update_resign(w, &u, w->v2, sizeof(w->v2));
	expect_enc_rejected(w, &u, OTA_ERR_KEY_UNWRAP);
	EVP_PKEY_free(other);
	enc_update_free(&u);
}

/*
 * An entry that unwraps, but to a key that is not the artifact's (a
 * signer's mistake or a planted entry): the key check refuses it before
 * the download, not the first tag after it.
 */
static void test_wrong_content_key(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	uint8_t other[OTA_CEK_BYTES], context[OTA_CRYPT_WRAP_CONTEXT_BYTES], sha[OTA_SHA256_BYTES];
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	Fleetota__V1__Recipient *r = u.crypt->enc->recipients[0];
	memset(other, 0x5a, sizeof(other));
	SHA256(w->v2, sizeof(w->v2), sha);
	ota_crypt_wrap_context(r->key_id.data, u.crypt->enc->nonce_prefix.data, sha, context);
	struct ota_crypt_wrapped wrapped;
	assert_int_equal(ota_crypt_wrap(w->dev_keys[0], context, other, &wrapped), OTA_OK);
	assert_int_equal(wrapped.ephemeral_len, r->ephemeral_public.len);
	memcpy(r->ephemeral_public.data, wrapped.ephemeral, wrapped.ephemeral_len);
	memcpy(r->wrapped_key.data, wrapped.wrapped, sizeof(wrapped.wrapped));
	enc_update_resign(w, &u, w->v2, sizeof(w->v2));
	struct ota_fx_buf env = ota_fx_env_bytes(u.m);
	assert_string_equal(
		ota_err_name(ota_agent_begin(&w->agent, env.data, env.len, NULL, 0, NULL, NULL, 0)),
		"OTA_ERR_KEY_UNWRAP");
	ota_fx_buf_free(&env);
	expect_enc_rejected(w, &u, OTA_ERR_KEY_UNWRAP);
	enc_update_free(&u);
}

/* One bit of chunk `chunk` flipped at offset `at` (a tag byte when at >= the chunk's data). */
static void tamper_case(struct world *w, size_t chunk, size_t at)
{
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	size_t off = chunk * SEALED + at;
	assert_true(off < u.crypt->ciphertext.len);
	u.crypt->ciphertext.data[off] ^= 0x10;
	expect_enc_rejected(w, &u, OTA_ERR_DECRYPT);
	enc_update_free(&u);
}

static void test_tampered_first_chunk(void **state)
{
	tamper_case(*state, 0, 7);
}

static void test_tampered_middle_chunk(void **state)
{
	tamper_case(*state, 2, CHUNK / 2);
}

static void test_tampered_last_chunk(void **state)
{
	tamper_case(*state, N_CHUNKS - 1, 100);
}

static void test_tampered_tag(void **state)
{
	tamper_case(*state, 1, CHUNK + 3);
}

static void test_swapped_chunks(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	uint8_t tmp[SEALED];
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	uint8_t *ct = u.crypt->ciphertext.data;
	memcpy(tmp, ct + SEALED, SEALED);
	memcpy(ct + SEALED, ct + 2 * SEALED, SEALED);
	memcpy(ct + 2 * SEALED, tmp, SEALED);
	expect_enc_rejected(w, &u, OTA_ERR_DECRYPT);
	enc_update_free(&u);
}

/* The stream ends inside the last tag: shorter than the signed ciphertext size. */
static void test_truncated_tag(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	ota_fx_buf_truncate(&u.crypt->ciphertext, 5);
	expect_enc_rejected(w, &u, OTA_ERR_SIZE);
	enc_update_free(&u);
}

/* Four bytes cut out of chunk 0's tag, four appended: same length, broken tag. */
static void test_shortened_tag_realigned(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	struct ota_fx_buf *ct = &u.crypt->ciphertext;
	memmove(ct->data + CHUNK + 12, ct->data + SEALED, ct->len - SEALED);
	memset(ct->data + ct->len - 4, 0, 4);
	expect_enc_rejected(w, &u, OTA_ERR_DECRYPT);
	enc_update_free(&u);
}

/* Only the chunk marked last may end the stream: a last chunk dropped is caught. */
static void test_dropped_last_chunk_manifest_consistent(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	/* the image without its last chunk, but encrypted as the full one's first chunks */
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	struct ota_fx_buf *ct = &u.crypt->ciphertext;
	/* pad the dropped part with chunk 0 again: its AAD says "not last", index 0 */
	memcpy(ct->data + 4 * SEALED, ct->data, ct->len - 4 * SEALED);
	expect_enc_rejected(w, &u, OTA_ERR_DECRYPT);
	enc_update_free(&u);
}

/*
 * A wrapped key copied from artifact A into artifact B's (correctly
 * signed) manifest: the wrap context binds B, so it does not unwrap.
 */
static void test_replayed_wrapped_key(void **state)
{
	struct world *w = *state;
	struct enc_update a, b;
	uint8_t v3[W_V2_LEN];
	memcpy(v3, w->v2, sizeof(v3));
	v3[10] ^= 0xff;
	enc_update_make(w, &a, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	enc_update_make(w, &b, v3, sizeof(v3), &w->dev_keys[0], 1);
	Fleetota__V1__Recipient *ra = a.crypt->enc->recipients[0];
	Fleetota__V1__Recipient *rb = b.crypt->enc->recipients[0];
	memcpy(rb->ephemeral_public.data, ra->ephemeral_public.data, OTA_X25519_BYTES);
	memcpy(rb->wrapped_key.data, ra->wrapped_key.data, OTA_WRAPPED_KEY_BYTES);
	enc_update_resign(w, &b, v3, sizeof(v3));
	world_expect_rejected(w, b.m, NULL, NULL, b.crypt->ciphertext.data, b.crypt->ciphertext.len,
			      OTA_ERR_KEY_UNWRAP);
	/* and A's whole encryption block with B's image digest: A's key, B's check */
	ota_fx_crypt_free(b.crypt);
	b.crypt = NULL;
	struct ota_fx_manifest spec;
	ota_fx_env_free(b.m);
	world_manifest(w, &spec, v3, sizeof(v3), 20, 7);
	spec.encryption = a.crypt->enc;
	b.m = ota_fx_manifest(&spec);
	world_expect_rejected(w, b.m, NULL, NULL, a.crypt->ciphertext.data, a.crypt->ciphertext.len,
			      OTA_ERR_KEY_UNWRAP);
	enc_update_free(&a);
	enc_update_free(&b);
}

/* Every tag checks but the plaintext is not the signed one: the digest catches it. */
static void test_plaintext_hash_checked(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	uint8_t bad[CHUNK];
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	memcpy(bad, w->v2, CHUNK);
	bad[1] ^= 1;
	assert_int_equal(ota_crypt_seal_chunk(u.crypt->key, u.crypt->enc->nonce_prefix.data, 0,
					      false, bad, CHUNK, u.crypt->ciphertext.data),
			 OTA_OK);
	expect_enc_rejected(w, &u, OTA_ERR_HASH);
	enc_update_free(&u);
}

/*
 * A delta that is also encrypted is refused (docs/decisions.md) with one
 * error, OTA_ERR_UNSUPPORTED, before the delta's own checks: whether its
 * base is the running image (v1) or not, and on a device that could apply it.
 */
static void test_delta_and_encryption_refused(void **state)
{
	struct world *w = *state;
	for (int running_base = 1; running_base >= 0; running_base--) {
		struct enc_update u;
		enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
		Fleetota__V1__Manifest *m =
			fleetota__v1__manifest__unpack(NULL, u.m->body.len, u.m->body.data);
		assert_non_null(m);
		Fleetota__V1__DeltaInfo delta = FLEETOTA__V1__DELTA_INFO__INIT;
		uint8_t base[OTA_SHA256_BYTES];
		SHA256(w->v1, sizeof(w->v1), base);
		base[0] ^= running_base ? 0 : 1;
		delta.base_sha256.data = base;
		delta.base_sha256.len = sizeof(base);
		delta.sha256.data = base;
		delta.sha256.len = sizeof(base);
		delta.size = 100;
		delta.algorithm = FLEETOTA__V1__DELTA_ALGORITHM__DELTA_ALGORITHM_ZSTD_CHUNKED;
		delta.chunk_bytes = W_DELTA_CHUNK;
		delta.base_size = sizeof(w->v1);
		m->delta = &delta;
		size_t len = fleetota__v1__manifest__get_packed_size(m);
		uint8_t *body = malloc(len);
		assert_non_null(body);
		fleetota__v1__manifest__pack(m, body);
		m->delta = NULL;
		fleetota__v1__manifest__free_unpacked(m, NULL);
		Fleetota__V1__Signed *signed_m =
			ota_fx_sign_body(OTA_OBJ_MANIFEST, body, len, &w->op, 1);
		free(body);
		world_expect_rejected(w, signed_m, NULL, NULL, u.crypt->ciphertext.data,
				      u.crypt->ciphertext.len, OTA_ERR_UNSUPPORTED);
		ota_fx_env_free(signed_m);
		enc_update_free(&u);
	}
}

/* A malformed encryption block is a malformed manifest. */
static void test_bad_encryption_block(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	u.crypt->enc->ciphertext_size += 16;
	enc_update_resign(w, &u, w->v2, sizeof(w->v2));
	expect_enc_rejected(w, &u, OTA_ERR_FORMAT);
	enc_update_free(&u);
}

/*
 * Interrupted after two and a half chunks (checkpoints every 4096 bytes,
 * one per chunk): the restarted device resumes at the ciphertext offset
 * of the last authenticated chunk boundary and finishes.
 */
static void test_resume_at_chunk_boundary(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	unsigned slot = 9;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	struct ota_fx_buf env = ota_fx_env_bytes(u.m);
	const uint8_t *ct = u.crypt->ciphertext.data;
	assert_int_equal(ota_agent_begin(&w->agent, env.data, env.len, NULL, 0, NULL, NULL, 0),
			 OTA_OK);
	assert_int_equal(ota_agent_image_size(&w->agent), u.crypt->ciphertext.len);
	size_t part = 2 * SEALED + SEALED / 2;
	for (size_t off = 0; off < part; off += 1000)
		assert_int_equal(
			ota_agent_write(&w->agent, ct + off, part - off < 1000 ? part - off : 1000),
			OTA_OK);
	assert_int_equal(ota_agent_abort(&w->agent, OTA_ERR_TRANSPORT, "cut", true), OTA_OK);
	world_restart(w);
	assert_int_equal(ota_agent_begin(&w->agent, env.data, env.len, NULL, 0, NULL, NULL, 0),
			 OTA_OK);
	uint64_t offset = ota_agent_offset(&w->agent);
	assert_int_equal(offset, 2 * SEALED);
	assert_int_equal(
		ota_agent_write(&w->agent, ct + offset, u.crypt->ciphertext.len - (size_t)offset),
		OTA_OK);
	assert_int_equal(ota_agent_finish(&w->agent), OTA_OK);
	assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
	assert_int_equal(ota_agent_confirm(&w->agent), OTA_OK);
	assert_running_v2(w);
	ota_fx_buf_free(&env);
	enc_update_free(&u);
}

/*
 * Storage operations of the staging: begin, the writes, finish. pieces = 0
 * writes the whole image in one call, else in pieces of that many bytes.
 */
static uint64_t staging_ops(struct world *w, const Fleetota__V1__Signed *m, const uint8_t *data,
			    size_t len, size_t pieces)
{
	struct ota_fx_buf env = ota_fx_env_bytes(m);
	assert_int_equal(ota_agent_begin(&w->agent, env.data, env.len, NULL, 0, NULL, NULL, 0),
			 OTA_OK);
	ota_sim_cut_at(w->sim, 0); /* resets the count */
	size_t step = pieces ? pieces : len;
	for (size_t off = 0; off < len; off += step)
		assert_int_equal(
			ota_agent_write(&w->agent, data + off, len - off < step ? len - off : step),
			OTA_OK);
	uint64_t ops = ota_sim_ops(w->sim);
	assert_int_equal(ota_agent_finish(&w->agent), OTA_OK);
	ota_fx_buf_free(&env);
	return ops;
}

/*
 * Plaintext collects in the work area and goes to the slot once per write
 * call, or where a checkpoint is due: chunks of 1024 bytes (20 of them, a
 * checkpoint every 4096 bytes) written in one call take as many storage
 * operations as the plain image written in 4096-byte pieces (5 slot writes,
 * 4 checkpoints), not one slot write per chunk; the image is v2.
 */
static void test_one_slot_write_per_call(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 20, 7);
	Fleetota__V1__Signed *plain = ota_fx_manifest(&spec);
	uint64_t plain_ops = staging_ops(w, plain, w->v2, sizeof(w->v2), W_CHECKPOINT);
	ota_fx_env_free(plain);
	world_teardown(w); /* the same device again, running v1 */
	world_setup(w);

	struct ota_fx_crypt *crypt = ota_fx_encrypt(w->v2, sizeof(w->v2), 1024, &w->dev_keys[0], 1);
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 20, 7);
	spec.encryption = crypt->enc;
	Fleetota__V1__Signed *enc = ota_fx_manifest(&spec);
	uint64_t enc_ops = staging_ops(w, enc, crypt->ciphertext.data, crypt->ciphertext.len, 0);
	assert_int_equal(enc_ops, plain_ops);
	unsigned slot = 9;
	assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
	assert_int_equal(ota_agent_confirm(&w->agent), OTA_OK);
	assert_running_v2(w);
	ota_fx_env_free(enc);
	ota_fx_crypt_free(crypt);
}

/* ---- P-256 recipients (a PKCS#11 token's or TPM's kind) ------------- */

/* The device's P-256 key among an X25519 and a P-256 stranger. */
static void test_p256_recipient(void **state)
{
	struct world *w = *state;
	EVP_PKEY *keys[3] = {ota_fx_x25519_new(), ota_fx_p256_new(), w->dev_keys[W_DEV_P256]};
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), keys, 3);
	assert_int_equal(u.crypt->enc->recipients[0]->kind,
			 FLEETOTA__V1__RECIPIENT_KIND__RECIPIENT_KIND_X25519);
	assert_int_equal(u.crypt->enc->recipients[2]->kind,
			 FLEETOTA__V1__RECIPIENT_KIND__RECIPIENT_KIND_P256);
	assert_int_equal(u.crypt->enc->recipients[2]->ephemeral_public.len, OTA_P256_POINT_BYTES);
	world_update(w, u.m, u.crypt->ciphertext.data, u.crypt->ciphertext.len);
	assert_running_v2(w);
	enc_update_free(&u);
	EVP_PKEY_free(keys[0]);
	EVP_PKEY_free(keys[1]);
}

/* Only strangers' keys of both kinds: refused before one image byte. */
static void test_p256_not_recipient(void **state)
{
	EVP_PKEY *keys[2] = {ota_fx_x25519_new(), ota_fx_p256_new()};
	expect_not_recipient(*state, keys, 2);
}

/* An ephemeral point moved off the curve (signed as such): the unwrap refuses it. */
static void test_p256_point_off_curve(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[W_DEV_P256], 1);
	u.crypt->enc->recipients[0]->ephemeral_public.data[OTA_P256_POINT_BYTES - 1] ^= 1;
	enc_update_resign(w, &u, w->v2, sizeof(w->v2));
	expect_enc_rejected(w, &u, OTA_ERR_KEY_UNWRAP);
	enc_update_free(&u);
}

/* A kind that does not match the entry's key length, or no known kind: a malformed manifest. */
static void test_recipient_kind_checked(void **state)
{
	struct world *w = *state;
	const int kinds[] = {FLEETOTA__V1__RECIPIENT_KIND__RECIPIENT_KIND_X25519, 7};
	for (size_t i = 0; i < 2; i++) {
		struct enc_update u;
		enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[W_DEV_P256], 1);
		u.crypt->enc->recipients[0]->kind = (Fleetota__V1__RecipientKind)kinds[i];
		enc_update_resign(w, &u, w->v2, sizeof(w->v2));
		expect_enc_rejected(w, &u, OTA_ERR_FORMAT);
		enc_update_free(&u);
	}
	/* and an X25519 entry that claims to be P-256 */
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	u.crypt->enc->recipients[0]->kind = FLEETOTA__V1__RECIPIENT_KIND__RECIPIENT_KIND_P256;
	enc_update_resign(w, &u, w->v2, sizeof(w->v2));
	expect_enc_rejected(w, &u, OTA_ERR_FORMAT);
	enc_update_free(&u);
}

/*
 * The key store refuses (a token with a wrong PIN): the port's
 * OTA_ERR_KEY_ACCESS reaches the caller as such, nothing changed.
 */
static void test_key_store_refused(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[W_DEV_P256], 1);
	w->unwrap_refusal = OTA_ERR_KEY_ACCESS;
	expect_enc_rejected(w, &u, OTA_ERR_KEY_ACCESS);
	w->unwrap_refusal = OTA_OK;
	world_update(w, u.m, u.crypt->ciphertext.data, u.crypt->ciphertext.len);
	assert_running_v2(w);
	enc_update_free(&u);
}

/*
 * The token's path: ECDH done elsewhere (here by OpenSSL, as a token's
 * C_DeriveKey would), then ota_crypt_unwrap_shared gives the same key.
 */
static void test_p256_unwrap_shared(void **state)
{
	struct world *w = *state;
	EVP_PKEY *dev = w->dev_keys[W_DEV_P256];
	uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES], key[OTA_CEK_BYTES], got[OTA_CEK_BYTES];
	uint8_t shared[OTA_P256_SHARED_BYTES], own[OTA_CRYPT_EPHEMERAL_MAX_BYTES];
	size_t shared_len = sizeof(shared), own_len = 0;
	struct ota_crypt_wrapped wr;
	EVP_PKEY *eph = NULL;
	memset(context, 0x11, sizeof(context));
	memset(key, 0x22, sizeof(key));
	assert_int_equal(ota_crypt_wrap(dev, context, key, &wr), OTA_OK);
	assert_int_equal(wr.kind, OTA_RECIPIENT_P256);
	assert_int_equal(wr.ephemeral_len, OTA_P256_POINT_BYTES);
	assert_int_equal(ota_crypt_public_from_raw(wr.kind, wr.ephemeral, wr.ephemeral_len, &eph),
			 OTA_OK);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(dev, NULL);
	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
	assert_int_equal(EVP_PKEY_derive_set_peer(ctx, eph), 1);
	assert_int_equal(EVP_PKEY_derive(ctx, shared, &shared_len), 1);
	assert_int_equal(shared_len, OTA_P256_SHARED_BYTES);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(eph);
	assert_int_equal(ota_crypt_public_raw(dev, own, &own_len), OTA_OK);
	assert_int_equal(own_len, OTA_P256_POINT_BYTES);
	assert_int_equal(ota_crypt_unwrap_shared(shared, shared_len, wr.ephemeral, own, own_len,
						 context, wr.wrapped, got),
			 OTA_OK);
	assert_memory_equal(got, key, sizeof(key));
	/* and with another context (another artifact), it does not unwrap */
	context[0] ^= 1;
	assert_int_equal(ota_crypt_unwrap_shared(shared, shared_len, wr.ephemeral, own, own_len,
						 context, wr.wrapped, got),
			 OTA_ERR_KEY_UNWRAP);
}

/*
 * A port that lends its own buffer (slot_buffer, the Linux port's writer
 * thread): the plaintext is decrypted straight into it and every slot
 * write hands that buffer back (nothing to copy). The loan (3000 bytes)
 * is smaller than a chunk, so chunks and tags straddle loans; the update
 * still stages v2 exactly.
 */
static uint8_t lent_buf[3000];
static unsigned lent_writes, other_writes;
static const struct ota_port_ops *lend_inner;

static uint8_t *lend_buffer(void *ctx, unsigned slot, uint64_t off, size_t *ret_cap)
{
	(void)ctx;
	(void)slot;
	(void)off;
	*ret_cap = sizeof(lent_buf);
	return lent_buf;
}

static enum ota_err lend_write(void *ctx, unsigned slot, uint64_t off, const void *buf, size_t len)
{
	if (buf == lent_buf)
		lent_writes++;
	else
		other_writes++;
	return lend_inner->slot_write(ctx, slot, off, buf, len);
}

static void test_decrypt_into_lent_buffer(void **state)
{
	struct world *w = *state;
	struct ota_port_ops ops = *w->agent.port.ops;
	lend_inner = w->agent.port.ops;
	ops.slot_buffer = lend_buffer;
	ops.slot_write = lend_write;
	w->agent.port.ops = &ops;
	lent_writes = other_writes = 0;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	world_update(w, u.m, u.crypt->ciphertext.data, u.crypt->ciphertext.len);
	w->agent.port.ops = lend_inner;
	assert_running_v2(w);
	assert_true(lent_writes >= sizeof(w->v2) / sizeof(lent_buf));
	assert_int_equal(other_writes, 0);
	enc_update_free(&u);
}

/*
 * A port with run_beside (world_use_beside: the job on a thread of its
 * own, as the Linux port's helper thread runs it). With the whole
 * image in one write call and a checkpoint every two chunks, the core
 * decrypts two runs of two chunks on two threads (chunks 0 and 2 on the
 * calling thread, 1 and 3 beside) and the short last chunk through the
 * stream, so the attack cases run again with this port (TB) tamper with
 * chunks of both threads and with the last one.
 */
static int setup_beside(void **state)
{
	if (setup(state) != 0)
		return -1;
	struct world *w = *state;
	world_use_beside(w);
	w->checkpoint = 2 * CHUNK;
	w->piece = SIZE_MAX;
	world_restart(w);
	world_beside_calls = 0;
	return 0;
}

/* Both runs went through run_beside; the update stages and boots v2. */
static void test_beside_runs(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	world_update(w, u.m, u.crypt->ciphertext.data, u.crypt->ciphertext.len);
	assert_running_v2(w);
	assert_int_equal(world_beside_calls, 2);
	enc_update_free(&u);
}

/*
 * The image encrypted in chunks of chunk_bytes, with the given chunks
 * tampered: the rejection names the first chunk that fails, whichever
 * thread and step had it, and the device is unchanged (expect_enc_rejected).
 */
static void expect_bad_chunk_of(struct world *w, size_t chunk_bytes, const size_t *chunks, size_t n,
				const char *detail)
{
	struct enc_update u;
	enc_update_make_chunks(w, &u, w->v2, sizeof(w->v2), chunk_bytes, &w->dev_keys[0], 1);
	for (size_t i = 0; i < n; i++)
		u.crypt->ciphertext.data[chunks[i] * (chunk_bytes + OTA_CRYPT_TAG_BYTES) + 9] ^=
			0x01;
	expect_enc_rejected(w, &u, OTA_ERR_DECRYPT);
	struct ota_agent_status st;
	struct ota_event ev;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(ota_agent_event(&w->agent, st.next_event_seq - 1, &ev), OTA_OK);
	assert_string_equal(ev.detail, detail);
	enc_update_free(&u);
}

static void expect_bad_chunk(struct world *w, const size_t *chunks, size_t n, const char *detail)
{
	expect_bad_chunk_of(w, CHUNK, chunks, n, detail);
}

static void test_beside_first_bad_chunk(void **state)
{
	struct world *w = *state;
	const size_t beside_only[] = {1}, both[] = {1, 0}, second_run[] = {3, 2};
	expect_bad_chunk(w, beside_only, 1, "chunk 1 of the encrypted image fails authentication");
	expect_bad_chunk(w, both, 2, "chunk 0 of the encrypted image fails authentication");
	expect_bad_chunk(w, second_run, 2, "chunk 2 of the encrypted image fails authentication");
	assert_true(world_beside_calls >= 3);
}

/*
 * A long run (chunks of 1 KiB: 19 whole ones and a short last one, all
 * in one write call, no checkpoint due) goes through the pipeline in
 * steps: the calling thread decrypts chunk 0 while the other decrypts
 * 1-3, then hashes 1-3 while the other decrypts 4-10, then hashes 4-10
 * while the other decrypts 11-18, then hashes 11-18: three run_beside
 * calls, and the image stages and boots.
 */
#define LONG_CHUNK 1024u

static void long_run_setup(struct world *w)
{
	w->checkpoint = 1u << 20;
	world_restart(w);
	world_beside_calls = 0;
}

static void test_beside_pipeline(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	long_run_setup(w);
	enc_update_make_chunks(w, &u, w->v2, sizeof(w->v2), LONG_CHUNK, &w->dev_keys[0], 1);
	world_update(w, u.m, u.crypt->ciphertext.data, u.crypt->ciphertext.len);
	assert_running_v2(w);
	assert_int_equal(world_beside_calls, 3);
	enc_update_free(&u);
}

static void test_beside_pipeline_bad_chunk(void **state)
{
	struct world *w = *state;
	const size_t first[] = {0}, third_step[] = {12}, two_steps[] = {15, 5},
		     own_and_ahead[] = {2, 0}, last_whole[] = {18};
	long_run_setup(w);
	expect_bad_chunk_of(w, LONG_CHUNK, first, 1,
			    "chunk 0 of the encrypted image fails authentication");
	expect_bad_chunk_of(w, LONG_CHUNK, third_step, 1,
			    "chunk 12 of the encrypted image fails authentication");
	expect_bad_chunk_of(w, LONG_CHUNK, two_steps, 2,
			    "chunk 5 of the encrypted image fails authentication");
	expect_bad_chunk_of(w, LONG_CHUNK, own_and_ahead, 2,
			    "chunk 0 of the encrypted image fails authentication");
	expect_bad_chunk_of(w, LONG_CHUNK, last_whole, 1,
			    "chunk 18 of the encrypted image fails authentication");
}

/*
 * Decryption ahead (the Linux port's offline install: the read-ahead
 * thread decrypts each piece it read with ota_decrypt_ahead, the core
 * takes the result back in ota_agent_write_ahead). world_install in
 * pieces of three sealed chunks: chunks 0-2 and chunk 3 come decrypted
 * ahead (two slot writes straight from the plaintext buffer), the short
 * last chunk goes through the stream. The attack cases run again this
 * way (TA): a failed run is decrypted again by the core, which names
 * the same error and chunk.
 */
static struct ota_port_ops ahead_ops;
static struct world *ahead_world;
static unsigned ahead_taken;

static enum ota_err ahead_write(void *ctx, unsigned slot, uint64_t off, const void *buf, size_t len)
{
	if (ahead_world->ahead_plain && buf == ahead_world->ahead_plain)
		ahead_taken++;
	return ota_sim_port(ahead_world->sim).ops->slot_write(ctx, slot, off, buf, len);
}

static int setup_ahead(void **state)
{
	if (setup(state) != 0)
		return -1;
	struct world *w = *state;
	ahead_world = w;
	ahead_ops = *ota_sim_port(w->sim).ops;
	ahead_ops.slot_write = ahead_write;
	w->ops = &ahead_ops;
	w->ahead = true;
	w->piece = 3 * SEALED;
	world_restart(w);
	ahead_taken = 0;
	return 0;
}

static void test_ahead_taken(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	world_update(w, u.m, u.crypt->ciphertext.data, u.crypt->ciphertext.len);
	assert_running_v2(w);
	assert_int_equal(ahead_taken, 2);
	enc_update_free(&u);
}

/* A result the core must not take: its plaintext is garbage, the core decrypts again. */
static void garbage_out(struct ota_decrypt_ahead *a)
{
	memset(a->out, 0xa5, a->chunks * CHUNK);
}

static void hook_other_offset(struct world *w, struct ota_decrypt_ahead *a)
{
	(void)w;
	garbage_out(a);
	a->wire_off += SEALED;
}

static void hook_other_artifact(struct world *w, struct ota_decrypt_ahead *a)
{
	(void)w;
	garbage_out(a);
	a->prefix[0] ^= 0x01;
}

static void hook_more_chunks(struct world *w, struct ota_decrypt_ahead *a)
{
	(void)w;
	if (a->chunks == 1) { /* the second piece: one whole chunk, then the last one */
		a->chunks = 2;
		garbage_out(a);
	}
}

static void hook_failed(struct world *w, struct ota_decrypt_ahead *a)
{
	(void)w;
	garbage_out(a);
	a->err = OTA_ERR_DECRYPT;
}

static void expect_ahead_ignored(struct world *w,
				 void (*hook)(struct world *w, struct ota_decrypt_ahead *a))
{
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	w->ahead_hook = hook;
	world_update(w, u.m, u.crypt->ciphertext.data, u.crypt->ciphertext.len);
	w->ahead_hook = NULL;
	assert_running_v2(w);
	enc_update_free(&u);
}

static void test_ahead_other_offset_ignored(void **state)
{
	expect_ahead_ignored(*state, hook_other_offset);
	assert_int_equal(ahead_taken, 0);
}

static void test_ahead_other_artifact_ignored(void **state)
{
	expect_ahead_ignored(*state, hook_other_artifact);
	assert_int_equal(ahead_taken, 0);
}

static void test_ahead_more_chunks_ignored(void **state)
{
	expect_ahead_ignored(*state, hook_more_chunks);
	assert_int_equal(ahead_taken, 1); /* the first piece's result was right */
}

static void test_ahead_failure_decrypted_again(void **state)
{
	expect_ahead_ignored(*state, hook_failed);
	assert_int_equal(ahead_taken, 0);
}

/*
 * A port that hands back plaintext that is not what the ciphertext
 * decrypts to, claiming it authenticated: the core takes it (the port
 * is trusted, as with every slot write), and the signed plaintext hash
 * refuses the image before pending.
 */
static void hook_forged(struct world *w, struct ota_decrypt_ahead *a)
{
	(void)w;
	if (a->chunks > 0)
		a->out[5] ^= 0x01;
}

static void test_ahead_forged_plaintext_hash_refused(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	w->ahead_hook = hook_forged;
	expect_enc_rejected(w, &u, OTA_ERR_HASH);
	w->ahead_hook = NULL;
	enc_update_free(&u);
}

static void test_ahead_bad_chunk(void **state)
{
	struct world *w = *state;
	const size_t first_piece[] = {1}, both_pieces[] = {3, 2}, second_piece[] = {3},
		     last[] = {4};
	expect_bad_chunk(w, first_piece, 1, "chunk 1 of the encrypted image fails authentication");
	expect_bad_chunk(w, both_pieces, 2, "chunk 2 of the encrypted image fails authentication");
	expect_bad_chunk(w, second_piece, 1, "chunk 3 of the encrypted image fails authentication");
	expect_bad_chunk(w, last, 1, "chunk 4 of the encrypted image fails authentication");
}

/* Cut after two and a half chunks; the resume decrypts ahead from chunk 2 on. */
static void test_ahead_resume(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	struct ota_decrypt dec;
	struct ota_decrypt_ahead a;
	uint8_t plain[3 * CHUNK];
	unsigned slot = 9;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	struct ota_fx_buf env = ota_fx_env_bytes(u.m);
	const uint8_t *ct = u.crypt->ciphertext.data;
	size_t len = u.crypt->ciphertext.len;
	assert_int_equal(ota_agent_begin(&w->agent, env.data, env.len, NULL, 0, NULL, NULL, 0),
			 OTA_OK);
	assert_int_equal(ota_agent_write(&w->agent, ct, 2 * SEALED + SEALED / 2), OTA_OK);
	assert_int_equal(ota_agent_abort(&w->agent, OTA_ERR_TRANSPORT, "cut", true), OTA_OK);
	world_restart(w);
	assert_int_equal(ota_agent_begin(&w->agent, env.data, env.len, NULL, 0, NULL, NULL, 0),
			 OTA_OK);
	uint64_t offset = ota_agent_offset(&w->agent);
	assert_int_equal(offset, 2 * SEALED);
	assert_int_equal(ota_agent_ahead_open(&w->agent, &dec), OTA_OK);
	ota_decrypt_ahead(&dec, offset, ct + offset, len - (size_t)offset, plain, sizeof(plain),
			  &a);
	assert_int_equal(a.err, OTA_OK);
	assert_int_equal(a.chunks, 2); /* chunks 2 and 3; the last one through the stream */
	assert_memory_equal(plain, w->v2 + 2 * CHUNK, 2 * CHUNK);
	assert_int_equal(ota_agent_write_ahead(&w->agent, &a), OTA_OK);
	ota_decrypt_close(&dec);
	assert_int_equal(ota_agent_finish(&w->agent), OTA_OK);
	assert_int_equal(ota_agent_boot(&w->agent, &slot), OTA_OK);
	assert_int_equal(ota_agent_confirm(&w->agent), OTA_OK);
	assert_running_v2(w);
	ota_fx_buf_free(&env);
	enc_update_free(&u);
}

/* Only an encrypted install has a decryptor to copy; a piece off a chunk boundary gets none. */
static void test_ahead_open_plain_refused(void **state)
{
	struct world *w = *state;
	struct ota_fx_manifest spec;
	struct ota_decrypt dec;
	struct ota_decrypt_ahead a;
	uint8_t plain[CHUNK];
	assert_int_equal(ota_agent_ahead_open(&w->agent, &dec), OTA_ERR_INVALID_ARG);
	world_manifest(w, &spec, w->v2, sizeof(w->v2), 20, 7);
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	struct ota_fx_buf env = ota_fx_env_bytes(m);
	assert_int_equal(ota_agent_begin(&w->agent, env.data, env.len, NULL, 0, NULL, NULL, 0),
			 OTA_OK);
	assert_int_equal(ota_agent_ahead_open(&w->agent, &dec), OTA_ERR_INVALID_ARG);
	assert_int_equal(ota_agent_abort(&w->agent, OTA_ERR_TRANSPORT, "cut", false), OTA_OK);
	ota_fx_buf_free(&env);
	ota_fx_env_free(m);
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	env = ota_fx_env_bytes(u.m);
	assert_int_equal(ota_agent_begin(&w->agent, env.data, env.len, NULL, 0, NULL, NULL, 0),
			 OTA_OK);
	assert_int_equal(ota_agent_ahead_open(&w->agent, &dec), OTA_OK);
	ota_decrypt_ahead(&dec, 5, u.crypt->ciphertext.data + 5, SEALED, plain, sizeof(plain), &a);
	assert_int_equal(a.err, OTA_OK);
	assert_int_equal(a.chunks, 0);
	ota_decrypt_close(&dec);
	ota_fx_buf_free(&env);
	enc_update_free(&u);
}

/*
 * Decryption ahead in place (the Linux port reads a piece of whole
 * chunks apart and decrypts it where it lies): pieces of three sealed
 * chunks again, chunks 0-2 decrypted in place, chunk 3 ahead from the
 * ciphertext, the last one through the stream (TI: the attack cases run
 * this way too). An in-place result has no ciphertext to decrypt again:
 * a failed tag fails the staging naming the chunk, a result that does
 * not continue the install is refused and the install can start again.
 */
static int setup_in_place(void **state)
{
	if (setup_ahead(state) != 0)
		return -1;
	struct world *w = *state;
	w->ahead_in_place = true;
	return 0;
}

static void test_in_place_not_continuing_refused(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	w->ahead_hook = hook_other_offset;
	assert_int_equal(world_install(w, u.m, NULL, NULL, u.crypt->ciphertext.data,
				       u.crypt->ciphertext.len),
			 OTA_ERR_INVALID_ARG);
	assert_int_equal(ahead_taken, 0);
	w->ahead_hook = hook_other_artifact;
	world_restart(w);
	assert_int_equal(world_install(w, u.m, NULL, NULL, u.crypt->ciphertext.data,
				       u.crypt->ciphertext.len),
			 OTA_ERR_INVALID_ARG);
	w->ahead_hook = NULL;
	world_restart(w);
	world_update(w, u.m, u.crypt->ciphertext.data, u.crypt->ciphertext.len);
	assert_running_v2(w);
	assert_int_equal(ahead_taken, 2);
	enc_update_free(&u);
}

/* The port's verdict: a chunk it says failed fails the staging, named. */
static void hook_in_place_failed(struct world *w, struct ota_decrypt_ahead *a)
{
	(void)w;
	if (!a->in) {
		a->err = OTA_ERR_DECRYPT;
		a->bad = 2;
	}
}

static void test_in_place_failure_named(void **state)
{
	struct world *w = *state;
	struct enc_update u;
	enc_update_make(w, &u, w->v2, sizeof(w->v2), &w->dev_keys[0], 1);
	w->ahead_hook = hook_in_place_failed;
	expect_enc_rejected(w, &u, OTA_ERR_DECRYPT);
	w->ahead_hook = NULL;
	struct ota_agent_status st;
	struct ota_event ev;
	ota_agent_status(&w->agent, &st);
	assert_int_equal(ota_agent_event(&w->agent, st.next_event_seq - 1, &ev), OTA_OK);
	assert_string_equal(ev.detail, "chunk 2 of the encrypted image fails authentication");
	assert_int_equal(ahead_taken, 0);
	enc_update_free(&u);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TB(fn) cmocka_unit_test_setup_teardown(fn, setup_beside, teardown)
#define TA(fn) cmocka_unit_test_setup_teardown(fn, setup_ahead, teardown)
#define TI(fn) cmocka_unit_test_setup_teardown(fn, setup_in_place, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_encrypted_update),
		T(test_product_line_key),
		T(test_not_recipient),
		T(test_wrong_key),
		T(test_wrong_content_key),
		T(test_tampered_first_chunk),
		T(test_tampered_middle_chunk),
		T(test_tampered_last_chunk),
		T(test_tampered_tag),
		T(test_swapped_chunks),
		T(test_truncated_tag),
		T(test_shortened_tag_realigned),
		T(test_dropped_last_chunk_manifest_consistent),
		T(test_replayed_wrapped_key),
		T(test_plaintext_hash_checked),
		T(test_delta_and_encryption_refused),
		T(test_bad_encryption_block),
		T(test_resume_at_chunk_boundary),
		T(test_one_slot_write_per_call),
		T(test_p256_recipient),
		T(test_p256_not_recipient),
		T(test_p256_point_off_curve),
		T(test_recipient_kind_checked),
		T(test_key_store_refused),
		T(test_p256_unwrap_shared),
		T(test_decrypt_into_lent_buffer),
		TB(test_beside_runs),
		TB(test_beside_first_bad_chunk),
		TB(test_beside_pipeline),
		TB(test_beside_pipeline_bad_chunk),
		TB(test_encrypted_update),
		TB(test_tampered_first_chunk),
		TB(test_tampered_middle_chunk),
		TB(test_tampered_last_chunk),
		TB(test_tampered_tag),
		TB(test_swapped_chunks),
		TB(test_truncated_tag),
		TB(test_shortened_tag_realigned),
		TB(test_dropped_last_chunk_manifest_consistent),
		TB(test_plaintext_hash_checked),
		TB(test_resume_at_chunk_boundary),
		TB(test_decrypt_into_lent_buffer),
		TA(test_ahead_taken),
		TA(test_ahead_other_offset_ignored),
		TA(test_ahead_other_artifact_ignored),
		TA(test_ahead_more_chunks_ignored),
		TA(test_ahead_failure_decrypted_again),
		TA(test_ahead_forged_plaintext_hash_refused),
		TA(test_ahead_bad_chunk),
		TA(test_ahead_resume),
		TA(test_ahead_open_plain_refused),
		TA(test_encrypted_update),
		TA(test_tampered_first_chunk),
		TA(test_tampered_middle_chunk),
		TA(test_tampered_last_chunk),
		TA(test_tampered_tag),
		TA(test_swapped_chunks),
		TA(test_truncated_tag),
		TA(test_shortened_tag_realigned),
		TA(test_dropped_last_chunk_manifest_consistent),
		TA(test_replayed_wrapped_key),
		TA(test_plaintext_hash_checked),
		TI(test_ahead_taken),
		TI(test_ahead_forged_plaintext_hash_refused),
		TI(test_ahead_bad_chunk),
		TI(test_in_place_not_continuing_refused),
		TI(test_in_place_failure_named),
		TI(test_encrypted_update),
		TI(test_tampered_first_chunk),
		TI(test_tampered_middle_chunk),
		TI(test_tampered_last_chunk),
		TI(test_tampered_tag),
		TI(test_swapped_chunks),
		TI(test_truncated_tag),
		TI(test_shortened_tag_realigned),
		TI(test_dropped_last_chunk_manifest_consistent),
		TI(test_plaintext_hash_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
