#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Development PKI for fleetota (P-256 keys, openssl only). Idempotent: what
# exists in DIR is kept, what is missing is made.
#
#   scripts/pki.sh DIR [DEVICE_ID...]
#   scripts/pki.sh revoke DIR DEVICE_ID...   revoke device certificates and
#                                            (re)write DIR/device-ca.crl
#
# DIR/server-ca.{crt,key}   signs what devices must trust: the delivery
#                           server's certificate and the broker's
# DIR/server.{crt,key}      ota-server device listener (CN/SAN 127.0.0.1, localhost)
# DIR/broker.{crt,key}      mosquitto (same SANs)
#                           PKI_EXTRA_SANS adds SANs to both (e.g. for
#                           containers: DNS:ota-server,DNS:broker)
# DIR/device-ca.{crt,key}   signs client identities: devices and the server's
#                           MQTT client (so the broker needs one CA file)
# DIR/ota-server-mqtt.{crt,key}  the server's MQTT client, CN=ota-server
#                           (a reserved identity: never issue it to a device)
# DIR/devices/ID.{crt,key}  one per device, CN = device id
# DIR/server.pin            SPKI SHA-256 (hex) of server.crt, for agent pins
set -euo pipefail

# Revocation: an `openssl ca` database beside the device CA, then a CRL.
if [[ ${1:-} == revoke ]]; then
	dir=${2:?usage: pki.sh revoke DIR DEVICE_ID...}
	shift 2
	touch "$dir/device-ca.index"
	[[ -f "$dir/device-ca.crlnumber" ]] || echo 01 >"$dir/device-ca.crlnumber"
	for id in "$@"; do
		crt="$dir/devices/$id.crt"
		[[ -f "$crt" ]] || { echo "pki.sh: no certificate for $id" >&2; exit 2; }
		serial=$(openssl x509 -in "$crt" -noout -serial | cut -d= -f2)
		grep -q "	$serial	" "$dir/device-ca.index" && continue
		end=$(openssl x509 -in "$crt" -noout -enddate | cut -d= -f2)
		subject=$(openssl x509 -in "$crt" -noout -subject -nameopt compat | sed 's/^subject=//')
		printf 'R\t%s\t%s\t%s\tunknown\t%s\n' "$(date -u -d "$end" +%y%m%d%H%M%SZ)" \
			"$(date -u +%y%m%d%H%M%SZ)" "$serial" "$subject" >>"$dir/device-ca.index"
	done
	cnf=$(mktemp)
	printf '%s\n' "[ca]" "default_ca = dev" "[dev]" "database = $dir/device-ca.index" \
		"crlnumber = $dir/device-ca.crlnumber" "default_md = sha256" \
		"default_crl_days = 3650" >"$cnf"
	openssl ca -gencrl -config "$cnf" -keyfile "$dir/device-ca.key" -cert "$dir/device-ca.crt" \
		-out "$dir/device-ca.crl" 2>/dev/null
	rm -f "$cnf"
	exit 0
fi

dir=${1:?usage: pki.sh DIR [DEVICE_ID...]}
shift
mkdir -p "$dir/devices"
days=3650

key() { # PATH
	[[ -f "$1" ]] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$1" 2>/dev/null
	chmod 600 "$1"
}

ca() { # NAME CN
	local name=$1 cn=$2
	[[ -f "$dir/$name.crt" ]] && return 0
	key "$dir/$name.key"
	openssl req -new -x509 -key "$dir/$name.key" -out "$dir/$name.crt" -days $days \
		-subj "/O=fleetota dev/CN=$cn" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# leaf CA OUT CN KIND(server|client)
leaf() {
	local ca=$1 out=$2 cn=$3 kind=$4 ext
	[[ -f "$out.crt" ]] && return 0
	key "$out.key"
	ext=$(mktemp)
	if [[ $kind == server ]]; then
		printf '%s\n' "basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
			"subjectAltName=IP:127.0.0.1,DNS:localhost${PKI_EXTRA_SANS:+,$PKI_EXTRA_SANS}" >"$ext"
	else
		printf '%s\n' "basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth" >"$ext"
	fi
	openssl req -new -key "$out.key" -subj "/O=fleetota dev/CN=$cn" 2>/dev/null |
		openssl x509 -req -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" -CAcreateserial \
			-days $days -extfile "$ext" -out "$out.crt" 2>/dev/null
	rm -f "$ext"
}

ca server-ca "fleetota dev server CA"
ca device-ca "fleetota dev device CA"
leaf server-ca "$dir/server" 127.0.0.1 server
leaf server-ca "$dir/broker" 127.0.0.1 server
leaf device-ca "$dir/ota-server-mqtt" ota-server client
for id in "$@"; do
	if [[ ! $id =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ || $id == ota-server ]]; then
		echo "pki.sh: invalid device id '$id'" >&2
		exit 2
	fi
	leaf device-ca "$dir/devices/$id" "$id" client
done
if [[ ! -f "$dir/server.pin" ]]; then
	openssl x509 -in "$dir/server.crt" -noout -pubkey | openssl pkey -pubin -outform DER |
		openssl dgst -sha256 -r | cut -d' ' -f1 >"$dir/server.pin"
fi
