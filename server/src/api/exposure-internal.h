/* SPDX-License-Identifier: Apache-2.0 */
#ifndef WA_EXPOSURE_INTERNAL_H
#define WA_EXPOSURE_INTERNAL_H

#include "fleetota/err.h"

struct srv_db;
struct wa_ctx;

/* The security exposure view (exposure.c); viewer role. */
enum ota_err wa_exposure_prepare(struct srv_db *db);
/* GET /api/v1/security/exposure[?model=M] */
void wa_h_security_exposure(struct wa_ctx *ctx);

#endif
