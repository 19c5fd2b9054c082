#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# mosquitto in the foreground with fleetota's template
# (scripts/mosquitto.conf.in: TLS client certificates, identity as
# username, per-device ACL), listening on all container interfaces and
# logging to stderr (unbuffered, unlike stdout into a pipe: a line is in
# `logs` when it happens). Waits for the PKI (the pki service's /pki/.ready).
set -eu
dir=/var/lib/fleetota/broker
here=/usr/share/fleetota/scripts
mkdir -p "$dir"
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|8883|g" -e "s|@PKI@|/pki|g" -e "s|@USER@|$(id -un)|g" \
	-e "s|@BIND@|0.0.0.0|g" -e "s|^listener 8883 127.0.0.1|listener 8883 0.0.0.0|" \
	-e "/^pid_file/d" -e "s|^log_dest file .*|log_dest stderr|" \
	"$here/mosquitto.conf.in" >"$dir/mosquitto.conf"
cp "$here/mosquitto.acl" "$dir/acl"
exec "$here/wait-for.sh" /pki/.ready -- mosquitto -c "$dir/mosquitto.conf"
