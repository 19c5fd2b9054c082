/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Slot writes behind the core's back (the Linux port only; the core stays
 * portable and runs on its caller's thread, using a second one only
 * through run_beside, beside.c). slot_write copies the bytes into a ring
 * of large buffers and returns; one writer thread writes the full buffers
 * to the slot file, with O_DIRECT where it can (open_direct, write_run;
 * the rest buffered with its writeback started at once), so the core
 * hashes the next chunk while the disk writes this one, and a checkpoint's
 * fdatasync finds little left to do. The port contract allows it: a write
 * need only be durable after slot_sync, and a power cut may tear it (the core re-hashes
 * what it reads back). An error of the writer is kept and returned by the
 * next slot_write, slot_sync or drain. Every other slot operation drains
 * the ring first, so reads see every write before them. slot_buffer lends
 * the buffer being filled: what the core decrypts into it, the next
 * slot_write takes without a copy.
 */
#define _GNU_SOURCE /* sync_file_range, O_DIRECT, statx */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ota_linux.h"

#define RING OTA_SLOT_WRITER_RING
#define BUF_BYTES OTA_SLOT_WRITER_BUF_BYTES

struct ota_slot_writer {
	int fd[OTA_SLOT_COUNT];
	/* the same file opened O_DIRECT (-1: none, or refused), and its alignments */
	int dfd[OTA_SLOT_COUNT];
	uint32_t dio_mem[OTA_SLOT_COUNT], dio_off[OTA_SLOT_COUNT];
	bool direct_refused, direct_logged; /* no direct I/O (direct_note), and said so */
	char direct_why[64];
	bool quiet;
	uint64_t alloc_end[OTA_SLOT_COUNT]; /* allocated ahead up to here (writer thread only) */
	uint64_t slot_size;
	uint8_t *buf[RING];
	size_t len[RING];
	uint64_t off[RING];
	unsigned slot[RING];
	uint64_t submitted, done; /* buffers handed to the thread, and written */
	bool filling; /* buffer submitted % RING is being filled */
	bool quit;
	int err; /* the first failure (errno), 0 = none */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
};

/*
 * In pieces of PWRITE_BYTES: one 1 MiB pwrite makes the page cache take
 * large folios, which cost three times the kernel time here (a KVM guest:
 * 0.6 s against 0.2 s of system time for 256 MiB, docs/bench.md). Not
 * always: at load 15-18 1 MiB pieces took a fifth less system time, at
 * load 28-55 three to four times more (0.49-0.58 against 0.14 s per
 * 256 MiB); 64 KiB is the choice whose worst case is mild.
 */
#define PWRITE_BYTES OTA_SLOT_WRITER_PWRITE_BYTES
#define ALLOC_BYTES OTA_SLOT_WRITER_ALLOC_BYTES

static int pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t put = 0;
	while (put < len) {
		size_t step = len - put < PWRITE_BYTES ? len - put : PWRITE_BYTES;
		ssize_t n = pwrite(fd, buf + put, step, (off_t)(off + put));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;
		put += (size_t)n;
	}
	return 0;
}

/*
 * The buffer pool (ota_linux.h): blocks of two buffers, 2 MiB aligned and
 * advised as huge pages. With 4 KiB pages a 1 MiB direct write was 256
 * segments, more than this virtio disk takes in one request (254), and the
 * disk took 256 MiB of direct writes in 0.19-0.56 s against 0.16-0.27 s
 * buffered; from huge pages 0.15-0.22 s (docs/bench.md, "Encrypted
 * install, sixth round"). Where transparent huge pages are off
 * (ota_linux_buf_huge) the writer writes buffered; where the kernel finds
 * no huge page for a block, its buffers are ordinary pages and direct
 * writes from them work, slower.
 */
#define POOL_BLOCK (2u * BUF_BYTES)
#define POOL_BLOCKS 32u

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *pool_block[POOL_BLOCKS];
static unsigned pool_used[POOL_BLOCKS]; /* bit k: buffer k of the block is out */

