/* SPDX-License-Identifier: Apache-2.0 */
#ifndef AGENT_WORLD_H
#define AGENT_WORLD_H

/*
 * A provisioned device on the simulator port, with its keys, for the agent
 * unit tests: roots r[0..2] (RootList v1, threshold 2), KeyList v1 with
 * keys op (open), revoked (dropped by KeyList v2) and old (window ended
 * before the manifests' issued_at); the device runs KeyList v2 and image
 * v1 (version_code 10, counter 5) confirmed.
 */

#include <stdbool.h>
#include <stdint.h>

#include "fleetota/agent.h"
#include "ota_fixture.h"
#include "ota_sim.h"

#define W_MODEL "fx-model"
#define W_HW "revA"
#define W_ISSUED 1700000000u
#define W_SLOT_BYTES (64u * 1024u)
#define W_CHECKPOINT 4096u
#define W_V1_LEN 8000u
#define W_V2_LEN 20000u
/*
 * Recipient keys the device holds: [0] its own, [1] its product line's
 * (X25519), [2] a P-256 key (a token's kind, docs/porting.md).
 */
#define W_DEV_KEYS 3u
#define W_DEV_P256 2u

struct world {
	EVP_PKEY *roots[3];
	EVP_PKEY *op;
	EVP_PKEY *revoked;
	EVP_PKEY *old;
	EVP_PKEY *stranger;
	EVP_PKEY *dev_keys[W_DEV_KEYS]; /* answered by the sim's key_unwrap */
	/* when not OTA_OK, the sim's key_unwrap answers this (a token that refuses) */
	enum ota_err unwrap_refusal;
	Fleetota__V1__Signed *root1;
	Fleetota__V1__Signed *kl1;
	Fleetota__V1__Signed *kl2;
	uint8_t v1[W_V1_LEN];
	uint8_t v2[W_V2_LEN];
	struct ota_sim *sim;
	struct ota_agent agent;
	uint8_t *work;
	uint8_t *delta_work; /* OTA_DELTA_WORK_BYTES, lent to the agent */
	/* set, then world_restart: the port's ops (NULL: the sim's own), the
	 * bytes between checkpoints (0: W_CHECKPOINT), world_install's write
	 * size (0: 1000 bytes) */
	const struct ota_port_ops *ops;
	uint32_t checkpoint;
	size_t piece;
	/*
	 * world_install of an encrypted image decrypts each piece ahead
	 * (ota_decrypt_ahead with ota_agent_ahead_open's copy, as the Linux
	 * port's read-ahead thread does) and writes it with
	 * ota_agent_write_ahead; ahead_hook (may be NULL) may change each
	 * result first; ahead_plain is the plaintext buffer (w->piece bytes)
	 */
	bool ahead;
	/*
	 * with ahead: a piece of whole chunks is laid apart (each chunk's
	 * ciphertext where its plaintext goes, the tags beside, as the Linux
	 * port's preadv does) and decrypted in place
	 * (ota_decrypt_ahead_in_place); other pieces as above
	 */
	bool ahead_in_place;
	void (*ahead_hook)(struct world *w, struct ota_decrypt_ahead *a);
	uint8_t *ahead_plain;
};

/*
 * The sim's ops plus run_beside, which runs the other job on a thread of
 * its own (as the Linux port's helper does) and counts its calls in
 * world_beside_calls; in effect from the next world_restart.
 */
extern unsigned world_beside_calls;
void world_use_beside(struct world *w);

/* Builds keys, trust objects and a device running v1 (asserts on failure). */
void world_setup(struct world *w);
void world_teardown(struct world *w);
/* A blank device (same keys): provisioned with root1 + kl1 only. */
void world_fresh_device(struct world *w);
/* provisions the running agent with root1 and KeyList kl1 (asserts OTA_OK) */
void world_provision(struct world *w);
/* Drops the agent struct and loads it again from storage (a restart). */
void world_restart(struct world *w);

/* A manifest spec for image (defaults: op-signed, model/hw of the device). */
void world_manifest(struct world *w, struct ota_fx_manifest *spec, const uint8_t *image, size_t len,
		    uint64_t version_code, uint64_t counter);

/*
 * Installs through the bundle path: begin_bundle(header), image in 1000-byte
 * chunks from ota_agent_offset(), finish. Returns the first error.
 */
enum ota_err world_install(struct world *w, const Fleetota__V1__Signed *manifest,
			   const Fleetota__V1__Signed *keylist,
			   const Fleetota__V1__Signed *rootlist, const uint8_t *image, size_t len);
/* install + boot (into the new slot) + confirm; asserts each step. */
void world_update(struct world *w, const Fleetota__V1__Signed *manifest, const uint8_t *image,
		  size_t len);

/*
 * Installs m (+ optional trust objects) with image and expects exactly
 * err: in status, in the event log (a REJECTED event), and nothing else
 * changed (world_assert_unchanged).
 */
void world_expect_rejected(struct world *w, const Fleetota__V1__Signed *m,
			   const Fleetota__V1__Signed *kl, const Fleetota__V1__Signed *root,
			   const uint8_t *image, size_t len, enum ota_err expected);

/* The delta tests' new image: v1 with a few bytes changed and 5000 appended. */
#define W_NEXT_LEN (W_V1_LEN + 5000u)
/* Frames of 4 KiB, so an image spans several of them. */
#define W_DELTA_CHUNK 4096u
void world_next_image(const struct world *w, uint8_t out[W_NEXT_LEN]);

/* What a sink (ota_port_sink_fn, ota_delta_out_fn) was given, grown as it comes; free data. */
struct world_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
enum ota_err world_buf_put(void *arg, const uint8_t *data, size_t len);

/* A delta payload of image against base, and the DeltaInfo that describes it. */
struct world_delta {
	uint8_t *payload;
	size_t len;
	uint8_t base_sha256[32];
	uint8_t sha256[32];
	Fleetota__V1__DeltaInfo info;
};
/* Makes it with the host maker (agent/host); asserts on failure. */
void world_delta_make(struct world_delta *d, const uint8_t *base, size_t base_len,
		      const uint8_t *image, size_t len, uint32_t chunk_bytes);
/* The same with the host maker's matcher chosen (enum ota_delta_matcher). */
void world_delta_make_with(struct world_delta *d, const uint8_t *base, size_t base_len,
			   const uint8_t *image, size_t len, uint32_t chunk_bytes, int matcher);
void world_delta_free(struct world_delta *d);

/* What an attack must not change. */
struct world_snapshot {
	struct ota_agent_status status;
	uint8_t running_sha[32];
};
void world_snapshot(struct world *w, struct world_snapshot *snap);
/* Asserts that status and the running image are as in snap (also after a restart). */
void world_assert_unchanged(struct world *w, const struct world_snapshot *snap);

#endif
