/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_SIM_FAULTS_H
#define OTA_SIM_FAULTS_H

/*
 * Transport faults of the simulator (the fleet simulator's devices): a
 * wrapper around a real port's fetch operation that injects what a device
 * meets in the field, while the core's policy (fleetota/online.h) runs
 * unchanged:
 *  - power_cut: once, the power goes out half way through an image: the
 *    bytes up to the middle reach the core, nothing after, nothing is
 *    cleaned up; power_cycle(arg) then opens the core again from its
 *    records (and boots it) and the fetch answers OTA_ERR_STORAGE with
 *    ret->restarted set;
 *  - slow_rate: the image arrives at this many bytes per second;
 *  - stop: once *stop is set, a slowed download ends with
 *    OTA_ERR_TRANSPORT after its current piece.
 */

#include <signal.h>
#include <stdbool.h>

#include "fleetota/port.h"

struct ota_sim_faults {
	const struct ota_port_ops *inner_ops; /* the real transport: its fetch */
	void *inner_ctx;
	bool power_cut; /* cleared when the cut happened */
	unsigned slow_rate; /* 0: as fast as it comes */
	const volatile sig_atomic_t *stop; /* NULL: never */
	void (*power_cycle)(void *arg); /* required with power_cut */
	void *arg;
};

/* Monotonic seconds, and a sleep: the simulator's clock. */
double ota_sim_now_s(void);
void ota_sim_sleep_ms(unsigned ms);

/* The fetch operation of fleetota/port.h through the faults of f. */
enum ota_err ota_sim_faults_fetch(struct ota_sim_faults *f, const struct ota_fetch_request *req,
				  ota_port_sink_fn sink, void *sink_arg,
				  struct ota_fetch_result *ret);

#endif
