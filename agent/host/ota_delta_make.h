/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_DELTA_MAKE_H
#define OTA_DELTA_MAKE_H

/*
 * Host side of delta updates: makes the payload that the agent core's
 * applier (fleetota/delta.h) decodes. Used by ota-keys, the tests, the
 * fleet simulator and the benchmark; never linked into a device.
 *
 * Each chunk of the new image is one zstd frame with the whole base as its
 * reference prefix (ZSTD_CCtx_refPrefix) and a window that covers base +
 * chunk, so a frame may copy from anywhere in the base. Who finds the
 * matches (the payload's format is the same):
 *   zstd    zstd's own match finder with long-distance matching: the
 *           smallest deltas, but it indexes the whole base again for
 *           every frame, (image / chunk) x base of work;
 *   index   ours: an index of the base built once (a position every 8
 *           bytes), a greedy parse of each chunk against it, its own
 *           earlier bytes and the last match's distance; zstd entropy-codes
 *           the sequences (ZSTD_compressSequences). Linear in base + image.
 * The default picks index for bases of OTA_DELTA_INDEX_MIN_BASE and more.
 */

#include <stddef.h>
#include <stdint.h>

#include "fleetota/crypto.h"
#include "fleetota/limits.h"
#include "fleetota/delta.h"

/* zstd level ota-keys uses unless told otherwise. */
#define OTA_DELTA_DEFAULT_LEVEL 19

/* Bases from this size on get the index matcher by default. */
#define OTA_DELTA_INDEX_MIN_BASE (16u * 1024u * 1024u)

enum ota_delta_matcher {
	OTA_DELTA_MATCH_AUTO = 0, /* index from OTA_DELTA_INDEX_MIN_BASE on, else zstd */
	OTA_DELTA_MATCH_ZSTD = 1,
	OTA_DELTA_MATCH_INDEX = 2,
};

/* "auto", "zstd" or "index"; -1 for anything else. */
int ota_delta_matcher_parse(const char *name);

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
/* The same with the matcher chosen (ota_delta_make is OTA_DELTA_MATCH_AUTO). */
enum ota_err ota_delta_make_with(const uint8_t *base, size_t base_len, const uint8_t *image,
				 size_t image_len, uint32_t chunk_bytes, int level,
				 enum ota_delta_matcher matcher, ota_delta_sink_fn sink,
				 void *sink_arg, uint64_t *ret_size);

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
				 enum ota_delta_matcher matcher, struct ota_delta_made *ret);

#endif
