/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Timestamp parser (signed freshness) and the role rules: each input
 * is an envelope, parsed as a Timestamp and verified against a fixed
 * KeyList that lists a timestamp-role key and an operational key (both
 * deterministic, so seed inputs signed by them verify), also as a manifest
 * (a timestamp key must never pass as a manifest signer).
 */
#include <stdint.h>
#include <stdlib.h>

#include "fleetota/limits.h"
#include "fleetota/trust.h"
#include "ota_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The seeds of the fixed keys (tests/fuzz/corpus/timestamp was signed by them). */
#define SEED_ROOT 0x70
#define SEED_TIMESTAMP 0x71
#define SEED_OPERATIONAL 0x72

static const Fleetota__V1__KeyList *fixed_keylist(void)
{
	static uint8_t mem[OTA_DECODE_ARENA_BYTES];
	static struct ota_arena arena;
	static Fleetota__V1__KeyList *kl;
	if (kl)
		return kl;
	EVP_PKEY *root = ota_fx_key_seeded(SEED_ROOT);
	struct ota_fx_opkey keys[2] = {{.key = ota_fx_key_seeded(SEED_TIMESTAMP),
					.role = FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP},
				       {.key = ota_fx_key_seeded(SEED_OPERATIONAL)}};
	struct ota_fx_keylist spec = {
		.version = 1, .keys = keys, .n_keys = 2, .signers = &root, .n_signers = 1};
	Fleetota__V1__Signed *env = ota_fx_keylist(&spec);
	struct ota_fx_buf bytes = ota_fx_env_bytes(env);
	Fleetota__V1__Signed *decoded = NULL;
	ota_arena_init(&arena, mem, sizeof(mem));
	if (ota_envelope_decode(bytes.data, bytes.len, &arena, &decoded) != OTA_OK ||
	    ota_keylist_parse(decoded, &arena, &kl) != OTA_OK)
		abort();
	ota_fx_buf_free(&bytes);
	ota_fx_env_free(env);
	EVP_PKEY_free(root);
	EVP_PKEY_free(keys[0].key);
	EVP_PKEY_free(keys[1].key);
	return kl;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mem[OTA_DECODE_ARENA_BYTES * 2];
	struct ota_arena arena;
	Fleetota__V1__Signed *env = NULL;
	Fleetota__V1__Timestamp *ts = NULL;
	Fleetota__V1__Manifest *m = NULL;
	const Fleetota__V1__PublicKey *signer = NULL;
	const Fleetota__V1__KeyList *kl = fixed_keylist();

	ota_arena_init(&arena, mem, sizeof(mem));
	if (ota_envelope_decode(data, size, &arena, &env) != OTA_OK)
		return 0;
	if (ota_timestamp_parse(env, &arena, &ts) == OTA_OK &&
	    (ts->expires_at == 0 || ts->expires_at <= ts->issued_at ||
	     ts->expires_at - ts->issued_at > OTA_MAX_TIMESTAMP_LIFETIME_S))
		__builtin_trap(); /* the parser let a never- or long-lived one through */
	if (ota_timestamp_verify(kl, env, &arena, &ts, &signer) == OTA_OK) {
		if (signer->role != FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP)
			__builtin_trap();
		(void)ota_timestamp_fresh(ts, ts->issued_at);
	}
	signer = NULL;
	if (ota_manifest_verify(kl, env, &arena, &m, &signer) == OTA_OK &&
	    signer->role != FLEETOTA__V1__KEY_ROLE__KEY_ROLE_OPERATIONAL)
		__builtin_trap();
	(void)ota_keylist_signed_by_role(kl, env, FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP);
	return 0;
}
