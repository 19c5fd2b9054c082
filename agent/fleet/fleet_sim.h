/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEET_SIM_H
#define FLEET_SIM_H

/*
 * ota-fleet-sim internals: many devices in one process, each with its own
 * certificate identity, its own file-backed slots (the Linux port), the
 * agent core, its own MQTT session (Paho async) and the HTTPS delivery
 * client of agent/port/linux.
 */

#include <stdbool.h>
#include <stdlib.h>

#define FLEET_PATH_MAX 1024u

struct fleet_ca;

/* Loads PKI_DIR/device-ca.{crt,key}; NULL when missing or unreadable. */
struct fleet_ca *fleet_ca_load(const char *pki_dir);
void fleet_ca_free(struct fleet_ca *ca);

/*
 * Makes PKI_DIR/devices/ID.{key,crt} (P-256, CN = ID, clientAuth, signed
 * by the device CA) unless both exist. 0 on success, -1 on failure.
 */
int fleet_cert_issue(struct fleet_ca *ca, const char *pki_dir, const char *device_id);

#endif
