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

/* Buffers sized by the API's identifiers and fields, NUL included. */
/* An artifact id as a bundle carries it (WA_MAX_OBJECT_ID, a NUL, slack). */
#define WA_ARTIFACT_ID_BYTES 132u
/* Upload session ids: "u_" and the hex of WA_UPLOAD_ID_RANDOM_BYTES. */
#define WA_UPLOAD_ID_RANDOM_BYTES 16u
#define WA_UPLOAD_ID_LEN 34u
#define WA_UPLOAD_ID_BYTES 40u
/* A request's decoded {id} path argument. */
#define WA_PATH_ARG_BYTES 160u
/* One raw (still %-encoded) path segment. */
#define WA_PATH_SEGMENT_BYTES 256u
/* A query parameter's name. */
#define WA_QUERY_KEY_BYTES 64u
/* The audit actor, "token:ID:NAME". */
#define WA_ACTOR_BYTES 96u
/* Random bytes in a new API token. */
#define WA_TOKEN_RANDOM_BYTES 32u
/* A console asset's file name. */
#define WA_ASSET_NAME_BYTES 64u
/* The field a campaign's FO422 error names, and a campaign action verb. */
#define WA_CAMPAIGN_FIELD_BYTES 64u
#define WA_CAMPAIGN_ACTION_BYTES 16u

#endif
