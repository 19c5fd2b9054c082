/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_SECURITY_INTERNAL_H
#define SRV_SECURITY_INTERNAL_H

#include "fleetota/err.h"
#include "metrics-internal.h"

struct srv_server;
struct srv_db;

/*
 * Security events seen on the event loop (the delivery listener): each one
 * is counted (fleetota_security_events_total{kind}) and recorded with
 * security_event() (migrations/code/security.sql): an audit row, and the
 * device is flagged suspect past the configured threshold. Events seen on
 * the MQTT receive path are recorded by report_ingest() itself.
 */

/* Registers the statement (before srv_db_start). */
enum ota_err srv_security_prepare(struct srv_db *db);

/*
 * Counts and records one event of device (loop thread). detail is short
 * free text (copied). Recording is best effort: if the database is away
 * the event is logged and counted, not audited.
 */
void srv_security_record(struct srv_server *srv, const char *device, enum srv_security_kind kind,
			 const char *detail);

#endif
