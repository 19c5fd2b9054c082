/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_AGENT_CLI_H
#define OTA_AGENT_CLI_H

#include "fleetota/agent.h"
#include "ota_linux.h"

/* `ota-agent run`: the online daemon; returns the process exit code. */
int ota_agent_run(struct ota_agent *agent, const struct ota_config *config,
		  struct ota_linux_port *port);

/* `ota-agent fetch ARTIFACT`: one online install over HTTPS, no MQTT. */
int ota_agent_fetch(struct ota_agent *agent, const struct ota_config *config,
		    struct ota_linux_port *port, const char *artifact);

/*
 * `ota-agent freshness`: fetches and verifies the product line's signed
 * Timestamp once over HTTPS and judges freshness (freshness_max_age).
 * 0 when fresh; 1 with "rejected: OTA_ERR_FROZEN: ..." while frozen.
 */
int ota_agent_freshness_once(struct ota_agent *agent, const struct ota_config *config,
			     struct ota_linux_port *port);

#endif
