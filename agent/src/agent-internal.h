/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_AGENT_INTERNAL_H
#define FLEETOTA_AGENT_INTERNAL_H

/*
 * What agent.c lends the other modules of the core (freshness.c): its
 * redundant records, event log, state, trust anchors and trusted time,
 * so a module built on them needs no second copy of that machinery.
 */

#include "fleetota/agent.h"
#include "fleetota/trust.h"

/* The newest valid copy of rec (OTA_ERR_NOT_FOUND: none; STORAGE: none valid). */
enum ota_err ota_core_record_read(struct ota_agent *agent, enum ota_record rec, uint8_t *buf,
				  size_t cap, struct ota_record_copy *ret_copy);
/* Stores the payload at buf + OTA_RECORD_COPY_HEADER_BYTES as rec (0 length: did not fit). */
enum ota_err ota_core_record_store(struct ota_agent *agent, enum ota_record rec, uint8_t *buf,
				   size_t cap, size_t payload_len);
/* Appends an event; the caller's ota_core_state_store(next) persists its number. */
enum ota_err ota_core_event(struct ota_agent *agent, struct ota_agent_state *next,
			    enum ota_event_kind kind, enum ota_err error, const char *detail);
enum ota_err ota_core_state_store(struct ota_agent *agent, const struct ota_agent_state *next);
/* Opens arena on the work area and parses the trusted KeyList into it (device usable). */
enum ota_err ota_core_trust(struct ota_agent *agent, struct ota_arena *arena,
			    Fleetota__V1__KeyList **ret_kl);
/* The latest trusted time, raised by the port's trusted clock. */
uint64_t ota_core_now(struct ota_agent *agent);
/* true and *ret_now when the port's clock is trusted now. */
bool ota_core_clock(struct ota_agent *agent, uint64_t *ret_now);
/* A rejection: event, last_error, log line. Returns err. */
enum ota_err ota_core_reject(struct ota_agent *agent, enum ota_err err, const char *detail);
void ota_core_log(struct ota_agent *agent, enum ota_log_level level, const char *msg);

#endif
