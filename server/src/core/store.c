/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fleetota/crypto.h"
#include "hex-internal.h"
#include "store-internal.h"
#include "srv-limits.h"

bool srv_store_name_valid(const char *name)
{
	size_t i;

	if (name == NULL)
		return false;
	for (i = 0; i < 64; i++) {
		char c = name[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return name[64] == '\0';
}

void srv_store_name_from_sha256(const uint8_t sha256[OTA_SHA256_BYTES],
				char out[SRV_SHA256_HEX_BYTES])
{
	srv_hex_encode(sha256, 32, out);
}

enum ota_err srv_store_open(const char *store_dir, const char *name, uint64_t expected_size,
			    int *ret_fd)
{
	char path[PATH_MAX];
	struct stat st;
	int fd;

	if (!srv_store_name_valid(name))
		return OTA_ERR_FORMAT;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", store_dir, name) >= sizeof(path))
		return OTA_ERR_STORAGE;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? OTA_ERR_NOT_FOUND : OTA_ERR_STORAGE;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return OTA_ERR_STORAGE;
	}
	if ((uint64_t)st.st_size != expected_size) {
		close(fd);
		return OTA_ERR_SIZE;
	}
	*ret_fd = fd;
	return OTA_OK;
}

struct srv_store_writer {
	char tmp[PATH_MAX]; /* "" once renamed */
	int fd;
	struct ota_sha256_ctx sha;
	bool sha_live;
	uint64_t written;
};

enum ota_err srv_store_writer_new(const char *store_dir, struct srv_store_writer **ret_w)
{
	struct srv_store_writer *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return OTA_ERR_NOMEM;
	w->fd = -1;
	if ((size_t)snprintf(w->tmp, sizeof(w->tmp), "%s/.incoming-XXXXXX", store_dir) >=
	    sizeof(w->tmp)) {
		free(w);
		return OTA_ERR_STORAGE;
	}
	w->fd = mkstemp(w->tmp);
	if (w->fd < 0) {
		free(w);
		return OTA_ERR_STORAGE;
	}
	if (ota_sha256_init(&w->sha) != OTA_OK) {
		srv_store_writer_free(w);
		return OTA_ERR_STORAGE;
	}
	w->sha_live = true;
	*ret_w = w;
	return OTA_OK;
}

enum ota_err srv_store_writer_write(struct srv_store_writer *w, const uint8_t *data, size_t len)
{
	size_t done = 0;

	if (w == NULL || w->fd < 0 || !w->sha_live)
		return OTA_ERR_STORAGE;
	if (ota_sha256_update(&w->sha, data, len) != OTA_OK)
		return OTA_ERR_STORAGE;
	while (done < len) {
		ssize_t n = write(w->fd, data + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return OTA_ERR_STORAGE;
		done += (size_t)n;
	}
	w->written += len;
	return OTA_OK;
}

enum ota_err srv_store_writer_commit(struct srv_store_writer *w,
				     const uint8_t expected_sha256[OTA_SHA256_BYTES],
				     uint8_t ret_sha256[OTA_SHA256_BYTES],
				     char ret_name[SRV_SHA256_HEX_BYTES])
{
	char final[PATH_MAX], name[SRV_SHA256_HEX_BYTES];
	uint8_t digest[OTA_SHA256_BYTES];

	if (w == NULL || w->fd < 0 || !w->sha_live)
		return OTA_ERR_STORAGE;
	w->sha_live = false;
	if (ota_sha256_final(&w->sha, digest) != OTA_OK)
		return OTA_ERR_STORAGE;
	if (expected_sha256 != NULL && memcmp(digest, expected_sha256, sizeof(digest)) != 0)
		return OTA_ERR_HASH;
	if (fsync(w->fd) != 0)
		return OTA_ERR_STORAGE;
	srv_store_name_from_sha256(digest, name);
	if ((size_t)snprintf(final, sizeof(final), "%s", w->tmp) >= sizeof(final))
		return OTA_ERR_STORAGE;
	{
		char *slash = strrchr(final, '/');

		if (slash == NULL || (size_t)(slash + 1 - final) + sizeof(name) > sizeof(final))
			return OTA_ERR_STORAGE;
		memcpy(slash + 1, name, sizeof(name));
	}
	if (rename(w->tmp, final) != 0)
		return OTA_ERR_STORAGE;
	w->tmp[0] = '\0';
	if (ret_sha256 != NULL)
		memcpy(ret_sha256, digest, sizeof(digest));
	memcpy(ret_name, name, sizeof(name));
	return OTA_OK;
}

void srv_store_writer_free(struct srv_store_writer *w)
{
	if (w == NULL)
		return;
	if (w->sha_live)
		ota_sha256_abort(&w->sha);
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp[0] != '\0')
		unlink(w->tmp);
	free(w);
}

enum ota_err srv_store_add_file(const char *store_dir, const char *src,
				char ret_name[SRV_SHA256_HEX_BYTES])
{
	struct srv_store_writer *w = NULL;
	uint8_t buf[SRV_STORE_COPY_CHUNK_BYTES];
	char name[SRV_SHA256_HEX_BYTES];
	enum ota_err err;
	int in;
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return OTA_ERR_NOT_FOUND;
	err = srv_store_writer_new(store_dir, &w);
	while (err == OTA_OK && (n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0)
			err = errno == EINTR ? OTA_OK : OTA_ERR_STORAGE;
		else
			err = srv_store_writer_write(w, buf, (size_t)n);
	}
	if (err == OTA_OK)
		err = srv_store_writer_commit(w, NULL, NULL, name);
	srv_store_writer_free(w);
	close(in);
	if (err == OTA_OK)
		memcpy(ret_name, name, sizeof(name));
	return err;
}
