/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_DECRYPT_INTERNAL_H
#define OTA_DECRYPT_INTERNAL_H

#include "fleetota/decrypt.h"
#include "fleetota/port.h"
#include "ota.pb-c.h"
#include "text-internal.h"

/*
 * The install's hook (agent.c, install_begin, after the manifest is
 * verified and before anything is stored): a plain manifest leaves ret
 * off and is OTA_OK. An encrypted one: OTA_ERR_UNSUPPORTED (also a delta,
 * or a port without key_unwrap), OTA_ERR_NOT_RECIPIENT (no entry for a
 * key the port holds), OTA_ERR_KEY_UNWRAP (the entry does not unwrap, or
 * unwraps to a key that is not the artifact's), OTA_ERR_KEY_ACCESS (the port
 * cannot use its key store: token, login, PIN), else ret open at chunk 0
 * with the key inside the cipher and wiped everywhere else. detail says why.
 */
enum ota_err ota_decrypt_prepare(const struct ota_port *port, const Fleetota__V1__Manifest *m,
				 struct ota_decrypt *ret, struct ota_text *detail);

#endif
