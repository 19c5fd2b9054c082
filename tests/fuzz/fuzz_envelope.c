/* SPDX-License-Identifier: Apache-2.0 */
/* Envelope decoding, then the body as each signed type. */
#include <stdint.h>
#include <stdlib.h>

#include "fleetota/limits.h"
#include "fleetota/trust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mem[OTA_DECODE_ARENA_BYTES * 2];
	struct ota_arena arena;
	Fleetota__V1__Signed *env = NULL;
	Fleetota__V1__Manifest *manifest = NULL;
	Fleetota__V1__KeyList *keylist = NULL;
	Fleetota__V1__RootList *root = NULL;

	ota_arena_init(&arena, mem, sizeof(mem));
	if (ota_envelope_decode(data, size, &arena, &env) != OTA_OK)
		return 0;
	(void)ota_manifest_parse(env, &arena, &manifest);
	if (ota_keylist_parse(env, &arena, &keylist) == OTA_OK) {
		/* a parsed key list is a usable verifier: verify the envelope with it */
		const Fleetota__V1__PublicKey *signer = NULL;
		(void)ota_manifest_verify(keylist, env, &arena, &manifest, &signer);
	}
	if (ota_rootlist_parse(env, &arena, &root) == OTA_OK)
		(void)ota_rootlist_verify_initial(env, &arena, &root);
	return 0;
}
