/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_HEX_H
#define FLEETOTA_HEX_H

#include <stddef.h>

/*
 * The one hex encoder of fleetota (device, server, ota-keys, ota-ctl): len
 * bytes of data as 2 * len lowercase hex digits and a NUL into out, which
 * holds 2 * len + 1 bytes.
 */
void ota_hex_encode(const void *data, size_t len, char *out);

#endif
