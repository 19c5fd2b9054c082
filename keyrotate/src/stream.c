/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A file through SHA-256, optionally copied: one I/O thread reads ahead
 * (and writes behind) through a small ring of buffers while the calling
 * thread hashes, so hashing, reading and writing overlap (docs/bench.md,
 * "Signing"). Every byte written is one the caller hashed: the writer
 * takes a buffer only after the hasher is done with it, and the buffer is
 * not refilled before it is written.
 */
#define _GNU_SOURCE /* sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kr.h"

#define RING KR_STREAM_RING
#define ALIGN KR_STREAM_DIRECT_ALIGN
/* O_DIRECT writes in flight at once: one keeps the disk idle between them */
#define DIRECT_WRITERS 2u

struct stream {
	int in, out;
	bool direct;
	off_t out_at; /* the file offset of the first byte of buf[0] (direct: aligned) */
	size_t lead; /* direct: bytes of buf[0] before the first stream byte (zeros) */
	uint64_t limit;
	uint8_t *buf[RING];
	size_t len[RING]; /* stream bytes in the buffer, after skip */
	size_t skip[RING]; /* lead for the first buffer, else 0 */
	bool busy[RING]; /* holds bytes not yet hashed or written */
	/* sequence numbers of buffers: claimed <= hashed <= read */
	uint64_t n_read, n_hashed, n_claimed;
	uint64_t bytes_read, bytes_written;
	bool eof, stop;
	int read_errno, write_errno;
	bool over;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

/*
 * In 64 KiB pieces: one 1 MiB write makes the page cache take large
 * folios, three times the kernel time on this project's KVM machines
 * (docs/agent.md, "Staging speed").
 */
int kr_write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t put = write(fd, buf, len < 65536u ? len : 65536u);
		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return put < 0 ? errno : EIO;
		buf += put;
		len -= (size_t)put;
	}
	return 0;
}