uint8_t *ota_linux_buf_get(void)
{
	uint8_t *buf = NULL;
	pthread_mutex_lock(&pool_lock);
	for (unsigned b = 0; b < POOL_BLOCKS && !buf; b++) {
		if (pool_block[b] && pool_used[b] != 3u) {
			unsigned k = (pool_used[b] & 1u) ? 1u : 0u;
			pool_used[b] |= 1u << k;
			buf = pool_block[b] + (size_t)k * BUF_BYTES;
		}
	}
	for (unsigned b = 0; b < POOL_BLOCKS && !buf; b++) {
		void *p = NULL;
		if (pool_block[b] || posix_memalign(&p, POOL_BLOCK, POOL_BLOCK) != 0)
			continue;
		(void)madvise(p, POOL_BLOCK, MADV_HUGEPAGE);
		pool_block[b] = p;
		pool_used[b] = 1u;
		buf = p;
	}
	pthread_mutex_unlock(&pool_lock);
	return buf;
}

bool ota_linux_buf_huge(void)
{
	static int huge = -1; /* not yet known */
	pthread_mutex_lock(&pool_lock);
	if (huge < 0) {
		char mode[128] = "";
		FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
		size_t n = f ? fread(mode, 1, sizeof(mode) - 1, f) : 0;
		if (f)
			fclose(f);
		mode[n] = '\0';
		huge = strstr(mode, "[always]") || strstr(mode, "[madvise]") ? 1 : 0;
	}
	bool yes = huge == 1;
	pthread_mutex_unlock(&pool_lock);
	return yes;
}

void ota_linux_buf_put(uint8_t *buf)
{
	if (!buf)
		return;
	uint8_t *gone = NULL;
	pthread_mutex_lock(&pool_lock);
	for (unsigned b = 0; b < POOL_BLOCKS; b++) {
		if (pool_block[b] && buf >= pool_block[b] && buf < pool_block[b] + POOL_BLOCK) {
			pool_used[b] &=
				~(1u << (unsigned)((size_t)(buf - pool_block[b]) / BUF_BYTES));
			if (pool_used[b] == 0) {
				gone = pool_block[b];
				pool_block[b] = NULL;
			}
			break;
		}
	}
	pthread_mutex_unlock(&pool_lock);
	free(gone);
}

/*
 * Why slot writes go through the page cache after all: kept (the first
 * reason) and logged once by the caller's thread (direct_log), and no
 * more direct I/O is tried.
 */
static void direct_note(struct ota_slot_writer *w, const char *why)
{
	pthread_mutex_lock(&w->lock);
	if (!w->direct_refused)
		snprintf(w->direct_why, sizeof(w->direct_why), "%s", why);
	w->direct_refused = true;
	pthread_mutex_unlock(&w->lock);
}

/* The line for direct_note's reason, once. Called unlocked, on the caller's thread. */
static void direct_log(struct ota_slot_writer *w)
{
	pthread_mutex_lock(&w->lock);
	bool log = w->direct_refused && !w->direct_logged && !w->quiet;
	w->direct_logged = w->direct_refused;
	pthread_mutex_unlock(&w->lock);
	if (log)
		fprintf(stderr, "ota-agent: info: slot writes through the page cache: %s\n",
			w->direct_why);
}

/*
 * Opens slot's file a second time with O_DIRECT, for the writer's whole
 * aligned buffers: the bytes go from the buffer to the disk without a copy
 * into the page cache (the writer's CPU per 256 MiB fell from about 80 to
 * about 15 ms on the development VM, docs/bench.md "Encrypted install,
 * sixth round"). The alignments come from statx (STATX_DIOALIGN, Linux 6.1);
 * an older kernel is tried with OTA_SLOT_WRITER_BUF_ALIGN for both. A
 * file system that offers no direct I/O (statx says so, or the open is
 * refused) keeps the buffered writes. Durability is unchanged: a direct
 * write, like a buffered one, is durable only after the slot's fdatasync
 * (the device's write cache, the extents it converts, the file's size),
 * which a checkpoint makes as before.
 */
