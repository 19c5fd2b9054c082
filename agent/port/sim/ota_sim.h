/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_SIM_H
#define OTA_SIM_H

/*
 * The simulator port: slots and trusted storage in memory, with power-cut
 * injection in the spirit of MCUboot's simulator. Every mutating storage
 * operation (slot write, erase, sync, record write) is numbered from 1;
 * with ota_sim_cut_at(sim, N) the Nth one is interrupted: a slot write or
 * erase is torn (its first half lands), a record write does not happen
 * (records are atomic by contract), and from then on every operation
 * fails with OTA_ERR_STORAGE until ota_sim_power_on(). Used by the tests
 * and by the fleet simulator (one ota_sim per device).
 */

#include <stdbool.h>
#include <stdint.h>

#include "fleetota/port.h"

struct ota_sim;

/* A device with two slots of slot_bytes each; NULL when out of memory. */
struct ota_sim *ota_sim_new(uint64_t slot_bytes);
void ota_sim_free(struct ota_sim *sim);

/* The port to hand to ota_agent_init (valid while sim lives). */
struct ota_port ota_sim_port(struct ota_sim *sim);

/* Interrupt mutating operation number n (counted from now); 0 disarms. */
void ota_sim_cut_at(struct ota_sim *sim, uint64_t n);
/* Mutating operations since the last ota_sim_cut_at / power_on. */
uint64_t ota_sim_ops(const struct ota_sim *sim);
/* True once the cut happened. */
bool ota_sim_is_off(const struct ota_sim *sim);
/* Restores power (a restart): disarms the cut and resets the count. */
void ota_sim_power_on(struct ota_sim *sim);

/* Trusted clock: 0 = unknown. */
void ota_sim_set_clock(struct ota_sim *sim, uint64_t now);
/* Result of the self-test hook; hook absent when has_selftest is false. */
void ota_sim_set_selftest(struct ota_sim *sim, bool has_selftest, bool passes);
/* Consent hook: absent, or answering grant/refuse. */
void ota_sim_set_consent(struct ota_sim *sim, bool has_consent, bool grants);
/* Reboot requests seen. */
unsigned ota_sim_reboots(const struct ota_sim *sim);

/* Direct slot access for tests (no fault counting). */
uint8_t *ota_sim_slot(struct ota_sim *sim, unsigned slot);

#endif
