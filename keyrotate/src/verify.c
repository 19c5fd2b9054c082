/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetota/crypto.h"
#include "kr.h"

void kr_verifier_init(struct kr_verifier *v, uint64_t now)
{
	memset(v, 0, sizeof(*v));
	v->now = now;
}

void kr_verifier_release(struct kr_verifier *v)
{
	for (size_t i = 0; i < v->n_arenas; i++)
		kr_arena_release(&v->arenas[i]);
	v->n_arenas = 0;
	v->root = NULL;
	v->keylist = NULL;
}

enum ota_err kr_verifier_arena(struct kr_verifier *v, size_t cap, struct ota_arena **ret_arena)
{
	if (v->n_arenas >= sizeof(v->arenas) / sizeof(v->arenas[0]))
		return OTA_ERR_FORMAT;
	enum ota_err err = kr_arena_init(&v->arenas[v->n_arenas], cap);
	if (err != OTA_OK)
		return err;
	*ret_arena = &v->arenas[v->n_arenas++].arena;
	return OTA_OK;
}

static const char *threshold_detail(enum ota_obj_type type, const Fleetota__V1__Signed *env,
				    const Fleetota__V1__RootList *root, char *buf, size_t cap)
{
	size_t count = 0;
	if (ota_threshold_count(type, env, root->keys, root->n_keys, &count) != OTA_OK)
		count = 0;
	snprintf(buf, cap, "%zu of the %u root signatures needed", count, root->threshold);
	return buf;
}

enum ota_err kr_verify_root_anchor(struct kr_verifier *v, const Fleetota__V1__Signed *env,
				   struct kr_diag *diag)
{
	struct ota_arena *arena;
	Fleetota__V1__RootList *root = NULL;
	enum ota_err err = kr_verifier_arena(v, OTA_DECODE_ARENA_BYTES, &arena);
	if (err != OTA_OK)
		return kr_fail(diag, err, "too many objects");
	err = ota_rootlist_verify_initial(env, arena, &root);
	if (err == OTA_ERR_THRESHOLD) {
		char detail[KR_DETAIL_BYTES];
		Fleetota__V1__RootList *parsed = NULL;
		ota_arena_reset(arena);
		if (ota_rootlist_parse(env, arena, &parsed) == OTA_OK)
			threshold_detail(OTA_OBJ_ROOT, env, parsed, detail, sizeof(detail));
		else
			snprintf(detail, sizeof(detail), "not enough signatures");
		return kr_fail(diag, err, "RootList is not signed by its own threshold: %s",
			       detail);
	}
	if (err != OTA_OK)
		return kr_fail(diag, err, "RootList does not verify as a trust anchor");
	if (v->now && root->expires_at && v->now >= root->expires_at)
		return kr_fail(diag, OTA_ERR_EXPIRED, "RootList v%llu has expired",
			       (unsigned long long)root->version);
	v->root = root;
	return OTA_OK;
}

enum ota_err kr_verify_root_step(struct kr_verifier *v, const Fleetota__V1__Signed *env,
				 struct kr_diag *diag)
{
	struct ota_arena *arena;
	Fleetota__V1__RootList *next = NULL;
	if (!v->root)
		return kr_verify_root_anchor(v, env, diag);
	enum ota_err err = kr_verifier_arena(v, OTA_DECODE_ARENA_BYTES, &arena);
	if (err != OTA_OK)
		return kr_fail(diag, err, "RootList chain too long");
	err = ota_rootlist_parse(env, arena, &next);
	if (err != OTA_OK)
		return kr_fail(diag, err, "malformed RootList");
	if (next->version <= v->root->version)
		return OTA_OK; /* not newer than what is trusted: nothing to learn */
	uint64_t from = v->root->version;
	ota_arena_reset(arena);
	err = ota_rootlist_verify_next(v->root, env, v->now, arena, &next);
	if (err == OTA_ERR_ROOT_CHAIN)
		return kr_fail(diag, err,
			       "RootList is not the next step after v%llu signed by a threshold "
			       "of its keys",
			       (unsigned long long)from);
	if (err == OTA_ERR_THRESHOLD)
		return kr_fail(diag, err, "RootList is not signed by a threshold of its own keys");
	if (err != OTA_OK)
		return kr_fail(diag, err, "RootList step from v%llu rejected",
			       (unsigned long long)from);
	v->root = next;
	return OTA_OK;
}