static void open_direct(struct ota_slot_writer *w, unsigned slot, const char *path)
{
	uint32_t mem = OTA_SLOT_WRITER_BUF_ALIGN, off = OTA_SLOT_WRITER_BUF_ALIGN;
	struct statx sx;
	w->dfd[slot] = -1;
	pthread_mutex_lock(&w->lock);
	bool refused = w->direct_refused;
	pthread_mutex_unlock(&w->lock);
	if (refused)
		return;
	if (statx(w->fd[slot], "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN)) {
		if (sx.stx_dio_offset_align == 0) {
			direct_note(w, "the file system offers no direct I/O (statx)");
			return;
		}
		mem = sx.stx_dio_mem_align ? sx.stx_dio_mem_align : 1u;
		off = sx.stx_dio_offset_align;
	}
	/*
	 * from 4 KiB pages a direct write reached this VM's disk slower than a
	 * buffered one (the pool's comment): without huge pages, buffered
	 */
	if (!ota_linux_buf_huge()) {
		direct_note(w, "no huge pages for the buffers (transparent_hugepage)");
		return;
	}
	/* the ring's buffers are aligned to OTA_SLOT_WRITER_BUF_ALIGN: no more */
	if (mem > OTA_SLOT_WRITER_BUF_ALIGN || off > OTA_SLOT_WRITER_BUF_ALIGN) {
		direct_note(w, "direct I/O needs a larger alignment (statx)");
		return;
	}
	w->dfd[slot] = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
	if (w->dfd[slot] < 0)
		direct_note(w, errno == EINVAL ? "O_DIRECT refused (EINVAL)" : strerror(errno));
	w->dio_mem[slot] = mem;
	w->dio_off[slot] = off;
}

/*
 * Writes len bytes of buf at off: the longest aligned head with O_DIRECT
 * (when the slot has it, off and buf are aligned), the rest buffered with
 * its writeback started (sync_file_range). A direct write refused with
 * EINVAL (a file system or device that takes the open but not the I/O)
 * stops direct writes for good and the bytes go buffered; the caller's
 * thread logs it. 0 or errno.
 */
static int write_piece(struct ota_slot_writer *w, unsigned slot, const uint8_t *buf, size_t len,
		       uint64_t off)
{
	int dfd = w->dfd[slot];
	size_t direct = 0, put = 0;
	if (dfd >= 0 && off % w->dio_off[slot] == 0 && (uintptr_t)buf % w->dio_mem[slot] == 0)
		direct = len - len % w->dio_off[slot];
	while (put < direct) {
		ssize_t n = pwrite(dfd, buf + put, direct - put, (off_t)(off + put));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EINVAL) {
			/* this slot's direct fd is this thread's once writes are queued */
			close(dfd);
			w->dfd[slot] = -1;
			direct_note(w, "a direct write was refused (EINVAL)");
			break;
		}
		if (n <= 0)
			return n < 0 ? errno : EIO;
		put += (size_t)n;
		if ((size_t)n % w->dio_off[slot] != 0)
			break; /* short and unaligned: the rest buffered */
	}
	if (put == len)
		return 0;
	int e = pwrite_all(w->fd[slot], buf + put, len - put, off + put);
	if (e == 0)
		(void)sync_file_range(w->fd[slot], (off_t)(off + put), (off_t)(len - put),
				      SYNC_FILE_RANGE_WRITE);
	return e;
}

/*
 * Allocates the slot file's blocks ahead of the writes, ALLOC_BYTES at a
 * time (never past the slot's size; the file's size is kept, so reads and
 * a power cut see what they saw before: bytes not yet written read back
 * as zeros or not at all). Without it every page the writer dirties
 * reserves a delayed block under the inode's i_data_sem, which the
 * writeback that sync_file_range starts takes too (ext4 allocates the
 * blocks, then converts them to written as each MiB's I/O completes).
 * With the blocks there a write only finds them: the writer's CPU per
 * 256 MiB fell from 130 to 90 ms (docs/agent.md, "Staging speed"). A file
 * system without fallocate, or a full one, goes on without (the writes
 * report a real failure).
 */
