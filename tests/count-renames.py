#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
#
# count-renames.py DIR NAME OUT: count the files renamed onto DIR/NAME
# (inotify IN_MOVED_TO), writing the running count to OUT after each one.
# Watches without touching the watched process (no ptrace).
import ctypes
import os
import struct
import sys

IN_MOVED_TO = 0x80
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_CLOEXEC)
if fd < 0 or libc.inotify_add_watch(fd, sys.argv[1].encode(), IN_MOVED_TO) < 0:
    sys.exit("count-renames: inotify: " + os.strerror(ctypes.get_errno()))
name, out, n = sys.argv[2].encode(), sys.argv[3], 0
with open(out, "w") as f:
    f.write("0\n")
while True:
    buf = os.read(fd, 65536)
    off = 0
    while off < len(buf):
        _, mask, _, length = struct.unpack_from("iIII", buf, off)
        if buf[off + 16:off + 16 + length].rstrip(b"\0") == name:
            n += 1
        off += 16 + length
    with open(out + ".tmp", "w") as f:
        f.write("%d\n" % n)
    os.rename(out + ".tmp", out)
