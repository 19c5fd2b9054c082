#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# mosquitto in the foreground with fleetota's template (TLS client
# certificates, identity = CN = username = client id, CRLs, per-device ACL
# plus the server identities found in /pki/servers/), listening on all
# container interfaces instead of loopback. Reload (CRL, ACL) with
# `mosquitto.sh reload /var/lib/fleetota/broker` inside the container.
set -eu
dir=/var/lib/fleetota/broker
here=/usr/share/fleetota/scripts
"$here/mosquitto.sh" config "$dir" 8883 /pki 0.0.0.0
sed -i "s|^log_dest file .*|log_dest stdout|" "$dir/mosquitto.conf"
exec mosquitto -c "$dir/mosquitto.conf"
