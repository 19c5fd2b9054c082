#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Development PKI for fleetota (P-256 keys, openssl only). Idempotent: what
# exists in DIR is kept, what is missing is made.
#
#   scripts/pki.sh DIR [DEVICE_ID...]
#   scripts/pki.sh server DIR NAME...        more ota-server MQTT identities
#   scripts/pki.sh observer DIR NAME...      read-only MQTT identities (tests)
#   scripts/pki.sh revoke DIR DEVICE_ID...   revoke device certificates
#   scripts/pki.sh revoke-server DIR NAME... revoke server MQTT identities
#   scripts/pki.sh takeover-cert DIR DEVICE_ID OUT
#                       a 5-minute certificate for DEVICE_ID's MQTT session
#                       (mosquitto.sh kick uses it to close a revoked
#                       device's live session; OUT.{crt,key})
#
# DIR/server-ca.{crt,key}   signs what devices must trust: the delivery
#                           server's certificate and the broker's
# DIR/server.{crt,key}      ota-server device listener (CN/SAN 127.0.0.1, localhost)
# DIR/broker.{crt,key}      mosquitto (same SANs)
#                           PKI_EXTRA_SANS adds SANs to both (e.g. for
#                           containers: DNS:ota-server,DNS:broker)
# DIR/device-ca.{crt,key}   signs devices only: CN = device id, which must
#                           match [A-Za-z0-9][A-Za-z0-9._-]{0,63}
# DIR/devices/ID.{crt,key}  one per device
# DIR/server-client-ca.{crt,key}  signs ota-server MQTT identities only
# DIR/servers/NAME.{crt,key}      one per ota-server instance, CN =
#                           ota-server:NAME (the ':' is refused in device ids,
#                           so no device certificate can carry a server's
#                           identity; docs/decisions.md). `pki.sh DIR` makes
#                           servers/1.
# DIR/observers/NAME.{crt,key}    a test's witness at the broker, CN =
#                           ota-observer:NAME (server client CA): reads every
#                           cmd topic, publishes nothing, is nobody's session
#                           (scripts/mosquitto.sh gives it its ACL block)
# DIR/mqtt-client-ca.crt    device CA + server client CA: the broker's cafile
# DIR/device-ca.crl, DIR/server-client-ca.crl  CRLs (empty until a revoke)
# DIR/mqtt-client-ca.crl    both CRLs: the broker's crlfile
# DIR/server.pin            SPKI SHA-256 (hex) of server.crt, for agent pins
set -euo pipefail
days=3650
id_re='^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'

die() {
	echo "pki.sh: $*" >&2
	exit 2
}

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

# leaf CA OUT CN KIND(server|client) [DAYS]
leaf() {
	local ca=$1 out=$2 cn=$3 kind=$4 ext
	[[ -f "$out.crt" ]] && return 0
	ext=$(mktemp)
	if [[ $kind == server ]]; then
		printf '%s\n' "basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
			"subjectAltName=IP:127.0.0.1,DNS:localhost${PKI_EXTRA_SANS:+,$PKI_EXTRA_SANS}" >"$ext"
	else
		printf '%s\n' "basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth" >"$ext"
	fi
	# the key and its request in one openssl run (an existing key is kept):
	# openssl's start-up is most of a leaf's cost, and tests make hundreds
	local newkey=(-key "$out.key")
	[[ -f "$out.key" ]] || newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -keyout "$out.key")
	(umask 077 && openssl req -new "${newkey[@]}" -subj "/O=fleetota dev/CN=$cn" 2>/dev/null) |
		openssl x509 -req -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" -CAcreateserial \
			-days "${5:-$days}" -extfile "$ext" -out "$out.crt" 2>/dev/null
	chmod 600 "$out.key"
	rm -f "$ext"
}

# crl CA: (re)writes DIR/CA.crl from the CA's revocation index, then the
# broker's bundle. A CRL's lastUpdate has one-second resolution and a
# verifier prefers the newer of two equal CRLs: wait for the next second.
crl() {
	local ca=$1 cnf
	touch "$dir/$ca.index"
	[[ -f "$dir/$ca.crlnumber" ]] || echo 01 >"$dir/$ca.crlnumber"
	if [[ -f "$dir/$ca.crl" ]]; then
		local last
		last=$(date -u -d "$(openssl crl -in "$dir/$ca.crl" -noout -lastupdate | cut -d= -f2)" +%s)
		while (($(date -u +%s) <= last)); do sleep 0.2; done
	fi
	cnf=$(mktemp)
	printf '%s\n' "[ca]" "default_ca = c" "[c]" "database = $dir/$ca.index" \
		"crlnumber = $dir/$ca.crlnumber" "default_md = sha256" \
		"default_crl_days = 3650" >"$cnf"
	openssl ca -gencrl -config "$cnf" -keyfile "$dir/$ca.key" -cert "$dir/$ca.crt" \
		-out "$dir/$ca.crl.tmp" 2>/dev/null
	rm -f "$cnf"
	mv "$dir/$ca.crl.tmp" "$dir/$ca.crl"
	bundles
}

