/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_DELTA_INTERNAL_H
#define FLEETOTA_DELTA_INTERNAL_H

/*
 * The delta steps of an install (agent/src/delta_install.c), called from
 * the install path of agent.c. They decide and report (error + detail);
 * agent.c records the outcome, erases the slot and persists the state
 * exactly as for a full image.
 */

#include "fleetota/agent.h"
#include "ota.pb-c.h"
#include "text-internal.h"

/*
 * Step 2 for a manifest with a delta, after the full-image checks: the
 * base is the running image (OTA_ERR_DELTA_BASE), and this device can
 * apply the encoding (OTA_ERR_DELTA_UNSUPPORTED). Nothing is changed.
 */
enum ota_err ota_delta_install_check(const struct ota_agent *agent, const Fleetota__V1__Manifest *m,
				     struct ota_text *detail);

/*
 * Opens the delta part of agent->install (already zeroed, slot set): maps
 * the running slot, opens the applier; install.size becomes the payload's.
 */
enum ota_err ota_delta_install_open(struct ota_agent *agent, const Fleetota__V1__Manifest *m);

/* Payload bytes: hashed, decoded; the final image is written and hashed. */
enum ota_err ota_delta_install_write(struct ota_agent *agent, const void *chunk, size_t len,
				     struct ota_text *detail);

/*
 * At finish, after the payload's size checked: the payload's hash
 * (OTA_ERR_HASH) and a complete final image (OTA_ERR_SIZE).
 */
enum ota_err ota_delta_install_finish(struct ota_agent *agent, struct ota_text *detail);

/* Ends the delta part (hash, applier, mapping). Safe when none runs. */
void ota_delta_install_close(struct ota_agent *agent);

#endif
