/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_STORE_INTERNAL_H
#define SRV_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"
#include "srv-limits.h"

/*
 * The content-addressed image store: a directory of files named by the
 * lowercase hex SHA-256 of their content (64 characters). Names come from
 * the database and are checked here again, so a bad row can never make the
 * server open anything outside the store.
 */

/* true for exactly 64 lowercase hex characters. */
bool srv_store_name_valid(const char *name);

/* Lowercase hex of a 32-byte digest into out (65 bytes). */
void srv_store_name_from_sha256(const uint8_t sha256[OTA_SHA256_BYTES],
				char out[SRV_SHA256_HEX_BYTES]);

/*
 * Opens store_dir/name read-only (no symlinks) and checks that its size
 * is expected_size. OTA_OK and *ret_fd; OTA_ERR_NOT_FOUND (no such file),
 * OTA_ERR_SIZE (size differs), OTA_ERR_FORMAT (bad name), OTA_ERR_STORAGE.
 */
enum ota_err srv_store_open(const char *store_dir, const char *name, uint64_t expected_size,
			    int *ret_fd);

/*
 * Adds a file to the store (test helpers):
 * copies src while hashing it into a temporary file, then renames it to
 * its digest. Writes the name into ret_name.
 */
enum ota_err srv_store_add_file(const char *store_dir, const char *src,
				char ret_name[SRV_SHA256_HEX_BYTES]);

/*
 * A store writer: a temporary file in the store that data is appended to
 * (and hashed) piece by piece, so a caller can bound each write; commit
 * renames it to its digest. Uploads use it (the REST API).
 * srv_store_writer_new: OTA_OK and *ret_w; OTA_ERR_NOMEM, OTA_ERR_STORAGE.
 * srv_store_writer_write: OTA_OK; OTA_ERR_STORAGE.
 * srv_store_writer_commit: when expected_sha256 is not NULL and differs
 * from the digest of what was written, OTA_ERR_HASH and nothing is stored;
 * otherwise fsyncs, renames the file to its digest (writes the digest to
 * ret_sha256 if not NULL, the name to ret_name) and returns OTA_OK;
 * OTA_ERR_STORAGE. A writer is committed at most once.
 * srv_store_writer_free: removes the temporary file unless committed;
 * NULL is fine.
 */
struct srv_store_writer;
enum ota_err srv_store_writer_new(const char *store_dir, struct srv_store_writer **ret_w);
enum ota_err srv_store_writer_write(struct srv_store_writer *w, const uint8_t *data, size_t len);
enum ota_err srv_store_writer_commit(struct srv_store_writer *w,
				     const uint8_t expected_sha256[OTA_SHA256_BYTES],
				     uint8_t ret_sha256[OTA_SHA256_BYTES],
				     char ret_name[SRV_SHA256_HEX_BYTES]);
void srv_store_writer_free(struct srv_store_writer *w);

#endif
