/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_BUNDLE_H
#define FLEETOTA_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "fleetota/arena.h"
#include "fleetota/err.h"
#include "ota.pb-c.h"

/*
 * .otab layout: "OTAB", big-endian uint32 H (1..OTA_MAX_BUNDLE_HEADER_BYTES),
 * H bytes of BundleHeader, then exactly manifest.image.size image bytes.
 */
#define OTA_BUNDLE_MAGIC "OTAB"
#define OTA_BUNDLE_PREFIX_BYTES 8u

/* Parses the 8-byte prefix. OTA_OK and *ret_header_len, or OTA_ERR_FORMAT. */
enum ota_err ota_bundle_prefix_parse(const uint8_t prefix[OTA_BUNDLE_PREFIX_BYTES],
				     uint32_t *ret_header_len);

/* Writes the 8-byte prefix for a header of header_len bytes. */
enum ota_err ota_bundle_prefix_write(uint32_t header_len, uint8_t out[OTA_BUNDLE_PREFIX_BYTES]);

/*
 * Decodes a BundleHeader of len bytes into arena: a manifest envelope is
 * required; every envelope is shape-checked; the root chain is bounded.
 * OTA_OK or OTA_ERR_FORMAT.
 */
enum ota_err ota_bundle_header_decode(const uint8_t *buf, size_t len, struct ota_arena *arena,
				      Fleetota__V1__BundleHeader **ret_header);

#endif
