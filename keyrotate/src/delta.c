/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys sign --base: the delta payload and its DeltaInfo (docs/keys.md). */
#include <string.h>

#include "kr.h"
#include "ota_delta_make.h"

enum ota_err kr_delta_build(const char *base_path, const char *image_path, const char *payload_path,
			    uint32_t chunk_bytes, int level, int matcher,
			    Fleetota__V1__DeltaInfo *ret_info, struct kr_delta_hashes *ret_hashes,
			    struct kr_diag *diag)
{
	struct ota_delta_made made;
	enum ota_err err = ota_delta_make_file(base_path, image_path, payload_path, chunk_bytes,
					       level, (enum ota_delta_matcher)matcher, &made);
	if (err == OTA_ERR_DELTA_UNSUPPORTED)
		return kr_fail(diag, err,
			       "no delta of %s from %s: chunk of %u bytes out of 1..%u, or a base "
			       "that begins with zstd's dictionary magic",
			       image_path, base_path, chunk_bytes, OTA_DELTA_MAX_CHUNK_BYTES);
	if (err != OTA_OK)
		return kr_fail(diag, err, "cannot make the delta of %s from %s into %s", image_path,
			       base_path, payload_path);
	memcpy(ret_hashes->base_sha256, made.base_sha256, OTA_SHA256_BYTES);
	memcpy(ret_hashes->sha256, made.sha256, OTA_SHA256_BYTES);
	fleetota__v1__delta_info__init(ret_info);
	ret_info->base_sha256.data = ret_hashes->base_sha256;
	ret_info->base_sha256.len = OTA_SHA256_BYTES;
	ret_info->sha256.data = ret_hashes->sha256;
	ret_info->sha256.len = OTA_SHA256_BYTES;
	ret_info->size = made.size;
	ret_info->algorithm = FLEETOTA__V1__DELTA_ALGORITHM__DELTA_ALGORITHM_ZSTD_CHUNKED;
	ret_info->chunk_bytes = made.chunk_bytes;
	ret_info->base_size = made.base_size;
	return OTA_OK;
}
