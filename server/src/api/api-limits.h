/* SPDX-License-Identifier: Apache-2.0 */
#ifndef WA_API_LIMITS_H
#define WA_API_LIMITS_H

#include "srv-limits.h"

/*
 * The REST API's limits (web-api/openapi.yaml states the same; the error
 * texts spell the numbers out and stay as they are). Server-wide ones are
 * in core/srv-limits.h, the wire limits in fleetota/limits.h.
 */

/* Device ids in paths, bodies and cursors: the server's one length. */
#define WA_MAX_DEVICE_ID SRV_MAX_DEVICE_ID
/* Group ids. */
#define WA_MAX_GROUP_ID 64u
/* Artifact and campaign ids. */
#define WA_MAX_OBJECT_ID 128u
/* Token names (wa_name_valid) and device tags (wa_tag_valid). */
#define WA_MAX_NAME 64u
#define WA_MAX_TAG 64u
/* Free text (wa_text_valid): descriptions, reasons. */
#define WA_MAX_TEXT 128u
/* ?limit= as text (wa_query_limit): WEBAPI_PAGE_MAX's digits and a NUL. */
#define WA_LIMIT_TEXT_BYTES SRV_U32_TEXT_BYTES

#endif
