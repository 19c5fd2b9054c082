/* SPDX-License-Identifier: Apache-2.0 */
/* Dynamic group filters: JSON text -> compiled WHERE clause + parameters. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "webapi-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wa_filter_sql out;
	char err[128];
	json_t *filter;

	if (size > WEBAPI_MAX_JSON_BODY)
		return 0;
	filter = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (filter == NULL)
		return 0;
	if (wa_filter_compile(filter, 1, &out, err) == OTA_OK) {
		/* every parameter the clause names exists, and nothing more */
		char needle[16];

		if (out.n_params > 0) {
			snprintf(needle, sizeof(needle), "$%d", out.n_params);
			if (strstr(out.where, needle) == NULL)
				__builtin_trap();
		}
		snprintf(needle, sizeof(needle), "$%d", out.n_params + 1);
		if (strstr(out.where, needle) != NULL)
			__builtin_trap();
		wa_filter_sql_clear(&out);
	} else if (err[0] == '\0') {
		__builtin_trap(); /* a refusal always says why */
	}
	json_decref(filter);
	return 0;
}
