/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "fleetota/crypto.h"
#include "kr.h"

static int string_ok(const char *s)
{
	return s && *s && strlen(s) <= OTA_MAX_STRING_BYTES;
}

enum ota_err kr_image_hash(const char *path, uint8_t ret_sha256[OTA_SHA256_BYTES],
			   uint64_t *ret_size, struct kr_diag *diag)
{
	struct ota_sha256_ctx ctx;
	struct kr_stream_result got;
	enum ota_err err;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kr_fail(diag, OTA_ERR_STORAGE, "cannot open image %s: %s", path,
			       strerror(errno));
	if (ota_sha256_init(&ctx) != OTA_OK) {
		close(fd);
		return OTA_ERR_INTERNAL;
	}
	err = kr_stream(fd, -1, OTA_MAX_IMAGE_BYTES, &ctx, &got);
	close(fd);
	if (err == OTA_ERR_STORAGE)
		err = kr_fail(diag, err, "cannot read image %s: %s", path,
			      strerror(got.read_errno));
	else if (err == OTA_ERR_SIZE)
		err = kr_fail(diag, err, "image %s is larger than %llu bytes", path,
			      (unsigned long long)OTA_MAX_IMAGE_BYTES);
	else if (err == OTA_OK && got.bytes == 0)
		err = kr_fail(diag, OTA_ERR_SIZE, "image %s is empty", path);
	if (err == OTA_OK)
		err = ota_sha256_final(&ctx, ret_sha256);
	else
		ota_sha256_abort(&ctx);
	if (err == OTA_OK)
		*ret_size = got.bytes;
	return err;
}

enum ota_err kr_manifest_build(const struct kr_manifest_spec *spec,
			       const uint8_t sha256[OTA_SHA256_BYTES], uint64_t size,
			       uint8_t **ret_body, size_t *ret_len, struct kr_diag *diag)
{
	Fleetota__V1__Manifest m = FLEETOTA__V1__MANIFEST__INIT;
	Fleetota__V1__ImageInfo image = FLEETOTA__V1__IMAGE_INFO__INIT;

	if (!string_ok(spec->product))
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "--product is required (1..%u bytes)",
			       OTA_MAX_STRING_BYTES);
	if (!string_ok(spec->version))
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "--version is required (1..%u bytes)",
			       OTA_MAX_STRING_BYTES);
	if (spec->n_hw_revisions > OTA_MAX_HW_REVISIONS)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "more than %u hardware revisions",
			       OTA_MAX_HW_REVISIONS);
	for (size_t i = 0; i < spec->n_hw_revisions; i++) {
		if (!string_ok(spec->hw_revisions[i]))
			return kr_fail(diag, OTA_ERR_INVALID_ARG, "bad hardware revision");
	}
	if (spec->image_name && strlen(spec->image_name) > OTA_MAX_STRING_BYTES)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "image name too long");
	if ((spec->fixes_version_code_max || spec->advisory) && !spec->is_security_update)
		return kr_fail(diag, OTA_ERR_INVALID_ARG,
			       "--fixes and --advisory describe a --security-update");
	if (spec->fixes_version_code_max &&
	    (spec->fixes_version_code_min > spec->fixes_version_code_max ||
	     spec->fixes_version_code_max >= spec->version_code))
		return kr_fail(diag, OTA_ERR_INVALID_ARG,
			       "--fixes: MIN <= MAX < the release's version code");
	if (spec->advisory && !string_ok(spec->advisory))
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "--advisory: 1..%u bytes",
			       OTA_MAX_STRING_BYTES);
	if (spec->expires_at && spec->expires_at <= spec->issued_at)
		return kr_fail(diag, OTA_ERR_INVALID_ARG,
			       "the manifest would expire before it is issued");
	if (size == 0 || size > OTA_MAX_IMAGE_BYTES)
		return kr_fail(diag, OTA_ERR_SIZE, "image size %llu out of range",
			       (unsigned long long)size);

	image.sha256.data = (uint8_t *)sha256;
	image.sha256.len = OTA_SHA256_BYTES;
	image.size = size;
	image.name = (char *)(spec->image_name ? spec->image_name : "");
	m.sequence = spec->sequence;
	m.product = (char *)spec->product;
	m.hw_revisions = (char **)spec->hw_revisions;
	m.n_hw_revisions = spec->n_hw_revisions;
	m.version = (char *)spec->version;
	m.version_code = spec->version_code;
	m.security_counter = spec->security_counter;
	m.min_installed_version = spec->min_installed_version;
	m.allow_downgrade = spec->allow_downgrade ? 1 : 0;
	m.is_security_update = spec->is_security_update ? 1 : 0;
	m.fixes_version_code_min = spec->fixes_version_code_min;
	m.fixes_version_code_max = spec->fixes_version_code_max;
	m.advisory = (char *)(spec->advisory ? spec->advisory : "");
	m.issued_at = spec->issued_at;
	m.expires_at = spec->expires_at;
	m.image = &image;
	m.encryption = (Fleetota__V1__Encryption *)spec->encryption;
	m.delta = (Fleetota__V1__DeltaInfo *)spec->delta;

	size_t len = fleetota__v1__manifest__get_packed_size(&m);
	if (len > OTA_MAX_BODY_BYTES)
		return kr_fail(diag, OTA_ERR_FORMAT, "manifest too large");
	uint8_t *body = malloc(len);
	if (!body)
		return OTA_ERR_NOMEM;
	fleetota__v1__manifest__pack(&m, body);
	*ret_body = body;
	*ret_len = len;
	return OTA_OK;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t put = write(fd, buf, len);
		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return -1;
		buf += put;
		len -= (size_t)put;
	}
	return 0;
}

