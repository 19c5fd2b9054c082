#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# TLS sessions on the device listener (issue 19): the server ends every
# connection with a close_notify; sessions resume through tickets (TLS 1.3
# and 1.2) on this replica and on a second one that reads the same ticket
# key file; a resumed connection is still the device of its certificate;
# rotating the key file keeps sessions; a ticket of another key file is
# refused (full handshake); a device revoked after its session was made
# cannot resume (the CRL is checked on resumption) while another device's
# session, made under the old CRL, resumes after its certificate verified
# again; a connection's certificate is verified once (at the handshake, or
# when its ticket is taken), again on a request only when the CA or CRL was
# reloaded since, and handshakes are counted after reloads too; requests sent
# with the client's Finished (read ahead with the handshake) are answered; a
# TLS 1.2 ticket of the current key resumes through the ticket once, which
# keeps its session in the replica's cache, then from the cache (no ticket
# decoding) every time it is offered (another replica's too); a ticket of a
# key being rotated out is renewed, and the renewed one cached. A full
# handshake whose certificate chain was verified before (same DER, same CA
# and CRL generation) is not verified again, but the same subject and key
# under another CA is refused, another certificate of the same device is
# verified before it is cached, a certificate that expired since it was
# cached is refused, and so is one revoked and reloaded since. Every count
# is read from /metrics.
source "$(dirname "$0")/lib.sh"
API_PORT=$(free_port)
DEV_PORT2=$(free_port)
key() { openssl rand -hex 80; }
keys_file() { # OUT KEY...: a ticket key file, mode 0600
	local out=$1
	shift
	(umask 077 && { echo "# ticket keys (test)"; printf '%s\n' "$@"; } >"$out.tmp")
	mv "$out.tmp" "$out"
}
K1=$(key) K2=$(key) K3=$(key) K4=$(key)
keys_file "$T/tickets.keys" "$K1" "$K2" "$K3"
SERVER_CONF_EXTRA="device_crl = $PKI/device-ca.crl
device_ticket_keys = $T/tickets.keys
device_reload_sec = 0
http_timeout_sec = 30"
standard_setup
TOKEN=$("$OTA_SERVER" token create --role viewer --name tls --config "$T/server.conf")
sql -c "INSERT INTO assignments (device_id, artifact_id) VALUES ('dev-1', 'art-2'), ('dev-3', 'art-2')"

# get DEVICE PORT PATH OUT [s_client args]: one connection, one request;
# s_client's output in $T/OUT
get() {
	local dev=$1 port=$2 path=$3 out=$4
	shift 4
	printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" |
		timeout 20 openssl s_client -ign_eof -connect "127.0.0.1:$port" \
			-CAfile "$PKI/server-ca.crt" -cert "$PKI/devices/$dev.crt" \
			-key "$PKI/devices/$dev.key" "$@" >"$T/$out" 2>&1 || true
}
http_status() { grep -ao -m1 'HTTP/1.1 [0-9]*' "$T/$1" | cut -d' ' -f2; }
reused() { grep -q '^Reused, ' "$T/$1"; }
m() { metric "$1"; }
m2() { # metric on the second instance
	curl -sS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$API_PORT2/metrics" |
		awk -v m="$1" '$1 == m { print $2 }'
}

