/* SPDX-License-Identifier: Apache-2.0 */
/*
 * File-backed port: slots are state_dir/slot0.img and slot1.img; each copy
 * of a record is a file under state_dir/records (state.0, state.1, ...),
 * overwritten in place and fsynced. The core keeps two copies, writes one
 * at a time and falls back to the other when one is torn or lost.
 *
 * A device upgraded from an agent before two-copy records has one file per
 * record (records/state, ..., the payload unframed, replaced atomically by
 * temp file and rename). Such a file is read as copy 0 with sequence 0 in
 * the new frame while records/NAME.0 does not exist, so the device keeps
 * its trust records, counter and state; the core's first write of the
 * record (copy 1 first, it holds no newer value, then copy 0) moves it to
 * the new layout and the old file is removed. The port does this, not the
 * core: file names are the port's business, and a port with no history
 * carries no such code.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fleetota/agent.h"
#include "fleetota/limits.h"
#include "ota_linux.h"

extern char **environ;

/* The file of one copy, or with copy == LEGACY_COPY the old layout's one file. */
#define LEGACY_COPY OTA_RECORD_COPIES

static void record_name(enum ota_record rec, unsigned copy, char *buf, size_t cap)
{
	static const char *const names[] = {"state",	 "counter",   "rootlist", "keylist",
					    "manifest0", "manifest1", "boot",	  "freshness"};
	char base[OTA_LINUX_RECORD_BASE_BYTES];
	if ((unsigned)rec < sizeof(names) / sizeof(names[0]))
		snprintf(base, sizeof(base), "%s", names[rec]);
	else
		snprintf(base, sizeof(base), "event%02u", (unsigned)rec - OTA_REC_EVENT_0);
	if (copy == LEGACY_COPY)
		snprintf(buf, cap, "%s", base);
	else
		snprintf(buf, cap, "%s.%u", base, copy);
}

static bool record_valid(enum ota_record rec, unsigned copy)
{
	return copy < OTA_RECORD_COPIES &&
	       (rec <= OTA_REC_FRESHNESS || (rec >= OTA_REC_EVENT_0 && rec <= OTA_REC_LAST));
}

static bool path_join(char *buf, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(buf, cap, "%s/%s", dir, name);
	return n > 0 && (size_t)n < cap;
}

void ota_linux_slot_path(const struct ota_linux_port *ctx, unsigned slot, char *buf, size_t cap)
{
	char name[OTA_LINUX_SLOT_NAME_BYTES];
	snprintf(name, sizeof(name), "slot%u.img", slot);
	if (!path_join(buf, cap, ctx->dir, name))
		buf[0] = '\0';
}

static enum ota_err fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return OTA_ERR_STORAGE;
	int rc = fsync(fd);
	close(fd);
	return rc == 0 ? OTA_OK : OTA_ERR_STORAGE;
}

bool ota_linux_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n =
			pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

bool ota_linux_pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *ret_done)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return false;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*ret_done = done;
	return true;
}

static enum ota_err lx_slot_size(void *ctx, unsigned slot, uint64_t *ret_size)
{
	struct ota_linux_port *lx = ctx;
	if (slot >= OTA_SLOT_COUNT)
		return OTA_ERR_INVALID_ARG;
	*ret_size = lx->slot_size;
	return OTA_OK;
}

