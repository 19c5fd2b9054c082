#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The broker's health check: a real MQTT client connects over TLS with a
# client certificate (the pki service's broker-health identity, an ordinary
# device identity no device uses) and exits once its subscription to its own
# command topic is acknowledged. Healthy = TLS, certificate check, ACL and
# the MQTT loop all answer.
set -eu
id=broker-health
exec mosquitto_sub -h 127.0.0.1 -p 8883 -V mqttv5 -i "$id" -q 1 -E -W 3 \
	--cafile /pki/server-ca.crt --cert "/pki/devices/$id.crt" --key "/pki/devices/$id.key" \
	-t "fleetota/v1/$id/cmd"
