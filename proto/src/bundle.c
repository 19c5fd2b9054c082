/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "fleetota/bundle.h"
#include "fleetota/envelope.h"
#include "fleetota/limits.h"

enum ota_err ota_bundle_prefix_parse(const uint8_t prefix[OTA_BUNDLE_PREFIX_BYTES],
				     uint32_t *ret_header_len)
{
	if (memcmp(prefix, OTA_BUNDLE_MAGIC, 4) != 0)
		return OTA_ERR_FORMAT;
	uint32_t len = ((uint32_t)prefix[4] << 24) | ((uint32_t)prefix[5] << 16) |
		       ((uint32_t)prefix[6] << 8) | (uint32_t)prefix[7];
	if (len == 0 || len > OTA_MAX_BUNDLE_HEADER_BYTES)
		return OTA_ERR_FORMAT;
	*ret_header_len = len;
	return OTA_OK;
}

enum ota_err ota_bundle_prefix_write(uint32_t header_len, uint8_t out[OTA_BUNDLE_PREFIX_BYTES])
{
	if (header_len == 0 || header_len > OTA_MAX_BUNDLE_HEADER_BYTES)
		return OTA_ERR_FORMAT;
	memcpy(out, OTA_BUNDLE_MAGIC, 4);
	out[4] = (uint8_t)(header_len >> 24);
	out[5] = (uint8_t)(header_len >> 16);
	out[6] = (uint8_t)(header_len >> 8);
	out[7] = (uint8_t)header_len;
	return OTA_OK;
}

enum ota_err ota_bundle_header_decode(const uint8_t *buf, size_t len, struct ota_arena *arena,
				      Fleetota__V1__BundleHeader **ret_header)
{
	if (!buf || len == 0 || len > OTA_MAX_BUNDLE_HEADER_BYTES)
		return OTA_ERR_FORMAT;
	Fleetota__V1__BundleHeader *hdr =
		fleetota__v1__bundle_header__unpack(&arena->allocator, len, buf);
	if (!hdr || !hdr->manifest || ota_envelope_check(hdr->manifest) != OTA_OK)
		return OTA_ERR_FORMAT;
	if (hdr->keylist && ota_envelope_check(hdr->keylist) != OTA_OK)
		return OTA_ERR_FORMAT;
	if (hdr->rootlist && ota_envelope_check(hdr->rootlist) != OTA_OK)
		return OTA_ERR_FORMAT;
	if (hdr->n_rootlist_chain > OTA_MAX_ROOT_CHAIN)
		return OTA_ERR_FORMAT;
	for (size_t i = 0; i < hdr->n_rootlist_chain; i++) {
		if (ota_envelope_check(hdr->rootlist_chain[i]) != OTA_OK)
			return OTA_ERR_FORMAT;
	}
	*ret_header = hdr;
	return OTA_OK;
}
