#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
#
# capture-dgram.py SOCKET OUT: bind a Unix datagram socket and append every
# datagram received to OUT, each followed by a line "--".  Stands in for
# systemd's notify socket and journald's native socket in the tests.
import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(out, "ab", buffering=0) as f:
    while True:
        data = s.recv(65536)
        f.write(data.rstrip(b"\n") + b"\n--\n")
