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

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_compressSequences */
#include <zstd.h>

#include "ota_delta_make.h"

/*
 * Bases of OTA_DELTA_INDEX_MIN_BASE bytes and more: our own matcher over
 * an index of the base built once, zstd for the entropy coding
 * (ZSTD_compressSequences). zstd's own match finder re-indexes the whole
 * reference prefix for every frame, which made a 240 MiB rootfs delta
 * take minutes (docs/decisions.md).
 */
#define INDEX_STRIDE 8u /* base positions indexed: matches of 16 bytes and more are found */
#define INDEX_BITS_MAX 26u /* 256 MiB of index at most */
#define LOCAL_BITS 16u /* the chunk's own positions */
#define MATCH_MIN_REP 6u /* at the last match's distance */
#define MATCH_MIN_NEAR 8u /* inside the chunk */
#define MATCH_MIN_FAR 12u /* into the base */

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

/* The frame's parameters; the prefix is for this frame only. */
static bool frame_begin(ZSTD_CCtx *cctx, const uint8_t *base, size_t base_len, unsigned wlog,
			int level, bool own_matches)
{
	if (!zstd_ok(ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters)) ||
	    !zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)) ||
	    !zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, (int)wlog)) ||
	    !zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)))
		return false;
	if (own_matches) {
		/*
		 * zstd only entropy-codes our sequences, which it does from
		 * their lengths and distances and the chunk's literals alone:
		 * it is given no prefix (zstd 1.5.4 would hash the whole of it
		 * again for every frame, even with its match finder unused),
		 * and it does not check the distances (ZSTD_c_validateSequences
		 * cannot know a prefix it was not given). ota_delta_make_file
		 * decodes every frame again with the device's applier, the base
		 * as the prefix, and compares it with the image.
		 */
		return zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_strategy, ZSTD_fast)) &&
		       zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_minMatch, (int)MATCH_MIN_REP)) &&
		       /* the fast strategy with a high level's targetLength would store literals raw */
		       zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_literalCompressionMode,
						      ZSTD_ps_enable));
	}
	return zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_enableLongDistanceMatching, 1)) &&
	       zstd_ok(ZSTD_CCtx_refPrefix(cctx, base, base_len));
}

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t hash8(const uint8_t *p, unsigned bits)
{
	return (uint32_t)((load64(p) * 0x9E3779B185EBCA87ull) >> (64u - bits));
}

/* The base's index, built once: a position every INDEX_STRIDE bytes per hash of 8 bytes. */
struct base_index {
	const uint8_t *base;
	size_t len;
	uint32_t *slots; /* position + 1; 0 = empty */
	unsigned bits;
};

static bool index_build(struct base_index *ix, const uint8_t *base, size_t len)
{
	unsigned bits = 16;
	while (bits < INDEX_BITS_MAX && ((size_t)1 << bits) < len / INDEX_STRIDE * 2)
		bits++;
	ix->base = base;
	ix->len = len;
	ix->bits = bits;
	ix->slots = calloc((size_t)1 << bits, sizeof(*ix->slots));
	if (!ix->slots)
		return false;
	/* later positions overwrite earlier ones: the nearest copy wins */
	for (size_t p = 0; p + 8 <= len; p += INDEX_STRIDE)
		ix->slots[hash8(base + p, bits)] = (uint32_t)(p + 1);
	return true;
}

/* One chunk's matcher state: the sequences found and the chunk's own index. */
struct scan {
	const uint8_t *src;
	size_t n;
	ZSTD_Sequence *seqs;
	size_t n_seqs;
	uint32_t *local; /* position + 1 in src, LOCAL_BITS */
	size_t rep; /* distance of the last match, 0 = none */
};

/* The byte `dist` before src[i] (the base precedes src); NULL past the base's start. */
static const uint8_t *at_dist(const struct base_index *ix, const struct scan *sc, size_t i,
			      size_t dist, size_t *ret_room)
{
	if (dist <= i) {
		*ret_room = sc->n - i;
		return sc->src + i - dist;
	}
	if (dist - i > ix->len)
		return NULL;
	size_t bp = ix->len - (dist - i);
	/* a match that starts in the base stays in the base */
	*ret_room = ix->len - bp < sc->n - i ? ix->len - bp : sc->n - i;
	return ix->base + bp;
}

static size_t match_len(const uint8_t *a, const uint8_t *b, size_t room)
{
	size_t k = 0;
	while (k + 8 <= room && load64(a + k) == load64(b + k))
		k += 8;
	while (k < room && a[k] == b[k])
		k++;
	return k;
}

/* The longest of the candidates at src[i]: (length, distance) or length 0. */
static size_t best_match(const struct base_index *ix, const struct scan *sc, size_t i,
			 size_t *ret_dist)
{
	size_t best = 0, room;
	const uint8_t *cur = sc->src + i;
	if (sc->rep) {
		const uint8_t *c = at_dist(ix, sc, i, sc->rep, &room);
		size_t k = c ? match_len(cur, c, room) : 0;
		if (k >= MATCH_MIN_REP) {
			best = k;
			*ret_dist = sc->rep;
		}
	}
	if (sc->n - i < 8)
		return best;
	uint32_t bslot = ix->slots[hash8(cur, ix->bits)];
	if (bslot) {
		size_t bp = bslot - 1;
		size_t dist = (ix->len - bp) + i;
		room = ix->len - bp < sc->n - i ? ix->len - bp : sc->n - i;
		size_t k = match_len(cur, ix->base + bp, room);
		if (k >= MATCH_MIN_FAR && k > best + 2) {
			best = k;
			*ret_dist = dist;
		}
	}
	uint32_t *ls = &sc->local[hash8(cur, LOCAL_BITS)];
	if (*ls) {
		size_t j = *ls - 1;
		size_t k = match_len(cur, sc->src + j, sc->n - i);
		if (k >= MATCH_MIN_NEAR && k > best) {
			best = k;
			*ret_dist = i - j;
		}
	}
	*ls = (uint32_t)(i + 1);
	return best;
}

