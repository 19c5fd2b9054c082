/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operator console's static assets (web-api/console/, installed to
 * <datadir>/fleetota/console), served at /console/ on the admin listener,
 * the same origin as /api/v1. The directory is read once at start into
 * memory (a flat set of small files, bounded in count and bytes), so a
 * request never touches the file system and no path ever reaches open().
 * Every answer carries a strict Content-Security-Policy: scripts and
 * styles from this origin only, no inline code, no other origin at all.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log-internal.h"
#include "webapi-internal.h"

/* Bounds of the asset set: files, bytes of one file, bytes of all. */
#define WA_CONSOLE_MAX_FILES 64u
#define WA_CONSOLE_MAX_FILE_BYTES (512u * 1024u)
#define WA_CONSOLE_MAX_TOTAL_BYTES (4u * 1024u * 1024u)

const char wa_console_csp[] =
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
	"frame-ancestors 'none'";

struct wa_asset {
	char name[WA_ASSET_NAME_BYTES];
	const char *content_type;
	char *data;
	size_t len;
};

struct wa_console {
	struct wa_asset assets[WA_CONSOLE_MAX_FILES];
	size_t n_assets;
};

static const char *content_type_of(const char *name)
{
	static const struct {
		const char *ext;
		const char *type;
	} types[] = {
		{".html", "text/html; charset=utf-8"},
		{".js", "text/javascript; charset=utf-8"},
		{".css", "text/css; charset=utf-8"},
		{".svg", "image/svg+xml"},
		{".png", "image/png"},
		{".json", "application/json"},
	};
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return NULL;
}

void wa_console_free(struct wa_console *console)
{
	if (console == NULL)
		return;
	for (size_t i = 0; i < console->n_assets; i++)
		free(console->assets[i].data);
	free(console);
}

/* One regular file of dir into asset; OTA_ERR_STORAGE or OTA_ERR_SIZE. */
static enum ota_err load_file(int dir_fd, const char *name, struct wa_asset *asset)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	enum ota_err err = OTA_ERR_STORAGE;
	size_t got = 0;

	if (fd < 0)
		return OTA_ERR_STORAGE;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	err = OTA_ERR_SIZE;
	if (st.st_size <= 0 || (uint64_t)st.st_size > WA_CONSOLE_MAX_FILE_BYTES)
		goto out;
	err = OTA_ERR_NOMEM;
	asset->data = malloc((size_t)st.st_size);
	if (asset->data == NULL)
		goto out;
	err = OTA_ERR_STORAGE;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, asset->data + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto out;
		got += (size_t)r;
	}
	asset->len = got;
	/* the caller checked the name's length (wa_id_valid) */
	memcpy(asset->name, name, strnlen(name, sizeof(asset->name) - 1));
	asset->content_type = content_type_of(name);
	err = OTA_OK;
out:
	if (err != OTA_OK) {
		free(asset->data);
		asset->data = NULL;
	}
	close(fd);
	return err;
}

enum ota_err wa_console_new(const char *dir, struct wa_console **ret)
{
	struct wa_console *console;
	DIR *d;
	struct dirent *de;
	size_t total = 0;
	enum ota_err err = OTA_OK;

	d = opendir(dir);
	if (d == NULL) {
		srv_log(SRV_LOG_ERROR, "webapi: console_dir %s: %s", dir, strerror(errno));
		return OTA_ERR_STORAGE;
	}
	console = calloc(1, sizeof(*console));
	if (console == NULL) {
		closedir(d);
		return OTA_ERR_NOMEM;
	}
	while (err == OTA_OK && (de = readdir(d)) != NULL) {
		struct wa_asset *asset;

		/* a flat set of plainly named files: no dot files, no subfolders */
		if (!wa_id_valid(de->d_name, sizeof(asset->name) - 1) ||
		    content_type_of(de->d_name) == NULL)
			continue;
		if (console->n_assets == WA_CONSOLE_MAX_FILES) {
			srv_log(SRV_LOG_ERROR, "webapi: console_dir %s: more than %u files", dir,
				WA_CONSOLE_MAX_FILES);
			err = OTA_ERR_SIZE;
			break;
		}
		asset = &console->assets[console->n_assets];
		err = load_file(dirfd(d), de->d_name, asset);
		if (err != OTA_OK) {
			srv_log(SRV_LOG_ERROR, "webapi: console_dir %s/%s: %s", dir, de->d_name,
				ota_err_name(err));
			break;
		}
		console->n_assets++;
		total += asset->len;
		if (total > WA_CONSOLE_MAX_TOTAL_BYTES) {
			srv_log(SRV_LOG_ERROR, "webapi: console_dir %s: more than %u bytes", dir,
				WA_CONSOLE_MAX_TOTAL_BYTES);
			err = OTA_ERR_SIZE;
		}
	}
	closedir(d);
	if (err == OTA_OK && wa_console_find(console, "index.html") == NULL) {
		srv_log(SRV_LOG_ERROR, "webapi: console_dir %s has no index.html", dir);
		err = OTA_ERR_STORAGE;
	}
	if (err != OTA_OK) {
		wa_console_free(console);
		return err;
	}
	srv_log(SRV_LOG_INFO, "webapi: console at /console/ (%zu files, %zu bytes from %s)",
		console->n_assets, total, dir);
	*ret = console;
	return OTA_OK;
}

const struct wa_asset *wa_console_find(const struct wa_console *console, const char *name)
{
	for (size_t i = 0; console != NULL && i < console->n_assets; i++)
		if (strcmp(console->assets[i].name, name) == 0)
			return &console->assets[i];
	return NULL;
}

/* GET /console, /console/ and /console/NAME (no token: the page signs in). */
static void wa_h_console(struct wa_ctx *ctx)
{
	static const char *const none[] = {NULL};
	const struct wa_console *console = wa_console_of(ctx);
	const char *name = ctx->path_arg[0] != '\0' ? ctx->path_arg : "index.html";
	const struct wa_asset *asset;

	if (!wa_query_only(ctx, none))
		return;
	wa_add_header(ctx, "Content-Security-Policy", wa_console_csp);
	wa_add_header(ctx, "X-Frame-Options", "DENY");
	wa_add_header(ctx, "Referrer-Policy", "no-referrer");
	asset = wa_console_find(console, name);
	if (asset == NULL) {
		wa_reply_error(ctx, 404, "not_found",
			       console == NULL ? "the console is not installed (console_dir)"
					       : "no such console file",
			       NULL);
		return;
	}
	wa_reply_bytes(ctx, 200, asset->content_type, asset->data, asset->len);
}

/* The console's assets: no token (the page signs in). */
static const struct wa_route routes[] = {
	{EVHTTP_REQ_GET, "/console", WA_ROLE_NONE, WA_BODY_NONE, wa_h_console},
	{EVHTTP_REQ_GET, "/console/", WA_ROLE_NONE, WA_BODY_NONE, wa_h_console},
	{EVHTTP_REQ_GET, "/console/*", WA_ROLE_NONE, WA_BODY_NONE, wa_h_console},
};

const struct wa_resource wa_console_resource = {WA_TABLE(routes)};
