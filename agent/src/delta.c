/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The delta applier (fleetota/delta.h): chunked zstd patch-from frames,
 * decoded one at a time into a chunk buffer of the lent work area, with
 * the mapped base image as the raw-content dictionary (a reference
 * prefix). A single-pass decode (ZSTD_decompress_usingDict) keeps no
 * window of its own, so a frame may reach anywhere in a base of any size
 * while the RAM stays ota_delta_work_bytes(chunk).
 */
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_initStaticDCtx: the decoder in the work area */
#include <zstd.h>

#include "fleetota/delta.h"

/* The decoder context's start, aligned as zstd requires (8 bytes). */
#define DCTX_ALIGN 8u

static size_t dctx_bytes(void)
{
	size_t n = ZSTD_estimateDCtxSize();
	return (n + DCTX_ALIGN - 1u) & ~(size_t)(DCTX_ALIGN - 1u);
}

size_t ota_delta_work_bytes(uint32_t chunk_bytes)
{
	if (chunk_bytes == 0 || chunk_bytes > OTA_DELTA_MAX_CHUNK_BYTES)
		return 0;
	return DCTX_ALIGN + dctx_bytes() + (size_t)chunk_bytes +
	       (size_t)OTA_DELTA_FRAME_MAX(chunk_bytes);
}

enum ota_err ota_delta_open(struct ota_delta *d, void *work, size_t work_len, const uint8_t *base,
			    uint64_t base_size, uint32_t chunk_bytes, uint64_t final_size)
{
	size_t need = ota_delta_work_bytes(chunk_bytes);
	memset(d, 0, sizeof(*d));
	if (need == 0 || !work || work_len < need || !base || base_size == 0 || final_size == 0)
		return OTA_ERR_DELTA_UNSUPPORTED;
	/*
	 * A base that begins with zstd's dictionary magic would be read as a
	 * structured dictionary, not as raw content: ota-keys refuses to
	 * make such a delta and the device refuses to apply one.
	 */
	if (base_size >= 4 && base[0] == 0x37 && base[1] == 0xA4 && base[2] == 0x30 &&
	    base[3] == 0xEC)
		return OTA_ERR_DELTA_UNSUPPORTED;
	uintptr_t at = ((uintptr_t)work + DCTX_ALIGN - 1u) & ~(uintptr_t)(DCTX_ALIGN - 1u);
	uint8_t *p = (uint8_t *)at;
	ZSTD_DCtx *dctx = ZSTD_initStaticDCtx(p, dctx_bytes());
	if (!dctx)
		return OTA_ERR_DELTA_UNSUPPORTED;
	d->dctx = dctx;
	d->out_buf = p + dctx_bytes();
	d->frame_buf = d->out_buf + chunk_bytes;
	d->base = base;
	d->base_size = base_size;
	d->chunk_bytes = chunk_bytes;
	d->final_size = final_size;
	d->open = true;
	return OTA_OK;
}

/* Decodes the complete frame in frame_buf into exactly the next chunk. */
static enum ota_err frame_decode(struct ota_delta *d, ota_delta_out_fn out, void *out_arg)
{
	uint64_t left = d->final_size - d->out_done;
	size_t want = left < d->chunk_bytes ? (size_t)left : d->chunk_bytes;
	/* the frame must declare its content size, and it must be this chunk's */
	unsigned long long declared = ZSTD_getFrameContentSize(d->frame_buf, d->frame_len);
	if (declared != (unsigned long long)want)
		return OTA_ERR_HASH;
	/* exactly one frame: a second one hidden behind it is not the signed payload */
	size_t frame = ZSTD_findFrameCompressedSize(d->frame_buf, d->frame_len);
	if (ZSTD_isError(frame) || frame != d->frame_len)
		return OTA_ERR_HASH;
	size_t got = ZSTD_decompress_usingDict(d->dctx, d->out_buf, want, d->frame_buf,
					       d->frame_len, d->base, (size_t)d->base_size);
	if (ZSTD_isError(got) || got != want)
		return OTA_ERR_HASH;
	enum ota_err err = out(out_arg, d->out_buf, want);
	if (err != OTA_OK)
		return err;
	d->out_done += want;
	d->frames++;
	return OTA_OK;
}

static enum ota_err feed(struct ota_delta *d, const uint8_t *data, size_t len, ota_delta_out_fn out,
			 void *out_arg)
{
	while (len > 0) {
		if (d->frame_len == 0) {
			/* a length prefix; none may follow the final chunk */
			if (d->out_done >= d->final_size)
				return OTA_ERR_HASH;
			size_t take = OTA_DELTA_FRAME_PREFIX_BYTES - d->prefix_have;
			if (take > len)
				take = len;
			memcpy(d->prefix + d->prefix_have, data, take);
			d->prefix_have += (uint32_t)take;
			data += take;
			len -= take;
			if (d->prefix_have < OTA_DELTA_FRAME_PREFIX_BYTES)
				break;
			uint32_t flen = ((uint32_t)d->prefix[0] << 24) |
					((uint32_t)d->prefix[1] << 16) |
					((uint32_t)d->prefix[2] << 8) | (uint32_t)d->prefix[3];
			if (flen == 0 || flen > OTA_DELTA_FRAME_MAX(d->chunk_bytes))
				return OTA_ERR_HASH;
			d->frame_len = flen;
			d->frame_have = 0;
			d->prefix_have = 0;
			continue;
		}
		size_t take = d->frame_len - d->frame_have;
		if (take > len)
			take = len;
		memcpy(d->frame_buf + d->frame_have, data, take);
		d->frame_have += (uint32_t)take;
		data += take;
		len -= take;
		if (d->frame_have < d->frame_len)
			break;
		enum ota_err err = frame_decode(d, out, out_arg);
		if (err != OTA_OK)
			return err;
		d->frame_len = 0;
	}
	return OTA_OK;
}

enum ota_err ota_delta_feed(struct ota_delta *d, const uint8_t *data, size_t len,
			    ota_delta_out_fn out, void *out_arg)
{
	if (!d->open)
		return OTA_ERR_INVALID_ARG;
	enum ota_err err = feed(d, data, len, out, out_arg);
	if (err != OTA_OK)
		d->open = false;
	return err;
}

bool ota_delta_complete(const struct ota_delta *d)
{
	return d->open && d->out_done == d->final_size && d->frame_len == 0 && d->prefix_have == 0;
}

void ota_delta_close(struct ota_delta *d)
{
	if (d)
		memset(d, 0, sizeof(*d));
}
