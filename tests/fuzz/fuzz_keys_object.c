/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What ota-keys reads from files besides the audit log: object detection
 * and the inspect renderer (RootList, KeyList, manifest, key descriptor,
 * bundle header), and the time and number parsers of the command line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > OTA_MAX_BUNDLE_HEADER_BYTES + OTA_BUNDLE_PREFIX_BYTES)
		return 0;
	json_t *tree = kr_inspect_json(data, size, 0, KR_OBJ_UNKNOWN);
	if (tree) {
		char *text = json_dumps(tree, JSON_COMPACT);
		free(text);
		json_decref(tree);
	}
	if (size <= 40) {
		char text[41];
		uint64_t value;
		memcpy(text, data, size);
		text[size] = '\0';
		kr_time_parse(text, 1767225600u, &value);
		kr_u64_parse(text, &value);
	}
	return 0;
}
