/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's `key = value` config parser. */
#include <stdint.h>

#include "ota_linux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ota_config config;
	char err[OTA_CONFIG_ERR_BYTES];
	(void)ota_config_parse((const char *)data, size, &config, err);
	return 0;
}
