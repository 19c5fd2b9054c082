/* SPDX-License-Identifier: Apache-2.0 */
/* The persisted record formats: round trip, and strict refusal of damage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fleetota/agent.h"

static void sample_state(struct ota_agent_state *s)
{
	memset(s, 0, sizeof(*s));
	s->provisioned = true;
	s->phase = OTA_PHASE_PENDING;
	s->confirmed_slot = 0;
	s->target_slot = 1;
	s->slots[0].valid = true;
	strcpy(s->slots[0].version, "1.2.3");
	s->slots[0].version_code = 42;
	s->slots[0].security_counter = 7;
	s->slots[0].size = 123456;
	memset(s->slots[0].sha256, 0xaa, 32);
	s->staged_bytes = 99;
	s->latest_time = 1700000000;
	s->next_event_seq = 12;
	s->last_error = OTA_ERR_HASH;
	strcpy(s->last_error_detail, "detail");
}

static void test_state_round_trip(void **st)
{
	(void)st;
	struct ota_agent_state s, back;
	uint8_t buf[OTA_AGENT_RECORD_BYTES];
	sample_state(&s);
	size_t len = ota_state_encode(&s, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal(ota_state_decode(buf, len, &back), OTA_OK);
	assert_memory_equal(&back.slots, &s.slots, sizeof(s.slots));
	assert_int_equal(back.phase, OTA_PHASE_PENDING);
	assert_int_equal(back.next_event_seq, 12);
	assert_string_equal(back.last_error_detail, "detail");
	/* too small a buffer encodes nothing */
	assert_int_equal(ota_state_encode(&s, buf, len - 1), 0);
}

static void test_state_damage_refused(void **st)
{
	(void)st;
	struct ota_agent_state s, back;
	uint8_t buf[OTA_AGENT_RECORD_BYTES];
	sample_state(&s);
	size_t len = ota_state_encode(&s, buf, sizeof(buf));
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x10;
		assert_int_equal(ota_state_decode(buf, len, &back), OTA_ERR_FORMAT);
		buf[i] ^= 0x10;
	}
	assert_int_equal(ota_state_decode(buf, len - 1, &back), OTA_ERR_FORMAT);
	assert_int_equal(ota_state_decode(buf, 3, &back), OTA_ERR_FORMAT);
	assert_int_equal(ota_state_decode(NULL, 0, &back), OTA_ERR_FORMAT);
	/* a target equal to the confirmed slot while not idle is inconsistent */
	s.target_slot = 0;
	len = ota_state_encode(&s, buf, sizeof(buf));
	assert_int_equal(ota_state_decode(buf, len, &back), OTA_ERR_FORMAT);
}

static void test_counter_and_event(void **st)
{
	(void)st;
	uint8_t buf[OTA_AGENT_RECORD_BYTES];
	uint64_t counter = 0;
	size_t len = ota_counter_encode(77, buf, sizeof(buf));
	assert_int_equal(ota_counter_decode(buf, len, &counter), OTA_OK);
	assert_int_equal(counter, 77);
	buf[6] ^= 1;
	assert_int_equal(ota_counter_decode(buf, len, &counter), OTA_ERR_FORMAT);
	assert_int_equal(counter, 77); /* untouched on failure */

	struct ota_event ev = {.seq = 5, .kind = OTA_EVENT_REJECTED, .error = OTA_ERR_ROLLBACK};
	struct ota_event back;
	strcpy(ev.detail, "security counter 3 < 5");
	len = ota_event_encode(&ev, buf, sizeof(buf));
	assert_int_equal(ota_event_decode(buf, len, &back), OTA_OK);
	assert_int_equal(back.seq, 5);
	assert_int_equal(back.error, OTA_ERR_ROLLBACK);
	assert_string_equal(back.detail, "security counter 3 < 5");
	/* a state record is not an event */
	struct ota_agent_state s;
	sample_state(&s);
	len = ota_state_encode(&s, buf, sizeof(buf));
	assert_int_equal(ota_event_decode(buf, len, &back), OTA_ERR_FORMAT);
}

