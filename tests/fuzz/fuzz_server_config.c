/* SPDX-License-Identifier: Apache-2.0 */
/* ota-server config parsing (no environment). */
#include <stdint.h>
#include <stdlib.h>

#include "config-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct srv_config *config = NULL;
	char err[SRV_CONFIG_ERR_BYTES];

	if (srv_config_parse((const char *)data, size, false, &config, err) == OTA_OK)
		srv_config_free(config);
	return 0;
}
