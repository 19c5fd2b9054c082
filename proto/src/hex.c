/* SPDX-License-Identifier: Apache-2.0 */
#include <stdint.h>

#include "fleetota/hex.h"

void ota_hex_encode(const void *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *bytes = data;

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15u];
	}
	out[2 * len] = '\0';
}