/* fills buf with up to cap bytes; 0 at EOF, -errno on error */
ssize_t kr_read_some(int fd, uint8_t *buf, size_t cap)
{
	size_t done = 0;
	while (done < cap) {
		ssize_t got = read(fd, buf + done, cap - done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -(ssize_t)errno;
		if (got == 0)
			break;
		done += (size_t)got;
	}
	return (ssize_t)done;
}

/* reads buffer n (caller unlocked): the direct stream's first one after its lead */
static ssize_t read_buffer(struct stream *s, uint64_t n, unsigned i)
{
	size_t skip = n == 0 ? s->lead : 0;
	s->skip[i] = skip;
	return kr_read_some(s->in, s->buf[i] + skip, KR_STREAM_CHUNK - skip);
}

/* The reader: fills free buffers in order until the end (or the limit). */
static void *read_thread(void *arg)
{
	struct stream *s = arg;
	pthread_mutex_lock(&s->lock);
	while (!s->stop && !s->eof) {
		unsigned i = (unsigned)(s->n_read % RING);
		if (s->busy[i]) {
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		uint64_t n = s->n_read;
		pthread_mutex_unlock(&s->lock);
		ssize_t got = read_buffer(s, n, i);
		pthread_mutex_lock(&s->lock);
		if (got < 0) {
			s->read_errno = (int)-got;
			s->stop = true;
		} else if (got == 0) {
			s->eof = true;
		} else {
			s->len[i] = (size_t)got;
			s->busy[i] = true;
			s->bytes_read += (uint64_t)got;
			s->n_read++;
			if (s->bytes_read > s->limit) {
				s->over = true;
				s->eof = true;
			}
			/*
			 * A short read is the end of the file; a direct stream
			 * stops there, whatever is appended after: its blocks
			 * stay aligned only while every buffer but the last is full.
			 */
			if (s->direct && (size_t)got < KR_STREAM_CHUNK - s->skip[i])
				s->eof = true;
		}
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* writes buffer n (caller unlocked); 0 or an errno */
static int write_buffer(struct stream *s, uint64_t n, unsigned i)
{
	if (!s->direct) {
		int e = kr_write_all(s->out, s->buf[i], s->len[i]);
#if defined(__linux__)
		if (e == 0)
			(void)sync_file_range(s->out, s->out_at + (off_t)(n * KR_STREAM_CHUNK),
					      (off_t)s->len[i], SYNC_FILE_RANGE_WRITE);
#endif
		return e;
	}
	/* whole aligned blocks from the buffer's start; the last one padded with zeros */
	size_t used = s->skip[i] + s->len[i];
	size_t put = (used + ALIGN - 1) / ALIGN * ALIGN;
	memset(s->buf[i] + used, 0, put - used);
	off_t at = s->out_at + (off_t)(n * KR_STREAM_CHUNK);
	size_t done = 0;
	while (done < put) {
		ssize_t w = pwrite(s->out, s->buf[i] + done, put - done, at + (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : EIO;
		/* a short direct write ends on a block boundary: go on from there */
		done += (size_t)w;
	}
	return 0;
}

/*
 * A writer: takes hashed buffers in order and writes them (buffered: one
 * writer, in order through the file offset; direct: DIRECT_WRITERS, each
 * at its buffer's offset). A buffer is free again once written.
 */
static void *write_thread(void *arg)
{
	struct stream *s = arg;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		if (s->stop || (s->eof && s->n_claimed == s->n_read))
			break;
		if (s->n_claimed == s->n_hashed) {
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		uint64_t n = s->n_claimed++;
		unsigned i = (unsigned)(n % RING);
		pthread_mutex_unlock(&s->lock);
		int e = write_buffer(s, n, i);
		pthread_mutex_lock(&s->lock);
		if (e != 0) {
			if (!s->write_errno)
				s->write_errno = e;
			s->stop = true;
		} else {
			s->bytes_written += s->len[i];
			s->busy[i] = false;
		}
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static enum ota_err stream_run(struct stream *s, struct ota_sha256_ctx *sha,
			       struct kr_stream_result *ret)
{
	pthread_t reader, writer[DIRECT_WRITERS];
	unsigned n_writers = s->out < 0 ? 0 : s->direct ? DIRECT_WRITERS : 1;
	unsigned started = 0;
	bool reading = false;
	enum ota_err err = OTA_OK;
	memset(ret, 0, sizeof(*ret));
	for (unsigned i = 0; i < RING; i++) {
		/* aligned for O_DIRECT, with room to pad the last block */
		if (posix_memalign((void **)&s->buf[i], ALIGN, KR_STREAM_CHUNK) != 0) {
			s->buf[i] = NULL;
			err = OTA_ERR_NOMEM;
		}
	}
	if (err == OTA_OK && s->direct)
		memset(s->buf[0], 0, s->lead);
	(void)posix_fadvise(s->in, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (err == OTA_OK &&
	    (pthread_mutex_init(&s->lock, NULL) != 0 || pthread_cond_init(&s->cond, NULL) != 0)) {
		for (unsigned i = 0; i < RING; i++)
			free(s->buf[i]);
		return OTA_ERR_INTERNAL;
	}
	if (err != OTA_OK) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		for (unsigned i = 0; i < RING; i++)
			free(s->buf[i]);
		return err;
	}
	pthread_mutex_lock(&s->lock);
	reading = pthread_create(&reader, NULL, read_thread, s) == 0;
	while (reading && started < n_writers &&
	       pthread_create(&writer[started], NULL, write_thread, s) == 0)
		started++;
	if (!reading || started < n_writers) {
		err = OTA_ERR_INTERNAL;
		s->stop = true;
	}
	/* hashes buffers in order as they are read; without out they are free then */
	while (err == OTA_OK) {
		while (s->n_hashed == s->n_read && !s->stop && !s->eof)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->n_hashed == s->n_read || s->over || s->stop)
			break;
		uint64_t n = s->n_hashed;
		unsigned i = (unsigned)(n % RING);
		pthread_mutex_unlock(&s->lock);
		err = ota_sha256_update(sha, s->buf[i] + s->skip[i], s->len[i]);
		pthread_mutex_lock(&s->lock);
		if (err != OTA_OK)
			break;
		s->n_hashed++;
		if (n_writers == 0)
			s->busy[i] = false;
		pthread_cond_broadcast(&s->cond);
	}
	if (err != OTA_OK || s->over || s->read_errno || s->write_errno)
		s->stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (reading)
		pthread_join(reader, NULL);
	for (unsigned k = 0; k < started; k++)
		pthread_join(writer[k], NULL);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	for (unsigned i = 0; i < RING; i++)
		free(s->buf[i]);
	ret->bytes = s->bytes_read;
	ret->read_errno = s->read_errno;
	ret->write_errno = s->write_errno;
	if (err != OTA_OK)
		return err;
	if (s->over)
		return OTA_ERR_SIZE;
	if (s->read_errno || s->write_errno)
		return OTA_ERR_STORAGE;
	return OTA_OK;
}

enum ota_err kr_stream(int in, int out, uint64_t limit, struct ota_sha256_ctx *sha,
		       struct kr_stream_result *ret)
{
	struct stream s;
	memset(&s, 0, sizeof(s));
	s.in = in;
	s.out = out;
	s.limit = limit;
	s.out_at = out >= 0 ? lseek(out, 0, SEEK_CUR) : 0;
	if (s.out_at < 0)
		s.out_at = 0; /* a pipe: the hint below only starts writeback early */
	return stream_run(&s, sha, ret);
}

enum ota_err kr_stream_direct(int in, int out, uint64_t out_offset, uint64_t limit,
			      struct ota_sha256_ctx *sha, struct kr_stream_result *ret)
{
	struct stream s;
	memset(&s, 0, sizeof(s));
	s.in = in;
	s.out = out;
	s.direct = true;
	s.limit = limit;
	s.lead = (size_t)(out_offset % ALIGN);
	s.out_at = (off_t)(out_offset - s.lead);
	enum ota_err err = stream_run(&s, sha, ret);
	/* the last block's padding goes */
	if (err == OTA_OK && ftruncate(out, (off_t)(out_offset + ret->bytes)) != 0) {
		ret->write_errno = errno;
		err = OTA_ERR_STORAGE;
	}
	return err;
}
