/* SPDX-License-Identifier: Apache-2.0 */
/* `ota-agent run`: not built yet (issue 5, "Agent online"). */
#include <stdio.h>

#include "ota_agent_cli.h"

int ota_agent_run(struct ota_agent *agent, const struct ota_config *config,
		  struct ota_linux_port *port)
{
	(void)agent;
	(void)config;
	(void)port;
	fprintf(stderr, "ota-agent: run is not available in this build\n");
	return 2;
}
