/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Post-install health of the reference port (fleetota/port.h, health):
 * plain files in the state directory.
 *   health             the application writes its health, 0..1000 (absent:
 *                      1000); a number that does not parse reads as 0
 *   reboot.requested   left by the reboot op; the next boot consumes it
 *   boots.unrequested  boots without that marker (watchdog, crash, power)
 *   health.window      "UNTIL BASE": the open health window after a
 *                      confirm (UNTIL in seconds since the epoch), so a
 *                      restart of the daemon - an unexpected reboot above
 *                      all - keeps reporting it
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ota_linux.h"

static bool state_path(const struct ota_linux_port *lx, const char *name, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s/%s", lx->dir, name);
	return n > 0 && (size_t)n < cap;
}

/* Up to two numbers from a small file; false when absent or unparsable. */
static bool read_numbers(const char *path, uint64_t *first, uint64_t *second)
{
	char text[OTA_LINUX_HEALTH_TEXT_MAX + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t got = read(fd, text, OTA_LINUX_HEALTH_TEXT_MAX);
	close(fd);
	if (got <= 0)
		return false;
	text[got] = '\0';
	uint64_t b = 0;
	int n = sscanf(text, "%" SCNu64 " %" SCNu64, first, &b);
	if (n < 1 || (second && n < 2))
		return false;
	if (second)
		*second = b;
	return true;
}

/* Replaces path durably (write, fsync, rename). */
static enum ota_err write_text(const char *path, const char *text)
{
	char tmp[OTA_CONFIG_MAX_PATH + 64];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return OTA_ERR_STORAGE;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return OTA_ERR_STORAGE;
	size_t len = strlen(text);
	bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return OTA_ERR_STORAGE;
	}
	return OTA_OK;
}

enum ota_err ota_linux_health(void *ctx, struct ota_port_health *ret)
{
	struct ota_linux_port *lx = ctx;
	char path[OTA_CONFIG_MAX_PATH + 32];
	uint64_t permille = 1000, boots = 0;
	if (!state_path(lx, "health", path, sizeof(path)))
		return OTA_ERR_STORAGE;
	if (access(path, F_OK) == 0 && (!read_numbers(path, &permille, NULL) || permille > 1000))
		permille = 0; /* the application said something, but not a health value */
	if (!state_path(lx, "boots.unrequested", path, sizeof(path)))
		return OTA_ERR_STORAGE;
	(void)read_numbers(path, &boots, NULL);
	ret->permille = (uint32_t)permille;
	ret->unrequested_boots = boots;
	return OTA_OK;
}

void ota_linux_reboot_mark(struct ota_linux_port *lx)
{
	char path[OTA_CONFIG_MAX_PATH + 32];
	if (state_path(lx, "reboot.requested", path, sizeof(path)))
		(void)write_text(path, "1\n");
}

enum ota_err ota_linux_boot_note(struct ota_linux_port *lx)
{
	char path[OTA_LINUX_STATE_PATH_BYTES], text[OTA_LINUX_COUNTER_TEXT_BYTES];
	uint64_t boots = 0;
	if (!state_path(lx, "reboot.requested", path, sizeof(path)))
		return OTA_ERR_STORAGE;
	if (unlink(path) == 0)
		return OTA_OK; /* the agent asked for this boot */
	if (errno != ENOENT || !state_path(lx, "boots.unrequested", path, sizeof(path)))
		return OTA_ERR_STORAGE;
	(void)read_numbers(path, &boots, NULL);
	snprintf(text, sizeof(text), "%" PRIu64 "\n", boots + 1);
	return write_text(path, text);
}

enum ota_err ota_linux_health_window_save(struct ota_linux_port *lx, uint64_t until, uint64_t base)
{
	char path[OTA_LINUX_STATE_PATH_BYTES], text[OTA_LINUX_WINDOW_TEXT_BYTES];
	if (!state_path(lx, "health.window", path, sizeof(path)))
		return OTA_ERR_STORAGE;
	snprintf(text, sizeof(text), "%" PRIu64 " %" PRIu64 "\n", until, base);
	return write_text(path, text);
}

bool ota_linux_health_window_load(struct ota_linux_port *lx, uint64_t *ret_until,
				  uint64_t *ret_base)
{
	char path[OTA_CONFIG_MAX_PATH + 32];
	return state_path(lx, "health.window", path, sizeof(path)) &&
	       read_numbers(path, ret_until, ret_base);
}