static void alloc_ahead(struct ota_slot_writer *w, unsigned slot, int fd, uint64_t off, size_t len)
{
	uint64_t end = off + len;
	if (end <= w->alloc_end[slot] || w->alloc_end[slot] == UINT64_MAX)
		return;
	uint64_t from = off > w->alloc_end[slot] ? off : w->alloc_end[slot];
	uint64_t to = end + ALLOC_BYTES < w->slot_size ? end + ALLOC_BYTES : w->slot_size;
	if (to <= from)
		return;
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from)) == 0)
		w->alloc_end[slot] = to;
	else if (errno == EOPNOTSUPP || errno == ENOSYS)
		w->alloc_end[slot] = UINT64_MAX; /* not here: do not ask again */
}

/*
 * Writes a run of n queued buffers that continue each other (all but the
 * last full): with one pwritev of their aligned bytes on the direct fd, so
 * the disk gets them as few large requests (4 MiB from huge pages took
 * 0.15-0.22 s per 256 MiB here, 1 MiB at a time 0.19-0.22 s), then
 * what is left of each buffer (a short write, the unaligned tail, no
 * direct I/O) through write_piece. 0 or errno.
 */
static int write_run(struct ota_slot_writer *w, unsigned slot, uint8_t *const *buf,
		     const size_t *len, unsigned n, uint64_t off)
{
	struct iovec iov[OTA_SLOT_WRITER_BATCH];
	size_t put = 0;
	int dfd = w->dfd[slot];
	bool aligned = dfd >= 0 && n > 1 && off % w->dio_off[slot] == 0;
	for (unsigned k = 0; aligned && k < n; k++) {
		aligned = (uintptr_t)buf[k] % w->dio_mem[slot] == 0;
		iov[k].iov_base = buf[k];
		iov[k].iov_len = k + 1 < n ? len[k] : len[k] - len[k] % w->dio_off[slot];
	}
	if (aligned) {
		ssize_t got;
		do
			got = pwritev(dfd, iov, (int)n, (off_t)off);
		while (got < 0 && errno == EINTR);
		if (got < 0 && errno != EINVAL)
			return errno;
		/* refused (EINVAL) or short: write_piece takes the rest, and says why */
		put = got > 0 ? (size_t)got : 0;
	}
	for (unsigned k = 0; k < n; k++) {
		size_t skip = put < len[k] ? put : len[k];
		put -= skip;
		if (skip < len[k]) {
			int e = write_piece(w, slot, buf[k] + skip, len[k] - skip, off + skip);
			if (e != 0)
				return e;
		}
		off += len[k];
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct ota_slot_writer *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->done == w->submitted && !w->quit)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->done == w->submitted)
			break;
		unsigned i = (unsigned)(w->done % RING);
		unsigned slot = w->slot[i];
		int fd = w->fd[slot];
		uint64_t off = w->off[i], end = off;
		uint8_t *buf[OTA_SLOT_WRITER_BATCH];
		size_t len[OTA_SLOT_WRITER_BATCH];
		/* the queued buffers that continue this one, up to a batch */
		unsigned n = 0;
		while (n < OTA_SLOT_WRITER_BATCH && w->done + n < w->submitted) {
			unsigned j = (unsigned)((w->done + n) % RING);
			if (w->slot[j] != slot || w->off[j] != end ||
			    (n > 0 && len[n - 1] != BUF_BYTES))
				break;
			buf[n] = w->buf[j];
			len[n] = w->len[j];
			end += len[n];
			n++;
		}
		pthread_mutex_unlock(&w->lock);
		alloc_ahead(w, slot, fd, off, (size_t)(end - off));
		int e = write_run(w, slot, buf, len, n, off);
		pthread_mutex_lock(&w->lock);
		if (e != 0 && w->err == 0)
			w->err = e;
		w->done += n;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static struct ota_slot_writer *writer_get(struct ota_linux_port *lx)
{
	if (lx->writer)
		return lx->writer;
	struct ota_slot_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	for (unsigned s = 0; s < OTA_SLOT_COUNT; s++)
		w->fd[s] = w->dfd[s] = -1;
	w->slot_size = lx->slot_size;
	w->quiet = lx->quiet;
	bool ok = true;
	for (unsigned i = 0; i < RING; i++) {
		/* from the pool: aligned and in huge pages for O_DIRECT (open_direct) */
		w->buf[i] = ota_linux_buf_get();
		ok = ok && w->buf[i];
	}
	if (ok && pthread_mutex_init(&w->lock, NULL) != 0)
		ok = false;
	else if (ok && pthread_cond_init(&w->cond, NULL) != 0) {
		pthread_mutex_destroy(&w->lock);
		ok = false;
	} else if (ok && pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		ok = false;
	}
	if (!ok) {
		for (unsigned i = 0; i < RING; i++)
			ota_linux_buf_put(w->buf[i]);
		free(w);
		return NULL;
	}
	lx->writer = w;
	return w;
}

