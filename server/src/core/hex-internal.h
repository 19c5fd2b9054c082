/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_HEX_INTERNAL_H
#define SRV_HEX_INTERNAL_H

#include <stddef.h>

/* ota_hex_encode (fleetota/hex.h) under the server's prefix: len bytes as 2*len lowercase hex
 * digits and a NUL into out. */
void srv_hex_encode(const void *data, size_t len, char *out);

#endif