enum ota_err kr_verify_keylist(struct kr_verifier *v, const Fleetota__V1__Signed *env,
			       struct kr_diag *diag)
{
	struct ota_arena *arena;
	Fleetota__V1__KeyList *kl = NULL;
	if (!v->root)
		return kr_fail(diag, OTA_ERR_INVALID_ARG,
			       "a trusted RootList is needed (--rootlist)");
	enum ota_err err = kr_verifier_arena(v, OTA_DECODE_ARENA_BYTES, &arena);
	if (err != OTA_OK)
		return kr_fail(diag, err, "too many objects");
	err = ota_keylist_verify(v->root, env, v->keylist_floor, v->now, arena, &kl);
	if (err == OTA_ERR_THRESHOLD) {
		char detail[KR_DETAIL_BYTES];
		return kr_fail(
			diag, err, "KeyList: %s (RootList v%llu)",
			threshold_detail(OTA_OBJ_KEYLIST, env, v->root, detail, sizeof(detail)),
			(unsigned long long)v->root->version);
	}
	if (err == OTA_ERR_KEYLIST_ROLLBACK)
		return kr_fail(diag, err, "KeyList version is not above %llu",
			       (unsigned long long)v->keylist_floor);
	if (err == OTA_ERR_EXPIRED)
		return kr_fail(diag, err, "KeyList has expired");
	if (err != OTA_OK)
		return kr_fail(diag, err, "KeyList rejected");
	v->keylist = kl;
	return OTA_OK;
}

/* The detail of a refused signature by a KeyList key, for object what. */
static enum ota_err keylist_signer_fail(const struct kr_verifier *v, enum ota_err err,
					const char *what, struct kr_diag *diag)
{
	switch (err) {
	case OTA_ERR_KEY_UNKNOWN:
		return kr_fail(diag, err, "%s is not signed by a key of KeyList v%llu", what,
			       (unsigned long long)v->keylist->version);
	case OTA_ERR_KEY_ROLE:
		return kr_fail(diag, err,
			       "%s is signed by a key of KeyList v%llu whose role may "
			       "not sign it (timestamp key vs. operational key)",
			       what, (unsigned long long)v->keylist->version);
	case OTA_ERR_SIGNATURE:
		return kr_fail(diag, err, "%s signature does not verify", what);
	case OTA_ERR_KEY_EXPIRED:
		return kr_fail(diag, err, "%s signing key is not valid at its issued_at", what);
	default:
		return kr_fail(diag, err, "%s rejected", what);
	}
}

enum ota_err kr_verify_manifest(struct kr_verifier *v, const Fleetota__V1__Signed *env,
				struct ota_arena *arena, Fleetota__V1__Manifest **ret_manifest,
				struct kr_diag *diag)
{
	Fleetota__V1__Manifest *m = NULL;
	const Fleetota__V1__PublicKey *signer = NULL;
	if (!v->keylist)
		return kr_fail(diag, OTA_ERR_INVALID_ARG,
			       "a trusted KeyList is needed (--keylist)");
	enum ota_err err = ota_manifest_verify(v->keylist, env, arena, &m, &signer);
	if (err != OTA_OK)
		return keylist_signer_fail(v, err, "manifest", diag);
	if (v->now && m->expires_at && v->now >= m->expires_at)
		return kr_fail(diag, OTA_ERR_EXPIRED, "manifest has expired");
	*ret_manifest = m;
	return OTA_OK;
}

enum ota_err kr_verify_timestamp(struct kr_verifier *v, const Fleetota__V1__Signed *env,
				 struct ota_arena *arena, Fleetota__V1__Timestamp **ret_ts,
				 struct kr_diag *diag)
{
	Fleetota__V1__Timestamp *ts = NULL;
	if (!v->keylist)
		return kr_fail(diag, OTA_ERR_INVALID_ARG,
			       "a trusted KeyList is needed (--keylist)");
	enum ota_err err = ota_timestamp_verify(v->keylist, env, arena, &ts, NULL);
	if (err != OTA_OK)
		return keylist_signer_fail(v, err, "timestamp", diag);
	if (v->now && !ota_timestamp_fresh(ts, v->now))
		return kr_fail(diag, OTA_ERR_EXPIRED, "timestamp has expired: not fresh");
	*ret_ts = ts;
	return OTA_OK;
}

/*
 * Streams fd through SHA-256; checks exact size and digest: of what
 * travels (the image, or an encrypted image's ciphertext), or with payload
 * set and a delta manifest the delta payload's (what a delta bundle
 * carries after its header).
 */
