/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "metrics-internal.h"

static void test_render(void **state)
{
	struct srv_metrics m;
	struct evbuffer *out = evbuffer_new();
	char *text;
	size_t len;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.bytes_served = 12345;
	srv_metrics_reject(&m, SRV_REJECT_RATE_LIMITED);
	srv_metrics_reject(&m, SRV_REJECT_RATE_LIMITED);
	srv_metrics_reject(&m, SRV__REJECT_COUNT); /* ignored */
	m.device_errors[OTA_ERR_HASH] = 3;
	srv_metrics_latency(&m, 0.5);
	srv_metrics_latency(&m, 30.0);
	srv_metrics_latency(&m, 99999.0);
	assert_int_equal(srv_metrics_render(&m, out), 0);
	len = evbuffer_get_length(out);
	text = calloc(1, len + 1);
	assert_non_null(text);
	evbuffer_remove(out, text, len);
	assert_non_null(strstr(text, "fleetota_bytes_served_total 12345\n"));
	assert_non_null(strstr(text, "fleetota_rejections_total{reason=\"rate_limited\"} 2\n"));
	assert_non_null(strstr(text, "fleetota_device_errors_total{error=\"OTA_ERR_HASH\"} 3\n"));
	/* Prometheus base units: seconds */
	assert_non_null(strstr(text, "fleetota_request_duration_seconds_bucket{le=\"0.001\"} 1\n"));
	assert_non_null(strstr(text, "fleetota_request_duration_seconds_bucket{le=\"0.05\"} 2\n"));
	assert_non_null(strstr(text, "fleetota_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(text, "fleetota_request_duration_seconds_count 3\n"));
	assert_non_null(strstr(text, "fleetota_request_duration_seconds_sum 100.029500\n"));
	assert_null(strstr(text, "_ms"));
	assert_non_null(
		strstr(text, "fleetota_build_info{version=\"" FLEETOTA_VERSION "\",revision=\""));
	assert_string_equal(srv_reject_name(SRV__REJECT_COUNT), "unknown");
	free(text);
	evbuffer_free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
