/* SPDX-License-Identifier: Apache-2.0 */
/* The Linux reference port: config parser and file-backed storage. */
#define _GNU_SOURCE /* fallocate, statx */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>

#include "fleetota/crypt_host.h"

#include "ota_fixture.h"
#include "ota_linux.h"

#define BASE "state_dir = /tmp/x\ndevice_id = d1\nmodel = m\nhw_revision = r\n"

static enum ota_err parse(const char *text, struct ota_config *cfg, char *err)
{
	return ota_config_parse(text, strlen(text), cfg, err);
}

static void expect_error(const char *text, const char *message)
{
	struct ota_config cfg;
	char err[OTA_CONFIG_ERR_BYTES];
	assert_int_equal(parse(text, &cfg, err), OTA_ERR_FORMAT);
	if (!strstr(err, message))
		fail_msg("error '%s' does not contain '%s'", err, message);
}

static void test_config_valid(void **state)
{
	(void)state;
	struct ota_config cfg;
	char err[OTA_CONFIG_ERR_BYTES];
	const char *text =
		"# comment\n\n" BASE "  slot_size =  4096 \r\n"
		"server_pins = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff,"
		"FFEEDDCCBBAA99887766554433221100FFEEDDCCBBAA99887766554433221100\n"
		"trust_clock = yes\nselftest_cmd = test -s \"$OTA_SLOT_PATH\"\nstall_timeout = 7\n";
	assert_int_equal(parse(text, &cfg, err), OTA_OK);
	assert_string_equal(cfg.state_dir, "/tmp/x");
	assert_string_equal(cfg.device_id, "d1");
	assert_int_equal(cfg.slot_size, 4096);
	assert_int_equal(cfg.n_server_pins, 2);
	assert_int_equal(cfg.server_pins[0][1], 0x11);
	assert_int_equal(cfg.server_pins[1][0], 0xff);
	assert_true(cfg.trust_clock);
	assert_int_equal(cfg.stall_timeout_s, 7);
	assert_int_equal(cfg.report_interval_s, 300); /* default */
	assert_string_equal(cfg.selftest_cmd, "test -s \"$OTA_SLOT_PATH\"");
}

static void test_config_errors(void **state)
{
	(void)state;
	expect_error(BASE "bogus = 1\n", "line 5: unknown key 'bogus'");
	expect_error(BASE "model = again\n", "line 5: key given twice 'model'");
	expect_error(BASE "just words\n", "line 5: expected key = value");
	expect_error(BASE "slot_size = 12x\n", "not a number");
	expect_error(BASE "slot_size = -1\n", "not a number");
	expect_error(BASE "slot_size = 0\n", "slot_size must be positive");
	expect_error(BASE "trust_clock = maybe\n", "not true/false");
	expect_error(BASE "server_pins = abcd\n", "server_pins");
	expect_error(BASE "server_pins = "
			  "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
		     "server_pins");
	expect_error("state_dir = /x\nmodel = m\nhw_revision = r\n",
		     "missing required key 'device_id'");

	/* device_id: at most what the server accepts (64), refused at load beyond */
	char id_text[256];
	struct ota_config id_cfg;
	char id_err[OTA_CONFIG_ERR_BYTES];
	snprintf(id_text, sizeof(id_text),
		 "state_dir = /x\nmodel = m\nhw_revision = r\n"
		 "device_id = %064d\n",
		 0);
	assert_int_equal(parse(id_text, &id_cfg, id_err), OTA_OK);
	assert_int_equal(strlen(id_cfg.device_id), 64);
	snprintf(id_text, sizeof(id_text),
		 "state_dir = /x\nmodel = m\nhw_revision = r\n"
		 "device_id = %065d\n",
		 0);
	expect_error(id_text, "line 4: value too long for 'device_id'");

	/* a value longer than its field, a line longer than 1024 bytes */
	char *text = malloc(4096);
	assert_non_null(text);
	snprintf(text, 4096, BASE "device_key = ");
	size_t len = strlen(text);
	memset(text + len, 'k', 600);
	text[len + 600] = '\0';
	expect_error(text, "value too long for 'device_key'");
	memset(text + len, 'k', 2000);
	text[len + 2000] = '\0';
	expect_error(text, "line 5: line longer than 1024 bytes");
	free(text);

	/* NUL inside a line */
	struct ota_config cfg;
	char err[OTA_CONFIG_ERR_BYTES];
	const char nul[] = "state_dir = /x\0y\n";
	assert_int_equal(ota_config_parse(nul, sizeof(nul) - 1, &cfg, err), OTA_ERR_FORMAT);
	assert_non_null(strstr(err, "NUL"));
	/* larger than the whole-file limit */
	assert_int_equal(ota_config_parse(nul, OTA_CONFIG_MAX_BYTES + 1, &cfg, err),
			 OTA_ERR_FORMAT);
}

/* A token key is named by all four pkcs11_* keys or by none. */
static void test_config_pkcs11(void **state)
{
	(void)state;
	struct ota_config cfg;
	char err[OTA_CONFIG_ERR_BYTES];
	const char *p11 = BASE "pkcs11_module = /lib/m.so\npkcs11_token = tok\n"
			       "pkcs11_key = k1\npkcs11_pin_file = /etc/pin\n";
	assert_int_equal(parse(p11, &cfg, err), OTA_OK);
	assert_string_equal(cfg.pkcs11_module, "/lib/m.so");
	assert_string_equal(cfg.pkcs11_token, "tok");
	assert_string_equal(cfg.pkcs11_key, "k1");
	assert_string_equal(cfg.pkcs11_pin_file, "/etc/pin");
	expect_error(BASE "pkcs11_module = /lib/m.so\npkcs11_token = tok\npkcs11_key = k1\n",
		     "missing key 'pkcs11_pin_file'");
	expect_error(BASE "pkcs11_pin_file = /etc/pin\n", "missing key 'pkcs11_module'");
	expect_error(BASE "pkcs11_module = /m.so\npkcs11_key = k\npkcs11_pin_file = /p\n"
			  "pkcs11_token = 123456789012345678901234567890123\n",
		     "at most 32 bytes");
}

