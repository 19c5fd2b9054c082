/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The REST API's resources, in the order the router tries their routes
 * (after the listener's own /healthz and /metrics). Each file defines its
 * wa_NAME_resource (routes, statements, handlers); this list is the one
 * place that names them, so a new resource is a new file and two lines here.
 */
#include <stddef.h>

#include "webapi-internal.h"

extern const struct wa_resource wa_tokens_resource; /* tokens.c: /me, tokens, audit */
extern const struct wa_resource wa_devices_resource; /* devices.c */
extern const struct wa_resource wa_groups_resource; /* groups.c */
extern const struct wa_resource wa_artifacts_resource; /* artifacts.c */
extern const struct wa_resource wa_deltas_resource; /* deltas.c: an artifact's deltas */
extern const struct wa_resource wa_uploads_resource; /* uploads.c: upload sessions */
extern const struct wa_resource wa_trust_resource; /* trust.c: keylists, rootlists */
extern const struct wa_resource wa_campaigns_resource; /* campaigns.c, key rotation, purge */
extern const struct wa_resource wa_observe_resource; /* observe.c: events, failures, fleet */
extern const struct wa_resource wa_console_resource; /* console.c: the console's assets */
extern const struct wa_resource wa_exposure_resource; /* exposure.c */

/* one resource a line, in match order */
/* clang-format off */
const struct wa_resource *const wa_resources[] = {
	&wa_tokens_resource,
	&wa_devices_resource,
	&wa_groups_resource,
	&wa_artifacts_resource,
	&wa_deltas_resource,
	&wa_uploads_resource,
	&wa_trust_resource,
	&wa_campaigns_resource,
	&wa_observe_resource,
	&wa_console_resource,
	&wa_exposure_resource,
	NULL,
};
/* clang-format on */
