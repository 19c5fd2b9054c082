/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The factory's golden image: the state directory of one device that the
 * agent core provisioned (trust anchors, factory image installed, booted
 * and confirmed), kept in memory and written out as the state directory of
 * every other new device. A factory flashes one image to every unit in the
 * same way; the core's records hold nothing per device (no id, no path),
 * so the copy is what the core would have written, without its ~30
 * fsyncs and signature checks per device.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fleet_sim.h"
#include "ota_linux.h"

#define GOLDEN_FILES_MAX 256u
#define GOLDEN_BYTES_MAX (64u * 1024u * 1024u)
#define GOLDEN_NAME_MAX 128u

struct golden_file {
	char name[GOLDEN_NAME_MAX]; /* relative: "slot0.img", "records/state.0" */
	bool is_dir;
	uint8_t *data;
	size_t len;
};

struct fleet_golden {
	struct golden_file files[GOLDEN_FILES_MAX];
	size_t n;
	size_t bytes;
};

/* Adds DIR/REL (a regular file or, at the top, a directory and its files). */
static bool load_dir(struct fleet_golden *g, const char *root, const char *rel, unsigned depth)
{
	char path[FLEET_PATH_MAX];
	snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
	DIR *d = opendir(path);
	if (!d)
		return false;
	bool ok = true;
	struct dirent *e;
	while (ok && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char name[GOLDEN_NAME_MAX];
		int n = snprintf(name, sizeof(name), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
		char full[FLEET_PATH_MAX];
		int m = snprintf(full, sizeof(full), "%s/%s", root, name);
		struct stat st;
		if (n < 0 || (size_t)n >= sizeof(name) || m < 0 || (size_t)m >= sizeof(full) ||
		    lstat(full, &st) != 0 || g->n >= GOLDEN_FILES_MAX) {
			ok = false;
			break;
		}
		struct golden_file *f = &g->files[g->n];
		memcpy(f->name, name, (size_t)n + 1);
		if (S_ISDIR(st.st_mode)) {
			/* the port's layout: files and one level of directories */
			if (depth > 0) {
				ok = false;
				break;
			}
			f->is_dir = true;
			g->n++;
			ok = load_dir(g, root, name, depth + 1);
			continue;
		}
		if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > GOLDEN_BYTES_MAX - g->bytes) {
			ok = false;
			break;
		}
		f->len = (size_t)st.st_size;
		f->data = malloc(f->len ? f->len : 1);
		int fd = open(full, O_RDONLY | O_CLOEXEC);
		size_t got = 0;
		ok = f->data && fd >= 0 && ota_linux_pread_all(fd, f->data, f->len, 0, &got) &&
		     got == f->len;
		if (fd >= 0)
			close(fd);
		if (!ok) {
			free(f->data);
			f->data = NULL;
			break;
		}
		g->bytes += f->len;
		g->n++;
	}
	closedir(d);
	return ok;
}

struct fleet_golden *fleet_golden_load(const char *dir)
{
	struct fleet_golden *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	if (!load_dir(g, dir, "", 0) || g->n == 0) {
		fleet_golden_free(g);
		return NULL;
	}
	return g; /* a directory's entry precedes its files */
}

void fleet_golden_free(struct fleet_golden *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++)
		free(g->files[i].data);
	free(g);
}

static void remove_partial(const struct fleet_golden *g, const char *tmp)
{
	char path[FLEET_PATH_MAX];
	for (size_t i = g->n; i-- > 0;) {
		int n = snprintf(path, sizeof(path), "%s/%s", tmp, g->files[i].name);
		if (n < 0 || (size_t)n >= sizeof(path))
			continue;
		if (g->files[i].is_dir)
			(void)rmdir(path);
		else
			(void)unlink(path);
	}
	(void)rmdir(tmp);
}

int fleet_golden_clone(const struct fleet_golden *g, const char *dir)
{
	char tmp[FLEET_PATH_MAX];
	char path[FLEET_PATH_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s.golden-tmp", dir);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	remove_partial(g, tmp); /* what an interrupted run left */
	if (mkdir(tmp, 0700) != 0)
		return -1;
	for (size_t i = 0; i < g->n; i++) {
		const struct golden_file *f = &g->files[i];
		n = snprintf(path, sizeof(path), "%s/%s", tmp, f->name);
		bool ok = n > 0 && (size_t)n < sizeof(path);
		if (ok && f->is_dir) {
			ok = mkdir(path, 0700) == 0;
		} else if (ok) {
			int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			ok = fd >= 0 && ota_linux_pwrite_all(fd, f->data, f->len, 0);
			if (fd >= 0)
				ok = close(fd) == 0 && ok;
		}
		if (!ok) {
			int saved = errno;
			remove_partial(g, tmp);
			errno = saved;
			return -1;
		}
	}
	/* whole or not at all: the device's directory appears by rename */
	if (rename(tmp, dir) != 0) {
		int saved = errno;
		remove_partial(g, tmp);
		errno = saved;
		return -1;
	}
	return 0;
}
