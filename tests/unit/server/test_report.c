/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleetota/limits.h"
#include "report-internal.h"

static uint8_t arena_mem[SRV_REPORT_ARENA_BYTES];

static size_t pack(const Fleetota__V1__StatusReport *r, uint8_t **ret)
{
	size_t len = fleetota__v1__status_report__get_packed_size(r);
	uint8_t *buf = malloc(len + 1);

	assert_non_null(buf);
	fleetota__v1__status_report__pack(r, buf);
	*ret = buf;
	return len;
}

static enum ota_err decode(const Fleetota__V1__StatusReport *r, const char *topic,
			   Fleetota__V1__StatusReport **out, char *device)
{
	struct ota_arena arena;
	uint8_t *buf;
	size_t len = pack(r, &buf);
	enum ota_err err;

	ota_arena_init(&arena, arena_mem, sizeof(arena_mem));
	err = srv_report_decode(buf, len, topic, &arena, out, device);
	free(buf);
	return err;
}

static void test_valid_report(void **state)
{
	Fleetota__V1__StatusReport r = FLEETOTA__V1__STATUS_REPORT__INIT;
	Fleetota__V1__Event e = FLEETOTA__V1__EVENT__INIT;
	Fleetota__V1__Event *events[1] = {&e};
	Fleetota__V1__StatusReport *out = NULL;
	char device[SRV_MAX_DEVICE_ID + 1];

	(void)state;
	r.device_id = "dev-1";
	r.seq = 7;
	r.state = FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_REJECTED;
	r.error = "OTA_ERR_ROLLBACK";
	r.version = "1.0.0";
	e.seq = 3;
	e.kind = FLEETOTA__V1__EVENT_KIND__EVENT_KIND_REJECTED;
	e.error = "OTA_ERR_ROLLBACK";
	r.n_events = 1;
	r.events = events;
	assert_int_equal(decode(&r, "fleetota/v1/dev-1/status", &out, device), OTA_OK);
	assert_string_equal(device, "dev-1");
	assert_int_equal(out->seq, 7);
	assert_string_equal(out->events[0]->error, "OTA_ERR_ROLLBACK");
	assert_string_equal(srv_report_state_name((int)out->state), "rejected");
	assert_string_equal(srv_report_event_name((int)out->events[0]->kind), "rejected");
	/* an empty device_id takes the topic's */
	r.device_id = "";
	assert_int_equal(decode(&r, "fleetota/v1/dev-1/status", &out, device), OTA_OK);
	assert_string_equal(device, "dev-1");
}

static void test_refusals(void **state)
{
	Fleetota__V1__StatusReport r = FLEETOTA__V1__STATUS_REPORT__INIT;
	Fleetota__V1__Event e = FLEETOTA__V1__EVENT__INIT;
	Fleetota__V1__Event *events[OTA_MAX_REPORT_EVENTS + 1];
	ProtobufCBinaryData ids[1];
	uint8_t short_id[16] = {0};
	Fleetota__V1__StatusReport *out = NULL;
	char device[SRV_MAX_DEVICE_ID + 1] = "unchanged";
	char long_str[OTA_MAX_STRING_BYTES + 2];

	(void)state;
	r.device_id = "dev-1";
	/* topic names another device, or is not a status topic */
	assert_int_equal(decode(&r, "fleetota/v1/dev-2/status", &out, device), OTA_ERR_FORMAT);
	assert_int_equal(decode(&r, "fleetota/v1/dev-1/cmd", &out, device), OTA_ERR_FORMAT);
	assert_int_equal(decode(&r, "fleetota/v1//status", &out, device), OTA_ERR_FORMAT);
	assert_int_equal(decode(&r, "fleetota/v1/../status", &out, device), OTA_ERR_FORMAT);
	assert_int_equal(decode(&r, "fleetota/v1/a/b/status", &out, device), OTA_ERR_FORMAT);
	/* unknown error name */
	r.error = "OTA_ERR_MADE_UP";
	assert_int_equal(decode(&r, "fleetota/v1/dev-1/status", &out, device), OTA_ERR_FORMAT);
	r.error = "";
	/* over-long string */
	memset(long_str, 'v', sizeof(long_str) - 1);
	long_str[sizeof(long_str) - 1] = '\0';
	r.version = long_str;
	assert_int_equal(decode(&r, "fleetota/v1/dev-1/status", &out, device), OTA_ERR_FORMAT);
	r.version = "";
	/* numbers beyond bigint */
	r.version_code = (uint64_t)INT64_MAX + 1;
	assert_int_equal(decode(&r, "fleetota/v1/dev-1/status", &out, device), OTA_ERR_FORMAT);
	r.version_code = 0;
	/* key ids must be 32 bytes */
	ids[0].data = short_id;
	ids[0].len = sizeof(short_id);
	r.keylist_key_ids = ids;
	r.n_keylist_key_ids = 1;
	assert_int_equal(decode(&r, "fleetota/v1/dev-1/status", &out, device), OTA_ERR_FORMAT);
	r.n_keylist_key_ids = 0;
	/* events: seq 0, and too many */
	events[0] = &e;
	r.events = events;
	r.n_events = 1;
	assert_int_equal(decode(&r, "fleetota/v1/dev-1/status", &out, device), OTA_ERR_FORMAT);
	e.seq = 1;
	for (size_t i = 0; i <= OTA_MAX_REPORT_EVENTS; i++)
		events[i] = &e;
	r.n_events = OTA_MAX_REPORT_EVENTS + 1;
	assert_int_equal(decode(&r, "fleetota/v1/dev-1/status", &out, device), OTA_ERR_FORMAT);
	r.n_events = OTA_MAX_REPORT_EVENTS;
	assert_int_equal(decode(&r, "fleetota/v1/dev-1/status", &out, device), OTA_OK);
}