static enum ota_err lx_slot_read(void *ctx, unsigned slot, uint64_t off, void *buf, size_t len)
{
	char path[OTA_CONFIG_MAX_PATH + 32];
	if (slot >= OTA_SLOT_COUNT)
		return OTA_ERR_INVALID_ARG;
	if (ota_slot_writer_drain(ctx) != OTA_OK)
		return OTA_ERR_STORAGE;
	ota_linux_slot_path(ctx, slot, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return OTA_ERR_STORAGE;
	size_t done = 0;
	bool ok = ota_linux_pread_all(fd, buf, len, off, &done);
	close(fd);
	return ok && done == len ? OTA_OK : OTA_ERR_STORAGE;
}

/*
 * With async_slot_writes: queued for the writer thread, durable only after
 * slot_sync (the contract). Without (the fleet simulator's thousands of
 * devices): written at once.
 */
static enum ota_err lx_slot_write(void *ctx, unsigned slot, uint64_t off, const void *buf,
				  size_t len)
{
	struct ota_linux_port *lx = ctx;
	char path[OTA_CONFIG_MAX_PATH + 32];
	if (slot >= OTA_SLOT_COUNT || off > lx->slot_size || len > lx->slot_size - off)
		return OTA_ERR_INVALID_ARG;
	if (lx->async_slot_writes)
		return ota_slot_writer_write(lx, slot, off, buf, len);
	ota_linux_slot_path(lx, slot, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return OTA_ERR_STORAGE;
	bool ok = ota_linux_pwrite_all(fd, buf, len, off);
	return close(fd) == 0 && ok ? OTA_OK : OTA_ERR_STORAGE;
}

/* With async_slot_writes: the writer thread's buffer, filled in place (no copy in slot_write). */
static uint8_t *lx_slot_buffer(void *ctx, unsigned slot, uint64_t off, size_t *ret_cap)
{
	struct ota_linux_port *lx = ctx;
	if (!lx->async_slot_writes || slot >= OTA_SLOT_COUNT || off >= lx->slot_size)
		return NULL;
	size_t cap = 0;
	uint8_t *buf = ota_slot_writer_buffer(lx, slot, off, &cap);
	if (!buf)
		return NULL;
	/* never past the slot's end: the write that follows is checked against it */
	*ret_cap = cap < lx->slot_size - off ? cap : (size_t)(lx->slot_size - off);
	return buf;
}

static enum ota_err lx_slot_erase(void *ctx, unsigned slot)
{
	struct ota_linux_port *lx = ctx;
	char path[OTA_CONFIG_MAX_PATH + 32];
	if (slot >= OTA_SLOT_COUNT)
		return OTA_ERR_INVALID_ARG;
	/* what was queued lands before the truncation; its failure no longer matters */
	ota_slot_writer_reset(lx);
	ota_linux_slot_path(lx, slot, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return OTA_ERR_STORAGE;
	int rc = fsync(fd);
	if (close(fd) != 0 || rc != 0)
		return OTA_ERR_STORAGE;
	return fsync_dir(lx->dir);
}

static enum ota_err lx_slot_sync(void *ctx, unsigned slot)
{
	char path[OTA_CONFIG_MAX_PATH + 32];
	bool synced = false;
	if (slot >= OTA_SLOT_COUNT)
		return OTA_ERR_INVALID_ARG;
	enum ota_err err = ota_slot_writer_sync(ctx, slot, &synced);
	if (err != OTA_OK || synced)
		return err;
	ota_linux_slot_path(ctx, slot, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return OTA_ERR_STORAGE;
	int rc = fsync(fd);
	if (close(fd) != 0 || rc != 0)
		return OTA_ERR_STORAGE;
	return OTA_OK;
}

/*
 * The base of a delta, read in place: a read-only mapping of the slot
 * file, so the base is page cache, not a copy in the agent's memory. A
 * file shorter than len is refused here (touching a page past its end
 * would be SIGBUS). Only writes queued for this slot are waited for (the
 * core maps the running slot while it writes the other one: draining
 * the writer here would stall the install pipeline).
 */
static enum ota_err lx_slot_map(void *ctx, unsigned slot, uint64_t len, const uint8_t **ret_base)
{
	struct ota_linux_port *lx = ctx;
	char path[OTA_CONFIG_MAX_PATH + 32];
	struct stat st;
	if (slot >= OTA_SLOT_COUNT || len == 0 || len > lx->slot_size || len > SIZE_MAX ||
	    lx->map[slot])
		return OTA_ERR_INVALID_ARG;
	if (ota_slot_writer_drain_slot(lx, slot) != OTA_OK)
		return OTA_ERR_STORAGE;
	ota_linux_slot_path(lx, slot, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return OTA_ERR_STORAGE;
	if (fstat(fd, &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size < len) {
		close(fd);
		return OTA_ERR_STORAGE;
	}
	void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return OTA_ERR_STORAGE;
	/* zstd's matches mostly walk the base in order: read ahead on faults */
	(void)madvise(p, (size_t)len, MADV_SEQUENTIAL);
	lx->map[slot] = p;
	lx->map_len[slot] = (size_t)len;
	*ret_base = p;
	return OTA_OK;
}

static void lx_slot_unmap(void *ctx, unsigned slot)
{
	struct ota_linux_port *lx = ctx;
	if (slot >= OTA_SLOT_COUNT || !lx->map[slot])
		return;
	munmap((void *)lx->map[slot], lx->map_len[slot]);
	lx->map[slot] = NULL;
	lx->map_len[slot] = 0;
}

/*
 * Between frames of a delta (port.h): the next frame's range of the base
 * is read ahead (MADV_WILLNEED: a base not in the page cache, a running
 * slot after a boot, is read in large requests, not page by page in the
 * decoder's faults). The pages the apply touched stay mapped: they are
 * the running slot's page cache, clean and shared, which the kernel takes
 * back under memory pressure without any write (docs/porting.md, "apply
 * memory"); dropping them from the mapping after each frame
 * (MADV_DONTNEED) kept RssFile near one frame's worth but made every
 * frame fault its pages in again: 2.6 times the apply's CPU time on the
 * rootfs pair (docs/bench.md). A hint only: a failure changes nothing.
 */
static void lx_slot_map_advise(void *ctx, unsigned slot, uint64_t off, uint64_t len)
{
	struct ota_linux_port *lx = ctx;
	if (slot >= OTA_SLOT_COUNT || !lx->map[slot] || len == 0 || off >= lx->map_len[slot])
		return;
	uint8_t *base = (uint8_t *)lx->map[slot];
	size_t map_len = lx->map_len[slot];
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t lo = (size_t)off & ~(page - 1u);
	size_t hi = len > map_len - (size_t)off ? map_len : (size_t)(off + len);
	(void)madvise(base + lo, hi - lo, MADV_WILLNEED);
}

static bool records_dir(const struct ota_linux_port *lx, char *buf, size_t cap)
{
	return path_join(buf, cap, lx->dir, "records");
}

static bool record_path(const struct ota_linux_port *lx, enum ota_record rec, unsigned copy,
			char *buf, size_t cap)
{
	char dir[OTA_LINUX_RECORDS_DIR_BYTES];
	char name[OTA_LINUX_RECORD_NAME_BYTES];
	record_name(rec, copy, name, sizeof(name));
	return records_dir(lx, dir, sizeof(dir)) && path_join(buf, cap, dir, name);
}

/* Reads the whole file at path into buf (cap bytes). */
static enum ota_err file_read(const char *path, uint8_t *buf, size_t cap, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? OTA_ERR_NOT_FOUND : OTA_ERR_STORAGE;
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size < 0) {
		close(fd);
		return OTA_ERR_STORAGE;
	}
	if ((uint64_t)st.st_size > cap) {
		close(fd);
		return OTA_ERR_SIZE;
	}
	size_t len = (size_t)st.st_size;
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	if (done != len)
		return OTA_ERR_STORAGE;
	*ret_len = len;
	return OTA_OK;
}

/* The old layout's file of rec as copy 0: its payload framed with sequence 0. */
static enum ota_err legacy_read(const struct ota_linux_port *lx, enum ota_record rec, uint8_t *buf,
				size_t cap, size_t *ret_len)
{
	char path[OTA_CONFIG_MAX_PATH + 64];
	size_t len = 0;
	if (cap < OTA_RECORD_COPY_OVERHEAD)
		return OTA_ERR_SIZE;
	if (!record_path(lx, rec, LEGACY_COPY, path, sizeof(path)))
		return OTA_ERR_STORAGE;
	enum ota_err err = file_read(path, buf + OTA_RECORD_COPY_HEADER_BYTES,
				     cap - OTA_RECORD_COPY_OVERHEAD, &len);
	if (err != OTA_OK)
		return err;
	size_t sealed = ota_record_copy_seal(rec, 0, buf, len, cap);
	if (sealed == 0)
		return OTA_ERR_SIZE; /* larger than any record: not ours */
	*ret_len = sealed;
	return OTA_OK;
}

static enum ota_err lx_record_read(void *ctx, enum ota_record rec, unsigned copy, void *buf,
				   size_t cap, size_t *ret_len)
{
	char path[OTA_CONFIG_MAX_PATH + 64];
	if (!record_valid(rec, copy))
		return OTA_ERR_INVALID_ARG;
	if (!record_path(ctx, rec, copy, path, sizeof(path)))
		return OTA_ERR_STORAGE;
	enum ota_err err = file_read(path, buf, cap, ret_len);
	if (err == OTA_ERR_NOT_FOUND && copy == 0)
		err = legacy_read(ctx, rec, buf, cap, ret_len);
	return err;
}

/*
 * Overwrites the copy in place and fsyncs it. No temp file and rename:
 * a cut may tear this copy, which the core detects by its CRC and answers
 * with the other copy, so one fsync per copy is enough (the directory is
 * synced only when the file is created). A concurrent `status` that meets
 * the copy half written reads the other one.
 */
static enum ota_err lx_record_write(void *ctx, enum ota_record rec, unsigned copy, const void *buf,
				    size_t len)
{
	char dir[OTA_CONFIG_MAX_PATH + 16];
	char path[OTA_CONFIG_MAX_PATH + 64];
	char legacy[OTA_CONFIG_MAX_PATH + 64];
	if (!record_valid(rec, copy) || len > OTA_RECORD_COPY_MAX_BYTES)
		return OTA_ERR_INVALID_ARG;
	if (!records_dir(ctx, dir, sizeof(dir)) ||
	    !record_path(ctx, rec, copy, path, sizeof(path)) ||
	    !record_path(ctx, rec, LEGACY_COPY, legacy, sizeof(legacy)))
		return OTA_ERR_STORAGE;
	bool created = false;
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		created = true;
	}
	if (fd < 0)
		return OTA_ERR_STORAGE;
	bool ok = ota_linux_pwrite_all(fd, buf, len, 0) && ftruncate(fd, (off_t)len) == 0 &&
		  fsync(fd) == 0;
	if (close(fd) != 0 || !ok)
		return OTA_ERR_STORAGE;
	/*
	 * Copy 0 now shadows the old layout's file (reads never fall back to
	 * it again): it is gone for good once this copy is durable.
	 */
	if (copy == 0 && unlink(legacy) == 0)
		created = true;
	return created ? fsync_dir(dir) : OTA_OK;
}

static enum ota_err lx_clock_now(void *ctx, uint64_t *ret_now)
{
	struct ota_linux_port *lx = ctx;
	if (!lx->trust_clock)
		return OTA_ERR_NOT_FOUND;
	time_t now = time(NULL);
	if (now <= 0)
		return OTA_ERR_NOT_FOUND;
	*ret_now = (uint64_t)now;
	return OTA_OK;
}

static void lx_reboot(void *ctx)
{
	struct ota_linux_port *lx = ctx;
	lx->reboots_requested++;
	ota_linux_reboot_mark(lx);
}

static void lx_log(void *ctx, enum ota_log_level level, const char *msg)
{
	struct ota_linux_port *lx = ctx;
	static const char *const names[] = {"error", "warn", "info", "debug"};
	if (lx->quiet && level > OTA_LOG_ERROR)
		return;
	fprintf(stderr, "ota-agent: %s: %s\n", names[(unsigned)level & 3u], msg);
}

/* Runs selftest_cmd with /bin/sh; exit status 0 passes. */
static enum ota_err lx_selftest(void *ctx, unsigned slot)
{
	struct ota_linux_port *lx = ctx;
	char slot_str[OTA_LINUX_UINT_TEXT_BYTES];
	char path[OTA_CONFIG_MAX_PATH + 32];
	ota_linux_slot_path(lx, slot, path, sizeof(path));
	snprintf(slot_str, sizeof(slot_str), "%u", slot);
	/* the hook learns which slot it tests from its environment */
	if (setenv("OTA_SLOT", slot_str, 1) != 0 || setenv("OTA_SLOT_PATH", path, 1) != 0)
		return OTA_ERR_SELFTEST;
	char *argv[] = {"/bin/sh", "-c", (char *)lx->selftest_cmd, NULL};
	pid_t pid;
	if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0)
		return OTA_ERR_SELFTEST;
	int status = 0;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return OTA_ERR_SELFTEST;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? OTA_OK : OTA_ERR_SELFTEST;
}

static const struct ota_port_ops linux_ops = {
	.slot_size = lx_slot_size,
	.slot_read = lx_slot_read,
	.slot_write = lx_slot_write,
	.slot_erase = lx_slot_erase,
	.slot_sync = lx_slot_sync,
	.slot_map = lx_slot_map,
	.slot_unmap = lx_slot_unmap,
	.slot_buffer = lx_slot_buffer,
	.run_beside = ota_linux_run_beside,
	.slot_map_advise = lx_slot_map_advise,
	.record_read = lx_record_read,
	.record_write = lx_record_write,
	.clock_now = lx_clock_now,
	.reboot = lx_reboot,
	.log = lx_log,
	.consent = NULL,
	.selftest = NULL,
	.fetch = ota_linux_fetch,
	.wait = ota_linux_wait,
	.key_unwrap = ota_linux_key_unwrap,
	.health = ota_linux_health,
};

static const struct ota_port_ops linux_ops_selftest = {
	.slot_size = lx_slot_size,
	.slot_read = lx_slot_read,
	.slot_write = lx_slot_write,
	.slot_erase = lx_slot_erase,
	.slot_sync = lx_slot_sync,
	.slot_map = lx_slot_map,
	.slot_unmap = lx_slot_unmap,
	.slot_buffer = lx_slot_buffer,
	.run_beside = ota_linux_run_beside,
	.slot_map_advise = lx_slot_map_advise,
	.record_read = lx_record_read,
	.record_write = lx_record_write,
	.clock_now = lx_clock_now,
	.reboot = lx_reboot,
	.log = lx_log,
	.consent = NULL,
	.selftest = lx_selftest,
	.fetch = ota_linux_fetch,
	.wait = ota_linux_wait,
	.key_unwrap = ota_linux_key_unwrap,
	.health = ota_linux_health,
};

static enum ota_err ensure_dir(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST) {
		struct stat st;
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return OTA_OK;
	}
	return OTA_ERR_STORAGE;
}

enum ota_err ota_linux_port_open(struct ota_linux_port *ctx, const struct ota_config *config,
				 struct ota_port *ret_port)
{
	char dir[OTA_CONFIG_MAX_PATH + 16];
	memset(ctx, 0, sizeof(*ctx));
	if (strlen(config->state_dir) >= sizeof(ctx->dir))
		return OTA_ERR_INVALID_ARG;
	memcpy(ctx->dir, config->state_dir, strlen(config->state_dir) + 1);
	ctx->slot_size = config->slot_size;
	ctx->trust_clock = config->trust_clock;
	ctx->selftest_cmd = config->selftest_cmd[0] ? config->selftest_cmd : NULL;
	ctx->unwrap_keys[0] = config->decrypt_key;
	ctx->unwrap_keys[1] = config->product_key;
	if (config->pkcs11_module[0]) {
		ctx->pkcs11.module = config->pkcs11_module;
		ctx->pkcs11.token = config->pkcs11_token;
		ctx->pkcs11.key = config->pkcs11_key;
		ctx->pkcs11.pin_file = config->pkcs11_pin_file;
	}
	if (ensure_dir(ctx->dir) != OTA_OK || !records_dir(ctx, dir, sizeof(dir)) ||
	    ensure_dir(dir) != OTA_OK)
		return OTA_ERR_STORAGE;
	ret_port->ops = ctx->selftest_cmd ? &linux_ops_selftest : &linux_ops;
	ret_port->ctx = ctx;
	return OTA_OK;
}

void ota_linux_port_close(struct ota_linux_port *ctx)
{
	for (unsigned slot = 0; slot < OTA_SLOT_COUNT; slot++)
		lx_slot_unmap(ctx, slot);
	ota_slot_writer_close(ctx);
	ota_linux_beside_close(ctx);
}
