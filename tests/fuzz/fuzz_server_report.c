/* SPDX-License-Identifier: Apache-2.0 */
/*
 * StatusReport decoding as the server does it, then what the ingest does
 * with a valid one: its JSON for report_ingest() and the coalescing of two
 * reports. Input: one byte choosing a topic, then the payload.
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
		struct srv_report_doc held = {0}, doc;

		if (srv_report_doc_new(report, data + 1, size - 1, &held) == OTA_OK &&
		    srv_report_doc_new(report, data + 1, size - 1, &doc) == OTA_OK) {
			doc.seq ^= 1; /* either side may be the newer */
			if (srv_report_merge(&held, &doc) != OTA_OK)
				srv_report_doc_clear(&doc);
		}
		srv_report_doc_clear(&held);
	}
	return 0;
}