bundles() {
	local f
	for f in crt crl; do
		[[ -f "$dir/device-ca.$f" && -f "$dir/server-client-ca.$f" ]] || continue
		cat "$dir/device-ca.$f" "$dir/server-client-ca.$f" >"$dir/mqtt-client-ca.$f.tmp"
		mv "$dir/mqtt-client-ca.$f.tmp" "$dir/mqtt-client-ca.$f"
	done
}

# revoke CA CERT...: adds the certificates to the CA's index
revoke() {
	local ca=$1 crt serial end subject
	shift
	touch "$dir/$ca.index"
	for crt in "$@"; do
		serial=$(openssl x509 -in "$crt" -noout -serial | cut -d= -f2)
		grep -q "	$serial	" "$dir/$ca.index" && continue
		end=$(openssl x509 -in "$crt" -noout -enddate | cut -d= -f2)
		subject=$(openssl x509 -in "$crt" -noout -subject -nameopt compat | sed 's/^subject=//')
		printf 'R\t%s\t%s\t%s\tunknown\t%s\n' "$(date -u -d "$end" +%y%m%d%H%M%SZ)" \
			"$(date -u +%y%m%d%H%M%SZ)" "$serial" "$subject" >>"$dir/$ca.index"
	done
	crl "$ca"
}

server_identity() { # NAME
	[[ $1 =~ $id_re ]] || die "invalid server name '$1'"
	leaf server-client-ca "$dir/servers/$1" "ota-server:$1" client
}

# PKI_TEMPLATE=PREFIX (the integration tests' libraries; never the demo,
# whose keys must not outlive it): a new DIR starts as a copy of what
# `pki.sh DIR` makes with no device (the CAs, server, broker, ota-server:1,
# the CRLs and the pin), made once into PREFIX-HASH (HASH of this script,
# PKI_EXTRA_SANS and the openssl version) and kept; and a device of a DIR
# whose device CA is the template's is copied from the template's pool
# (PREFIX-HASH-pool/ID/, added to by the first test that needs ID). The
# CAs' ~20 openssl runs (about a CPU second) and two per device (a test
# with 200 devices) are not repeated by each test. A new leaf's serial
# still starts at random in each DIR (no .srl in the template), so two
# certificates of one DIR never share a serial (a CRL names serials). A
# test that needs a second, foreign PKI calls pki.sh without PKI_TEMPLATE.
POOL=
from_template() { # DIR
	[[ -n ${PKI_TEMPLATE:-} ]] || return 0
	local tpl tmp
	tpl=$PKI_TEMPLATE-$({
		cat "${BASH_SOURCE[0]}"
		echo "${PKI_EXTRA_SANS:-}"
		openssl version
	} | sha256sum | cut -c1-16)
	if [[ ! -e "$1/server-ca.crt" ]]; then
		if [[ ! -f "$tpl/server.pin" ]]; then
			tmp=$(mktemp -d "$tpl.XXXXXX")
			PKI_TEMPLATE='' "${BASH_SOURCE[0]}" "$tmp/pki" >/dev/null
			# whole or not at all; another test may have made it meanwhile
			mv -T "$tmp/pki" "$tpl" 2>/dev/null || true
			rm -rf "$tmp"
			[[ -f "$tpl/server.pin" ]] || die "no PKI template in $tpl"
		fi
		mkdir -p "$1"
		cp -a "$tpl/." "$1/"
	fi
	if cmp -s "$tpl/device-ca.crt" "$1/device-ca.crt"; then POOL=$tpl-pool; fi
	return 0
}