log "close_notify: the server ends a Connection: close reply cleanly"
python3 - "$DEV_PORT" "$PKI" <<'PY' || fail "no close_notify from the server"
import socket, ssl, sys
port, pki = int(sys.argv[1]), sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(pki + "/server-ca.crt")
ctx.load_cert_chain(pki + "/devices/dev-1.crt", pki + "/devices/dev-1.key")
for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False) as s:
            s.sendall(b"GET /v1/keylist HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)  # SSLEOFError on an EOF without close_notify
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data[:40]
PY

for v in 1_3 1_2; do
	log "TLS ${v/_/.}: a session of dev-1 resumes, and the resumed connection is dev-1"
	full0=$(m fleetota_tls_handshakes_total) res0=$(m fleetota_tls_resumed_total)
	rev0=$(m fleetota_tls_peer_reverified_total) cached0=$(m fleetota_tls_resumed_cached_total)
	get dev-1 "$DEV_PORT" /v1/manifests/art-2 "new$v" -tls$v -sess_out "$T/dev1-$v.sess"
	[[ $(http_status "new$v") == 200 ]] && ! reused "new$v" || fail "first connection: $(tail -5 "$T/new$v")"
	[[ -s "$T/dev1-$v.sess" ]] || fail "no session from the first connection"
	# TLS 1.3: one ticket after a full handshake (each costs a session encoding and decoding)
	[[ $v == 1_2 || $(grep -c 'Post-Handshake New Session Ticket arrived' "$T/new$v") == 1 ]] ||
		fail "TLS 1.3 full handshake: $(grep -c 'Post-Handshake New Session Ticket arrived' "$T/new$v") tickets, want 1"
	get dev-1 "$DEV_PORT" /v1/manifests/art-2 "res$v" -tls$v -sess_in "$T/dev1-$v.sess"
	reused "res$v" || fail "TLS ${v/_/.} session not resumed: $(grep -a -m3 'New,\|Reused\|alert' "$T/res$v")"
	[[ $(http_status "res$v") == 200 ]] || fail "resumed manifest: $(http_status "res$v")"
	[[ $(m fleetota_tls_handshakes_total) == $((full0 + 1)) && $(m fleetota_tls_resumed_total) == $((res0 + 1)) ]] ||
		fail "metrics: handshakes $full0 -> $(m fleetota_tls_handshakes_total), resumed $res0 -> $(m fleetota_tls_resumed_total)"
	# verified at the handshake (or when the ticket was issued): not again on the request
	[[ $(m fleetota_tls_peer_reverified_total) == "$rev0" ]] ||
		fail "certificates verified again without a reload: $rev0 -> $(m fleetota_tls_peer_reverified_total)"
	# TLS 1.2: the first resumption through the ticket, which leaves the
	# session in the cache; from then on from the cache (no ticket
	# decoding), every time the ticket is offered. TLS 1.3: the ticket.
	[[ $(m fleetota_tls_resumed_cached_total) == "$cached0" ]] ||
		fail "TLS ${v/_/.} first resumption from the session cache: $cached0 -> $(m fleetota_tls_resumed_cached_total)"
	want=0
	[[ $v == 1_3 ]] || want=1
	for i in 1 2; do
		get dev-1 "$DEV_PORT" /v1/manifests/art-2 "again$v" -tls$v -sess_in "$T/dev1-$v.sess"
		reused "again$v" && [[ $(http_status "again$v") == 200 ]] ||
			fail "TLS ${v/_/.} resumption $((i + 1)): $(grep -a -m3 'New,\|Reused\|HTTP' "$T/again$v")"
		[[ $(m fleetota_tls_resumed_cached_total) == $((cached0 + i * want)) &&
			$(m fleetota_tls_peer_reverified_total) == "$rev0" ]] ||
			fail "TLS ${v/_/.} resumption $((i + 1)): cached $cached0 -> $(m fleetota_tls_resumed_cached_total) (want +$((i * want))), verified again $rev0 -> $(m fleetota_tls_peer_reverified_total)"
	done
done
log "a resumed session of dev-2 is dev-2: art-2 is not assigned to it (403)"
get dev-2 "$DEV_PORT" /v1/keylist d2new -tls1_3 -sess_out "$T/dev2.sess"
get dev-2 "$DEV_PORT" /v1/manifests/art-2 d2res -tls1_3 -sess_in "$T/dev2.sess"
reused d2res && [[ $(http_status d2res) == 403 ]] || fail "dev-2 resumed: $(http_status d2res)"

log "a second replica with the same ticket key file resumes the first one's sessions"
API_PORT2=$(free_port)
second_server_config "$DEV_PORT2" "$T/server2.conf"
sed -i "s/^admin_listen = .*/admin_listen = 127.0.0.1:$API_PORT2/" "$T/server2.conf"
"$OTA_SERVER" --config "$T/server2.conf" >>"$T/server2.log" 2>&1 &
server2_pid=$!
stop_server2() { [[ -z ${server2_pid:-} ]] || { kill -TERM "$server2_pid" 2>/dev/null; wait "$server2_pid" || true; }; }
at_cleanup stop_server2
wait_for 20 bash -c "grep -q 'device listener on' '$T/server2.log' && grep -q 'db connection 0 up' '$T/server2.log'" ||
	fail "second server: $(tail -5 "$T/server2.log")"
for v in 1_3 1_2; do
	get dev-1 "$DEV_PORT2" /v1/manifests/art-2 "r2$v" -tls$v -sess_in "$T/dev1-$v.sess"
	reused "r2$v" && [[ $(http_status "r2$v") == 200 ]] ||
		fail "TLS ${v/_/.} session of replica 1 on replica 2: $(grep -a -m3 'New,\|Reused\|HTTP/' "$T/r2$v")"
done
# replica 2 never saw the session: its TLS 1.2 ticket is decoded, not cached
[[ $(m2 fleetota_tls_resumed_total) == 2 && $(m2 fleetota_tls_handshakes_total) == 0 &&
	$(m2 fleetota_tls_resumed_cached_total) == 0 ]] ||
	fail "replica 2 metrics: resumed $(m2 fleetota_tls_resumed_total), full $(m2 fleetota_tls_handshakes_total), cached $(m2 fleetota_tls_resumed_cached_total)"
# ... and kept then: its next offer there resumes from replica 2's cache
get dev-1 "$DEV_PORT2" /v1/manifests/art-2 r2again -tls1_2 -sess_in "$T/dev1-1_2.sess"
reused r2again && [[ $(http_status r2again) == 200 && $(m2 fleetota_tls_resumed_cached_total) == 1 ]] ||
	fail "replica 2, the same TLS 1.2 session again: cached $(m2 fleetota_tls_resumed_cached_total), want 1"
kill -TERM "$server2_pid"
wait "$server2_pid" || fail "second server exited with $? (sanitizer report?)"
server2_pid=

log "rotation (append a key, drop the first): sessions made before still resume"
# TLS 1.2 in Python (s_client writes no renewed session): a session made
# before the rotation resumes through its ticket (its key no longer
# encrypts: renewed, not from the cache); the renewed one from the cache
keys_file "$T/tickets.keys.next" "$K2" "$K3" "$K4"
python3 - "$DEV_PORT" "$PKI" "$SERVER_PID" "$T/server.log" "$T/tickets.keys" "$API_PORT" "$TOKEN" <<'PY' ||
import os, signal, socket, ssl, sys, time, urllib.request
port, pki, pid, log, keys, api, token = sys.argv[1:8]
def reloads():
    with open(log, errors="replace") as f:
        return f.read().count("reload (SIGHUP): device listener")
def cached():
    req = urllib.request.Request("http://127.0.0.1:%s/metrics" % api, headers={"Authorization": "Bearer " + token})
    for line in urllib.request.urlopen(req, timeout=10).read().decode().splitlines():
        if line.startswith("fleetota_tls_resumed_cached_total "):
            return int(line.split()[1])
    raise AssertionError("no fleetota_tls_resumed_cached_total")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.load_verify_locations(pki + "/server-ca.crt")
ctx.load_cert_chain(pki + "/devices/dev-1.crt", pki + "/devices/dev-1.key")
def connect(session=None):
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as s:
            s.sendall(b"GET /v1/keylist HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data[:40]
            return s.session_reused, s.session
_, before = connect()
n = reloads()
os.rename(keys + ".next", keys)
os.kill(int(pid), signal.SIGHUP)
deadline = time.monotonic() + 10
while reloads() == n:
    assert time.monotonic() < deadline, "no reload"
    time.sleep(0.1)
c0 = cached()
reused, renewed = connect(before)
assert reused and cached() == c0, ("made before the rotation", reused, c0, cached())
reused, _ = connect(renewed)
assert reused and cached() == c0 + 1, ("renewed", reused, c0, cached())
PY
	fail "TLS 1.2 sessions across a ticket key rotation"
get dev-1 "$DEV_PORT" /v1/keylist rot -tls1_3 -sess_in "$T/dev1-1_3.sess" -sess_out "$T/dev1-rot.sess"
reused rot && [[ $(http_status rot) == 200 ]] || fail "after rotation: $(grep -a -m3 'New,\|Reused\|HTTP' "$T/rot")"

log "a ticket of another key file is refused: a full handshake"
unknown0=$(m fleetota_tls_ticket_unknown_key_total)
keys_file "$T/tickets.keys" "$(key)" "$(key)"
kill -HUP "$SERVER_PID"
wait_for 10 bash -c "[[ \$(grep -c 'reload (SIGHUP): device listener' '$T/server.log') == 2 ]]" || fail "no second reload"
for v in 1_3 1_2; do
	get dev-1 "$DEV_PORT" /v1/keylist "foreign$v" -tls$v -sess_in "$T/dev1-$v.sess"
	! reused "foreign$v" && [[ $(http_status "foreign$v") == 200 ]] ||
		fail "TLS ${v/_/.}: a ticket of another key file: $(grep -a -m3 'New,\|Reused\|HTTP' "$T/foreign$v")"
done
[[ $(m fleetota_tls_ticket_unknown_key_total) == $((unknown0 + 2)) ]] ||
	fail "unknown key count: $unknown0 -> $(m fleetota_tls_ticket_unknown_key_total)"
grep -q "$K2\|$K3" "$T/server.log" && fail "key bytes in the log"

log "revocation: dev-3's session cannot resume once the CRL names it; dev-2's can"
for v in 1_3 1_2; do
	get dev-3 "$DEV_PORT" /v1/manifests/art-2 "d3$v" -tls$v -sess_out "$T/dev3-$v.sess"
	[[ $(http_status "d3$v") == 200 ]] || fail "dev-3 before: $(http_status "d3$v")"
	get dev-2 "$DEV_PORT" /v1/keylist "d2$v" -tls$v -sess_out "$T/dev2-$v.sess"
done
fp_before=$(db_fingerprint)
refused0=$(m fleetota_tls_resume_refused_total) rechecked0=$(m fleetota_tls_resume_rechecked_total)
"$TOP/scripts/pki.sh" revoke "$PKI" dev-3
kill -HUP "$SERVER_PID"
wait_for 10 bash -c "[[ \$(grep -c 'reload (SIGHUP): device listener' '$T/server.log') == 3 ]]" || fail "no third reload"
for v in 1_3 1_2; do
	get dev-3 "$DEV_PORT" /v1/manifests/art-2 "rev$v" -tls$v -sess_in "$T/dev3-$v.sess"
	! reused "rev$v" || fail "TLS ${v/_/.}: dev-3's session resumed after its revocation"
	! grep -q "HTTP/1.1" "$T/rev$v" || fail "TLS ${v/_/.}: revoked dev-3 got an HTTP answer"
	grep -q "alert certificate revoked" "$T/rev$v" || fail "dev-3: $(grep -a -m3 -i 'alert\|verify' "$T/rev$v")"
	get dev-2 "$DEV_PORT" /v1/keylist "ok$v" -tls$v -sess_in "$T/dev2-$v.sess"
	reused "ok$v" && [[ $(http_status "ok$v") == 200 ]] ||
		fail "TLS ${v/_/.}: dev-2's session after the CRL change: $(grep -a -m3 'New,\|Reused\|HTTP' "$T/ok$v")"
done
[[ $(m fleetota_tls_resume_refused_total) == $((refused0 + 2)) && $(m fleetota_tls_resume_rechecked_total) == $((rechecked0 + 4)) ]] ||
	fail "refused $refused0 -> $(m fleetota_tls_resume_refused_total), rechecked $rechecked0 -> $(m fleetota_tls_resume_rechecked_total)"
[[ $(db_fingerprint) == "$fp_before" ]] || fail "the database changed"

for v in 1_3 1_2; do
	log "TLS ${v/_/.} after three reloads: new and resumed connections counted, certificates verified once"
	full0=$(m fleetota_tls_handshakes_total) res0=$(m fleetota_tls_resumed_total)
	rev0=$(m fleetota_tls_peer_reverified_total)
	get dev-2 "$DEV_PORT" /v1/keylist "after$v" -tls$v -sess_out "$T/dev2-after-$v.sess"
	get dev-2 "$DEV_PORT" /v1/keylist "afterres$v" -tls$v -sess_in "$T/dev2-after-$v.sess"
	[[ $(http_status "after$v") == 200 ]] && ! reused "after$v" && reused "afterres$v" &&
		[[ $(http_status "afterres$v") == 200 ]] ||
		fail "TLS ${v/_/.} after reloads: $(grep -a -m3 'New,\|Reused\|HTTP' "$T/afterres$v")"
	[[ $(m fleetota_tls_handshakes_total) == $((full0 + 1)) && $(m fleetota_tls_resumed_total) == $((res0 + 1)) ]] ||
		fail "metrics after reloads: handshakes $full0 -> $(m fleetota_tls_handshakes_total), resumed $res0 -> $(m fleetota_tls_resumed_total)"
	[[ $(m fleetota_tls_peer_reverified_total) == "$rev0" ]] ||
		fail "new connections verified again: $rev0 -> $(m fleetota_tls_peer_reverified_total)"
done

log "a connection kept alive across a reload: its certificate verified again, once"
rev0=$(m fleetota_tls_peer_reverified_total)
python3 - "$DEV_PORT" "$PKI" "$SERVER_PID" "$T/server.log" <<'PY' || fail "kept-alive connection across a reload"
import os, signal, socket, ssl, sys, time
port, pki, pid, log = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
def reloads():
    with open(log, errors="replace") as f:
        return f.read().count("reload (SIGHUP): device listener")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(pki + "/server-ca.crt")
ctx.load_cert_chain(pki + "/devices/dev-2.crt", pki + "/devices/dev-2.key")
def recv(s):
    chunk = s.recv(65536)
    assert chunk, "the server closed the connection"
    return chunk
def get(s):
    s.sendall(b"GET /v1/keylist HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += recv(s)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(body) < length:
        body += recv(s)
    assert head.startswith(b"HTTP/1.1 200"), head[:40]
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        get(s)
        before = reloads()
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while reloads() == before:
            assert time.monotonic() < deadline, "no reload"
            time.sleep(0.1)
        get(s)
        get(s)
PY
[[ $(m fleetota_tls_peer_reverified_total) == $((rev0 + 1)) ]] ||
	fail "kept-alive connection: verified again $rev0 -> $(m fleetota_tls_peer_reverified_total) (want +1)"

log "read-ahead: requests sent with the client's Finished (one segment, 5 pipelined) are answered"
python3 - "$DEV_PORT" "$PKI" <<'PY' || fail "requests that came with the Finished were not answered"
import socket, ssl, sys
port, pki = int(sys.argv[1]), sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(pki + "/server-ca.crt")
ctx.load_cert_chain(pki + "/devices/dev-1.crt", pki + "/devices/dev-1.key")
REQ = b"GET /v1/keylist HTTP/1.1\r\nHost: x\r\n\r\n"
LAST = b"GET /v1/keylist HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

N = 5  # records: a read pass of the server may stop after one (dev-1 may make 20 requests at once)

def connect(session=None):
    """The client's last flight and N pipelined requests (a record each) in one send."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1", session=session)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(out.read())
            data = raw.recv(65536)
            assert data, "server closed during the handshake"
            inc.write(data)
    for _ in range(N - 1):
        obj.write(REQ)
    obj.write(LAST)  # all behind the Finished
    raw.sendall(out.read())
    got = b""
    while got.count(b"HTTP/1.1 200") < N:
        try:
            chunk = obj.read(65536)
            if not chunk:  # the server's close_notify
                break
            got += chunk
            continue
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            break
        data = raw.recv(65536)  # socket.timeout: the server did not answer
        if not data:
            break
        inc.write(data)
    raw.close()
    assert got.count(b"HTTP/1.1 200") == N, (got.count(b"HTTP/1.1 200"), got[-200:])
    return obj

for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    ctx.minimum_version = ctx.maximum_version = version
    first = connect()
    if version == ssl.TLSVersion.TLSv1_2:  # the Finished comes last on a resumption
        again = connect(first.session)
        assert again.session_reused, "TLS 1.2 session not resumed"
PY

log "verified chains: a full handshake with a chain verified before skips its verification"
# short_cert ID OUT SECONDS [CA]: OUT.{crt,key}, CN=ID, valid for SECONDS from now,
# signed by CA (PKI's device CA unless given: DIR holding ca.crt and ca.key)
short_cert() {
	local id=$1 out=$2 secs=$3 ca_crt=$PKI/device-ca.crt ca_key=$PKI/device-ca.key tmp
	[[ -z ${4:-} ]] || ca_crt=$4/ca.crt ca_key=$4/ca.key
	tmp=$(mktemp -d "$T/short.XXXXXX")
	touch "$tmp/index"
	openssl rand -hex 16 >"$tmp/serial"
	printf '%s\n' "[ca]" "default_ca = c" "[c]" "database = $tmp/index" \
		"serial = $tmp/serial" "new_certs_dir = $tmp" "default_md = sha256" \
		"policy = p" "x509_extensions = x" "unique_subject = no" \
		"[p]" "commonName = supplied" "organizationName = optional" \
		"[x]" "basicConstraints = critical,CA:FALSE" \
		"keyUsage = critical,digitalSignature" "extendedKeyUsage = clientAuth" >"$tmp/cnf"
	[[ -f $out.key ]] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out.key" 2>/dev/null
	openssl req -new -key "$out.key" -subj "/O=fleetota dev/CN=$id" -out "$tmp/csr" 2>/dev/null
	openssl ca -batch -notext -config "$tmp/cnf" -cert "$ca_crt" -keyfile "$ca_key" \
		-in "$tmp/csr" -out "$out.crt" -startdate "$(date -u -d '-1 min' +%Y%m%d%H%M%SZ)" \
		-enddate "$(date -u -d "+$secs sec" +%Y%m%d%H%M%SZ)" 2>/dev/null || fail "short_cert $id"
}
# getc CERT_BASE OUT [s_client args]: one connection with CERT_BASE.{crt,key}, no session
getc() {
	local base=$1 out=$2
	shift 2
	printf 'GET /v1/keylist HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' |
		timeout 20 openssl s_client -ign_eof -connect "127.0.0.1:$DEV_PORT" \
			-CAfile "$PKI/server-ca.crt" -cert "$base.crt" -key "$base.key" -no_ticket "$@" \
			>"$T/$out" 2>&1 || true
}
for v in 1_3 1_2; do
	vc0=$(m fleetota_tls_verify_cached_total) full0=$(m fleetota_tls_handshakes_total)
	getc "$PKI/devices/dev-1" "vc1$v" -tls$v
	getc "$PKI/devices/dev-1" "vc2$v" -tls$v
	[[ $(http_status "vc1$v") == 200 && $(http_status "vc2$v") == 200 ]] && ! reused "vc2$v" ||
		fail "TLS ${v/_/.} full handshakes of dev-1: $(http_status "vc1$v") $(http_status "vc2$v")"
	# the first may find dev-1's chain of an earlier test above: one at least from the cache
	vc=$(m fleetota_tls_verify_cached_total)
	((vc >= vc0 + 1 && vc <= vc0 + 2)) && [[ $(m fleetota_tls_handshakes_total) == $((full0 + 2)) ]] ||
		fail "TLS ${v/_/.}: verified chains from the cache $vc0 -> $vc (want +1 or +2), full handshakes $full0 -> $(m fleetota_tls_handshakes_total)"
	vc0=$(m fleetota_tls_verify_cached_total)
	getc "$PKI/devices/dev-1" "vc3$v" -tls$v
	[[ $(http_status "vc3$v") == 200 && $(m fleetota_tls_verify_cached_total) == $((vc0 + 1)) ]] ||
		fail "TLS ${v/_/.}: dev-1 again: $(http_status "vc3$v"), cached $vc0 -> $(m fleetota_tls_verify_cached_total)"
done

log "verified chains: the same subject (and key) under another CA is not taken from the cache"
mkdir -p "$T/rogue"
# a CA with the device CA's own name, and dev-1's key under it
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-subj "$(openssl x509 -in "$PKI/device-ca.crt" -noout -subject -nameopt compat | sed 's/^subject=//')" \
	-keyout "$T/rogue/ca.key" -out "$T/rogue/ca.crt" 2>/dev/null || fail "rogue CA"
cp "$PKI/devices/dev-1.key" "$T/rogue/dev-1.key"
short_cert dev-1 "$T/rogue/dev-1" 3600 "$T/rogue"
vc0=$(m fleetota_tls_verify_cached_total)
for v in 1_3 1_2; do
	getc "$T/rogue/dev-1" "rogue$v" -tls$v
	! grep -q "HTTP/1.1" "$T/rogue$v" || fail "TLS ${v/_/.}: dev-1 under another CA got an HTTP answer"
done
[[ $(m fleetota_tls_verify_cached_total) == "$vc0" ]] || fail "a rogue chain came from the cache"
log "verified chains: another certificate of dev-1 (same subject, same CA) is verified, then cached"
short_cert dev-1 "$T/dev-1-second" 3600
getc "$T/dev-1-second" second1 -tls1_2
getc "$T/dev-1-second" second2 -tls1_2
[[ $(http_status second1) == 200 && $(http_status second2) == 200 &&
	$(m fleetota_tls_verify_cached_total) == $((vc0 + 1)) ]] ||
	fail "dev-1's second certificate: $(http_status second1) $(http_status second2), cached $vc0 -> $(m fleetota_tls_verify_cached_total) (want +1)"

log "verified chains: a certificate that expired since it was cached is refused"
short_cert dev-2 "$T/dev-2-short" 8
getc "$T/dev-2-short" short1 -tls1_2
getc "$T/dev-2-short" short2 -tls1_2
[[ $(http_status short1) == 200 && $(http_status short2) == 200 ]] ||
	fail "dev-2's short certificate before it expired: $(http_status short1) $(http_status short2)"
end=$(date -d "$(openssl x509 -in "$T/dev-2-short.crt" -noout -enddate | cut -d= -f2)" +%s)
while (($(date +%s) <= end + 1)); do sleep 0.5; done
vc0=$(m fleetota_tls_verify_cached_total)
for v in 1_3 1_2; do
	getc "$T/dev-2-short" "expired$v" -tls$v
	! grep -q "HTTP/1.1" "$T/expired$v" || fail "TLS ${v/_/.}: an expired certificate got an HTTP answer"
	grep -q "alert certificate expired" "$T/expired$v" ||
		fail "TLS ${v/_/.} expired: $(grep -a -m3 -i 'alert\|verify' "$T/expired$v")"
done
[[ $(m fleetota_tls_verify_cached_total) == "$vc0" ]] || fail "an expired chain came from the cache"

log "verified chains: a certificate revoked and reloaded is refused at its next handshake"
setup_pki dev-4
sql -c "INSERT INTO devices (device_id) VALUES ('dev-4')"
getc "$PKI/devices/dev-4" d4a -tls1_2
vc0=$(m fleetota_tls_verify_cached_total)
getc "$PKI/devices/dev-4" d4b -tls1_2
[[ $(http_status d4a) == 200 && $(http_status d4b) == 200 && $(m fleetota_tls_verify_cached_total) == $((vc0 + 1)) ]] ||
	fail "dev-4 before: $(http_status d4a) $(http_status d4b), cached $vc0 -> $(m fleetota_tls_verify_cached_total)"
reloads0=$(grep -c 'reload (SIGHUP): device listener' "$T/server.log")
"$TOP/scripts/pki.sh" revoke "$PKI" dev-4
kill -HUP "$SERVER_PID"
wait_for 10 bash -c "(( \$(grep -c 'reload (SIGHUP): device listener' '$T/server.log') > $reloads0 ))" || fail "no reload"
for v in 1_3 1_2; do
	getc "$PKI/devices/dev-4" "d4rev$v" -tls$v
	! grep -q "HTTP/1.1" "$T/d4rev$v" || fail "TLS ${v/_/.}: revoked dev-4 got an HTTP answer"
	grep -q "alert certificate revoked" "$T/d4rev$v" || fail "dev-4: $(grep -a -m3 -i 'alert\|verify' "$T/d4rev$v")"
done
vc0=$(m fleetota_tls_verify_cached_total)
getc "$PKI/devices/dev-1" d1after -tls1_2
getc "$PKI/devices/dev-1" d1after2 -tls1_2
[[ $(http_status d1after) == 200 && $(http_status d1after2) == 200 &&
	$(m fleetota_tls_verify_cached_total) == $((vc0 + 1)) ]] ||
	fail "dev-1 after the reload: verified again, then cached: $vc0 -> $(m fleetota_tls_verify_cached_total) (want +1)"

check_server_exit
log "PASS"
