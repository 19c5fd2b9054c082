#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A stand-in for systemd's notification socket: binds a unix datagram
# socket at argv[1] and appends every datagram it receives to argv[2], one
# per line ("READY=1\nSTATUS=x" becomes "READY=1|STATUS=x"), until killed.
import os
import socket
import sys
import time

path, out = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)
with open(out, "a", buffering=1) as f:
    while True:
        data = sock.recv(4096)
        f.write("%.3f %s\n" % (time.monotonic(), data.decode("utf-8", "replace").strip().replace("\n", "|")))
