/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_TIMESTAMP_INTERNAL_H
#define SRV_TIMESTAMP_INTERNAL_H

/*
 * The timestamp role (signed freshness, docs/decisions.md): with
 * timestamp_key set, the server holds that one private key (it must be the
 * newest KeyList's timestamp-role key, never an operational one nor a key
 * of a RootList), signs a
 * Timestamp for every product line (SQL timestamp_releases()) on a timer,
 * every timestamp_lifetime_sec / 4, each valid for timestamp_lifetime_sec,
 * and serves the current one at GET /v1/timestamp/{product} on the device
 * listener (mTLS, rate-limited like every device request) from memory.
 * main.c starts and stops it (device.h).
 */

#include <evhttp.h>

#include "fleetota/err.h"

/* Most product lines signed per round. */
#define SRV_TS_MAX_PRODUCTS 256u

/* Newest RootLists whose root keys the server's key is checked against. */
#define SRV_TS_MAX_ROOTLISTS 64u

/* The device route: rest is the product line. */
void srv_timestamp_handle(struct evhttp_request *req, const char *rest, void *ctx);

#endif
