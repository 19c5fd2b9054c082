/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A file through SHA-256, optionally copied: a reader thread reads ahead
 * and a writer thread writes behind through a small ring of buffers while
 * the calling thread hashes, so hashing, reading and writing overlap
 * (docs/bench.md, "Signing"). Every byte written is one the caller
 * hashed: the writer takes a buffer only after the hasher is done with
 * it, and the buffer is not refilled before it is written.
 */
#define _GNU_SOURCE /* sync_file_range, fallocate */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kr.h"

#define RING KR_STREAM_RING
/*
 * The copy's writes and writeback (docs/bench.md, "Signing, fifth round"):
 * 256 KiB writes (page-cache folios of that size: 64 KiB writes cost a
 * quarter more kernel time, 1 MiB ones no less than 256 KiB and ask the
 * allocator for order-8 pages), and writeback started every 8 MiB (one
 * sync_file_range per 1 MiB: 8 times the submissions, more CPU, no gain).
 */
#define WRITE_PIECE (256u * 1024u)
#define SYNC_EVERY (8u * 1024u * 1024u)

struct stream {
	int in, out;
	off_t out_at; /* where out's file offset was when the stream began */
	uint64_t synced; /* bytes written whose writeback was started */
	uint64_t limit;
	uint8_t *buf[RING];
	size_t len[RING];
	/* sequence numbers of buffers: written <= hashed <= read <= written + RING */
	uint64_t n_read, n_hashed, n_written;
	uint64_t bytes_read, bytes_written;
	bool eof, stop;
	bool hashed_all; /* the hasher is done: the writer ends once it caught up */
	int read_errno, write_errno;
	bool over;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static int write_pieces(int fd, const uint8_t *buf, size_t len, size_t piece)
{
	while (len > 0) {
		ssize_t put = write(fd, buf, len < piece ? len : piece);
		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return put < 0 ? errno : EIO;
		buf += put;
		len -= (size_t)put;
	}
	return 0;
}

/*
 * In 64 KiB pieces: one 1 MiB write makes the page cache take large
 * folios, three times the kernel time on this project's KVM machines
 * (docs/agent.md, "Staging speed").
 */
int kr_write_all(int fd, const uint8_t *buf, size_t len)
{
	return write_pieces(fd, buf, len, 65536u);
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

/*
 * The reader: fills free buffers in order. A buffer is free once it was
 * written (or, with no output, hashed).
 */
static void *read_thread(void *arg)
{
	struct stream *s = arg;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		uint64_t freed = s->out >= 0 ? s->n_written : s->n_hashed;
		if (s->stop || s->eof)
			break;
		if (s->n_read >= freed + RING) {
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		unsigned i = (unsigned)(s->n_read % RING);
		pthread_mutex_unlock(&s->lock);
		ssize_t got = kr_read_some(s->in, s->buf[i], KR_STREAM_CHUNK);
		pthread_mutex_lock(&s->lock);
		if (got < 0) {
			s->read_errno = (int)-got;
			s->stop = true;
		} else if (got == 0) {
			s->eof = true;
		} else {
			s->len[i] = (size_t)got;
			s->bytes_read += (uint64_t)got;
			s->n_read++;
			if (s->bytes_read > s->limit) {
				s->over = true;
				s->eof = true;
			}
		}
		pthread_cond_broadcast(&s->cond);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/*
 * The writer: writes hashed buffers in order, on its own thread so that
 * the page-cache copy of the writes overlaps both the reads and the
 * hashing (docs/bench.md, "Signing, fourth round"). Writeback of what it
 * wrote is started every SYNC_EVERY bytes (sync_file_range), so the
 * caller's final fsync finds little left.
 */
static void *write_thread(void *arg)
{
	struct stream *s = arg;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		if (s->stop)
			break;
		if (s->n_written == s->n_hashed) {
			if (s->hashed_all)
				break;
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		unsigned i = (unsigned)(s->n_written % RING);
		pthread_mutex_unlock(&s->lock);
		int e = write_pieces(s->out, s->buf[i], s->len[i], WRITE_PIECE);
		uint64_t end = s->bytes_written + s->len[i]; /* only this thread moves it */
#if defined(__linux__)
		if (e == 0 && end - s->synced >= SYNC_EVERY) {
			(void)sync_file_range(s->out, s->out_at + (off_t)s->synced,
					      (off_t)(end - s->synced), SYNC_FILE_RANGE_WRITE);
			s->synced = end;
		}
#endif
		pthread_mutex_lock(&s->lock);
		if (e != 0) {
			s->write_errno = e;
			s->stop = true;
		} else {
			s->bytes_written += s->len[i];
			s->n_written++;
		}
		pthread_cond_broadcast(&s->cond);
	}
	bool tail = !s->stop && s->bytes_written > s->synced;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
#if defined(__linux__)
	/* the rest's writeback starts while the caller signs the manifest */
	if (tail)
		(void)sync_file_range(s->out, s->out_at + (off_t)s->synced,
				      (off_t)(s->bytes_written - s->synced), SYNC_FILE_RANGE_WRITE);
#else
	(void)tail;
#endif
	return NULL;
}

/*
 * The blocks of the copy, reserved at once for the input's size: ext4
 * then neither reserves nor allocates them one page at a time as the
 * writes come (a quarter of the writer's kernel time; docs/bench.md,
 * "Signing, fifth round"). The size kept is the written one
 * (FALLOC_FL_KEEP_SIZE); a file system without fallocate writes as
 * before. Returns the bytes reserved past out_at, 0 for none.
 */
static uint64_t reserve(int in, int out, off_t out_at, uint64_t limit)
{
#if defined(__linux__) && defined(FALLOC_FL_KEEP_SIZE)
	struct stat st, ost;
	off_t at = lseek(in, 0, SEEK_CUR); /* a bundle's image is read from its offset */
	if (at < 0 || fstat(in, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= at ||
	    fstat(out, &ost) != 0 || !S_ISREG(ost.st_mode))
		return 0;
	uint64_t len = (uint64_t)(st.st_size - at) < limit ? (uint64_t)(st.st_size - at) : limit;
	if (fallocate(out, FALLOC_FL_KEEP_SIZE, out_at, (off_t)len) != 0)
		return 0;
	return len;
#else
	(void)in;
	(void)out;
	(void)out_at;
	(void)limit;
	return 0;
#endif
}

enum ota_err kr_stream(int in, int out, uint64_t limit, struct ota_sha256_ctx *sha,
		       struct kr_stream_result *ret)
{
	struct stream s;
	pthread_t reader, writer;
	bool have_reader = false, have_writer = false, have_sync = false;
	uint64_t reserved = 0;
	enum ota_err err = OTA_OK;
	memset(&s, 0, sizeof(s));
	memset(ret, 0, sizeof(*ret));
	s.in = in;
	s.out = out;
	s.limit = limit;
	s.out_at = out >= 0 ? lseek(out, 0, SEEK_CUR) : 0;
	if (s.out_at < 0)
		s.out_at = 0; /* a pipe: the hint only starts writeback early */
	for (unsigned i = 0; i < RING; i++) {
		s.buf[i] = malloc(KR_STREAM_CHUNK);
		if (!s.buf[i])
			err = OTA_ERR_NOMEM;
	}
	(void)posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (err == OTA_OK && out >= 0)
		reserved = reserve(in, out, s.out_at, limit);
	if (err == OTA_OK) {
		if (pthread_mutex_init(&s.lock, NULL) != 0)
			err = OTA_ERR_INTERNAL;
		else if (pthread_cond_init(&s.cond, NULL) != 0) {
			pthread_mutex_destroy(&s.lock);
			err = OTA_ERR_INTERNAL;
		} else {
			have_sync = true;
		}
	}
	if (err == OTA_OK && out >= 0) {
		if (pthread_create(&writer, NULL, write_thread, &s) == 0)
			have_writer = true;
		else
			err = OTA_ERR_INTERNAL;
	}
	if (err == OTA_OK) {
		if (pthread_create(&reader, NULL, read_thread, &s) == 0)
			have_reader = true;
		else
			err = OTA_ERR_INTERNAL;
	}
	if (have_sync)
		pthread_mutex_lock(&s.lock);
	while (err == OTA_OK) {
		while (s.n_hashed == s.n_read && !s.stop && !s.eof)
			pthread_cond_wait(&s.cond, &s.lock);
		if (s.n_hashed == s.n_read || s.over || s.stop)
			break;
		unsigned i = (unsigned)(s.n_hashed % RING);
		pthread_mutex_unlock(&s.lock);
		err = ota_sha256_update(sha, s.buf[i], s.len[i]);
		pthread_mutex_lock(&s.lock);
		if (err != OTA_OK)
			break;
		s.n_hashed++;
		pthread_cond_broadcast(&s.cond);
	}
	if (have_sync) {
		if (err != OTA_OK || s.over || s.read_errno || s.write_errno)
			s.stop = true;
		s.hashed_all = true; /* the writer drains what was hashed, then ends */
		pthread_cond_broadcast(&s.cond);
		pthread_mutex_unlock(&s.lock);
	}
	if (have_reader)
		pthread_join(reader, NULL);
	if (have_writer)
		pthread_join(writer, NULL);
	if (have_sync) {
		pthread_cond_destroy(&s.cond);
		pthread_mutex_destroy(&s.lock);
	}
	for (unsigned i = 0; i < RING; i++)
		free(s.buf[i]);
	/*
	 * An input shorter than its size was (it shrank, went over the limit,
	 * or a write failed): the blocks reserved past the end are given back.
	 */
	if (reserved > s.bytes_written && ftruncate(out, s.out_at + (off_t)s.bytes_written) != 0 &&
	    !s.write_errno)
		s.write_errno = errno;
	ret->bytes = s.bytes_read;
	ret->read_errno = s.read_errno;
	ret->write_errno = s.write_errno;
	if (err != OTA_OK)
		return err;
	if (s.over)
		return OTA_ERR_SIZE;
	if (s.read_errno || s.write_errno)
		return OTA_ERR_STORAGE;
	return OTA_OK;
}
