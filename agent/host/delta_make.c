/* SPDX-License-Identifier: Apache-2.0 */
/* Delta payloads for the core's applier (ota_delta_make.h). */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "ota_delta_make.h"

static unsigned window_log_for(uint64_t bytes)
{
	unsigned log = 10;
	while (log < 31u && ((uint64_t)1 << log) < bytes)
		log++;
	return log;
}

static bool dict_magic(const uint8_t *base, size_t len)
{
	return len >= 4 && base[0] == 0x37 && base[1] == 0xA4 && base[2] == 0x30 && base[3] == 0xEC;
}

static bool zstd_ok(size_t rc)
{
	return !ZSTD_isError(rc);
}

enum ota_err ota_delta_make(const uint8_t *base, size_t base_len, const uint8_t *image,
			    size_t image_len, uint32_t chunk_bytes, int level,
			    ota_delta_sink_fn sink, void *sink_arg, uint64_t *ret_size)
{
	if (!base || base_len == 0 || !image || image_len == 0 || dict_magic(base, base_len) ||
	    chunk_bytes == 0 || chunk_bytes > OTA_DELTA_MAX_CHUNK_BYTES)
		return OTA_ERR_DELTA_UNSUPPORTED;
	size_t cap = OTA_DELTA_FRAME_MAX(chunk_bytes);
	uint8_t *frame = malloc(OTA_DELTA_FRAME_PREFIX_BYTES + cap);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	enum ota_err err = OTA_ERR_NOMEM;
	uint64_t total = 0;
	if (!frame || !cctx)
		goto out;
	err = OTA_ERR_INTERNAL;
	unsigned wlog = window_log_for((uint64_t)base_len + chunk_bytes);
	for (size_t off = 0; off < image_len; off += chunk_bytes) {
		size_t n = image_len - off < chunk_bytes ? image_len - off : chunk_bytes;
		/* parameters are sticky; the prefix is for this frame only */
		if (!zstd_ok(ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only)) ||
		    !zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)) ||
		    !zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, (int)wlog)) ||
		    !zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_enableLongDistanceMatching, 1)) ||
		    !zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)) ||
		    !zstd_ok(ZSTD_CCtx_refPrefix(cctx, base, base_len)))
			goto out;
		size_t got = ZSTD_compress2(cctx, frame + OTA_DELTA_FRAME_PREFIX_BYTES, cap,
					    image + off, n);
		if (!zstd_ok(got) || got == 0 || got > cap)
			goto out;
		frame[0] = (uint8_t)(got >> 24);
		frame[1] = (uint8_t)(got >> 16);
		frame[2] = (uint8_t)(got >> 8);
		frame[3] = (uint8_t)got;
		err = sink(sink_arg, frame, OTA_DELTA_FRAME_PREFIX_BYTES + got);
		if (err != OTA_OK)
			goto out;
		err = OTA_ERR_INTERNAL;
		total += OTA_DELTA_FRAME_PREFIX_BYTES + got;
	}
	*ret_size = total;
	err = OTA_OK;
out:
	ZSTD_freeCCtx(cctx);
	free(frame);
	return err;
}

/* A read-only mapping of a whole file. */
struct mapped {
	const uint8_t *data;
	size_t len;
};

static enum ota_err map_file(const char *path, struct mapped *m)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return OTA_ERR_STORAGE;
	if (fstat(fd, &st) != 0 || st.st_size <= 0) {
		close(fd);
		return OTA_ERR_STORAGE;
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return OTA_ERR_STORAGE;
	m->data = p;
	m->len = (size_t)st.st_size;
	return OTA_OK;
}

static void unmap_file(struct mapped *m)
{
	if (m->data)
		munmap((void *)m->data, m->len);
	m->data = NULL;
}

struct file_sink {
	int fd;
	struct ota_sha256_ctx sha;
};

static enum ota_err file_put(void *arg, const uint8_t *data, size_t len)
{
	struct file_sink *f = arg;
	while (len > 0) {
		ssize_t w = write(f->fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return OTA_ERR_STORAGE;
		data += w;
		len -= (size_t)w;
	}
	return OTA_OK;
}

static enum ota_err hash_put(void *arg, const uint8_t *data, size_t len)
{
	struct file_sink *f = arg;
	enum ota_err err = ota_sha256_update(&f->sha, data, len);
	return err == OTA_OK ? file_put(f, data, len) : err;
}

/* The device's applier over the payload: it must give image byte for byte. */
struct check_out {
	const uint8_t *image;
	size_t len;
	size_t done;
};

static enum ota_err check_put(void *arg, const uint8_t *data, size_t len)
{
	struct check_out *c = arg;
	if (len > c->len - c->done || memcmp(c->image + c->done, data, len) != 0)
		return OTA_ERR_HASH;
	c->done += len;
	return OTA_OK;
}

static enum ota_err apply_check(const struct mapped *base, const struct mapped *image,
				const char *payload_path, uint32_t chunk_bytes)
{
	struct mapped payload = {0};
	struct ota_delta d;
	struct check_out c = {.image = image->data, .len = image->len};
	size_t work_len = ota_delta_work_bytes(chunk_bytes);
	void *work = malloc(work_len);
	enum ota_err err = work ? map_file(payload_path, &payload) : OTA_ERR_NOMEM;
	if (err == OTA_OK)
		err = ota_delta_open(&d, work, work_len, base->data, base->len, chunk_bytes,
				     image->len);
	if (err == OTA_OK)
		err = ota_delta_feed(&d, payload.data, payload.len, check_put, &c);
	if (err == OTA_OK && (!ota_delta_complete(&d) || c.done != image->len))
		err = OTA_ERR_HASH;
	unmap_file(&payload);
	free(work);
	return err;
}

enum ota_err ota_delta_make_file(const char *base_path, const char *image_path,
				 const char *out_path, uint32_t chunk_bytes, int level,
				 struct ota_delta_made *ret)
{
	struct mapped base = {0}, image = {0};
	struct ota_delta_made made = {.chunk_bytes = chunk_bytes};
	struct file_sink f = {.fd = -1};
	enum ota_err err = map_file(base_path, &base);
	if (err == OTA_OK)
		err = map_file(image_path, &image);
	if (err != OTA_OK)
		goto out;
	made.base_size = base.len;
	made.image_size = image.len;
	if ((err = ota_sha256(base.data, base.len, made.base_sha256)) != OTA_OK ||
	    (err = ota_sha256(image.data, image.len, made.image_sha256)) != OTA_OK)
		goto out;
	f.fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (f.fd < 0) {
		err = OTA_ERR_STORAGE;
		goto out;
	}
	if ((err = ota_sha256_init(&f.sha)) != OTA_OK)
		goto out;
	err = ota_delta_make(base.data, base.len, image.data, image.len, chunk_bytes, level,
			     hash_put, &f, &made.size);
	if (err == OTA_OK)
		err = ota_sha256_final(&f.sha, made.sha256);
	else
		ota_sha256_abort(&f.sha);
	if (err == OTA_OK && fsync(f.fd) != 0)
		err = OTA_ERR_STORAGE;
	if (close(f.fd) != 0 && err == OTA_OK)
		err = OTA_ERR_STORAGE;
	f.fd = -1;
	if (err == OTA_OK)
		err = apply_check(&base, &image, out_path, chunk_bytes);
	if (err == OTA_OK)
		*ret = made;
out:
	if (f.fd >= 0)
		close(f.fd);
	unmap_file(&base);
	unmap_file(&image);
	return err;
}
