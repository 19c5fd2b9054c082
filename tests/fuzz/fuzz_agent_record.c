/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's persisted records: the frame of one stored copy (record id,
 * sequence, CRC) and, inside it or alone, the state, counter, event,
 * boot and freshness records. Whatever decodes must encode back to the
 * same bytes.
 */
#include <stdint.h>
#include <string.h>

#include "fleetota/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_equal(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
	if (a_len != b_len || memcmp(a, b, a_len) != 0)
		__builtin_trap();
}

/* The records the core frames itself (envelopes are fuzzed by fuzz_envelope). */
static void payload_round_trip(const uint8_t *data, size_t size)
{
	struct ota_agent_state state;
	struct ota_event event;
	struct ota_boot_record boot;
	struct ota_freshness fresh;
	uint64_t counter = 0;
	uint8_t again[OTA_AGENT_RECORD_BYTES];

	if (ota_state_decode(data, size, &state) == OTA_OK)
		must_equal(again, ota_state_encode(&state, again, sizeof(again)), data, size);
	if (ota_event_decode(data, size, &event) == OTA_OK)
		must_equal(again, ota_event_encode(&event, again, sizeof(again)), data, size);
	if (ota_boot_decode(data, size, &boot) == OTA_OK)
		must_equal(again, ota_boot_encode(&boot, again, sizeof(again)), data, size);
	if (ota_freshness_decode(data, size, &fresh) == OTA_OK)
		must_equal(again, ota_freshness_encode(&fresh, again, sizeof(again)), data, size);
	if (ota_counter_decode(data, size, &counter) == OTA_OK)
		must_equal(again, ota_counter_encode(counter, again, sizeof(again)), data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t sealed[OTA_RECORD_COPY_MAX_BYTES];
	struct ota_record_copy copy;

	payload_round_trip(data, size);
	if (ota_record_copy_decode(data, size, &copy) != OTA_OK)
		return 0;
	/* the payload lies inside the input, right after the header */
	if (copy.payload != data + OTA_RECORD_COPY_HEADER_BYTES ||
	    copy.payload_len + OTA_RECORD_COPY_OVERHEAD != size)
		__builtin_trap();
	memcpy(sealed + OTA_RECORD_COPY_HEADER_BYTES, copy.payload, copy.payload_len);
	size_t len =
		ota_record_copy_seal(copy.rec, copy.seq, sealed, copy.payload_len, sizeof(sealed));
	must_equal(sealed, len, data, size);
	payload_round_trip(copy.payload, copy.payload_len);
	return 0;
}