enum ota_err kr_bundle_write(const char *path, const struct kr_bundle_parts *parts,
			     const char *image_path, const uint8_t sha256[OTA_SHA256_BYTES],
			     uint64_t size, struct kr_diag *diag)
{
	return kr_bundle_write_from(path, parts, image_path, 0, sha256, size, diag);
}

enum ota_err kr_bundle_write_from(const char *path, const struct kr_bundle_parts *parts,
				  const char *image_path, uint64_t image_offset,
				  const uint8_t sha256[OTA_SHA256_BYTES], uint64_t size,
				  struct kr_diag *diag)
{
	Fleetota__V1__BundleHeader hdr = FLEETOTA__V1__BUNDLE_HEADER__INIT;
	uint8_t prefix[OTA_BUNDLE_PREFIX_BYTES];
	uint8_t digest[OTA_SHA256_BYTES];
	struct ota_sha256_ctx ctx;
	char tmp[KR_MAX_PATH_BYTES];
	uint8_t *header = NULL;
	int in = -1, out = -1, hashing = 0, created = 0;
	uint64_t copied = 0;
	enum ota_err err;

	if (parts->n_rootlist_chain > OTA_MAX_ROOT_CHAIN)
		return kr_fail(diag, OTA_ERR_FORMAT, "more than %u RootLists in the chain",
			       OTA_MAX_ROOT_CHAIN);
	hdr.manifest = (Fleetota__V1__Signed *)parts->manifest;
	hdr.keylist = (Fleetota__V1__Signed *)parts->keylist;
	hdr.rootlist = (Fleetota__V1__Signed *)parts->rootlist;
	hdr.rootlist_chain = (Fleetota__V1__Signed **)parts->rootlist_chain;
	hdr.n_rootlist_chain = parts->n_rootlist_chain;
	size_t header_len = fleetota__v1__bundle_header__get_packed_size(&hdr);
	if (header_len == 0 || header_len > OTA_MAX_BUNDLE_HEADER_BYTES)
		return kr_fail(diag, OTA_ERR_FORMAT, "bundle header of %zu bytes over the limit",
			       header_len);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "path too long");
	header = malloc(header_len);
	if (!header) {
		err = OTA_ERR_NOMEM;
		goto out;
	}
	fleetota__v1__bundle_header__pack(&hdr, header);
	ota_bundle_prefix_write((uint32_t)header_len, prefix);

	in = open(image_path, O_RDONLY | O_CLOEXEC);
	if (in >= 0 && image_offset > 0 && lseek(in, (off_t)image_offset, SEEK_SET) < 0) {
		close(in);
		in = -1;
	}
	if (in < 0) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot open image %s: %s", image_path,
			      strerror(errno));
		goto out;
	}
	out = mkstemp(tmp);
	if (out < 0) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	created = 1;
	if (fchmod(out, 0644) != 0 || write_all(out, prefix, sizeof(prefix)) != 0 ||
	    write_all(out, header, header_len) != 0)
		goto io_error;
	if ((err = ota_sha256_init(&ctx)) != OTA_OK)
		goto out;
	hashing = 1;
	/* hashed again on the way: the bundle carries exactly what was signed */
	struct kr_stream_result got;
	err = kr_stream(in, out, size, &ctx, &got);
	copied = got.bytes;
	if (err == OTA_ERR_SIZE) {
		err = kr_fail(diag, OTA_ERR_SIZE, "image %s grew after it was hashed", image_path);
		goto out;
	}
	if (err == OTA_ERR_STORAGE) {
		errno = got.write_errno ? got.write_errno : got.read_errno;
		goto io_error;
	}
	if (err != OTA_OK)
		goto out;
	hashing = 0;
	if ((err = ota_sha256_final(&ctx, digest)) != OTA_OK)
		goto out;
	if (copied != size) {
		err = kr_fail(diag, OTA_ERR_SIZE, "image %s shrank after it was hashed",
			      image_path);
		goto out;
	}
	if (memcmp(digest, sha256, OTA_SHA256_BYTES) != 0) {
		err = kr_fail(diag, OTA_ERR_HASH, "image %s changed after it was hashed",
			      image_path);
		goto out;
	}
	if (fsync(out) != 0)
		goto io_error;
	int rc = close(out);
	out = -1;
	if (rc != 0 || rename(tmp, path) != 0)
		goto io_error;
	created = 0;
	err = OTA_OK;
	goto out;
io_error:
	err = kr_fail(diag, OTA_ERR_STORAGE, "cannot write bundle %s: %s", path, strerror(errno));
out:
	if (hashing)
		ota_sha256_abort(&ctx);
	if (out >= 0)
		close(out);
	if (created)
		unlink(tmp);
	if (in >= 0)
		close(in);
	free(header);
	return err;
}
