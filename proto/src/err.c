/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "fleetota/err.h"

struct err_entry {
	const char *name;
	const char *text;
};

static const struct err_entry err_table[OTA__ERR_COUNT] = {
	[OTA_OK] = {"OTA_OK", "success"},
	[OTA_ERR_SIGNATURE] = {"OTA_ERR_SIGNATURE", "signature missing or invalid"},
	[OTA_ERR_KEY_UNKNOWN] = {"OTA_ERR_KEY_UNKNOWN", "signed by a key that is not trusted"},
	[OTA_ERR_KEY_EXPIRED] = {"OTA_ERR_KEY_EXPIRED", "signing key outside its validity window"},
	[OTA_ERR_KEYLIST_ROLLBACK] = {"OTA_ERR_KEYLIST_ROLLBACK",
				      "key list version does not increase"},
	[OTA_ERR_ROOT_CHAIN] = {"OTA_ERR_ROOT_CHAIN",
				"root list does not chain from the trusted one"},
	[OTA_ERR_THRESHOLD] = {"OTA_ERR_THRESHOLD", "too few distinct trusted signatures"},
	[OTA_ERR_HASH] = {"OTA_ERR_HASH", "image digest differs from the manifest"},
	[OTA_ERR_SIZE] = {"OTA_ERR_SIZE", "image size differs from the manifest"},
	[OTA_ERR_HW_MISMATCH] = {"OTA_ERR_HW_MISMATCH",
				 "image is for another model or hardware revision"},
	[OTA_ERR_EXPIRED] = {"OTA_ERR_EXPIRED", "signed metadata has expired"},
	[OTA_ERR_MIN_VERSION] = {"OTA_ERR_MIN_VERSION",
				 "installed version is below the manifest's minimum"},
	[OTA_ERR_ROLLBACK] = {"OTA_ERR_ROLLBACK", "security counter below the device's counter"},
	[OTA_ERR_DOWNGRADE] = {"OTA_ERR_DOWNGRADE", "version not newer and downgrade not allowed"},
	[OTA_ERR_FORMAT] = {"OTA_ERR_FORMAT", "malformed, truncated or oversized input"},
	[OTA_ERR_TRANSPORT] = {"OTA_ERR_TRANSPORT", "network or protocol failure"},
	[OTA_ERR_PIN] = {"OTA_ERR_PIN", "server key does not match the pinned keys"},
	[OTA_ERR_TIMEOUT] = {"OTA_ERR_TIMEOUT", "operation did not finish in time"},
	[OTA_ERR_STORAGE] = {"OTA_ERR_STORAGE", "storage read, write or erase failed"},
	[OTA_ERR_SELFTEST] = {"OTA_ERR_SELFTEST", "new firmware failed its self-test"},
	[OTA_ERR_NOMEM] = {"OTA_ERR_NOMEM", "out of memory"},
	[OTA_ERR_INVALID_ARG] = {"OTA_ERR_INVALID_ARG", "invalid argument"},
	[OTA_ERR_INTERNAL] = {"OTA_ERR_INTERNAL", "internal error"},
	[OTA_ERR_NOT_FOUND] = {"OTA_ERR_NOT_FOUND", "not found"},
	[OTA_ERR_BUSY] = {"OTA_ERR_BUSY", "busy, try again later"},
	[OTA_ERR_CONSENT] = {"OTA_ERR_CONSENT", "update waits for the owner's consent"},
	[OTA_ERR_KEY_ROLE] = {"OTA_ERR_KEY_ROLE",
			      "signed by a trusted key whose role may not sign this object"},
	[OTA_ERR_FROZEN] = {"OTA_ERR_FROZEN",
			    "no fresh signed timestamp for too long: updates may be withheld"},
	[OTA_ERR_TIMESTAMP_ROLLBACK] = {"OTA_ERR_TIMESTAMP_ROLLBACK",
					"timestamp older than the newest one verified"},
	[OTA_ERR_NOT_RECIPIENT] = {"OTA_ERR_NOT_RECIPIENT",
				   "encrypted image not wrapped for a key of this device"},
	[OTA_ERR_KEY_UNWRAP] = {"OTA_ERR_KEY_UNWRAP",
				"content key does not unwrap, or is not this image's key"},
	[OTA_ERR_DECRYPT] = {"OTA_ERR_DECRYPT", "encrypted image chunk fails authentication"},
	[OTA_ERR_UNSUPPORTED] = {"OTA_ERR_UNSUPPORTED",
				 "combination or feature this build does not support"},
	[OTA_ERR_DELTA_BASE] = {"OTA_ERR_DELTA_BASE",
				"delta is made from an image this device does not run"},
	[OTA_ERR_DELTA_UNSUPPORTED] = {"OTA_ERR_DELTA_UNSUPPORTED",
				       "delta encoding or size this device cannot apply"},
	[OTA_ERR_KEY_ACCESS] = {"OTA_ERR_KEY_ACCESS",
				"device's decryption key store cannot be used (token, login, PIN)"},
};

const char *ota_err_name(enum ota_err err)
{
	if ((unsigned)err >= OTA__ERR_COUNT || !err_table[err].name)
		return "OTA_ERR_UNKNOWN";
	return err_table[err].name;
}

const char *ota_err_describe(enum ota_err err)
{
	if ((unsigned)err >= OTA__ERR_COUNT || !err_table[err].text)
		return "unknown error";
	return err_table[err].text;
}

enum ota_err ota_err_from_name(const char *name, enum ota_err *ret_err)
{
	if (!name)
		return OTA_ERR_INVALID_ARG;
	for (unsigned i = 0; i < OTA__ERR_COUNT; i++) {
		if (err_table[i].name && strcmp(err_table[i].name, name) == 0) {
			*ret_err = (enum ota_err)i;
			return OTA_OK;
		}
	}
	return OTA_ERR_NOT_FOUND;
}
