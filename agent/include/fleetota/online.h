/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_ONLINE_H
#define FLEETOTA_ONLINE_H

/*
 * The online install policy of the agent core, the same on every device
 * (`ota-agent run`/`fetch`, the fleet simulator, a microcontroller port):
 * manifest first, verified by the core before one image byte is asked
 * for; on OTA_ERR_KEY_UNKNOWN one fetch of a newer KeyList and one more
 * try; the image streamed into the inactive slot and resumed from the
 * core's checkpoint (Range) after an interruption, with back-off (the
 * server's Retry-After, else 1, 2, 4, ... s, at most
 * OTA_ONLINE_MAX_BACKOFF_S) and at most download_retries resumed
 * attempts; SIZE and PIN end the download at once; trust list updates;
 * the reboot, boot step and self-test or confirm; and the StatusReport
 * of each step.
 *
 * It moves bytes only through its agent's port: the fetch and wait
 * operations of fleetota/port.h. No heap, no OS call: the caller lends a
 * work area. How reports leave (MQTT on Linux) and what is counted are
 * the caller's hooks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/agent.h"
#include "ota.pb-c.h"

/* What the policy tells the caller (statistics); err is the outcome's error. */
enum ota_online_note {
	OTA_ONLINE_CONFIRMED,
	OTA_ONLINE_REVERTED,
	OTA_ONLINE_REJECTED,
	OTA_ONLINE_FAILED,
	OTA_ONLINE_KEYLIST_UPDATED,
	OTA_ONLINE_DOWNLOAD_START,
	OTA_ONLINE_DOWNLOAD_END,
	OTA_ONLINE_RETRY, /* a download was interrupted by err and is retried */
};

struct ota_online {
	struct ota_agent *agent; /* its port's fetch/wait are the transport */
	/* identity in reports (borrowed) */
	const char *device_id;
	const char *model;
	const char *hw_revision;
	unsigned download_retries; /* resumed attempts after the first */
	bool selftest; /* self-test on trial; without it being up confirms */
	bool stop_aborts; /* a stop request ends a running download at once */
	uint8_t *work; /* OTA_ONLINE_WORK_BYTES, borrowed */
	uint32_t progress_permille;
	char artifact[OTA_ONLINE_ARTIFACT_MAX + 1];
	char campaign[OTA_ONLINE_ARTIFACT_MAX + 1];
	/*
	 * Post-install health: a confirm opens the window (the caller sets
	 * health_window_s from the firmware Notify and closes the window when
	 * it has passed, ota_online_health_close); while open, reports carry
	 * the port's health and the boots it did not ask for since the confirm.
	 */
	uint32_t health_window_s;
	bool health_open;
	uint64_t health_base; /* the port's unrequested_boots at the confirm */

	void *arg; /* for the hooks */
	/* the device is asked to stop (NULL: never) */
	bool (*stopping)(void *arg);
	/* a report is due: false to send none, else the next seq in *seq */
	bool (*report_begin)(void *arg, const struct ota_agent_status *st, uint64_t *seq);
	/* a packed StatusReport (valid during the call) */
	void (*report_send)(void *arg, const uint8_t *buf, size_t len);
	/* statistics (NULL: none) */
	void (*note)(void *arg, enum ota_online_note note, enum ota_err err);
};

/* Sends a StatusReport in state (through the hooks). */
void ota_online_report(struct ota_online *o, Fleetota__V1__DeviceState state);

/* The state an idle report shows for the core's phase. */
Fleetota__V1__DeviceState ota_online_idle_state(const struct ota_agent *agent);

/* The port's health (permille 1000 and no boots without its hook). */
void ota_online_health(const struct ota_online *o, struct ota_port_health *ret);
/* Opens the health window now (a confirm does), or closes it. */
void ota_online_health_open(struct ota_online *o);
void ota_online_health_close(struct ota_online *o);

/* Reboot, boot step, self-test (or confirm); OTA_OK once confirmed. */
enum ota_err ota_online_boot_and_confirm(struct ota_online *o);

/* A restart left an update pending or on trial: finish what was started. */
void ota_online_resume(struct ota_online *o);

/* Fetches and applies the RootList and/or the KeyList, reporting each. */
void ota_online_update_lists(struct ota_online *o, bool rootlist, bool keylist);

/*
 * Signed freshness (fleetota/freshness.h): fetches /v1/timestamp/MODEL,
 * hands it to the core, then judges freshness; reports when the freeze
 * report opens or closes. OTA_ERR_FROZEN while the device may be frozen;
 * *ret_timestamp_err (may be NULL) gets the fetch's or the Timestamp's own
 * verdict (fleetota/freshness.h).
 */
enum ota_err ota_online_freshness(struct ota_online *o, enum ota_err *ret_timestamp_err);

/*
 * One online install of artifact (sets o->artifact, progress): OTA_OK
 * once the new image is confirmed, else the error (also in the core's
 * status and event log). OTA_ERR_INVALID_ARG without a fetch operation.
 */
enum ota_err ota_online_install(struct ota_online *o, const char *artifact);

/* An install a device has queued, is running or has confirmed. */
struct ota_online_install_ref {
	const char *artifact; /* NULL or "": no install in this place */
	const char *campaign;
};

/*
 * A Notify to drop, the same on every port: one whose seq (when not 0) is
 * not newer than *last_seq (a late or repeated hint; notifications are
 * delivered at least once), or a firmware Notify for an install (same
 * artifact and campaign) among busy[0..nbusy). Advances *last_seq to a
 * newer seq either way.
 */
bool ota_online_notify_duplicate(uint64_t *last_seq, const Fleetota__V1__Notify *n,
				 const struct ota_online_install_ref *busy, size_t nbusy);

/*
 * An artifact id a device will put into a request path: 1 to
 * OTA_ONLINE_ARTIFACT_MAX characters of [A-Za-z0-9._-], not starting with '.'.
 */
bool ota_online_artifact_ok(const char *artifact);

#endif
