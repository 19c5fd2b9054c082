/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_ERR_H
#define FLEETOTA_ERR_H

/*
 * The one error enum of fleetota. Append-only: a number is never reused or
 * renumbered, because the names travel in reports, logs and the REST API.
 * The first block is the public contract of DESIGN.md section 6.
 */
enum ota_err {
	OTA_OK = 0,
	OTA_ERR_SIGNATURE = 1,
	OTA_ERR_KEY_UNKNOWN = 2,
	OTA_ERR_KEY_EXPIRED = 3,
	OTA_ERR_KEYLIST_ROLLBACK = 4,
	OTA_ERR_ROOT_CHAIN = 5,
	OTA_ERR_THRESHOLD = 6,
	OTA_ERR_HASH = 7,
	OTA_ERR_SIZE = 8,
	OTA_ERR_HW_MISMATCH = 9,
	OTA_ERR_EXPIRED = 10,
	OTA_ERR_MIN_VERSION = 11,
	OTA_ERR_ROLLBACK = 12,
	OTA_ERR_DOWNGRADE = 13,
	OTA_ERR_FORMAT = 14,
	OTA_ERR_TRANSPORT = 15,
	OTA_ERR_PIN = 16,
	OTA_ERR_TIMEOUT = 17,
	OTA_ERR_STORAGE = 18,
	OTA_ERR_SELFTEST = 19,
	/* internal, not part of the wire contract but stable once added */
	OTA_ERR_NOMEM = 20,
	OTA_ERR_INVALID_ARG = 21,
	OTA_ERR_INTERNAL = 22,
	OTA_ERR_NOT_FOUND = 23,
	OTA_ERR_BUSY = 24,
	OTA_ERR_CONSENT = 25,
	/* signed freshness (docs/decisions.md) */
	OTA_ERR_KEY_ROLE = 26,
	OTA_ERR_FROZEN = 27,
	OTA_ERR_TIMESTAMP_ROLLBACK = 28,
	/* encrypted images (docs/formats.md) */
	OTA_ERR_NOT_RECIPIENT = 29,
	OTA_ERR_KEY_UNWRAP = 30,
	OTA_ERR_DECRYPT = 31,
	OTA_ERR_UNSUPPORTED = 32,
	/* a delta's base is not the image this device runs (refused before download) */
	OTA_ERR_DELTA_BASE = 33,
	/* a delta this device cannot apply (algorithm, chunk size, no mapped slot) */
	OTA_ERR_DELTA_UNSUPPORTED = 34,
	/* the device's recipient key store (PKCS#11 token, TPM) cannot be used: wrong PIN, no token */
	OTA_ERR_KEY_ACCESS = 35,
	OTA__ERR_COUNT
};

/* Stable name ("OTA_ERR_HASH"); "OTA_ERR_UNKNOWN" for values out of range. */
const char *ota_err_name(enum ota_err err);

/* One sentence for people; never NULL. */
const char *ota_err_describe(enum ota_err err);

/*
 * Parses a stable name back. Returns OTA_OK and writes *ret_err, or
 * OTA_ERR_NOT_FOUND for a name that is not one of ours.
 */
enum ota_err ota_err_from_name(const char *name, enum ota_err *ret_err);

#endif
