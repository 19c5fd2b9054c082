/* SPDX-License-Identifier: Apache-2.0 */
#include "fleetota/bundle.h"
#include "fleetota/limits.h"
#include "webapi-internal.h"

enum ota_err wa_bundle_split(const uint8_t *buf, size_t len, size_t *ret_header_off,
			     size_t *ret_header_len, size_t *ret_image_off)
{
	uint32_t header_len;

	if (buf == NULL || len < OTA_BUNDLE_PREFIX_BYTES)
		return OTA_ERR_FORMAT;
	if (ota_bundle_prefix_parse(buf, &header_len) != OTA_OK)
		return OTA_ERR_FORMAT;
	if (header_len == 0 || header_len > OTA_MAX_BUNDLE_HEADER_BYTES ||
	    header_len > len - OTA_BUNDLE_PREFIX_BYTES)
		return OTA_ERR_FORMAT;
	*ret_header_off = OTA_BUNDLE_PREFIX_BYTES;
	*ret_header_len = header_len;
	*ret_image_off = OTA_BUNDLE_PREFIX_BYTES + (size_t)header_len;
	return OTA_OK;
}

enum ota_err wa_pg_bytea_decode(const char *text, uint8_t *out, size_t cap, size_t *ret_len)
{
	size_t n = 0;

	if (text == NULL || text[0] != '\\' || text[1] != 'x')
		return OTA_ERR_FORMAT;
	text += 2;
	while (text[0] != '\0') {
		int v = 0;

		for (int k = 0; k < 2; k++) {
			char c = text[k];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= c - '0';
			else if (c >= 'a' && c <= 'f')
				v |= c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				v |= c - 'A' + 10;
			else
				return OTA_ERR_FORMAT;
		}
		if (n >= cap)
			return OTA_ERR_FORMAT;
		out[n++] = (uint8_t)v;
		text += 2;
	}
	*ret_len = n;
	return OTA_OK;
}
