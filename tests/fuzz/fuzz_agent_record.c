/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's persisted records: state, counter, event. */
#include <stdint.h>
#include <string.h>

#include "fleetota/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ota_agent_state state;
	struct ota_event event;
	uint64_t counter = 0;
	uint8_t again[OTA_AGENT_RECORD_BYTES];

	if (ota_state_decode(data, size, &state) == OTA_OK) {
		/* what decodes must encode back to the same bytes */
		size_t len = ota_state_encode(&state, again, sizeof(again));
		if (len != size || memcmp(again, data, size) != 0)
			__builtin_trap();
	}
	if (ota_event_decode(data, size, &event) == OTA_OK) {
		size_t len = ota_event_encode(&event, again, sizeof(again));
		if (len != size || memcmp(again, data, size) != 0)
			__builtin_trap();
	}
	(void)ota_counter_decode(data, size, &counter);
	return 0;
}