/* Hands the buffer being filled to the thread (an empty one is just dropped). Called locked. */
static void submit_locked(struct ota_slot_writer *w)
{
	if (!w->filling)
		return;
	w->filling = false;
	if (w->len[w->submitted % RING] == 0)
		return;
	w->submitted++;
	pthread_cond_broadcast(&w->cond);
}

/*
 * Makes the buffer being filled continue slot at off (submitting it when
 * it does not, or is full; a new one once the ring has room). OTA_OK with
 * its index, or the writer's failure. Called locked.
 */
static enum ota_err fill_at_locked(struct ota_slot_writer *w, unsigned slot, uint64_t off,
				   unsigned *ret_i)
{
	unsigned i = (unsigned)(w->submitted % RING);
	/* a write that does not continue the buffer starts a new one */
	if (w->filling &&
	    (w->slot[i] != slot || w->off[i] + w->len[i] != off || w->len[i] == BUF_BYTES))
		submit_locked(w);
	if (!w->filling) {
		while (w->submitted - w->done >= RING && w->err == 0)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->err != 0)
			return OTA_ERR_STORAGE;
		i = (unsigned)(w->submitted % RING);
		w->filling = true;
		w->slot[i] = slot;
		w->off[i] = off;
		w->len[i] = 0;
	}
	*ret_i = i;
	return OTA_OK;
}

static enum ota_err slot_fd(struct ota_linux_port *lx, struct ota_slot_writer *w, unsigned slot)
{
	char path[OTA_CONFIG_MAX_PATH + 32];
	if (w->fd[slot] >= 0)
		return OTA_OK;
	ota_linux_slot_path(lx, slot, path, sizeof(path));
	w->fd[slot] = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (w->fd[slot] < 0)
		return OTA_ERR_STORAGE;
	open_direct(w, slot, path);
	return OTA_OK;
}

enum ota_err ota_slot_writer_write(struct ota_linux_port *lx, unsigned slot, uint64_t off,
				   const uint8_t *data, size_t len)
{
	struct ota_slot_writer *w = writer_get(lx);
	if (!w || slot_fd(lx, w, slot) != OTA_OK)
		return OTA_ERR_STORAGE;
	direct_log(w);
	pthread_mutex_lock(&w->lock);
	/* bytes the caller put where slot_buffer lent: already in place */
	unsigned lent = (unsigned)(w->submitted % RING);
	bool in_place = w->filling && w->slot[lent] == slot && w->off[lent] + w->len[lent] == off &&
			data == w->buf[lent] + w->len[lent] && len <= BUF_BYTES - w->len[lent];
	/* a whole piece of the bundle's read-ahead: it trades places with a free buffer */
	if (!in_place && lx->readahead && len == BUF_BYTES && w->err == 0) {
		submit_locked(w);
		while (w->submitted - w->done >= RING && w->err == 0)
			pthread_cond_wait(&w->cond, &w->lock);
		unsigned i = (unsigned)(w->submitted % RING);
		uint8_t *spare = w->buf[i];
		if (w->err == 0 && ota_readahead_swap(lx->readahead, data, len, &spare)) {
			w->buf[i] = spare;
			w->filling = true;
			w->slot[i] = slot;
			w->off[i] = off;
			w->len[i] = len;
			submit_locked(w);
			len = 0;
		}
	}
	if (in_place && w->err == 0) {
		w->len[lent] += len;
		if (w->len[lent] == BUF_BYTES)
			submit_locked(w);
		len = 0;
	}
	while (len > 0 && w->err == 0) {
		unsigned i = 0;
		if (fill_at_locked(w, slot, off, &i) != OTA_OK)
			break;
		size_t n = BUF_BYTES - w->len[i] < len ? BUF_BYTES - w->len[i] : len;
		/* the buffer being filled is the caller's alone: copy unlocked */
		pthread_mutex_unlock(&w->lock);
		memcpy(w->buf[i] + w->len[i], data, n);
		pthread_mutex_lock(&w->lock);
		w->len[i] += n;
		data += n;
		off += n;
		len -= n;
		if (w->len[i] == BUF_BYTES)
			submit_locked(w);
	}
	enum ota_err err = w->err == 0 ? OTA_OK : OTA_ERR_STORAGE;
	pthread_mutex_unlock(&w->lock);
	return err;
}