/* Greedy parse of src against the base and itself into sc->seqs. */
static void scan_chunk(const struct base_index *ix, struct scan *sc)
{
	size_t i = 0, lit = 0;
	sc->n_seqs = 0;
	sc->rep = 0;
	memset(sc->local, 0, sizeof(*sc->local) << LOCAL_BITS);
	while (i + MATCH_MIN_REP <= sc->n) {
		size_t dist = 0;
		size_t len = best_match(ix, sc, i, &dist);
		if (len == 0) {
			i++;
			continue;
		}
		/* grow the match backwards over the pending literals */
		size_t room;
		while (i > lit) {
			const uint8_t *c = at_dist(ix, sc, i - 1, dist, &room);
			if (!c || *c != sc->src[i - 1])
				break;
			i--;
			len++;
		}
		sc->seqs[sc->n_seqs++] = (ZSTD_Sequence){.offset = (unsigned)dist,
							 .litLength = (unsigned)(i - lit),
							 .matchLength = (unsigned)len};
		sc->rep = dist;
		i += len;
		lit = i;
	}
}

enum ota_err ota_delta_make(const uint8_t *base, size_t base_len, const uint8_t *image,
			    size_t image_len, uint32_t chunk_bytes, int level,
			    ota_delta_sink_fn sink, void *sink_arg, uint64_t *ret_size)
{
	return ota_delta_make_with(base, base_len, image, image_len, chunk_bytes, level,
				   OTA_DELTA_MATCH_AUTO, sink, sink_arg, ret_size);
}

enum ota_err ota_delta_make_with(const uint8_t *base, size_t base_len, const uint8_t *image,
				 size_t image_len, uint32_t chunk_bytes, int level,
				 enum ota_delta_matcher matcher, ota_delta_sink_fn sink,
				 void *sink_arg, uint64_t *ret_size)
{
	if (!base || base_len == 0 || !image || image_len == 0 || dict_magic(base, base_len) ||
	    chunk_bytes == 0 || chunk_bytes > OTA_DELTA_MAX_CHUNK_BYTES ||
	    base_len >= UINT32_MAX - 1u)
		return OTA_ERR_DELTA_UNSUPPORTED;
	size_t cap = OTA_DELTA_FRAME_MAX(chunk_bytes);
	bool own = matcher == OTA_DELTA_MATCH_INDEX ||
		   (matcher == OTA_DELTA_MATCH_AUTO && base_len >= OTA_DELTA_INDEX_MIN_BASE);
	struct base_index ix = {0};
	struct scan sc = {0};
	uint8_t *frame = malloc(OTA_DELTA_FRAME_PREFIX_BYTES + cap);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	enum ota_err err = OTA_ERR_NOMEM;
	uint64_t total = 0;
	if (!frame || !cctx)
		goto out;
	if (own) {
		sc.seqs = malloc(sizeof(*sc.seqs) * (chunk_bytes / MATCH_MIN_REP + 2));
		sc.local = malloc(sizeof(*sc.local) << LOCAL_BITS);
		if (!sc.seqs || !sc.local || !index_build(&ix, base, base_len))
			goto out;
	}
	err = OTA_ERR_INTERNAL;
	unsigned wlog = window_log_for((uint64_t)base_len + chunk_bytes);
	for (size_t off = 0; off < image_len; off += chunk_bytes) {
		size_t n = image_len - off < chunk_bytes ? image_len - off : chunk_bytes;
		if (!frame_begin(cctx, base, base_len, wlog, level, own))
			goto out;
		size_t got;
		uint8_t *dst = frame + OTA_DELTA_FRAME_PREFIX_BYTES;
		if (own) {
			sc.src = image + off;
			sc.n = n;
			scan_chunk(&ix, &sc);
			got = ZSTD_compressSequences(cctx, dst, cap, sc.seqs, sc.n_seqs,
						     image + off, n);
		} else {
			got = ZSTD_compress2(cctx, dst, cap, image + off, n);
		}
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
	free(ix.slots);
	free(sc.seqs);
	free(sc.local);
	return err;
}

int ota_delta_matcher_parse(const char *name)
{
	if (strcmp(name, "auto") == 0)
		return OTA_DELTA_MATCH_AUTO;
	if (strcmp(name, "zstd") == 0)
		return OTA_DELTA_MATCH_ZSTD;
	if (strcmp(name, "index") == 0)
		return OTA_DELTA_MATCH_INDEX;
	return -1;
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
				 enum ota_delta_matcher matcher, struct ota_delta_made *ret)
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
	err = ota_delta_make_with(base.data, base.len, image.data, image.len, chunk_bytes, level,
				  matcher, hash_put, &f, &made.size);
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