static enum ota_err image_check(int fd, const Fleetota__V1__Manifest *m, bool payload,
				const char *what, struct kr_diag *diag)
{
	bool delta = payload && m->delta;
	/* an encrypted image travels as ciphertext: its digest and size */
	const uint8_t *sha = NULL;
	uint64_t size = 0;
	ota_manifest_payload(m, &sha, &size);
	if (delta) {
		sha = m->delta->sha256.data;
		size = m->delta->size;
	}
	const char *noun = delta ? "delta" : "image";
	struct ota_sha256_ctx ctx;
	uint8_t digest[OTA_SHA256_BYTES];
	uint64_t seen = 0;
	enum ota_err err = OTA_OK;
	uint8_t *chunk = malloc(KR_IO_CHUNK);
	if (!chunk)
		return OTA_ERR_NOMEM;
	if (ota_sha256_init(&ctx) != OTA_OK) {
		free(chunk);
		return OTA_ERR_INTERNAL;
	}
	for (;;) {
		/* never ask for more than the manifest allows, plus one to see excess */
		uint64_t left = size - seen;
		size_t want = left < KR_IO_CHUNK ? (size_t)left : KR_IO_CHUNK;
		if (want == 0)
			want = 1;
		ssize_t got = read(fd, chunk, want);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			err = kr_fail(diag, OTA_ERR_STORAGE, "cannot read %s: %s", what,
				      strerror(errno));
			break;
		}
		if (got == 0)
			break;
		if (seen + (uint64_t)got > size) {
			err = kr_fail(diag, OTA_ERR_SIZE, "%s: more than the %llu %s bytes", what,
				      (unsigned long long)size, noun);
			break;
		}
		seen += (uint64_t)got;
		if ((err = ota_sha256_update(&ctx, chunk, (size_t)got)) != OTA_OK)
			break;
	}
	if (err == OTA_OK && seen != size)
		err = kr_fail(diag, OTA_ERR_SIZE, "%s: %llu %s bytes, the manifest says %llu", what,
			      (unsigned long long)seen, noun, (unsigned long long)size);
	if (err != OTA_OK) {
		ota_sha256_abort(&ctx);
	} else if ((err = ota_sha256_final(&ctx, digest)) == OTA_OK &&
		   memcmp(digest, sha, OTA_SHA256_BYTES) != 0) {
		err = kr_fail(diag, OTA_ERR_HASH, "%s: %s SHA-256 differs from the manifest's",
			      what, noun);
	}
	free(chunk);
	return err;
}

enum ota_err kr_verify_image_file(const Fleetota__V1__Manifest *manifest, const char *path,
				  struct kr_diag *diag)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kr_fail(diag, OTA_ERR_STORAGE, "cannot open %s: %s", path, strerror(errno));
	enum ota_err err = image_check(fd, manifest, false, path, diag);
	close(fd);
	return err;
}

static int read_exact(int fd, uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t got = read(fd, buf, len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		buf += got;
		len -= (size_t)got;
	}
	return 0;
}

enum ota_err kr_bundle_header_read(struct kr_verifier *v, int fd, const char *path,
				   Fleetota__V1__BundleHeader **ret_hdr, uint64_t *ret_image_offset,
				   struct kr_diag *diag)
{
	uint8_t prefix[OTA_BUNDLE_PREFIX_BYTES];
	uint32_t header_len = 0;
	uint8_t *header = NULL;
	struct ota_arena *arena = NULL;
	Fleetota__V1__BundleHeader *hdr = NULL;
	enum ota_err err;
	if (read_exact(fd, prefix, sizeof(prefix)) != 0 ||
	    ota_bundle_prefix_parse(prefix, &header_len) != OTA_OK)
		return kr_fail(diag, OTA_ERR_FORMAT, "%s: not a .otab bundle", path);
	header = malloc(header_len);
	if (!header)
		return OTA_ERR_NOMEM;
	if (read_exact(fd, header, header_len) != 0) {
		err = kr_fail(diag, OTA_ERR_FORMAT, "%s: truncated bundle header", path);
		goto out;
	}
	if ((err = kr_verifier_arena(v, KR_HEADER_ARENA_BYTES, &arena)) != OTA_OK)
		goto out;
	if (ota_bundle_header_decode(header, header_len, arena, &hdr) != OTA_OK) {
		err = kr_fail(diag, OTA_ERR_FORMAT, "%s: malformed bundle header", path);
		goto out;
	}
	*ret_hdr = hdr;
	*ret_image_offset = OTA_BUNDLE_PREFIX_BYTES + (uint64_t)header_len;
out:
	free(header);
	return err;
}

enum ota_err kr_verify_bundle_file(struct kr_verifier *v, const char *path, struct kr_diag *diag)
{
	struct ota_arena *arena = NULL;
	Fleetota__V1__BundleHeader *hdr = NULL;
	Fleetota__V1__Manifest *m = NULL;
	uint64_t image_offset = 0;
	enum ota_err err;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kr_fail(diag, OTA_ERR_STORAGE, "cannot open %s: %s", path, strerror(errno));
	if ((err = kr_bundle_header_read(v, fd, path, &hdr, &image_offset, diag)) != OTA_OK)
		goto out;
	if ((err = kr_verifier_arena(v, OTA_DECODE_ARENA_BYTES, &arena)) != OTA_OK)
		goto out;
	/* the RootLists it carries, oldest first, each a step from the trusted one */
	for (size_t i = 0; i < hdr->n_rootlist_chain; i++) {
		if ((err = kr_verify_root_step(v, hdr->rootlist_chain[i], diag)) != OTA_OK)
			goto out;
	}
	if (hdr->rootlist && (err = kr_verify_root_step(v, hdr->rootlist, diag)) != OTA_OK)
		goto out;
	if (hdr->keylist) {
		if ((err = kr_verify_keylist(v, hdr->keylist, diag)) != OTA_OK)
			goto out;
	}
	/* the manifest is verified before one image byte is read */
	if ((err = kr_verify_manifest(v, hdr->manifest, arena, &m, diag)) != OTA_OK)
		goto out;
	err = image_check(fd, m, true, path, diag);
out:
	close(fd);
	return err;
}
