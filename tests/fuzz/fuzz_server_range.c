/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP Range header parsing against a few representation sizes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "range-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t sizes[] = {0, 1, 1000, UINT64_MAX};
	char header[SRV_RANGE_MAX_HEADER + 2];
	size_t len = size < sizeof(header) - 1 ? size : sizeof(header) - 1;

	memcpy(header, data, len);
	header[len] = '\0';
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t first = 0, last = 0;

		if (srv_range_parse(header, sizes[i], &first, &last) == SRV_RANGE_OK &&
		    (first > last || last >= sizes[i]))
			abort();
	}
	return 0;
}
