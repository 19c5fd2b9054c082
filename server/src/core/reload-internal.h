/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_RELOAD_INTERNAL_H
#define SRV_RELOAD_INTERNAL_H

#include "fleetota/err.h"

struct srv_server;
struct srv_reload;

/*
 * Live reload, without dropping a connection:
 * - SIGHUP re-reads the config file (and the environment) and applies what
 *   a running server can take (srv_config_update: log level, device rate
 *   limits, notifier pace, the device listener's CA, CRL, certificate and
 *   key, device_reload_sec); a key that needs a restart keeps its running
 *   value and is named in a log line. A config that does not parse changes
 *   nothing. The device listener's TLS files are re-read on every SIGHUP.
 * - every device_reload_sec (0 = never) the device listener's CA, CRL,
 *   certificate and key files are checked (inode, size, mtime) and
 *   reloaded when one changed.
 * New TLS handshakes use the new files; open connections are checked again
 * on their next request (srv_tls_peer_verified).
 */
enum ota_err srv_reload_start(struct srv_server *srv, const char *config_path,
			      struct srv_reload **ret_reload);
void srv_reload_stop(struct srv_reload *reload);

#endif