/*
 * The port's key_unwrap: a file-held P-256 key unwraps its entry; a token
 * whose module cannot be loaded is OTA_ERR_KEY_ACCESS for a P-256 entry
 * and is never asked about an X25519 one (the files answer those).
 */
static void test_port_unwrap_p256_and_token(void **state)
{
	(void)state;
	char dir[] = "/tmp/ota-lx-unwrap.XXXXXX";
	char text[2048], key_path[256], err[OTA_CONFIG_ERR_BYTES];
	assert_non_null(mkdtemp(dir));
	snprintf(key_path, sizeof(key_path), "%s/dev.key", dir);
	EVP_PKEY *dev = ota_fx_p256_new();
	FILE *f = fopen(key_path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, dev, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);

	uint8_t id[OTA_KEY_ID_BYTES], context[OTA_CRYPT_WRAP_CONTEXT_BYTES];
	uint8_t key[OTA_CEK_BYTES], got[OTA_CEK_BYTES];
	struct ota_crypt_wrapped w;
	memset(context, 7, sizeof(context));
	memset(key, 9, sizeof(key));
	assert_int_equal(ota_crypt_recipient_id(dev, id), OTA_OK);
	assert_int_equal(ota_crypt_wrap(dev, context, key, &w), OTA_OK);
	struct ota_key_unwrap_request req = {
		.key_id = id,
		.ephemeral_public = w.ephemeral,
		.wrapped_key = w.wrapped,
		.context = context,
		.context_len = sizeof(context),
		.kind = w.kind,
		.ephemeral_public_len = w.ephemeral_len,
	};

	struct ota_config cfg;
	struct ota_linux_port ctx;
	struct ota_port port;
	snprintf(text, sizeof(text),
		 "state_dir = %s/s\ndevice_id = d\nmodel = m\nhw_revision = r\n"
		 "decrypt_key = %s\n",
		 dir, key_path);
	assert_int_equal(parse(text, &cfg, err), OTA_OK);
	assert_int_equal(ota_linux_port_open(&ctx, &cfg, &port), OTA_OK);
	assert_int_equal(port.ops->key_unwrap(port.ctx, &req, got), OTA_OK);
	assert_memory_equal(got, key, sizeof(key));
	id[0] ^= 1; /* not this device's key id */
	assert_int_equal(port.ops->key_unwrap(port.ctx, &req, got), OTA_ERR_NOT_FOUND);
	id[0] ^= 1;
	ota_linux_port_close(&ctx);

	/* the same with a token configured that cannot be loaded */
	snprintf(text + strlen(text), sizeof(text) - strlen(text),
		 "pkcs11_module = %s/none.so\npkcs11_token = t\npkcs11_key = k\n"
		 "pkcs11_pin_file = %s/pin\n",
		 dir, dir);
	assert_int_equal(parse(text, &cfg, err), OTA_OK);
	assert_int_equal(ota_linux_port_open(&ctx, &cfg, &port), OTA_OK);
	assert_int_equal(port.ops->key_unwrap(port.ctx, &req, got), OTA_ERR_KEY_ACCESS);
	/* another device's X25519 entry: the token is not asked, no file key has its id */
	req.kind = OTA_RECIPIENT_X25519;
	req.ephemeral_public_len = OTA_X25519_BYTES;
	id[0] ^= 1;
	assert_int_equal(port.ops->key_unwrap(port.ctx, &req, got), OTA_ERR_NOT_FOUND);
	ota_linux_port_close(&ctx);

	EVP_PKEY_free(dev);
	snprintf(text, sizeof(text), "rm -rf %s", dir);
	assert_int_equal(system(text), 0);
}

/* A port on state_dir, 100-byte slots (cfg must outlive it: the port borrows). */
static void port_open(const char *state_dir, struct ota_config *cfg, struct ota_linux_port *ctx,
		      struct ota_port *port)
{
	char err[OTA_CONFIG_ERR_BYTES];
	char text[1024];
	snprintf(text, sizeof(text),
		 "state_dir = %s\ndevice_id = d\nmodel = m\nhw_revision = r\nslot_size = 100\n",
		 state_dir);
	assert_int_equal(parse(text, cfg, err), OTA_OK);
	assert_int_equal(ota_linux_port_open(ctx, cfg, port), OTA_OK);
}

/* A port in a fresh directory with ota-agent's writer thread, slots of slot_size bytes. */
struct writer_fx {
	char *dir;
	char *state_dir;
	struct ota_config cfg;
	struct ota_linux_port ctx;
	struct ota_port port;
	const struct ota_port_ops *ops;
};

static void writer_fx_open(struct writer_fx *fx, uint64_t slot_size)
{
	fx->dir = ota_fx_tempdir_new();
	fx->state_dir = ota_fx_path(fx->dir, "state");
	port_open(fx->state_dir, &fx->cfg, &fx->ctx, &fx->port);
	fx->ctx.async_slot_writes = true;
	fx->ctx.slot_size = slot_size;
	fx->ops = fx->port.ops;
}

static void writer_fx_close(struct writer_fx *fx)
{
	ota_linux_port_close(&fx->ctx);
	free(fx->state_dir);
	ota_fx_tempdir_remove(fx->dir);
}

/* len bytes of a pattern (i * mul + (i >> shift)), malloc'd. */
static uint8_t *pattern_new(size_t len, unsigned mul, unsigned shift)
{
	uint8_t *p = malloc(len);
	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * mul + (i >> shift));
	return p;
}

