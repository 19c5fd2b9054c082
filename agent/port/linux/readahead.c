/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sequential file reading one step ahead of the caller: a thread preads
 * into a ring of buffers while the caller (ota-agent install) hashes and
 * stages the previous one, so the read's copy leaves the hashing thread.
 * For an encrypted image the thread also decrypts what it read (the
 * core's ota_decrypt_ahead, with a cipher context of its own), while the
 * piece is still in its cache: the hashing thread does a plain install's
 * work, and no other thread is woken for it. A piece of whole chunks is
 * read apart (preadv: each chunk's ciphertext where its plaintext goes in
 * the plaintext buffer, the tags beside) and decrypted in place, so the
 * decryption touches one buffer, not two (docs/bench.md, "Encrypted
 * install, fifth round").
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ota_linux.h"

#define RING OTA_READAHEAD_RING

struct ota_readahead {
	int fd;
	uint64_t next_off; /* the thread's next read */
	size_t chunk;
	uint8_t *buf[RING];
	size_t len[RING];
	struct ota_decrypt *dec; /* decrypting ahead: the caller's copy, NULL = no */
	uint64_t wire_off; /* the ciphertext offset of the thread's next read */
	size_t out_cap;
	uint8_t *out[RING]; /* the plaintext of buf[i], or of the piece read in place */
	uint8_t *tags[RING]; /* the tags of a piece read in place */
	size_t in_place; /* the whole chunks of a piece read in place; 0 = never */
	struct ota_decrypt_ahead ahead[RING];
	uint64_t filled, taken; /* buffers read, buffers handed out */
	bool eof, quit;
	int err;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
};

/*
 * Reads n sealed chunks at off apart: chunk i's ciphertext to out + i *
 * chunk, its tag to tags + i * TAG. The bytes read (all, or short at the
 * end of the file); errno in *ret_err on a read error.
 */
static size_t read_apart(int fd, uint64_t off, uint8_t *out, uint8_t *tags, size_t n, size_t chunk,
			 int *ret_err)
{
	size_t sealed = chunk + OTA_CRYPT_TAG_BYTES;
	size_t total = n * sealed;
	size_t got = 0;
	*ret_err = 0;
	while (got < total) {
		struct iovec iov[64];
		int cnt = 0;
		for (size_t at = got; at < total && cnt < 64; cnt++) {
			size_t i = at / sealed, in = at % sealed;
			bool tag = in >= chunk;
			iov[cnt].iov_base = tag ? tags + i * OTA_CRYPT_TAG_BYTES + (in - chunk)
						: out + i * chunk + in;
			iov[cnt].iov_len = tag ? sealed - in : chunk - in;
			at += iov[cnt].iov_len;
		}
		ssize_t k = preadv(fd, iov, cnt, (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			*ret_err = errno;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return got;
}

/* A buffer of len bytes: the slot writer's size from the pool (ota_linux_buf_get), else malloc. */
static uint8_t *buf_new(size_t len)
{
	return len == OTA_SLOT_WRITER_BUF_BYTES ? ota_linux_buf_get() : malloc(len);
}

static void buf_free(uint8_t *buf, size_t len)
{
	if (len == OTA_SLOT_WRITER_BUF_BYTES)
		ota_linux_buf_put(buf);
	else
		free(buf);
}

static void *reader_main(void *arg)
{
	struct ota_readahead *ra = arg;
	pthread_mutex_lock(&ra->lock);
	for (;;) {
		/* the buffer handed out last (taken - 1) is the caller's until its next call */
		while (!ra->quit && (ra->filled + 1 - ra->taken >= RING))
			pthread_cond_wait(&ra->cond, &ra->lock);
		if (ra->quit)
			break;
		unsigned i = (unsigned)(ra->filled % RING);
		pthread_mutex_unlock(&ra->lock);
		size_t got = 0;
		int e = 0;
		/* a piece of whole chunks: read apart and decrypted in place */
		bool apart =
			ra->in_place > 0 &&
			ota_decrypt_ahead_whole(ra->dec, ra->wire_off, ra->out_cap) == ra->in_place;
		if (apart) {
			got = read_apart(ra->fd, ra->next_off, ra->out[i], ra->tags[i],
					 ra->in_place, ra->dec->chunk_bytes, &e);
			if (e == 0 && got == ra->chunk) {
				ota_decrypt_ahead_in_place(ra->dec, ra->wire_off, ra->out[i],
							   ra->tags[i], ra->in_place,
							   &ra->ahead[i]);
				ra->wire_off += got;
			} else {
				got = 0; /* a short piece (the file ends): read as it lies */
				e = 0;
				apart = false;
			}
		}
		while (!apart && got < ra->chunk) {
			ssize_t n = pread(ra->fd, ra->buf[i] + got, ra->chunk - got,
					  (off_t)(ra->next_off + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				e = errno;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		/* the piece is in this thread's cache: decrypt it here */
		if (!apart && e == 0 && got > 0 && ra->dec) {
			ota_decrypt_ahead(ra->dec, ra->wire_off, ra->buf[i], got, ra->out[i],
					  ra->out_cap, &ra->ahead[i]);
			ra->wire_off += got;
		}
		pthread_mutex_lock(&ra->lock);
		ra->next_off += got;
		ra->len[i] = got;
		if (e != 0)
			ra->err = e;
		else if (got > 0)
			ra->filled++;
		if (e != 0 || got < ra->chunk)
			ra->eof =
				true; /* a short read is the end: what it got is the last buffer */
		pthread_cond_broadcast(&ra->cond);
		if (ra->eof)
			break;
	}
	pthread_mutex_unlock(&ra->lock);
	return NULL;
}

enum ota_err ota_readahead_open_ahead(int fd, uint64_t offset, size_t chunk,
				      struct ota_decrypt *dec, uint64_t wire_off, size_t out_cap,
				      struct ota_readahead **ret_ra)
{
	struct ota_readahead *ra = calloc(1, sizeof(*ra));
	if (!ra || chunk == 0 || (dec && out_cap == 0)) {
		free(ra);
		return OTA_ERR_NOMEM;
	}
	ra->fd = fd;
	ra->next_off = offset;
	ra->chunk = chunk;
	ra->dec = dec;
	ra->wire_off = wire_off;
	ra->out_cap = dec ? out_cap : 0;
	/* pieces of whole chunks that fill the plaintext buffer are read in place */
	size_t whole = dec && dec->chunk_bytes ? out_cap / dec->chunk_bytes : 0;
	if (whole > 0 && whole * ((size_t)dec->chunk_bytes + OTA_CRYPT_TAG_BYTES) == chunk)
		ra->in_place = whole;
	bool ok = true;
	for (unsigned i = 0; i < RING; i++) {
		/* the slot writer's size: from its pool, as they change places with its buffers */
		ra->buf[i] = buf_new(chunk);
		ok = ok && ra->buf[i];
		if (dec) {
			ra->out[i] = buf_new(out_cap);
			ok = ok && ra->out[i];
		}
		if (ra->in_place) {
			ra->tags[i] = malloc(ra->in_place * OTA_CRYPT_TAG_BYTES);
			ok = ok && ra->tags[i];
		}
	}
	(void)posix_fadvise(fd, (off_t)offset, 0, POSIX_FADV_SEQUENTIAL);
	if (ok && pthread_mutex_init(&ra->lock, NULL) != 0)
		ok = false;
	else if (ok && pthread_cond_init(&ra->cond, NULL) != 0) {
		pthread_mutex_destroy(&ra->lock);
		ok = false;
	} else if (ok && pthread_create(&ra->thread, NULL, reader_main, ra) != 0) {
		pthread_cond_destroy(&ra->cond);
		pthread_mutex_destroy(&ra->lock);
		ok = false;
	}
	if (!ok) {
		for (unsigned i = 0; i < RING; i++) {
			buf_free(ra->buf[i], chunk);
			buf_free(ra->out[i], out_cap);
			free(ra->tags[i]);
		}
		free(ra);
		return OTA_ERR_NOMEM;
	}
	*ret_ra = ra;
	return OTA_OK;
}

enum ota_err ota_readahead_open(int fd, uint64_t offset, size_t chunk,
				struct ota_readahead **ret_ra)
{
	return ota_readahead_open_ahead(fd, offset, chunk, NULL, 0, 0, ret_ra);
}

enum ota_err ota_readahead_next(struct ota_readahead *ra, const uint8_t **ret_data, size_t *ret_len)
{
	const struct ota_decrypt_ahead *ahead = NULL;
	return ota_readahead_next_ahead(ra, ret_data, ret_len, &ahead);
}

enum ota_err ota_readahead_next_ahead(struct ota_readahead *ra, const uint8_t **ret_data,
				      size_t *ret_len, const struct ota_decrypt_ahead **ret_ahead)
{
	*ret_ahead = NULL;
	pthread_mutex_lock(&ra->lock);
	while (ra->taken == ra->filled && !ra->eof && ra->err == 0)
		pthread_cond_wait(&ra->cond, &ra->lock);
	enum ota_err err = OTA_OK;
	if (ra->taken < ra->filled) {
		unsigned i = (unsigned)(ra->taken % RING);
		ra->taken++;
		/* read in place: no ciphertext piece, the result has it all */
		*ret_data = ra->dec && !ra->ahead[i].in ? NULL : ra->buf[i];
		*ret_len = ra->len[i];
		if (ra->dec)
			*ret_ahead = &ra->ahead[i];
		pthread_cond_broadcast(&ra->cond);
	} else if (ra->err != 0) {
		err = OTA_ERR_STORAGE;
	} else {
		*ret_data = NULL;
		*ret_len = 0; /* the end */
	}
	pthread_mutex_unlock(&ra->lock);
	return err;
}

bool ota_readahead_swap(struct ota_readahead *ra, const uint8_t *data, size_t len, uint8_t **io_buf)
{
	bool swapped = false;
	pthread_mutex_lock(&ra->lock);
	if (ra->taken > 0) {
		unsigned i = (unsigned)((ra->taken - 1) % RING);
		/* only the piece handed out last: the thread touches it again after the next call */
		uint8_t **at = ra->buf[i] == data && len == ra->chunk	  ? &ra->buf[i]
			       : ra->out[i] == data && len == ra->out_cap ? &ra->out[i]
									  : NULL;
		if (at) {
			uint8_t *given = *at;
			*at = *io_buf;
			*io_buf = given;
			swapped = true;
		}
	}
	pthread_mutex_unlock(&ra->lock);
	return swapped;
}

void ota_readahead_close(struct ota_readahead *ra)
{
	if (!ra)
		return;
	pthread_mutex_lock(&ra->lock);
	ra->quit = true;
	pthread_cond_broadcast(&ra->cond);
	pthread_mutex_unlock(&ra->lock);
	pthread_join(ra->thread, NULL);
	pthread_cond_destroy(&ra->cond);
	pthread_mutex_destroy(&ra->lock);
	for (unsigned i = 0; i < RING; i++) {
		buf_free(ra->buf[i], ra->chunk);
		buf_free(ra->out[i], ra->out_cap);
		free(ra->tags[i]);
	}
	free(ra);
}