static void test_utf8(void **state)
{
	static const char *const bad[] = {
		"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\xaf"};
	Fleetota__V1__StatusReport r = FLEETOTA__V1__STATUS_REPORT__INIT;
	Fleetota__V1__StatusReport *out = NULL;
	char device[SRV_MAX_DEVICE_ID + 1];

	(void)state;
	r.seq = 1;
	r.version = "1.0.0-\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* é € U+1F600 */
	assert_int_equal(decode(&r, "fleetota/v1/dev-1/status", &out, device), OTA_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r.version = (char *)bad[i];
		assert_int_equal(decode(&r, "fleetota/v1/dev-1/status", &out, device),
				 OTA_ERR_FORMAT);
	}
}

static void test_garbage_and_size(void **state)
{
	struct ota_arena arena;
	Fleetota__V1__StatusReport *out = NULL;
	char device[SRV_MAX_DEVICE_ID + 1];
	uint8_t junk[64];
	static uint8_t big[OTA_MAX_MQTT_PAYLOAD_BYTES + 1];

	(void)state;
	memset(junk, 0xff, sizeof(junk));
	ota_arena_init(&arena, arena_mem, sizeof(arena_mem));
	assert_int_equal(
		srv_report_decode(junk, sizeof(junk), "fleetota/v1/d/status", &arena, &out, device),
		OTA_ERR_FORMAT);
	assert_int_equal(
		srv_report_decode(big, sizeof(big), "fleetota/v1/d/status", &arena, &out, device),
		OTA_ERR_SIZE);
	assert_null(out);
}

/* A doc of a report with seq, version and the events seqs[0..n-1] in that order. */
static void make_doc_events(uint64_t seq, const char *version, const uint64_t *seqs, size_t n,
			    struct srv_report_doc *doc)
{
	Fleetota__V1__StatusReport r = FLEETOTA__V1__STATUS_REPORT__INIT;
	Fleetota__V1__Event ev[400];
	Fleetota__V1__Event *events[400];
	uint8_t *buf;
	size_t len;

	assert_true(n <= 400);
	r.seq = seq;
	r.version = (char *)version;
	r.state = FLEETOTA__V1__DEVICE_STATE__DEVICE_STATE_IDLE;
	for (size_t i = 0; i < n; i++) {
		fleetota__v1__event__init(&ev[i]);
		ev[i].seq = seqs[i];
		ev[i].kind = FLEETOTA__V1__EVENT_KIND__EVENT_KIND_BOOTED;
		events[i] = &ev[i];
	}
	r.events = events;
	r.n_events = n;
	len = pack(&r, &buf);
	assert_int_equal(srv_report_doc_new(&r, buf, len, doc), OTA_OK);
	free(buf);
}

/* A doc of a report with seq, version "v<seq>" and events first..last (at most 400). */
static void make_doc(uint64_t seq, uint64_t first, uint64_t last, struct srv_report_doc *doc)
{
	uint64_t seqs[400];
	char version[24];
	size_t n = 0;

	snprintf(version, sizeof(version), "v%llu", (unsigned long long)seq);
	for (uint64_t s = first; s <= last && n < 400; s++)
		seqs[n++] = s;
	make_doc_events(seq, version, seqs, n, doc);
}

static json_int_t event_seq(const struct srv_report_doc *doc, size_t i)
{
	return json_integer_value(
		json_object_get(json_array_get(json_object_get(doc->json, "events"), i), "seq"));
}

