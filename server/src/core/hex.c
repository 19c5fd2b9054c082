/* SPDX-License-Identifier: Apache-2.0 */
#include "fleetota/hex.h"
#include "hex-internal.h"

/* The server's name for fleetota's one hex encoder (proto/src/hex.c). */
void srv_hex_encode(const void *data, size_t len, char *out)
{
	ota_hex_encode(data, len, out);
}
