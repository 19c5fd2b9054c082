/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_RANGE_INTERNAL_H
#define SRV_RANGE_INTERNAL_H

#include <stdint.h>

/* Longest Range header value we look at. */
#define SRV_RANGE_MAX_HEADER 128u

enum srv_range_result {
	SRV_RANGE_NONE, /* no header, or one we ignore (RFC 9110: send it all) */
	SRV_RANGE_OK, /* one satisfiable range: 206 */
	SRV_RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes * / size */
};

/*
 * Parses a Range header against a representation of size bytes. One range
 * only ("bytes=A-B", "bytes=A-", "bytes=-N"); several ranges, other units
 * or bad syntax are ignored (SRV_RANGE_NONE). On SRV_RANGE_OK writes the
 * first and the last byte offsets (inclusive).
 */
enum srv_range_result srv_range_parse(const char *header, uint64_t size, uint64_t *ret_first,
				      uint64_t *ret_last);

#endif
