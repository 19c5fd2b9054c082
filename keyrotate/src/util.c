/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kr.h"

enum ota_err kr_fail(struct kr_diag *diag, enum ota_err err, const char *fmt, ...)
{
	if (diag) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
		va_end(ap);
	}
	return err;
}

enum ota_err kr_file_read(const char *path, size_t max, uint8_t **ret_buf, size_t *ret_len,
			  struct kr_diag *diag)
{
	struct stat st;
	enum ota_err err = OTA_OK;
	uint8_t *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kr_fail(diag, OTA_ERR_STORAGE, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "%s is not a readable regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		err = kr_fail(diag, OTA_ERR_FORMAT, "%s: %lld bytes, more than the limit of %zu",
			      path, (long long)st.st_size, max);
		goto out;
	}
	size_t want = (size_t)st.st_size;
	buf = malloc(want ? want : 1);
	if (!buf) {
		err = OTA_ERR_NOMEM;
		goto out;
	}
	size_t have = 0;
	while (have < want) {
		ssize_t got = read(fd, buf + have, want - have);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			err = kr_fail(diag, OTA_ERR_STORAGE, "cannot read %s: %s", path,
				      got < 0 ? strerror(errno) : "file shrank");
			goto out;
		}
		have += (size_t)got;
	}
	*ret_buf = buf;
	*ret_len = have;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return err;
}

enum ota_err kr_file_write(const char *path, const uint8_t *buf, size_t len, unsigned mode,
			   struct kr_diag *diag)
{
	char tmp[KR_MAX_PATH_BYTES];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "path too long: %s", path);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return kr_fail(diag, OTA_ERR_STORAGE, "cannot create %s: %s", tmp, strerror(errno));
	enum ota_err err = OTA_OK;
	if (fchmod(fd, (mode_t)mode) != 0)
		goto fail;
	size_t done = 0;
	while (done < len) {
		ssize_t put = write(fd, buf + done, len - done);
		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			goto fail;
		done += (size_t)put;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	return OTA_OK;
fail:
	err = kr_fail(diag, OTA_ERR_STORAGE, "cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return err;
}
