/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_HTTPS_INTERNAL_H
#define OTA_HTTPS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ota_https.h"

/*
 * A byte source: OTA_OK with *ret_n > 0 for data, OTA_OK with *ret_n == 0
 * at end of stream, or an error (OTA_ERR_TIMEOUT for a stall).
 */
typedef enum ota_err (*ota_https_read_fn)(void *ctx, uint8_t *buf, size_t cap, size_t *ret_n);

/*
 * Reads one HTTP/1.1 response from read: see ota_https_get() for the
 * rules (status, Range, body limit). started and stall_s drive the
 * slow-drip check. *ret is written in every case.
 */
enum ota_err ota_https_read_response(ota_https_read_fn read, void *read_ctx,
				     const struct timespec *started, unsigned stall_s,
				     uint64_t range_from, uint64_t max_body, ota_https_body_fn fn,
				     void *arg, struct ota_https_response *ret);

#endif
