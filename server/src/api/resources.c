/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The REST API's resources, in the order the router tries their routes
 * (after the listener's own /healthz and /metrics). Each file defines its
 * wa_resource: routes, statements, handlers. A new resource is a new file,
 * its line here and its declaration in webapi-internal.h.
 */
#include <stddef.h>

#include "webapi-internal.h"

const struct wa_resource *const wa_resources[] = {
	&wa_tokens_resource,
	&wa_devices_resource,
	&wa_groups_resource,
	&wa_artifacts_resource,
	&wa_uploads_resource,
	&wa_trust_resource,
	&wa_campaigns_resource,
	&wa_observe_resource,
	&wa_console_resource,
	&wa_exposure_resource,
	NULL,
};
