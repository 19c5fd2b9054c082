/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_DELTA_MAKE_H
#define OTA_DELTA_MAKE_H

/*
 * Host side of delta updates: makes the payload that the agent core's
 * applier (fleetota/delta.h) decodes. Used by ota-keys, the tests, the
 * fleet simulator and the benchmark; never linked into a device.
 *
 * Each chunk of the new image is one zstd frame compressed with the whole
 * base as its reference prefix (ZSTD_CCtx_refPrefix), long-distance
 * matching on and a window that covers base + chunk, so a frame may copy
 * from anywhere in the base.
 */

#include <stddef.h>
#include <stdint.h>

#include "fleetota/crypto.h"
#include "fleetota/limits.h"
#include "fleetota/delta.h"

/* zstd level ota-keys uses unless told otherwise. */
#define OTA_DELTA_DEFAULT_LEVEL 19

/* Receives payload bytes in order. */
typedef enum ota_err (*ota_delta_sink_fn)(void *arg, const uint8_t *data, size_t len);

/*
 * Writes the payload of image against base to sink; *ret_size its bytes.
 * OTA_ERR_DELTA_UNSUPPORTED for a base zstd would read as a structured
 * dictionary (it begins with zstd's dictionary magic) or a chunk out of
 * bounds; OTA_ERR_NOMEM; OTA_ERR_INTERNAL for a zstd failure.
 */
enum ota_err ota_delta_make(const uint8_t *base, size_t base_len, const uint8_t *image,
			    size_t image_len, uint32_t chunk_bytes, int level,
			    ota_delta_sink_fn sink, void *sink_arg, uint64_t *ret_size);

/* What a file delta is: the facts a manifest's DeltaInfo and ImageInfo bind. */
struct ota_delta_made {
	uint64_t base_size;
	uint8_t base_sha256[OTA_SHA256_BYTES];
	uint64_t image_size;
	uint8_t image_sha256[OTA_SHA256_BYTES];
	uint64_t size; /* of the payload */
	uint8_t sha256[OTA_SHA256_BYTES];
	uint32_t chunk_bytes;
};

/*
 * Files: maps base and image read-only, writes the payload to out_path
 * (created or truncated) and checks it by applying it again with the
 * device's applier before it returns. OTA_ERR_STORAGE for an I/O error.
 */
enum ota_err ota_delta_make_file(const char *base_path, const char *image_path,
				 const char *out_path, uint32_t chunk_bytes, int level,
				 struct ota_delta_made *ret);

#endif
