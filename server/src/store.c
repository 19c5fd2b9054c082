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
#include "store-internal.h"

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

void srv_store_name_from_sha256(const uint8_t sha256[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hex[sha256[i] >> 4];
		out[2 * i + 1] = hex[sha256[i] & 15];
	}
	out[64] = '\0';
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

enum ota_err srv_store_add_file(const char *store_dir, const char *src, char ret_name[65])
{
	char tmp[PATH_MAX], final[PATH_MAX], name[65];
	uint8_t buf[65536], digest[32];
	struct ota_sha256_ctx ctx;
	enum ota_err err = OTA_ERR_STORAGE;
	int in = -1, out = -1;
	ssize_t n;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.incoming-XXXXXX", store_dir) >= sizeof(tmp))
		return OTA_ERR_STORAGE;
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return OTA_ERR_NOT_FOUND;
	out = mkstemp(tmp);
	if (out < 0)
		goto out;
	if (ota_sha256_init(&ctx) != OTA_OK)
		goto out;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (ota_sha256_update(&ctx, buf, (size_t)n) != OTA_OK ||
		    write(out, buf, (size_t)n) != n) {
			ota_sha256_abort(&ctx);
			goto out;
		}
	}
	if (n < 0 || ota_sha256_final(&ctx, digest) != OTA_OK) {
		ota_sha256_abort(&ctx);
		goto out;
	}
	if (fsync(out) != 0)
		goto out;
	srv_store_name_from_sha256(digest, name);
	if ((size_t)snprintf(final, sizeof(final), "%s/%s", store_dir, name) >= sizeof(final))
		goto out;
	if (rename(tmp, final) != 0)
		goto out;
	tmp[0] = '\0';
	memcpy(ret_name, name, sizeof(name));
	err = OTA_OK;
out:
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	if (err != OTA_OK && tmp[0] != '\0' && out >= 0)
		unlink(tmp);
	return err;
}