static void test_copy_frame(void **st)
{
	(void)st;
	uint8_t buf[OTA_RECORD_COPY_OVERHEAD + 16];
	struct ota_record_copy c;
	memcpy(buf + OTA_RECORD_COPY_HEADER_BYTES, "payload!", 8);
	size_t len =
		ota_record_copy_seal(OTA_REC_KEYLIST, 0x0102030405060708u, buf, 8, sizeof(buf));
	assert_int_equal(len, 8 + OTA_RECORD_COPY_OVERHEAD);
	/* the layout of docs/formats.md */
	assert_memory_equal(buf,
			    "OTAR\x02\x03\x00\x00\x08\x07\x06\x05\x04\x03\x02\x01\x08\x00\x00\x00",
			    OTA_RECORD_COPY_HEADER_BYTES);
	assert_int_equal(ota_record_copy_decode(buf, len, &c), OTA_OK);
	assert_int_equal(c.rec, OTA_REC_KEYLIST);
	assert_int_equal(c.seq, 0x0102030405060708u);
	assert_int_equal(c.payload_len, 8);
	assert_ptr_equal(c.payload, buf + OTA_RECORD_COPY_HEADER_BYTES);
	/* any flipped bit, a torn tail, a zeroed copy: refused */
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x01;
		assert_int_equal(ota_record_copy_decode(buf, len, &c), OTA_ERR_FORMAT);
		buf[i] ^= 0x01;
	}
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(ota_record_copy_decode(buf, cut, &c), OTA_ERR_FORMAT);
	uint8_t zero[sizeof(buf)] = {0};
	assert_int_equal(ota_record_copy_decode(zero, len, &c), OTA_ERR_FORMAT);
	/* unknown record ids and oversized payloads are not sealed */
	assert_int_equal(ota_record_copy_seal((enum ota_record)10, 1, buf, 8, sizeof(buf)), 0);
	assert_int_equal(ota_record_copy_seal(OTA_REC_STATE, 1, buf, 8, len - 1), 0);
	assert_int_equal(
		ota_record_copy_seal(OTA_REC_STATE, 1, buf, OTA_MAX_ENVELOPE_BYTES + 1, SIZE_MAX),
		0);
}

static void test_boot_record(void **st)
{
	(void)st;
	struct ota_agent_state s;
	struct ota_boot_record b = {.slot = 1};
	struct ota_boot_record back;
	uint8_t buf[OTA_AGENT_RECORD_BYTES];
	sample_state(&s);
	b.image = s.slots[0];
	size_t len = ota_boot_encode(&b, buf, sizeof(buf));
	assert_int_equal(ota_boot_decode(buf, len, &back), OTA_OK);
	assert_int_equal(back.slot, 1);
	assert_memory_equal(back.image.sha256, b.image.sha256, 32);
	assert_string_equal(back.image.version, "1.2.3");
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x80;
		assert_int_equal(ota_boot_decode(buf, len, &back), OTA_ERR_FORMAT);
		buf[i] ^= 0x80;
	}
	/* no slot 2, no boot record of an image that is not valid */
	b.slot = 2;
	len = ota_boot_encode(&b, buf, sizeof(buf));
	assert_int_equal(ota_boot_decode(buf, len, &back), OTA_ERR_FORMAT);
	b.slot = 0;
	b.image.valid = false;
	len = ota_boot_encode(&b, buf, sizeof(buf));
	assert_int_equal(ota_boot_decode(buf, len, &back), OTA_ERR_FORMAT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_round_trip),
		cmocka_unit_test(test_state_damage_refused),
		cmocka_unit_test(test_counter_and_event),
		cmocka_unit_test(test_copy_frame),
		cmocka_unit_test(test_boot_record),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