static void test_port_records_and_slots(void **state)
{
	(void)state;
	char *dir = ota_fx_tempdir_new();
	char *state_dir = ota_fx_path(dir, "state");
	struct ota_config cfg;
	struct ota_linux_port ctx;
	struct ota_port port;
	port_open(state_dir, &cfg, &ctx, &port);
	const struct ota_port_ops *ops = port.ops;
	assert_null(ops->selftest); /* no selftest_cmd */

	uint8_t buf[64];
	size_t len = 0;
	assert_int_equal(ops->record_read(port.ctx, OTA_REC_STATE, 0, buf, sizeof(buf), &len),
			 OTA_ERR_NOT_FOUND);
	assert_int_equal(ops->record_write(port.ctx, OTA_REC_STATE, 0, "first", 5), OTA_OK);
	assert_int_equal(ops->record_write(port.ctx, OTA_REC_STATE, 0, "second!", 7), OTA_OK);
	assert_int_equal(ops->record_read(port.ctx, OTA_REC_STATE, 0, buf, sizeof(buf), &len),
			 OTA_OK);
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "second!", 7);
	assert_int_equal(ops->record_read(port.ctx, OTA_REC_STATE, 0, buf, 3, &len), OTA_ERR_SIZE);
	/* the copies are separate files */
	assert_int_equal(ops->record_read(port.ctx, OTA_REC_STATE, 1, buf, sizeof(buf), &len),
			 OTA_ERR_NOT_FOUND);
	assert_int_equal(ops->record_write(port.ctx, OTA_REC_STATE, 1, "other", 5), OTA_OK);
	assert_int_equal(ops->record_read(port.ctx, OTA_REC_STATE, 1, buf, sizeof(buf), &len),
			 OTA_OK);
	assert_memory_equal(buf, "other", 5);
	char *copy1 = ota_fx_path(state_dir, "records/state.1");
	struct stat st;
	assert_int_equal(stat(copy1, &st), 0);
	free(copy1);
	assert_int_equal(ops->record_write(port.ctx, OTA_REC_LAST, 1, "e", 1), OTA_OK);
	assert_int_equal(ops->record_write(port.ctx, OTA_REC_BOOT, 0, "b", 1), OTA_OK);
	assert_int_equal(ops->record_write(port.ctx, (enum ota_record)10, 0, "x", 1),
			 OTA_ERR_INVALID_ARG);
	assert_int_equal(ops->record_write(port.ctx, OTA_REC_STATE, 2, "x", 1),
			 OTA_ERR_INVALID_ARG);
	/* a copy is overwritten in place: a shorter value leaves no old tail */
	assert_int_equal(ops->record_write(port.ctx, OTA_REC_STATE, 0, "ab", 2), OTA_OK);
	assert_int_equal(ops->record_read(port.ctx, OTA_REC_STATE, 0, buf, sizeof(buf), &len),
			 OTA_OK);
	assert_int_equal(len, 2);
	assert_memory_equal(buf, "ab", 2);

	uint64_t size = 0;
	assert_int_equal(ops->slot_size(port.ctx, 1, &size), OTA_OK);
	assert_int_equal(size, 100);
	assert_int_equal(ops->slot_erase(port.ctx, 1), OTA_OK);
	assert_int_equal(ops->slot_write(port.ctx, 1, 10, "abcdef", 6), OTA_OK);
	assert_int_equal(ops->slot_sync(port.ctx, 1), OTA_OK);
	assert_int_equal(ops->slot_read(port.ctx, 1, 12, buf, 4), OTA_OK);
	assert_memory_equal(buf, "cdef", 4);
	/* beyond what was written, beyond the slot */
	assert_int_equal(ops->slot_read(port.ctx, 1, 14, buf, 4), OTA_ERR_STORAGE);
	assert_int_equal(ops->slot_write(port.ctx, 1, 98, "abc", 3), OTA_ERR_INVALID_ARG);
	assert_int_equal(ops->slot_erase(port.ctx, 1), OTA_OK);
	assert_int_equal(ops->slot_read(port.ctx, 1, 10, buf, 1), OTA_ERR_STORAGE);

	ota_linux_port_close(&ctx);
	free(state_dir);
	ota_fx_tempdir_remove(dir);
}

/*
 * Slot writes through the writer thread (ota-agent's mode): pieces of
 * every size, in order and not, to both slots, read back exactly; a write
 * that fails in the thread is reported by the next sync; erase forgets it.
 */
