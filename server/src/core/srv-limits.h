/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_LIMITS_H
#define SRV_LIMITS_H

/*
 * The server's own limits, shared by its components (the wire limits that
 * agent and server share are in proto/include/fleetota/limits.h). Named
 * srv-limits.h, not limits.h: an -I directory would shadow <limits.h>.
 */
#include "fleetota/limits.h"

/* Longest device id (certificate CN, MQTT username, topic level). */
#define SRV_MAX_DEVICE_ID OTA_MAX_DEVICE_ID_BYTES
/* Longest MQTT topic we look at. */
#define SRV_MAX_TOPIC_BYTES 256u
/* A SHA-256 digest as lowercase hex (store names, token hashes), NUL included. */
#define SRV_SHA256_HEX_BYTES (2u * OTA_SHA256_BYTES + 1u)
/* A number as decimal text for a statement parameter or a header, NUL included. */
#define SRV_U32_TEXT_BYTES 16u /* an int or unsigned */
#define SRV_U64_TEXT_BYTES 24u /* a 64-bit one, signed or not */

#endif
