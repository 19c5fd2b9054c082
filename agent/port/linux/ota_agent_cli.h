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

#endif
