/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The online install flow, shared by `ota-agent run`/`fetch` (run.c) and
 * the fleet simulator: manifest first (KeyList retry on an unknown key),
 * the image resumed with Range and retried, key and root list updates,
 * boot and self-test/confirm, and the StatusReport. Every decision is the
 * core's; the caller plugs in how reports leave and which faults it injects.
 */
#ifndef OTA_ONLINE_H
#define OTA_ONLINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleetota/agent.h"
#include "ota.pb-c.h"
#include "ota_https.h"
#include "ota_linux.h"

#define OTA_ONLINE_ARTIFACT_MAX 128u

/* What the flow tells the caller (statistics); err is the outcome's error. */
enum ota_online_note {
	OTA_ONLINE_CONFIRMED,
	OTA_ONLINE_REVERTED,
	OTA_ONLINE_REJECTED,
	OTA_ONLINE_FAILED,
	OTA_ONLINE_KEYLIST_UPDATED,
	OTA_ONLINE_DOWNLOAD_START,
	OTA_ONLINE_DOWNLOAD_END,
};

struct ota_online {
	struct ota_agent *agent;
	const struct ota_config *config;
	struct ota_https *https;
	const volatile sig_atomic_t *stop; /* set by a signal handler */
	bool selftest; /* self-test on trial; without it being up confirms */
	bool quiet; /* no retry messages on stderr */
	bool stop_aborts; /* a stop request ends a running download at once */
	/* fault injection (simulator) */
	bool power_cut; /* the power goes out once half way through the image */
	unsigned slow_rate; /* download bytes per second, 0: as fast as it comes */
	uint32_t progress_permille;
	char artifact[OTA_ONLINE_ARTIFACT_MAX + 1];
	char campaign[OTA_ONLINE_ARTIFACT_MAX + 1];

	void *arg; /* for the hooks */
	/* the HTTPS client is ready (NULL: always) */
	enum ota_err (*https_ready)(void *arg);
	/* a report is due: false to send none, else the next seq in *seq */
	bool (*report_begin)(void *arg, const struct ota_agent_status *st, uint64_t *seq);
	/* a packed StatusReport */
	void (*report_send)(void *arg, const uint8_t *buf, size_t len);
	/* statistics (NULL: none) */
	void (*note)(void *arg, enum ota_online_note note, enum ota_err err);
	/* after a power cut: the device boots again (required with power_cut) */
	void (*power_cycle)(void *arg);
};

/* Sends a StatusReport in state (through the hooks). */
void ota_online_report(struct ota_online *o, Fleetota__V1__DeviceState state);

/* The state an idle report shows for the core's phase. */
Fleetota__V1__DeviceState ota_online_idle_state(const struct ota_agent *agent);

/* Reboot, boot step, self-test (or confirm); OTA_OK once confirmed. */
enum ota_err ota_online_boot_and_confirm(struct ota_online *o);

/* A restart left an update pending or on trial: finish what was started. */
void ota_online_resume(struct ota_online *o);

/* Fetches and applies the RootList and/or the KeyList, reporting each. */
void ota_online_update_lists(struct ota_online *o, bool rootlist, bool keylist);

/* One online install of artifact (sets o->artifact, progress). */
enum ota_err ota_online_install(struct ota_online *o, const char *artifact);

#endif
