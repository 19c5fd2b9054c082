/* SPDX-License-Identifier: Apache-2.0 */
#ifndef WA_CAMPAIGNS_INTERNAL_H
#define WA_CAMPAIGNS_INTERNAL_H

#include "fleetota/err.h"

struct srv_db;
struct wa_ctx;

/*
 * Campaign, key-rotation and retention endpoints (campaigns.c): thin
 * handlers over the rollout engine's SQL functions (migrations/code/rollout_*.sql).
 */
enum ota_err wa_campaigns_prepare(struct srv_db *db);

void wa_h_campaigns_list(struct wa_ctx *ctx);
void wa_h_campaigns_create(struct wa_ctx *ctx);
void wa_h_campaigns_get(struct wa_ctx *ctx);
void wa_h_campaigns_devices(struct wa_ctx *ctx);
/* POST /api/v1/campaigns/{id}/{start|approve|pause|resume|cancel} */
void wa_h_campaigns_action(struct wa_ctx *ctx);
void wa_h_keyrotation(struct wa_ctx *ctx);
void wa_h_retention_purge(struct wa_ctx *ctx);

/*
 * HTTP status (and *ret_code, the API error code) for an engine SQLSTATE
 * (FO404, FO409, ...); 0 when it is not one of the engine's.
 */
int wa_campaign_status_from_sqlstate(const char *sqlstate, const char **ret_code);

#endif
