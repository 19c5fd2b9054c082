/* SPDX-License-Identifier: Apache-2.0 */
/*
 * StatusReport decoding as the server does it. Input: one byte choosing a
 * topic, then the payload.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mem[SRV_REPORT_ARENA_BYTES];
	static const char *const topics[] = {
		"fleetota/v1/dev-1/status",
		"fleetota/v1/dev-2/status",
		"fleetota/v1//status",
		"fleetota/v1/../status",
	};
	struct ota_arena arena;
	Fleetota__V1__StatusReport *report = NULL;
	char device[SRV_MAX_DEVICE_ID + 1];

	if (size < 1)
		return 0;
	ota_arena_init(&arena, mem, sizeof(mem));
	if (srv_report_decode(data + 1, size - 1, topics[data[0] % 4], &arena, &report, device) ==
	    OTA_OK) {
		/* Touch what the server stores. */
		volatile size_t sink = 0;

		for (size_t i = 0; i < report->n_events; i++)
			sink += strlen(report->events[i]->detail);
		sink += strlen(report->version) + strlen(device);
		(void)sink;
	}
	return 0;
}