static void test_merge(void **state)
{
	struct srv_report_doc held = {0}, doc, same;

	(void)state;
	make_doc(5, 1, 3, &doc);
	assert_int_equal(json_integer_value(json_object_get(doc.json, "seq")), 5);
	assert_string_equal(json_string_value(json_object_get(doc.json, "state")), "idle");
	/* into an empty doc: moved */
	assert_int_equal(srv_report_merge(&held, &doc), OTA_OK);
	assert_null(doc.json);
	assert_int_equal(held.seq, 5);
	/* a newer one: its fields win, events united and ordered, each seq once */
	make_doc(7, 3, 4, &doc);
	assert_int_equal(srv_report_merge(&held, &doc), OTA_OK);
	assert_int_equal(held.seq, 7);
	assert_int_equal(held.merged, 2);
	assert_string_equal(json_string_value(json_object_get(held.json, "version")), "v7");
	assert_int_equal(json_array_size(json_object_get(held.json, "events")), 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(event_seq(&held, i), (json_int_t)i + 1);
	/* an older one arriving late: the newest fields stay, its events count */
	make_doc(6, 9, 9, &same);
	assert_int_equal(srv_report_merge(&held, &same), OTA_OK);
	assert_int_equal(held.seq, 7);
	assert_string_equal(json_string_value(json_object_get(held.json, "version")), "v7");
	assert_int_equal(json_array_size(json_object_get(held.json, "events")), 5);
	assert_int_equal(event_seq(&held, 4), 9);
	assert_int_equal(held.merged, 3);
	assert_null(same.json);
	srv_report_doc_clear(&held);
	srv_report_doc_clear(NULL);
}

static void test_merge_bound(void **state)
{
	struct srv_report_doc held = {0}, doc;

	(void)state;
	make_doc(1, 1, 200, &held);
	make_doc(2, 101, 300, &doc);
	assert_int_equal(srv_report_merge(&held, &doc), OTA_OK);
	/* 300 distinct events: the newest SRV_REPORT_COALESCE_EVENTS stay */
	assert_int_equal(json_array_size(json_object_get(held.json, "events")),
			 SRV_REPORT_COALESCE_EVENTS);
	assert_int_equal(held.events_dropped, 300 - SRV_REPORT_COALESCE_EVENTS);
	assert_int_equal(event_seq(&held, 0), 300 - SRV_REPORT_COALESCE_EVENTS + 1);
	assert_int_equal(event_seq(&held, SRV_REPORT_COALESCE_EVENTS - 1), 300);
	srv_report_doc_clear(&held);
}

/* A doc of a report with seq, version "v" and the events seqs[0..n-1] (at most 8). */
static void make_doc_seqs(uint64_t seq, const uint64_t *seqs, size_t n, struct srv_report_doc *doc)
{
	assert_true(n <= 8);
	make_doc_events(seq, "v", seqs, n, doc);
}

static void assert_window(const struct srv_report_doc *held, json_int_t first, json_int_t last)
{
	assert_int_equal(json_array_size(json_object_get(held->json, "events")), last - first + 1);
	for (json_int_t s = first; s <= last; s++)
		assert_int_equal(event_seq(held, (size_t)(s - first)), s);
}

/*
 * A device's reports in order (a flood: each one's events follow the held
 * ones, appended), then a late one, one with its events out of order and
 * one in order again: each time the union by seq, the newest
 * SRV_REPORT_COALESCE_EVENTS, the dropped ones counted.
 */
static void test_merge_flood(void **state)
{
	struct srv_report_doc held = {0}, doc;
	const uint64_t late[] = {744}, unordered[] = {1003, 1001, 1002}, next[] = {1004};

	(void)state;
	for (uint64_t s = 1; s <= 1000; s++) {
		make_doc(s, s, s, &doc);
		assert_true(doc.events_ascending);
		assert_int_equal(srv_report_merge(&held, &doc), OTA_OK);
	}
	assert_int_equal(held.seq, 1000);
	assert_int_equal(held.merged, 1000);
	assert_int_equal(held.events_dropped, 1000 - SRV_REPORT_COALESCE_EVENTS);
	assert_window(&held, 1000 - SRV_REPORT_COALESCE_EVENTS + 1, 1000);
	/* older than the window: the newest fields stay, the event is the oldest */
	make_doc_seqs(500, late, 1, &doc);
	assert_int_equal(srv_report_merge(&held, &doc), OTA_OK);
	assert_int_equal(held.seq, 1000);
	assert_int_equal(held.events_dropped, 1000 - SRV_REPORT_COALESCE_EVENTS + 1);
	assert_window(&held, 1000 - SRV_REPORT_COALESCE_EVENTS + 1, 1000);
	make_doc_seqs(1001, unordered, 3, &doc);
	assert_false(doc.events_ascending);
	assert_int_equal(srv_report_merge(&held, &doc), OTA_OK);
	assert_true(held.events_ascending);
	assert_window(&held, 1003 - SRV_REPORT_COALESCE_EVENTS + 1, 1003);
	make_doc_seqs(1004, next, 1, &doc);
	assert_int_equal(srv_report_merge(&held, &doc), OTA_OK);
	assert_int_equal(held.seq, 1004);
	assert_int_equal(held.merged, 1003);
	/* 744 dropped twice: by the flood, then again after the late report */
	assert_int_equal(held.events_dropped, 1004 - SRV_REPORT_COALESCE_EVENTS + 1);
	assert_window(&held, 1004 - SRV_REPORT_COALESCE_EVENTS + 1, 1004);
	srv_report_doc_clear(&held);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_report),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_garbage_and_size),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_merge_bound),
		cmocka_unit_test(test_merge_flood),
		cmocka_unit_test(test_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
