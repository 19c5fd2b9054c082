/* SPDX-License-Identifier: Apache-2.0 */
/* Bundle prefix and header decoding. */
#include <stdint.h>
#include <stdlib.h>

#include "fleetota/bundle.h"
#include "fleetota/limits.h"
#include "fleetota/trust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mem[OTA_MAX_BUNDLE_HEADER_BYTES * 2];
	struct ota_arena arena;
	Fleetota__V1__BundleHeader *hdr = NULL;
	Fleetota__V1__Manifest *manifest = NULL;
	uint32_t header_len = 0;

	if (size < OTA_BUNDLE_PREFIX_BYTES || ota_bundle_prefix_parse(data, &header_len) != OTA_OK)
		return 0;
	if (header_len > size - OTA_BUNDLE_PREFIX_BYTES)
		return 0;
	ota_arena_init(&arena, mem, sizeof(mem));
	if (ota_bundle_header_decode(data + OTA_BUNDLE_PREFIX_BYTES, header_len, &arena, &hdr) !=
	    OTA_OK)
		return 0;
	(void)ota_manifest_parse(hdr->manifest, &arena, &manifest);
	return 0;
}
