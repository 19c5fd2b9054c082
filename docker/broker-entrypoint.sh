#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# mosquitto in the foreground with fleetota's template (TLS client
# certificates, identity = CN = username = client id, CRLs, per-device ACL
# plus the server identities found in /pki/servers/), listening on all
# container interfaces instead of loopback and logging to stderr
# (unbuffered, unlike stdout into a pipe: a line is in `logs` when it
# happens). Waits for the PKI (the pki service's /pki/.ready). Reload (CRL,
# ACL, kick) with `mosquitto.sh reload /var/lib/fleetota/broker` inside the
# container, and on a timer: `mosquitto.sh watch` runs beside mosquitto
# (BROKER_RELOAD_SEC, 60). Both find mosquitto by DIR/mosquitto.pid, which
# holds this shell's PID: exec keeps it.
set -eu
dir=/var/lib/fleetota/broker
here=/usr/share/fleetota/scripts
"$here/wait-for.sh" /pki/.ready -- "$here/mosquitto.sh" config "$dir" 8883 /pki 0.0.0.0
sed -i -e "/^pid_file/d" -e "s|^log_dest file .*|log_dest stderr|" "$dir/mosquitto.conf"
echo $$ >"$dir/mosquitto.pid"
"$here/mosquitto.sh" watch "$dir" "${BROKER_RELOAD_SEC:-60}" &
exec mosquitto -c "$dir/mosquitto.conf"