# devices ID...: DIR/devices/ID.{crt,key}; those in the pool copied from it
# (one cp for all), the others made and added to it
devices() {
	local id hits=() tmp
	for id in "$@"; do
		[[ -n $POOL && ! -f "$dir/devices/$id.crt" && -f "$POOL/$id/$id.crt" ]] &&
			hits+=("$POOL/$id/$id.key" "$POOL/$id/$id.crt")
	done
	((${#hits[@]} == 0)) || cp -p "${hits[@]}" "$dir/devices/"
	for id in "$@"; do
		[[ ! -f "$dir/devices/$id.crt" ]] || continue
		leaf device-ca "$dir/devices/$id" "$id" client
		[[ -n $POOL && ! -e "$POOL/$id" ]] || continue
		mkdir -p "$POOL"
		tmp=$(mktemp -d "$POOL/.$id.XXXXXX")
		cp -p "$dir/devices/$id.key" "$dir/devices/$id.crt" "$tmp/"
		# whole or not at all; the first of two tests adding ID wins
		mv -T "$tmp" "$POOL/$id" 2>/dev/null || rm -rf "$tmp"
	done
	return 0
}

existing() { # KIND ID: the certificate file or exit 2
	[[ -f "$dir/$1/$2.crt" ]] || die "no certificate for $2"
	echo "$dir/$1/$2.crt"
}

case ${1:-} in
revoke | revoke-server)
	what=$1
	dir=${2:?usage: pki.sh $what DIR ID...}
	shift 2
	kind=devices ca_name=device-ca
	[[ $what == revoke ]] || kind=servers ca_name=server-client-ca
	crts=()
	for id in "$@"; do crts+=("$(existing "$kind" "$id")"); done
	revoke "$ca_name" "${crts[@]}"
	exit 0
	;;
server)
	dir=${2:?usage: pki.sh server DIR NAME...}
	shift 2
	mkdir -p "$dir/servers"
	for name in "$@"; do server_identity "$name"; done
	exit 0
	;;
observer)
	dir=${2:?usage: pki.sh observer DIR NAME...}
	shift 2
	mkdir -p "$dir/observers"
	for name in "$@"; do
		[[ $name =~ $id_re ]] || die "invalid observer name '$name'"
		leaf server-client-ca "$dir/observers/$name" "ota-observer:$name" client
	done
	exit 0
	;;
takeover-cert)
	dir=${2:?usage: pki.sh takeover-cert DIR DEVICE_ID OUT}
	id=${3:?DEVICE_ID} out=${4:?OUT}
	[[ $id =~ $id_re ]] || die "invalid device id '$id'"
	rm -f "$out.crt" "$out.key"
	key "$out.key"
	# openssl x509 -days counts whole days: openssl ca with an end date
	tmp=$(mktemp -d)
	touch "$tmp/index"
	openssl rand -hex 16 >"$tmp/serial"
	printf '%s\n' "[ca]" "default_ca = c" "[c]" "database = $tmp/index" \
		"serial = $tmp/serial" "new_certs_dir = $tmp" "default_md = sha256" \
		"policy = p" "x509_extensions = x" "unique_subject = no" \
		"[p]" "commonName = supplied" "organizationName = optional" \
		"[x]" "basicConstraints = critical,CA:FALSE" \
		"keyUsage = critical,digitalSignature" "extendedKeyUsage = clientAuth" >"$tmp/cnf"
	openssl req -new -key "$out.key" -subj "/O=fleetota dev/CN=$id" -out "$tmp/csr" 2>/dev/null
	openssl ca -batch -notext -config "$tmp/cnf" -cert "$dir/device-ca.crt" \
		-keyfile "$dir/device-ca.key" -in "$tmp/csr" -out "$out.crt" \
		-startdate "$(date -u -d '-1 min' +%Y%m%d%H%M%SZ)" \
		-enddate "$(date -u -d '+5 min' +%Y%m%d%H%M%SZ)" 2>/dev/null
	rm -rf "$tmp"
	exit 0
	;;
esac

dir=${1:?usage: pki.sh DIR [DEVICE_ID...]}
shift
for id in "$@"; do
	[[ $id =~ $id_re ]] || die "invalid device id '$id'"
done
from_template "$dir"
mkdir -p "$dir/devices" "$dir/servers"
ca server-ca "fleetota dev server CA"
ca device-ca "fleetota dev device CA"
ca server-client-ca "fleetota dev server client CA"
leaf server-ca "$dir/server" 127.0.0.1 server
leaf server-ca "$dir/broker" 127.0.0.1 server
server_identity 1
devices "$@"
[[ -f "$dir/device-ca.crl" ]] || crl device-ca
[[ -f "$dir/server-client-ca.crl" ]] || crl server-client-ca
bundles
if [[ ! -f "$dir/server.pin" ]]; then
	openssl x509 -in "$dir/server.crt" -noout -pubkey | openssl pkey -pubin -outform DER |
		openssl dgst -sha256 -r | cut -d' ' -f1 >"$dir/server.pin"
fi
