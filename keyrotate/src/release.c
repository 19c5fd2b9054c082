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

/*
 * The image at path through sha (and into out when out >= 0, at out's
 * offset): its size on OTA_OK, or the error with a message. The caller
 * finishes or aborts sha.
 */
static enum ota_err image_stream(const char *path, int out, struct ota_sha256_ctx *sha,
				 uint64_t *ret_size, struct kr_diag *diag)
{
	struct kr_stream_result got;
	enum ota_err err;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kr_fail(diag, OTA_ERR_STORAGE, "cannot open image %s: %s", path,
			       strerror(errno));
	err = kr_stream(fd, out, OTA_MAX_IMAGE_BYTES, sha, &got);
	close(fd);
	if (err == OTA_ERR_STORAGE && got.write_errno)
		err = kr_fail(diag, err, "cannot write bundle: %s", strerror(got.write_errno));
	else if (err == OTA_ERR_STORAGE)
		err = kr_fail(diag, err, "cannot read image %s: %s", path,
			      strerror(got.read_errno));
	else if (err == OTA_ERR_SIZE)
		err = kr_fail(diag, err, "image %s is larger than %llu bytes", path,
			      (unsigned long long)OTA_MAX_IMAGE_BYTES);
	else if (err == OTA_OK && got.bytes == 0)
		err = kr_fail(diag, OTA_ERR_SIZE, "image %s is empty", path);
	if (err == OTA_OK)
		*ret_size = got.bytes;
	return err;
}

enum ota_err kr_image_hash(const char *path, uint8_t ret_sha256[OTA_SHA256_BYTES],
			   uint64_t *ret_size, struct kr_diag *diag)
{
	struct ota_sha256_ctx ctx;
	uint64_t size = 0;
	if (ota_sha256_init(&ctx) != OTA_OK)
		return OTA_ERR_INTERNAL;
	enum ota_err err = image_stream(path, -1, &ctx, &size, diag);
	if (err == OTA_OK)
		err = ota_sha256_final(&ctx, ret_sha256);
	else
		ota_sha256_abort(&ctx);
	if (err == OTA_OK)
		*ret_size = size;
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

/* The header of parts, packed (heap); OTA_ERR_FORMAT over the limits. */
static enum ota_err header_make(const struct kr_bundle_parts *parts, uint8_t **ret_header,
				size_t *ret_len, struct kr_diag *diag)
{
	Fleetota__V1__BundleHeader hdr = FLEETOTA__V1__BUNDLE_HEADER__INIT;
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
	uint8_t *header = malloc(header_len);
	if (!header)
		return OTA_ERR_NOMEM;
	fleetota__v1__bundle_header__pack(&hdr, header);
	*ret_header = header;
	*ret_len = header_len;
	return OTA_OK;
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
	uint8_t prefix[OTA_BUNDLE_PREFIX_BYTES];
	uint8_t digest[OTA_SHA256_BYTES];
	struct ota_sha256_ctx ctx;
	char tmp[KR_MAX_PATH_BYTES];
	uint8_t *header = NULL;
	int in = -1, out = -1, hashing = 0, created = 0;
	uint64_t copied = 0;
	enum ota_err err;

	size_t header_len = 0;
	if ((err = header_make(parts, &header, &header_len, diag)) != OTA_OK)
		return err;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp)) {
		err = kr_fail(diag, OTA_ERR_INVALID_ARG, "path too long");
		goto out;
	}
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
	if (fchmod(out, 0644) != 0 || kr_write_all(out, prefix, sizeof(prefix)) != 0 ||
	    kr_write_all(out, header, header_len) != 0)
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

enum ota_err kr_bundle_data_offset(const struct kr_bundle_parts *parts, uint64_t *ret_offset,
				   struct kr_diag *diag)
{
	uint8_t *header = NULL;
	size_t header_len = 0;
	enum ota_err err = header_make(parts, &header, &header_len, diag);
	free(header);
	if (err == OTA_OK)
		*ret_offset = OTA_BUNDLE_PREFIX_BYTES + (uint64_t)header_len;
	return err;
}

enum ota_err kr_bundle_stage(const char *path, const char *image_path, uint64_t data_offset,
			     struct kr_bundle_stage *ret, struct kr_diag *diag)
{
	struct ota_sha256_ctx ctx;
	enum ota_err err;
	memset(ret, 0, sizeof(*ret));
	ret->fd = -1;
	if (snprintf(ret->tmp, sizeof(ret->tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(ret->tmp)) {
		ret->tmp[0] = '\0';
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "path too long");
	}
	ret->fd = mkstemp(ret->tmp);
	if (ret->fd < 0) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot create %s: %s", ret->tmp,
			      strerror(errno));
		ret->tmp[0] = '\0';
		return err;
	}
	if (fchmod(ret->fd, 0644) != 0 || lseek(ret->fd, (off_t)data_offset, SEEK_SET) < 0) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot write bundle %s: %s", path,
			      strerror(errno));
		kr_bundle_stage_release(ret);
		return err;
	}
	if (ota_sha256_init(&ctx) != OTA_OK) {
		kr_bundle_stage_release(ret);
		return OTA_ERR_INTERNAL;
	}
	err = image_stream(image_path, ret->fd, &ctx, &ret->size, diag);
	if (err == OTA_OK)
		err = ota_sha256_final(&ctx, ret->sha256);
	else
		ota_sha256_abort(&ctx);
	if (err != OTA_OK) {
		kr_bundle_stage_release(ret);
		return err;
	}
	ret->data_offset = data_offset;
	return OTA_OK;
}

enum ota_err kr_bundle_commit(struct kr_bundle_stage *st, const char *path,
			      const struct kr_bundle_parts *parts, struct kr_diag *diag)
{
	uint8_t prefix[OTA_BUNDLE_PREFIX_BYTES];
	uint8_t *header = NULL;
	size_t header_len = 0;
	enum ota_err err = header_make(parts, &header, &header_len, diag);
	if (err != OTA_OK)
		return err;
	if (OTA_BUNDLE_PREFIX_BYTES + (uint64_t)header_len != st->data_offset) {
		/*
		 * The header is not the size it was expected to be (an ECDSA
		 * signature's DER length varies): the staged image goes into
		 * a bundle of its own, a second pass checked against the digest.
		 */
		free(header);
		err = kr_bundle_write_from(path, parts, st->tmp, st->data_offset, st->sha256,
					   st->size, diag);
		kr_bundle_stage_release(st);
		return err;
	}
	ota_bundle_prefix_write((uint32_t)header_len, prefix);
	/* prefix and header in the room left before the staged image */
	int ok = lseek(st->fd, 0, SEEK_SET) == 0 &&
		 kr_write_all(st->fd, prefix, sizeof(prefix)) == 0 &&
		 kr_write_all(st->fd, header, header_len) == 0 && fsync(st->fd) == 0;
	free(header);
	int rc = close(st->fd);
	st->fd = -1;
	if (!ok || rc != 0 || rename(st->tmp, path) != 0) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot write bundle %s: %s", path,
			      strerror(errno));
		kr_bundle_stage_release(st);
		return err;
	}
	st->tmp[0] = '\0';
	return OTA_OK;
}

void kr_bundle_stage_release(struct kr_bundle_stage *st)
{
	if (!st)
		return;
	if (st->fd >= 0)
		close(st->fd);
	st->fd = -1;
	if (st->tmp[0])
		unlink(st->tmp);
	st->tmp[0] = '\0';
}
