/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_DELTA_H
#define FLEETOTA_DELTA_H

/*
 * The delta applier of the agent core (docs/formats.md "Delta payload",
 * docs/porting.md "Delta updates"). A delta payload is a run of frames:
 * a big-endian uint32 length, then one zstd frame that decompresses, with
 * the whole base image as its reference prefix (ZSTD_DCtx_refPrefix), to
 * exactly chunk_bytes of the final image (the last frame to the rest).
 *
 * Memory: the base is read in place through the port's slot_map (an mmap
 * on Linux, memory-mapped flash on an MCU): never copied. The applier's
 * own RAM is the work area the caller lends: one output chunk, one
 * compressed frame (at most OTA_DELTA_FRAME_MAX(chunk) bytes) and the
 * decoder's context, ota_delta_work_bytes(chunk) in total. No heap.
 *
 * Every failure of the payload (a frame that does not decode, decodes to
 * the wrong length, a length prefix out of bounds, bytes after the last
 * frame) is OTA_ERR_HASH: the payload is not the signed one (its SHA-256
 * is bound by the manifest; the applier only finds out earlier).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"

/* Final-image bytes per frame a device accepts at most. */
#define OTA_DELTA_MAX_CHUNK_BYTES (1024u * 1024u)
/* What ota-keys uses unless told otherwise. */
#define OTA_DELTA_DEFAULT_CHUNK_BYTES (1024u * 1024u)
/* The length prefix of one frame. */
#define OTA_DELTA_FRAME_PREFIX_BYTES 4u
/*
 * The longest frame for a chunk: zstd's worst case (ZSTD_COMPRESSBOUND,
 * stored blocks) plus room for its frame header; larger is refused.
 */
#define OTA_DELTA_FRAME_MAX(chunk) ((chunk) + ((chunk) >> 8) + 1024u)
/* The work area for the largest chunk (a safe default for a port to lend). */
#define OTA_DELTA_WORK_BYTES (2u * OTA_DELTA_MAX_CHUNK_BYTES + 512u * 1024u)

/* Receives decoded final-image bytes in order (a whole chunk per call). */
typedef enum ota_err (*ota_delta_out_fn)(void *arg, const uint8_t *data, size_t len);

/* One applier (lives inside struct ota_install). */
struct ota_delta {
	bool open;
	const uint8_t *base; /* borrowed: the mapped running slot */
	uint64_t base_size;
	uint32_t chunk_bytes;
	uint64_t final_size;
	uint64_t out_done; /* final-image bytes handed to out */
	uint64_t frames; /* frames decoded */
	uint8_t prefix[OTA_DELTA_FRAME_PREFIX_BYTES];
	uint32_t prefix_have;
	uint32_t frame_len; /* 0 while reading a prefix */
	uint32_t frame_have;
	uint8_t *frame_buf;
	uint8_t *out_buf;
	void *dctx; /* the decoder, inside the work area */
};

/*
 * Work area needed for frames of chunk_bytes; 0 when chunk_bytes is 0 or
 * above OTA_DELTA_MAX_CHUNK_BYTES.
 */
size_t ota_delta_work_bytes(uint32_t chunk_bytes);

/*
 * Opens an applier over the borrowed base and work area. OTA_ERR_DELTA_UNSUPPORTED
 * when the chunk is out of bounds or work_len < ota_delta_work_bytes(chunk).
 */
enum ota_err ota_delta_open(struct ota_delta *d, void *work, size_t work_len, const uint8_t *base,
			    uint64_t base_size, uint32_t chunk_bytes, uint64_t final_size);

/*
 * Feeds payload bytes; every completed frame is decoded and handed to out.
 * OTA_ERR_HASH for a payload that is not a valid delta of this base (see
 * above), else out's error. On any error the applier is unusable.
 */
enum ota_err ota_delta_feed(struct ota_delta *d, const uint8_t *data, size_t len,
			    ota_delta_out_fn out, void *out_arg);

/* True when the whole final image was produced and no frame is partial. */
bool ota_delta_complete(const struct ota_delta *d);

/* Forgets the applier (no memory to free: the work area is borrowed). NULL ok. */
void ota_delta_close(struct ota_delta *d);

#endif
