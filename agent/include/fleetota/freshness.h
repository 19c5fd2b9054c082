/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_FRESHNESS_H
#define FLEETOTA_FRESHNESS_H

/*
 * Signed freshness on the device (docs/decisions.md, "Signed freshness").
 * The server's timestamp role signs, per product line, a short-lived
 * Timestamp naming the current release. The core keeps the newest one it
 * verified (record OTA_REC_FRESHNESS, redundant like every record), never
 * goes back to an older one, and reports, once, that the device may be
 * frozen (event OTA_EVENT_FREEZE_SUSPECTED with OTA_ERR_FROZEN) when it
 * has held no fresh Timestamp for config.freshness_max_age_s; the next
 * fresh Timestamp clears the report (OTA_EVENT_FRESHNESS_RESTORED).
 *
 * Time is the core's latest trusted time raised by the port's trusted
 * clock: a device without a trusted clock cannot tell that time passes
 * and so cannot detect a freeze.
 */

#include "fleetota/agent.h"

/*
 * Verifies a serialized Timestamp envelope against the trusted KeyList:
 * signed by a key with the timestamp role (else OTA_ERR_KEY_ROLE,
 * OTA_ERR_KEY_UNKNOWN, OTA_ERR_SIGNATURE, OTA_ERR_KEY_EXPIRED: recorded as
 * a rejection), for this device's model (OTA_ERR_HW_MISMATCH), not older
 * than the newest one kept (OTA_ERR_TIMESTAMP_ROLLBACK: changes nothing)
 * and fresh at the trusted time (OTA_ERR_EXPIRED). The last two are only
 * logged: that is what a frozen or replaying server serves, and the
 * freeze report is its signal. A verified Timestamp newer than the kept
 * one is kept even when stale (its expires_at then dates the freeze);
 * only a fresh one (OTA_OK) closes an open freeze report. One issued more
 * than OTA_TIMESTAMP_MAX_SKEW_S after the port's trusted clock is
 * OTA_ERR_EXPIRED (a rejection). The order is per timestamp key: a
 * Timestamp by another key of the role (after a rotation) is not compared
 * with the kept one. A Timestamp never raises the latest trusted time (its
 * key is online).
 */
enum ota_err ota_agent_timestamp(struct ota_agent *agent, const uint8_t *timestamp, size_t len);

/*
 * Judges freshness now: OTA_ERR_FROZEN while the device has held no fresh
 * Timestamp for freshness_max_age_s (the report is opened, with its event,
 * the first time), else OTA_OK (also when detection is off or no trusted
 * time is known). A device that never verified one counts from its first
 * check.
 */
enum ota_err ota_agent_freshness_check(struct ota_agent *agent);

/* A snapshot of the persisted freshness (zeros before any Timestamp). */
enum ota_err ota_agent_freshness(struct ota_agent *agent, struct ota_freshness *ret_freshness);

#endif
