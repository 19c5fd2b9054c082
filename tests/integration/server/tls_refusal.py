#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What a refused TLS client reads: tls_refusal.py HOST PORT CA VERSION N GAP_MS [CERT KEY]

N connections, one after the other: the handshake, then at once the first
half of a request (under TLS 1.3 the client's handshake is done before the
server has checked its certificate), GAP_MS later its second half (as a
client sends a head and then a body), then a read. Prints
one line per connection: the OpenSSL reason of the error the client got
(SSLV3_ALERT_CERTIFICATE_REVOKED, TLSV1_ALERT_UNKNOWN_CA, ...: the alert
it read), or the name of the exception that stood in for one
(ConnectionResetError: the server's TCP reset came first), or "HTTP ..."
when it got an answer. VERSION is 1.2 or 1.3.
"""
import socket
import ssl
import sys
import time


def one(host, port, ctx, gap):
    sock = socket.create_connection((host, port), timeout=10)
    try:
        tls = ctx.wrap_socket(sock, server_hostname=host)
        sock = tls
        tls.sendall(b"GET /v1/keylist HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(gap)
        tls.sendall(b"Connection: close\r\n\r\n")
        data = tls.recv(4096)
        if data.startswith(b"HTTP/1.1 "):
            return "HTTP " + data[9:12].decode("ascii", "replace")
        return "EOF" if not data else "DATA"
    except ssl.SSLError as e:
        return e.reason or type(e).__name__
    except OSError as e:
        return type(e).__name__
    finally:
        sock.close()


def main():
    if len(sys.argv) not in (7, 9):
        sys.exit(__doc__)
    host, port, ca, version, n, gap_ms = sys.argv[1:7]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    pin = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = pin
    if len(sys.argv) == 9:
        ctx.load_cert_chain(sys.argv[7], sys.argv[8])
    for _ in range(int(n)):
        print(one(host, int(port), ctx, int(gap_ms) / 1000), flush=True)


main()
