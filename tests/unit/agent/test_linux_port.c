/* SPDX-License-Identifier: Apache-2.0 */
/* The Linux reference port: config parser and file-backed storage. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

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
	char *dir = ota_fx_tempdir_new();
	char *state_dir = ota_fx_path(dir, "state");
	struct ota_config cfg;
	struct ota_linux_port ctx;
	struct ota_port port;
	port_open(state_dir, &cfg, &ctx, &port);
	ctx.async_slot_writes = true;
	ctx.slot_size = 5u << 20;
	const struct ota_port_ops *ops = port.ops;
	size_t total = (size_t)ctx.slot_size;
	uint8_t *want = malloc(total), *got = malloc(total);
	assert_non_null(want);
	assert_non_null(got);
	for (size_t i = 0; i < total; i++)
		want[i] = (uint8_t)(i * 131u + (i >> 12));
	assert_int_equal(ops->slot_erase(port.ctx, 0), OTA_OK);
	assert_int_equal(ops->slot_erase(port.ctx, 1), OTA_OK);
	/* slot 0 in growing pieces, slot 1 interleaved with it backwards */
	size_t at = 0, piece = 1, back = total;
	while (at < total) {
		size_t n = piece < total - at ? piece : total - at;
		assert_int_equal(ops->slot_write(port.ctx, 0, at, want + at, n), OTA_OK);
		at += n;
		piece = piece * 3 + 7;
		if (back >= 65536) {
			back -= 65536;
			assert_int_equal(ops->slot_write(port.ctx, 1, back, want + back, 65536),
					 OTA_OK);
		}
	}
	/* reads see every write before them, synced or not */
	assert_int_equal(ops->slot_read(port.ctx, 0, 0, got, total), OTA_OK);
	assert_memory_equal(got, want, total);
	assert_int_equal(ops->slot_sync(port.ctx, 1), OTA_OK);
	assert_int_equal(ops->slot_read(port.ctx, 1, back, got, total - back), OTA_OK);
	assert_memory_equal(got, want + back, total - back);

	/*
	 * a file read ahead in writer-sized pieces, each handed to the slot
	 * writer without a copy (all but the short last one), read back exactly
	 */
	char *src = ota_fx_path(dir, "src");
	FILE *f = fopen(src, "wb");
	assert_non_null(f);
	size_t src_len = total - 12345;
	assert_int_equal(fwrite(want, 1, src_len, f), src_len);
	assert_int_equal(fclose(f), 0);
	int fd = open(src, O_RDONLY);
	assert_true(fd >= 0);
	struct ota_readahead *ra = NULL;
	assert_int_equal(ota_readahead_open(fd, 7, OTA_SLOT_WRITER_BUF_BYTES, &ra), OTA_OK);
	ctx.readahead = ra;
	assert_int_equal(ops->slot_erase(port.ctx, 0), OTA_OK);
	uint64_t put = 0;
	for (;;) {
		const uint8_t *part = NULL;
		size_t n = 0;
		assert_int_equal(ota_readahead_next(ra, &part, &n), OTA_OK);
		if (n == 0)
			break;
		assert_int_equal(ops->slot_write(port.ctx, 0, put, part, n), OTA_OK);
		put += n;
	}
	ctx.readahead = NULL;
	ota_readahead_close(ra);
	close(fd);
	free(src);
	assert_int_equal(put, src_len - 7);
	assert_int_equal(ops->slot_sync(port.ctx, 0), OTA_OK);
	assert_int_equal(ops->slot_read(port.ctx, 0, 0, got, src_len - 7), OTA_OK);
	assert_memory_equal(got, want + 7, src_len - 7);

	/* slot 1's file is a full disk: the thread's failure comes back at the sync */
	ota_linux_port_close(&ctx);
	char path[OTA_CONFIG_MAX_PATH + 32];
	ota_linux_slot_path(&ctx, 1, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	if (symlink("/dev/full", path) == 0) {
		assert_int_equal(ops->slot_write(port.ctx, 1, 0, want, 1000), OTA_OK);
		assert_int_equal(ops->slot_sync(port.ctx, 1), OTA_ERR_STORAGE);
		assert_int_equal(ops->slot_write(port.ctx, 1, 1000, want, 10), OTA_ERR_STORAGE);
		/* slot 0 is unaffected once the failure is forgotten (erase) */
		(void)ops->slot_erase(port.ctx, 1);
		assert_int_equal(ops->slot_write(port.ctx, 0, 0, "xyz", 3), OTA_OK);
		assert_int_equal(ops->slot_sync(port.ctx, 0), OTA_OK);
		assert_int_equal(ops->slot_read(port.ctx, 0, 0, got, 4), OTA_OK);
		assert_memory_equal(got, "xyz", 3);
		assert_memory_equal(got + 3, want + 7 + 3, 1); /* the rest of the read-ahead copy */
	}
	ota_linux_port_close(&ctx);
	free(want);
	free(got);
	free(state_dir);
	ota_fx_tempdir_remove(dir);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_valid),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_port_records_and_slots),
		cmocka_unit_test(test_port_slot_writer),
		cmocka_unit_test(test_port_health),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
