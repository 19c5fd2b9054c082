/* SPDX-License-Identifier: Apache-2.0 */
/* The delivery client's HTTP/1.1 response parser (headers, chunked, ranges). */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "https-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct source {
	const uint8_t *data;
	size_t size;
	size_t pos;
	size_t step;
};

/* Hands the input out in uneven pieces, like a network would. */
static enum ota_err source_read(void *ctx, uint8_t *buf, size_t cap, size_t *ret_n)
{
	struct source *s = ctx;
	size_t n = s->size - s->pos;
	if (n > s->step)
		n = s->step;
	if (n > cap)
		n = cap;
	memcpy(buf, s->data + s->pos, n);
	s->pos += n;
	s->step = s->step * 7 % 13 + 1;
	*ret_n = n;
	return OTA_OK;
}

static enum ota_err body_sink(void *arg, const uint8_t *data, size_t len)
{
	uint64_t *total = arg;
	if (len && data[0] == 0 && data[len - 1] == 0)
		*total += len; /* touch the bytes */
	else
		*total += len;
	return OTA_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ota_https_response resp;
	struct timespec started;
	uint64_t total = 0;
	if (size < 2)
		return 0;
	/* first byte: resume offset, second: body limit */
	uint64_t range_from = data[0] % 4 == 0 ? 0 : data[0];
	uint64_t max_body = (uint64_t)data[1] * 64u;
	struct source src = {.data = data + 2, .size = size - 2, .step = 5};
	clock_gettime(CLOCK_MONOTONIC, &started);
	enum ota_err err = ota_https_read_response(source_read, &src, &started, 3600, range_from,
						   max_body, body_sink, &total, &resp);
	if (err == OTA_OK && total > max_body)
		__builtin_trap();
	return 0;
}