static void test_port_slot_writer(void **state)
{
	(void)state;
	struct writer_fx fx;
	writer_fx_open(&fx, 5u << 20);
	const struct ota_port_ops *ops = fx.ops;
	struct ota_linux_port *ctx = &fx.ctx;
	void *port_ctx = fx.port.ctx;
	size_t total = (size_t)ctx->slot_size;
	uint8_t *want = pattern_new(total, 131u, 12), *got = malloc(total);
	assert_non_null(got);
	assert_int_equal(ops->slot_erase(port_ctx, 0), OTA_OK);
	assert_int_equal(ops->slot_erase(port_ctx, 1), OTA_OK);
	/* slot 0 in growing pieces, slot 1 interleaved with it backwards */
	size_t at = 0, piece = 1, back = total;
	while (at < total) {
		size_t n = piece < total - at ? piece : total - at;
		assert_int_equal(ops->slot_write(port_ctx, 0, at, want + at, n), OTA_OK);
		at += n;
		piece = piece * 3 + 7;
		if (back >= 65536) {
			back -= 65536;
			assert_int_equal(ops->slot_write(port_ctx, 1, back, want + back, 65536),
					 OTA_OK);
		}
	}
	/* reads see every write before them, synced or not */
	assert_int_equal(ops->slot_read(port_ctx, 0, 0, got, total), OTA_OK);
	assert_memory_equal(got, want, total);
	assert_int_equal(ops->slot_sync(port_ctx, 1), OTA_OK);
	assert_int_equal(ops->slot_read(port_ctx, 1, back, got, total - back), OTA_OK);
	assert_memory_equal(got, want + back, total - back);

	/*
	 * a file read ahead in writer-sized pieces, each handed to the slot
	 * writer without a copy (all but the short last one), read back exactly
	 */
	char *src = ota_fx_path(fx.dir, "src");
	FILE *f = fopen(src, "wb");
	assert_non_null(f);
	size_t src_len = total - 12345;
	assert_int_equal(fwrite(want, 1, src_len, f), src_len);
	assert_int_equal(fclose(f), 0);
	int fd = open(src, O_RDONLY);
	assert_true(fd >= 0);
	struct ota_readahead *ra = NULL;
	assert_int_equal(ota_readahead_open(fd, 7, OTA_SLOT_WRITER_BUF_BYTES, &ra), OTA_OK);
	ctx->readahead = ra;
	assert_int_equal(ops->slot_erase(port_ctx, 0), OTA_OK);
	uint64_t put = 0;
	for (;;) {
		const uint8_t *part = NULL;
		size_t n = 0;
		assert_int_equal(ota_readahead_next(ra, &part, &n), OTA_OK);
		if (n == 0)
			break;
		assert_int_equal(ops->slot_write(port_ctx, 0, put, part, n), OTA_OK);
		put += n;
	}
	ctx->readahead = NULL;
	ota_readahead_close(ra);
	close(fd);
	free(src);
	assert_int_equal(put, src_len - 7);
	assert_int_equal(ops->slot_sync(port_ctx, 0), OTA_OK);
	assert_int_equal(ops->slot_read(port_ctx, 0, 0, got, src_len - 7), OTA_OK);
	assert_memory_equal(got, want + 7, src_len - 7);

	/*
	 * slot_buffer: bytes put where the writer lends (in pieces, across its
	 * buffers) are written without a copy; a plain write in between and a
	 * loan for another offset still land right; the loan stops at the
	 * slot's end; without the writer thread there is no loan
	 */
	assert_non_null(ops->slot_buffer);
	assert_int_equal(ops->slot_erase(port_ctx, 0), OTA_OK);
	uint64_t at_lent = 0;
	size_t piece_lent = 4093;
	while (at_lent < total) {
		size_t cap = 0;
		uint8_t *lent = ops->slot_buffer(port_ctx, 0, at_lent, &cap);
		assert_non_null(lent);
		assert_true(cap >= 1 && cap <= OTA_SLOT_WRITER_BUF_BYTES);
		size_t n = piece_lent < cap ? piece_lent : cap;
		if (n > total - at_lent)
			n = total - at_lent;
		memcpy(lent, want + at_lent, n);
		if ((at_lent / n) % 7 == 3) /* now and then an ordinary write instead */
			assert_int_equal(ops->slot_write(port_ctx, 0, at_lent, want + at_lent, n),
					 OTA_OK);
		else
			assert_int_equal(ops->slot_write(port_ctx, 0, at_lent, lent, n), OTA_OK);
		at_lent += n;
		piece_lent = piece_lent * 2 + 1;
	}
	assert_int_equal(ops->slot_sync(port_ctx, 0), OTA_OK);
	assert_int_equal(ops->slot_read(port_ctx, 0, 0, got, total), OTA_OK);
	assert_memory_equal(got, want, total);
	size_t end_cap = 0;
	assert_non_null(ops->slot_buffer(port_ctx, 0, total - 10, &end_cap));
	assert_int_equal(end_cap, 10);
	assert_null(ops->slot_buffer(port_ctx, 0, total, &end_cap));
	ctx->async_slot_writes = false;
	assert_null(ops->slot_buffer(port_ctx, 0, 0, &end_cap));
	ctx->async_slot_writes = true;

	/* slot 1's file is a full disk: the thread's failure comes back at the sync */
	ota_linux_port_close(ctx);
	char path[OTA_CONFIG_MAX_PATH + 32];
	ota_linux_slot_path(ctx, 1, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	if (symlink("/dev/full", path) == 0) {
		assert_int_equal(ops->slot_write(port_ctx, 1, 0, want, 1000), OTA_OK);
		assert_int_equal(ops->slot_sync(port_ctx, 1), OTA_ERR_STORAGE);
		assert_int_equal(ops->slot_write(port_ctx, 1, 1000, want, 10), OTA_ERR_STORAGE);
		/* slot 0 is unaffected once the failure is forgotten (erase) */
		(void)ops->slot_erase(port_ctx, 1);
		assert_int_equal(ops->slot_write(port_ctx, 0, 0, "xyz", 3), OTA_OK);
		assert_int_equal(ops->slot_sync(port_ctx, 0), OTA_OK);
		assert_int_equal(ops->slot_read(port_ctx, 0, 0, got, 4), OTA_OK);
		assert_memory_equal(got, "xyz", 3);
		assert_memory_equal(got + 3, want + 3, 1); /* the rest of the slot_buffer copy */
	}
	free(want);
	free(got);
	writer_fx_close(&fx);
}

/* Pages of path's first len bytes in the page cache (mincore of a mapping). */
static size_t cached_pages(const char *path, size_t len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	long page = sysconf(_SC_PAGESIZE);
	size_t pages = (len + (size_t)page - 1) / (size_t)page, in = 0;
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	unsigned char *vec = malloc(pages);
	assert_non_null(vec);
	assert_int_equal(mincore(map, len, vec), 0);
	for (size_t i = 0; i < pages; i++)
		in += vec[i] & 1u;
	free(vec);
	munmap(map, len);
	close(fd);
	return in;
}

/*
 * The writer thread writes its whole aligned buffers with O_DIRECT, where
 * the file system offers it (statx STATX_DIOALIGN): those bytes do not go
 * through the page cache; the unaligned rest (the short last piece, a
 * write that starts off the alignment) goes buffered. Every byte reads
 * back and is durable after slot_sync as before.
 */
static void test_port_slot_writer_direct(void **state)
{
	(void)state;
	struct writer_fx fx;
	writer_fx_open(&fx, 6u << 20);
	const struct ota_port_ops *ops = fx.ops;
	void *port_ctx = fx.port.ctx;
	size_t total = (size_t)fx.ctx.slot_size;
	uint8_t *want = pattern_new(total, 173u, 9), *got = malloc(total);
	assert_non_null(got);
	char path[OTA_CONFIG_MAX_PATH + 32];
	ota_linux_slot_path(&fx.ctx, 0, path, sizeof(path));
	assert_int_equal(ops->slot_erase(port_ctx, 0), OTA_OK);
	struct statx sx;
	assert_int_equal(statx(AT_FDCWD, path, 0, STATX_DIOALIGN, &sx), 0);
	bool direct = (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align > 0 &&
		      sx.stx_dio_offset_align <= OTA_SLOT_WRITER_BUF_ALIGN &&
		      sx.stx_dio_mem_align <= OTA_SLOT_WRITER_BUF_ALIGN && ota_linux_buf_huge();
	if (!direct)
		print_message("no direct I/O or no huge pages here: buffered writes only\n");

	/* 4 MiB + 3 bytes from offset 0: four whole buffers and a 3-byte tail */
	size_t len = (4u << 20) + 3u;
	for (size_t at = 0; at < len;) {
		size_t n = len - at < 65536 ? len - at : 65536;
		assert_int_equal(ops->slot_write(port_ctx, 0, at, want + at, n), OTA_OK);
		at += n;
	}
	/* then 1 MiB from an unaligned offset: buffered */
	size_t off2 = len + 1000u, len2 = 1u << 20;
	assert_int_equal(ops->slot_write(port_ctx, 0, off2, want + off2, len2), OTA_OK);
	assert_int_equal(ops->slot_sync(port_ctx, 0), OTA_OK);
	if (direct) {
		/* the four direct MiB left nothing in the page cache; the tail's page is there */
		assert_int_equal(cached_pages(path, 4u << 20), 0);
		assert_true(cached_pages(path, off2 + len2) > 0);
	}
	assert_int_equal(ops->slot_read(port_ctx, 0, 0, got, len), OTA_OK);
	assert_memory_equal(got, want, len);
	assert_int_equal(ops->slot_read(port_ctx, 0, off2, got, len2), OTA_OK);
	assert_memory_equal(got, want + off2, len2);
	/* the gap was never written: zeros */
	assert_int_equal(ops->slot_read(port_ctx, 0, len, got, off2 - len), OTA_OK);
	for (size_t i = 0; i < off2 - len; i++)
		assert_int_equal(got[i], 0);

	/* rewriting a range that is in the page cache: the reads see the new bytes */
	assert_int_equal(ops->slot_read(port_ctx, 0, 0, got, 1u << 20), OTA_OK);
	for (size_t i = 0; i < (1u << 20); i++)
		want[i] ^= 0x5a;
	assert_int_equal(ops->slot_write(port_ctx, 0, 0, want, 1u << 20), OTA_OK);
	assert_int_equal(ops->slot_read(port_ctx, 0, 0, got, 1u << 20), OTA_OK);
	assert_memory_equal(got, want, 1u << 20);
	free(want);
	free(got);
	writer_fx_close(&fx);
}

/*
 * The pool of the writer's and the read-ahead's buffers: each of
 * OTA_SLOT_WRITER_BUF_BYTES, aligned for direct I/O, two to a block; a
 * buffer put back is handed out again, distinct buffers never overlap.
 */
static void test_port_buf_pool(void **state)
{
	(void)state;
	uint8_t *b[5];
	for (unsigned i = 0; i < 5; i++) {
		b[i] = ota_linux_buf_get();
		assert_non_null(b[i]);
		assert_int_equal((uintptr_t)b[i] % OTA_SLOT_WRITER_BUF_ALIGN, 0);
		memset(b[i], (int)i, OTA_SLOT_WRITER_BUF_BYTES);
		for (unsigned j = 0; j < i; j++)
			assert_true(b[j] + OTA_SLOT_WRITER_BUF_BYTES <= b[i] ||
				    b[i] + OTA_SLOT_WRITER_BUF_BYTES <= b[j]);
	}
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(b[i][OTA_SLOT_WRITER_BUF_BYTES - 1], i);
	uint8_t *again = b[1];
	ota_linux_buf_put(b[1]);
	b[1] = ota_linux_buf_get();
	assert_ptr_equal(b[1], again); /* the free half of its block */
	for (unsigned i = 0; i < 5; i++)
		ota_linux_buf_put(b[i]);
	ota_linux_buf_put(NULL);
}

/* Bytes the file system holds for path (allocated, written or not). */
static uint64_t allocated_bytes(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_blocks * 512u;
}

/*
 * The writer thread allocates the slot's blocks ahead of its writes
 * (OTA_SLOT_WRITER_ALLOC_BYTES, never past the slot), keeping the file's
 * size: the slot reads back what was written and nothing beyond it, as
 * before; an erase gives the blocks back and the next writes allocate
 * again. (Only where the file system allocates ahead: fallocate's
 * KEEP_SIZE, as ext4 and tmpfs do.)
 */
static void test_port_slot_writer_allocates_ahead(void **state)
{
	(void)state;
	struct writer_fx fx;
	const uint64_t slot_size = (uint64_t)OTA_SLOT_WRITER_ALLOC_BYTES + (8u << 20);
	writer_fx_open(&fx, slot_size);
	const struct ota_port_ops *ops = fx.ops;
	void *port_ctx = fx.port.ctx;
	const size_t written = (3u << 20) + 100u;
	uint8_t *want = pattern_new(written, 7u, 9), *got = malloc(written);
	assert_non_null(got);
	char path[OTA_CONFIG_MAX_PATH + 32];
	ota_linux_slot_path(&fx.ctx, 1, path, sizeof(path));
	assert_int_equal(ops->slot_erase(port_ctx, 1), OTA_OK);
	int probe = open(path, O_WRONLY);
	assert_true(probe >= 0);
	bool can = fallocate(probe, FALLOC_FL_KEEP_SIZE, 0, 4096) == 0;
	assert_int_equal(close(probe), 0);
	assert_int_equal(ops->slot_erase(port_ctx, 1), OTA_OK);
	assert_int_equal(ops->slot_write(port_ctx, 1, 0, want, written), OTA_OK);
	assert_int_equal(ops->slot_sync(port_ctx, 1), OTA_OK);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, written); /* the size is what was written */
	if (can) {
		/* a window ahead of the writes (from the first), up to the slot's end at most */
		assert_true(allocated_bytes(path) >= OTA_SLOT_WRITER_ALLOC_BYTES);
		assert_true(allocated_bytes(path) <= slot_size);
	}
	assert_int_equal(ops->slot_read(port_ctx, 1, 0, got, written), OTA_OK);
	assert_memory_equal(got, want, written);
	assert_int_equal(ops->slot_read(port_ctx, 1, written, got, 1), OTA_ERR_STORAGE);
	/* past the window: the next window, clipped at the slot's end */
	assert_int_equal(ops->slot_write(port_ctx, 1, slot_size - written, want, written), OTA_OK);
	assert_int_equal(ops->slot_sync(port_ctx, 1), OTA_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, slot_size);
	if (can)
		assert_true(allocated_bytes(path) <= slot_size);
	assert_int_equal(ops->slot_read(port_ctx, 1, slot_size - written, got, written), OTA_OK);
	assert_memory_equal(got, want, written);
	/* erase: nothing kept; the writes after it allocate again */
	assert_int_equal(ops->slot_erase(port_ctx, 1), OTA_OK);
	assert_int_equal(allocated_bytes(path), 0);
	assert_int_equal(ops->slot_write(port_ctx, 1, 0, want, 4096), OTA_OK);
	assert_int_equal(ops->slot_sync(port_ctx, 1), OTA_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 4096);
	if (can)
		assert_true(allocated_bytes(path) >= 4096u + OTA_SLOT_WRITER_ALLOC_BYTES);
	free(want);
	free(got);
	writer_fx_close(&fx);
}

/*
 * An encrypted image read ahead and decrypted on the read-ahead thread
 * (ota-agent install): pieces of 16 sealed 64 KiB chunks, each result
 * names its ciphertext offset and its whole chunks (the image's last
 * chunk is left to the core's stream) with their plaintext; the slot
 * writer takes each 1 MiB plaintext buffer without a copy and the slot
 * reads back the image. A chunk tampered with in the second piece fails
 * that piece's result only.
 */
#define RA_CHUNK 65536u
#define RA_SEALED (RA_CHUNK + OTA_CRYPT_TAG_BYTES)

static void readahead_decrypt_run(struct writer_fx *fx, const uint8_t *image, size_t image_len,
				  struct ota_fx_crypt *crypt, size_t tampered_chunk)
{
	const struct ota_port_ops *ops = fx->ops;
	void *port_ctx = fx->port.ctx;
	struct ota_decrypt dec;
	assert_int_equal(ota_decrypt_open(&dec, crypt->enc, image_len, crypt->key), OTA_OK);
	char *src = ota_fx_path(fx->dir, "enc");
	FILE *f = fopen(src, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite("head", 1, 4, f), 4); /* the ciphertext starts at byte 4 */
	assert_int_equal(fwrite(crypt->ciphertext.data, 1, crypt->ciphertext.len, f),
			 crypt->ciphertext.len);
	assert_int_equal(fclose(f), 0);
	int fd = open(src, O_RDONLY);
	assert_true(fd >= 0);
	struct ota_readahead *ra = NULL;
	assert_int_equal(ota_readahead_open_ahead(fd, 4, 16u * RA_SEALED, &dec, 0,
						  OTA_SLOT_WRITER_BUF_BYTES, &ra),
			 OTA_OK);
	fx->ctx.readahead = ra;
	assert_int_equal(ops->slot_erase(port_ctx, 0), OTA_OK);
	size_t n_chunks = (image_len + RA_CHUNK - 1) / RA_CHUNK;
	uint64_t wire = 0, put = 0, pieces = 0, in_place = 0;
	for (;;) {
		const uint8_t *part = NULL;
		const struct ota_decrypt_ahead *a = NULL;
		size_t n = 0;
		assert_int_equal(ota_readahead_next_ahead(ra, &part, &n, &a), OTA_OK);
		if (n == 0)
			break;
		assert_non_null(a);
		assert_int_equal(a->len, n);
		assert_int_equal(a->wire_off, wire);
		size_t first = (size_t)(wire / RA_SEALED);
		size_t whole =
			n / RA_SEALED < n_chunks - 1 - first ? n / RA_SEALED : n_chunks - 1 - first;
		assert_int_equal(a->chunks, whole);
		/* 16 whole chunks: read apart and decrypted in place, no ciphertext handed out */
		if (whole == 16) {
			assert_null(a->in);
			assert_null(part);
			in_place++;
		} else {
			assert_ptr_equal(a->in, part);
		}
		bool bad = tampered_chunk >= first && tampered_chunk < first + whole;
		assert_string_equal(ota_err_name(a->err), bad ? "OTA_ERR_DECRYPT" : "OTA_OK");
		if (bad && whole == 16)
			assert_int_equal(a->bad, tampered_chunk);
		if (!bad) {
			assert_memory_equal(a->out, image + put, whole * RA_CHUNK);
			assert_int_equal(
				ops->slot_write(port_ctx, 0, put, a->out, whole * RA_CHUNK),
				OTA_OK);
		}
		put += whole * RA_CHUNK;
		wire += n;
		pieces++;
	}
	fx->ctx.readahead = NULL;
	ota_readahead_close(ra);
	ota_decrypt_close(&dec);
	close(fd);
	free(src);
	assert_int_equal(wire, crypt->ciphertext.len);
	assert_int_equal(pieces, (crypt->ciphertext.len + 16u * RA_SEALED - 1) / (16u * RA_SEALED));
	/* every piece but the last (the short last chunk) was read in place */
	assert_int_equal(in_place, pieces - 1);
	if (tampered_chunk == SIZE_MAX) {
		uint8_t *got = malloc(put);
		assert_non_null(got);
		assert_int_equal(ops->slot_sync(port_ctx, 0), OTA_OK);
		assert_int_equal(ops->slot_read(port_ctx, 0, 0, got, put), OTA_OK);
		assert_memory_equal(got, image, put);
		free(got);
	}
}

/*
 * A bundle cut short inside the second piece of whole chunks: the first
 * piece is read apart and decrypted in place, the short one is read as it
 * lies (its ciphertext handed out, its whole chunks decrypted from it),
 * and the read ends there; the core then finds the image short.
 */
static void test_port_readahead_in_place_cut_short(void **state)
{
	(void)state;
	size_t image_len = 3u * OTA_SLOT_WRITER_BUF_BYTES + 12345u;
	uint8_t *image = pattern_new(image_len, 77u, 9);
	EVP_PKEY *key = ota_fx_x25519_new();
	struct ota_fx_crypt *crypt = ota_fx_encrypt(image, image_len, RA_CHUNK, &key, 1);
	struct ota_decrypt dec;
	assert_int_equal(ota_decrypt_open(&dec, crypt->enc, image_len, crypt->key), OTA_OK);
	char dir[] = "/tmp/ota-ra-cut-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *src = ota_fx_path(dir, "enc");
	size_t cut = 20u * RA_SEALED + 100u;
	FILE *f = fopen(src, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(crypt->ciphertext.data, 1, cut, f), cut);
	assert_int_equal(fclose(f), 0);
	int fd = open(src, O_RDONLY);
	assert_true(fd >= 0);
	struct ota_readahead *ra = NULL;
	assert_int_equal(ota_readahead_open_ahead(fd, 0, 16u * RA_SEALED, &dec, 0,
						  OTA_SLOT_WRITER_BUF_BYTES, &ra),
			 OTA_OK);
	const uint8_t *part = NULL;
	const struct ota_decrypt_ahead *a = NULL;
	size_t n = 0;
	assert_int_equal(ota_readahead_next_ahead(ra, &part, &n, &a), OTA_OK);
	assert_int_equal(n, 16u * RA_SEALED);
	assert_null(part);
	assert_null(a->in);
	assert_int_equal(a->chunks, 16);
	assert_int_equal(a->err, OTA_OK);
	assert_memory_equal(a->out, image, 16u * RA_CHUNK);
	assert_int_equal(ota_readahead_next_ahead(ra, &part, &n, &a), OTA_OK);
	assert_int_equal(n, cut - 16u * RA_SEALED);
	assert_non_null(part);
	assert_ptr_equal(a->in, part);
	assert_memory_equal(part, crypt->ciphertext.data + 16u * RA_SEALED, n);
	assert_int_equal(a->wire_off, 16u * RA_SEALED);
	assert_int_equal(a->chunks, 4);
	assert_int_equal(a->err, OTA_OK);
	assert_memory_equal(a->out, image + 16u * RA_CHUNK, 4u * RA_CHUNK);
	assert_int_equal(ota_readahead_next_ahead(ra, &part, &n, &a), OTA_OK);
	assert_int_equal(n, 0);
	ota_readahead_close(ra);
	ota_decrypt_close(&dec);
	close(fd);
	assert_int_equal(unlink(src), 0);
	assert_int_equal(rmdir(dir), 0);
	free(src);
	ota_fx_crypt_free(crypt);
	EVP_PKEY_free(key);
	free(image);
}

static void test_port_readahead_decrypts(void **state)
{
	(void)state;
	struct writer_fx fx;
	writer_fx_open(&fx, 4u << 20);
	size_t image_len = 3u * OTA_SLOT_WRITER_BUF_BYTES + 12345u;
	uint8_t *image = pattern_new(image_len, 77u, 9);
	EVP_PKEY *key = ota_fx_x25519_new();
	struct ota_fx_crypt *crypt = ota_fx_encrypt(image, image_len, RA_CHUNK, &key, 1);
	readahead_decrypt_run(&fx, image, image_len, crypt, SIZE_MAX);
	crypt->ciphertext.data[20u * RA_SEALED + 100u] ^= 0x04;
	readahead_decrypt_run(&fx, image, image_len, crypt, 20);
	ota_fx_crypt_free(crypt);
	EVP_PKEY_free(key);
	free(image);
	writer_fx_close(&fx);
}

/*
 * A delta's base through the writer thread (ota-agent's mode): a map sees
 * the writes queued for its slot before it; writes queued for the other
 * slot go on; the mapping reads the same after hints of every kind
 * (inside, len 0, past the end, another slot's); a second map of a
 * mapped slot and a map longer than the file are refused.
 */
static void test_port_slot_map(void **state)
{
	(void)state;
	struct writer_fx fx;
	writer_fx_open(&fx, 3u << 20);
	const struct ota_port_ops *ops = fx.ops;
	struct ota_linux_port *ctx = &fx.ctx;
	void *port_ctx = fx.port.ctx;
	size_t total = (size_t)ctx->slot_size;
	uint8_t *want = pattern_new(total, 151u, 13);
	assert_int_equal(ops->slot_erase(port_ctx, 0), OTA_OK);
	assert_int_equal(ops->slot_erase(port_ctx, 1), OTA_OK);
	/* queued, not synced: the map waits for these */
	for (size_t at = 0; at < total; at += 100000) {
		size_t n = total - at < 100000 ? total - at : 100000;
		assert_int_equal(ops->slot_write(port_ctx, 1, at, want + at, n), OTA_OK);
	}
	/* and these, for the other slot, need not land first */
	assert_int_equal(ops->slot_write(port_ctx, 0, 0, want, total), OTA_OK);
	const uint8_t *base = NULL;
	assert_int_equal(ops->slot_map(port_ctx, 1, total, &base), OTA_OK);
	assert_non_null(base);
	assert_memory_equal(base, want, total);
	const uint8_t *again = NULL;
	assert_int_equal(ops->slot_map(port_ctx, 1, total, &again), OTA_ERR_INVALID_ARG);
	assert_non_null(ops->slot_map_advise);
	ops->slot_map_advise(port_ctx, 1, 0, 1u << 20);
	ops->slot_map_advise(port_ctx, 1, (2u << 20) + 5, 1u << 20); /* runs past the end */
	ops->slot_map_advise(port_ctx, 1, 0, 0);
	ops->slot_map_advise(port_ctx, 1, total + 4096, 4096);
	ops->slot_map_advise(port_ctx, 0, 0, 4096); /* not mapped: ignored */
	ops->slot_map_advise(port_ctx, OTA_SLOT_COUNT, 0, 4096);
	assert_memory_equal(base, want, total);
	ops->slot_unmap(port_ctx, 1);
	/* the other slot's writes all landed by its sync */
	assert_int_equal(ops->slot_sync(port_ctx, 0), OTA_OK);
	assert_int_equal(ops->slot_map(port_ctx, 0, total, &base), OTA_OK);
	assert_memory_equal(base, want, total);
	ops->slot_unmap(port_ctx, 0);
	/* slot 1 holds total bytes: a longer map would fault past the end */
	ctx->slot_size = total + 4096;
	assert_int_equal(ops->slot_map(port_ctx, 1, total + 4096, &base), OTA_ERR_STORAGE);
	free(want);
	writer_fx_close(&fx);
}

static void write_text_file(const char *dir, const char *name, const char *text)
{
	char *path = ota_fx_path(dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(path);
}

/* Post-install health: the application's file, boots the agent did not ask for. */
static void test_port_health(void **state)
{
	(void)state;
	char *dir = ota_fx_tempdir_new();
	char *state_dir = ota_fx_path(dir, "state");
	struct ota_config cfg;
	struct ota_linux_port ctx;
	struct ota_port port;
	port_open(state_dir, &cfg, &ctx, &port);
	struct ota_port_health h;
	assert_non_null(port.ops->health);
	assert_int_equal(port.ops->health(port.ctx, &h), OTA_OK);
	assert_int_equal(h.permille, 1000); /* no file: healthy */
	assert_int_equal(h.unrequested_boots, 0);
	/* a boot nobody asked for counts; one after the reboot op does not */
	assert_int_equal(ota_linux_boot_note(&ctx), OTA_OK);
	port.ops->reboot(port.ctx);
	assert_int_equal(ota_linux_boot_note(&ctx), OTA_OK);
	assert_int_equal(ota_linux_boot_note(&ctx), OTA_OK);
	assert_int_equal(port.ops->health(port.ctx, &h), OTA_OK);
	assert_int_equal(h.unrequested_boots, 2);
	write_text_file(state_dir, "health", "400\n");
	assert_int_equal(port.ops->health(port.ctx, &h), OTA_OK);
	assert_int_equal(h.permille, 400);
	write_text_file(state_dir, "health", "1001\n");
	assert_int_equal(port.ops->health(port.ctx, &h), OTA_OK);
	assert_int_equal(h.permille, 0); /* out of range: not healthy */
	write_text_file(state_dir, "health", "fine\n");
	assert_int_equal(port.ops->health(port.ctx, &h), OTA_OK);
	assert_int_equal(h.permille, 0);
	/* the open window survives a restart of the daemon */
	uint64_t until = 0, base = 0;
	assert_false(ota_linux_health_window_load(&ctx, &until, &base));
	assert_int_equal(ota_linux_health_window_save(&ctx, 1800000000u, 2), OTA_OK);
	assert_true(ota_linux_health_window_load(&ctx, &until, &base));
	assert_int_equal(until, 1800000000u);
	assert_int_equal(base, 2);
	free(state_dir);
	ota_fx_tempdir_remove(dir);
}

/* run_beside: which thread ran the job, and that it ran */
struct beside_probe {
	pthread_t thread;
	unsigned runs;
	_Atomic bool ran;
	struct beside_probe *wait_for; /* own's job: waits (up to 10 s) until this one ran */
};

static void beside_probe(void *arg)
{
	struct beside_probe *p = arg;
	p->thread = pthread_self();
	p->runs++;
	for (unsigned ms = 0; p->wait_for && !p->wait_for->ran && ms < 10000; ms++)
		usleep(1000);
	p->ran = true;
}

/*
 * run_beside: the other job on the port's helper thread (the same one for
 * every call, stopped at close) while the caller runs its own (which
 * waits here until the other ran: a job the helper has not started when
 * the caller's is done, the caller runs itself); without
 * async_slot_writes (the fleet simulator's devices) both on the caller.
 */
static void test_port_run_beside(void **state)
{
	(void)state;
	struct writer_fx fx;
	writer_fx_open(&fx, 4096);
	assert_non_null(fx.ops->run_beside);
	struct beside_probe other = {0}, own = {.wait_for = &other};
	fx.ops->run_beside(&fx.ctx, beside_probe, &other, beside_probe, &own);
	assert_int_equal(other.runs, 1);
	assert_int_equal(own.runs, 1);
	assert_true(pthread_equal(own.thread, pthread_self()));
	assert_false(pthread_equal(other.thread, pthread_self()));
	pthread_t helper = other.thread;
	other.ran = false;
	fx.ops->run_beside(&fx.ctx, beside_probe, &other, beside_probe, &own);
	assert_int_equal(other.runs, 2);
	assert_true(pthread_equal(other.thread, helper));
	ota_linux_port_close(&fx.ctx);
	assert_null(fx.ctx.beside);
	fx.ctx.async_slot_writes = false;
	own.wait_for = NULL;
	fx.ops->run_beside(&fx.ctx, beside_probe, &other, beside_probe, &own);
	assert_int_equal(other.runs, 3);
	assert_int_equal(own.runs, 3);
	assert_true(pthread_equal(other.thread, pthread_self()));
	assert_null(fx.ctx.beside);
	writer_fx_close(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_valid),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_config_pkcs11),
		cmocka_unit_test(test_port_unwrap_p256_and_token),
		cmocka_unit_test(test_port_records_and_slots),
		cmocka_unit_test(test_port_slot_writer),
		cmocka_unit_test(test_port_slot_writer_allocates_ahead),
		cmocka_unit_test(test_port_slot_writer_direct),
		cmocka_unit_test(test_port_buf_pool),
		cmocka_unit_test(test_port_readahead_decrypts),
		cmocka_unit_test(test_port_readahead_in_place_cut_short),
		cmocka_unit_test(test_port_slot_map),
		cmocka_unit_test(test_port_health),
		cmocka_unit_test(test_port_run_beside),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
