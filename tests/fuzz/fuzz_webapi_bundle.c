/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The upload path's parsing of an in-memory .otab: prefix and header split,
 * header decode, manifest re-serialization (its digest names the upload).
 */
#include <stdint.h>
#include <stdlib.h>

#include "fleetota/bundle.h"
#include "fleetota/limits.h"
#include "fleetota/trust.h"
#include "webapi-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mem[2u * OTA_MAX_BUNDLE_HEADER_BYTES + OTA_DECODE_ARENA_BYTES];
	static uint8_t packed[OTA_MAX_ENVELOPE_BYTES];
	struct ota_arena arena;
	Fleetota__V1__BundleHeader *hdr = NULL;
	Fleetota__V1__Manifest *manifest = NULL;
	size_t header_off, header_len, image_off, len;

	if (wa_bundle_split(data, size, &header_off, &header_len, &image_off) != OTA_OK)
		return 0;
	if (header_off + header_len != image_off || image_off > size)
		__builtin_trap();
	ota_arena_init(&arena, mem, sizeof(mem));
	if (ota_bundle_header_decode(data + header_off, header_len, &arena, &hdr) != OTA_OK)
		return 0;
	len = fleetota__v1__signed__get_packed_size(hdr->manifest);
	if (len > 0 && len <= sizeof(packed))
		fleetota__v1__signed__pack(hdr->manifest, packed);
	(void)ota_manifest_parse(hdr->manifest, &arena, &manifest);
	return 0;
}
