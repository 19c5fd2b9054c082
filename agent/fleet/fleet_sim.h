/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEET_SIM_H
#define FLEET_SIM_H

/*
 * ota-fleet-sim internals: many devices in one process, each with its own
 * certificate identity, its own file-backed slots (the Linux port), the
 * agent core, its own MQTT session (libmosquitto on one event loop) and
 * the HTTPS delivery client of agent/port/linux.
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

/*
 * The factory's golden image (fleet_golden.c): the files of a provisioned
 * device's state directory in memory (at most 256 files, 64 MiB), and
 * DIR made as their copy (through DIR.golden-tmp and a rename, without
 * fsync). fleet_golden_clone returns 0, or -1 with errno.
 */
struct fleet_golden;
struct fleet_golden *fleet_golden_load(const char *dir);
void fleet_golden_free(struct fleet_golden *g);
int fleet_golden_clone(const struct fleet_golden *g, const char *dir);

/*
 * File descriptors (fleet_fds.c). fleet_fds_raise lifts the soft
 * RLIMIT_NOFILE to the hard one and returns the limit now in force;
 * fleet_fds_limit returns it without a change (0: unknown, ULONG_MAX: none).
 * fleet_fds_open counts the descriptors open now (0 if /proc cannot be
 * read). fleet_fds_exhausted is true when this process cannot open one
 * more (EMFILE, or ENFILE for the whole system).
 */
unsigned long fleet_fds_raise(void);
unsigned long fleet_fds_limit(void);
unsigned long fleet_fds_open(void);
bool fleet_fds_exhausted(void);

#endif
