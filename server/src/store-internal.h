/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_STORE_INTERNAL_H
#define SRV_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/err.h"

/*
 * The content-addressed image store: a directory of files named by the
 * lowercase hex SHA-256 of their content (64 characters). Names come from
 * the database and are checked here again, so a bad row can never make the
 * server open anything outside the store.
 */

/* true for exactly 64 lowercase hex characters. */
bool srv_store_name_valid(const char *name);

/* Lowercase hex of a 32-byte digest into out (65 bytes). */
void srv_store_name_from_sha256(const uint8_t sha256[32], char out[65]);

/*
 * Opens store_dir/name read-only (no symlinks) and checks that its size
 * is expected_size. OTA_OK and *ret_fd; OTA_ERR_NOT_FOUND (no such file),
 * OTA_ERR_SIZE (size differs), OTA_ERR_FORMAT (bad name), OTA_ERR_STORAGE.
 */
enum ota_err srv_store_open(const char *store_dir, const char *name, uint64_t expected_size,
			    int *ret_fd);

/*
 * Adds a file to the store (test helpers and, later, the upload path):
 * copies src while hashing it into a temporary file, then renames it to
 * its digest. Writes the name into ret_name.
 */
enum ota_err srv_store_add_file(const char *store_dir, const char *src, char ret_name[65]);

#endif