uint8_t *ota_slot_writer_buffer(struct ota_linux_port *lx, unsigned slot, uint64_t off,
				size_t *ret_cap)
{
	struct ota_slot_writer *w = writer_get(lx);
	if (!w || slot_fd(lx, w, slot) != OTA_OK)
		return NULL;
	uint8_t *at = NULL;
	unsigned i = 0;
	pthread_mutex_lock(&w->lock);
	if (w->err == 0 && fill_at_locked(w, slot, off, &i) == OTA_OK) {
		at = w->buf[i] + w->len[i];
		*ret_cap = BUF_BYTES - w->len[i];
	}
	pthread_mutex_unlock(&w->lock);
	return at;
}

enum ota_err ota_slot_writer_drain(struct ota_linux_port *lx)
{
	struct ota_slot_writer *w = lx->writer;
	if (!w)
		return OTA_OK;
	pthread_mutex_lock(&w->lock);
	submit_locked(w);
	while (w->done != w->submitted)
		pthread_cond_wait(&w->cond, &w->lock);
	enum ota_err err = w->err == 0 ? OTA_OK : OTA_ERR_STORAGE;
	pthread_mutex_unlock(&w->lock);
	return err;
}

enum ota_err ota_slot_writer_drain_slot(struct ota_linux_port *lx, unsigned slot)
{
	struct ota_slot_writer *w = lx->writer;
	if (!w)
		return OTA_OK;
	bool queued = false;
	pthread_mutex_lock(&w->lock);
	uint64_t end = w->submitted + (w->filling ? 1u : 0u);
	for (uint64_t n = w->done; n < end && !queued; n++)
		queued = w->slot[n % RING] == slot;
	pthread_mutex_unlock(&w->lock);
	/* only this thread queues writes: none can appear in between */
	return queued ? ota_slot_writer_drain(lx) : OTA_OK;
}

void ota_slot_writer_reset(struct ota_linux_port *lx)
{
	struct ota_slot_writer *w = lx->writer;
	if (!w)
		return;
	(void)ota_slot_writer_drain(lx);
	pthread_mutex_lock(&w->lock);
	w->err = 0;
	/* the caller truncates the slot: what was allocated ahead goes with it */
	for (unsigned s = 0; s < OTA_SLOT_COUNT; s++)
		w->alloc_end[s] = 0;
	pthread_mutex_unlock(&w->lock);
}

enum ota_err ota_slot_writer_sync(struct ota_linux_port *lx, unsigned slot, bool *ret_synced)
{
	*ret_synced = false;
	enum ota_err err = ota_slot_writer_drain(lx);
	if (err != OTA_OK || !lx->writer || lx->writer->fd[slot] < 0)
		return err;
	direct_log(lx->writer);
	if (fdatasync(lx->writer->fd[slot]) != 0)
		return OTA_ERR_STORAGE;
	*ret_synced = true;
	return OTA_OK;
}

void ota_slot_writer_close(struct ota_linux_port *lx)
{
	struct ota_slot_writer *w = lx->writer;
	if (!w)
		return;
	(void)ota_slot_writer_drain(lx);
	pthread_mutex_lock(&w->lock);
	w->quit = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	for (unsigned s = 0; s < OTA_SLOT_COUNT; s++) {
		if (w->fd[s] >= 0)
			close(w->fd[s]);
		if (w->dfd[s] >= 0)
			close(w->dfd[s]);
	}
	for (unsigned i = 0; i < RING; i++)
		ota_linux_buf_put(w->buf[i]);
	free(w);
	lx->writer = NULL;
}
