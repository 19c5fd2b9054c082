/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_SIM_H
#define OTA_SIM_H

/*
 * The simulator port: slots and trusted storage in memory, with power-cut
 * injection in the spirit of MCUboot's simulator. Every mutating storage
 * operation (slot write, erase, sync, record copy write) is numbered from
 * 1; with ota_sim_cut_at(sim, N) the Nth one is interrupted: a slot write
 * or erase is torn (its first half lands), a record copy is torn (the
 * first half of its new bytes over the old ones), and from then on every
 * operation fails with OTA_ERR_STORAGE until ota_sim_power_on().
 *
 * Slots sit behind a write-back cache: a slot write reaches the "disk"
 * only at that slot's next slot_sync (erase is durable). At a cut every
 * byte written since the slot's last sync is lost (OTA_SIM_CACHE_DROP,
 * the default) or, with OTA_SIM_CACHE_TEAR, the first half of that range
 * lands and the rest is lost. Record copy writes are durable on return
 * (the port contract). Used by the agent's unit tests and fuzz target.
 */

#include <stdbool.h>
#include <stdint.h>

#include "fleetota/port.h"

struct ota_sim;

/* What a cut does to slot bytes written since the slot's last sync. */
enum ota_sim_cache {
	OTA_SIM_CACHE_DROP = 0, /* all lost */
	OTA_SIM_CACHE_TEAR = 1, /* the first half of the unsynced range lands */
};

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
/*
 * The port's key_unwrap operation (fleetota/port.h) answers through unwrap
 * (the test holds the device's recipient keys); without one every entry
 * is OTA_ERR_NOT_FOUND, so an encrypted image is OTA_ERR_NOT_RECIPIENT.
 */
typedef enum ota_err (*ota_sim_unwrap_fn)(void *arg, const struct ota_key_unwrap_request *req,
					  uint8_t ret_key[OTA_AES256_KEY_BYTES]);
void ota_sim_set_key_unwrap(struct ota_sim *sim, ota_sim_unwrap_fn unwrap, void *arg);
/* Reboot requests seen. */
unsigned ota_sim_reboots(const struct ota_sim *sim);
/*
 * The delta base's mappings: slot_map calls, slot_map_advise calls and
 * those of them that broke the contract (slot not mapped, range not in
 * the mapping), and the slots mapped now (a bit each).
 */
struct ota_sim_map_stats {
	unsigned maps;
	unsigned advises;
	unsigned advise_misuses;
	uint8_t mapped;
};
void ota_sim_map_stats(const struct ota_sim *sim, struct ota_sim_map_stats *ret);
/* The health hook's answer: the application's health and unrequested boots. */
void ota_sim_set_health(struct ota_sim *sim, uint32_t permille, uint64_t unrequested_boots);

/* Direct slot access for tests (no fault counting): what reads see. */
uint8_t *ota_sim_slot(struct ota_sim *sim, unsigned slot);
/* Rot at rest: flips bits of one durable byte of a slot. */
void ota_sim_slot_damage(struct ota_sim *sim, unsigned slot, uint64_t off, uint8_t xor_mask);
void ota_sim_set_cache(struct ota_sim *sim, enum ota_sim_cache mode);

/* Direct access to one stored copy of a record (NULL when absent). */
uint8_t *ota_sim_record(struct ota_sim *sim, enum ota_record rec, unsigned copy, size_t *ret_len);
/* Removes one copy of a record, as if its storage was wiped. */
void ota_sim_record_delete(struct ota_sim *sim, enum ota_record rec, unsigned copy);

#endif
