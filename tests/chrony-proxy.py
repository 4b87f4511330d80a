#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
#
# chrony-proxy.py - a misbehaving path in front of a real chronyd's command
# socket, for tests.  Clients talk to LISTEN; requests go on to CHRONYD from
# UP (a socket of the proxy's own), and answers come back.
#
#   chrony-proxy.py LISTEN UP CHRONYD LOG [--refuse CMD:N] [--delay CMD:N:MS]
#                   [--tracking-refid HEX]
#
#   --refuse CMD:N     answer the first N requests of command CMD "failed"
#                      (status 1) without passing them on
#   --delay CMD:N:MS   hold chronyd's answer to the Nth request of CMD for MS
#                      milliseconds (chronyd has applied it)
#   --tracking-refid HEX   say reference id HEX in every tracking answer,
#                      whatever chronyd follows (the rest is chronyd's)
#
# LOG gets one line per event: "refused CMD n", "held CMD n",
# "forwarded CMD seq VALUE", "answered CMD seq status STATUS", "released CMD n";
# VALUE is the request's Float argument (dfreq's ppm, doffset's seconds).
import select
import socket
import struct
import sys
import time


def decode_float(f):
    """chrony's Float: 7-bit exponent, 25-bit two's-complement coefficient."""
    exp = f >> 25
    if exp >= 64:
        exp -= 128
    coef = f & 0x1FFFFFF
    if coef >= 1 << 24:
        coef -= 1 << 25
    return coef * 2.0 ** (exp - 25)


def main():
    listen, up, chronyd, logpath = sys.argv[1:5]
    refuse, delay, refid = {}, {}, None
    args = sys.argv[5:]
    while args:
        opt, val = args[0], args[1].split(':')
        args = args[2:]
        if opt == '--refuse':
            refuse[int(val[0])] = int(val[1])
        elif opt == '--delay':
            delay[(int(val[0]), int(val[1]))] = int(val[2]) / 1000.0
        elif opt == '--tracking-refid':
            refid = struct.pack('>I', int(val[0], 16))
    log = open(logpath, 'a', buffering=1)
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    lsock.bind(listen)
    usock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    usock.bind(up)
    counts = {}
    clients = {}   # sequence -> (client address, command, count)
    held = []      # (release time, data, address, command, count)
    while True:
        timeout = None
        if held:
            timeout = max(0.0, min(h[0] for h in held) - time.monotonic())
        ready, _, _ = select.select([lsock, usock], [], [], timeout)
        now = time.monotonic()
        for h in [h for h in held if h[0] <= now]:
            held.remove(h)
            try:
                lsock.sendto(h[1], h[2])
                log.write('released %d %d\n' % (h[3], h[4]))
            except OSError as e:
                log.write('released %d %d to nobody: %s\n' % (h[3], h[4], e))
        if lsock in ready:
            data, addr = lsock.recvfrom(1024)
            if len(data) < 24:
                continue
            cmd, seq = struct.unpack('>H', data[4:6])[0], struct.unpack('>I', data[8:12])[0]
            counts[cmd] = counts.get(cmd, 0) + 1
            n = counts[cmd]
            if refuse.get(cmd, 0) >= n:
                reply = bytearray(28)
                reply[0], reply[1] = data[0], 2
                reply[4:6] = data[4:6]
                reply[6:8] = struct.pack('>H', 1)
                reply[8:10] = struct.pack('>H', 1)
                reply[16:20] = data[8:12]
                try:
                    lsock.sendto(bytes(reply), addr)
                except OSError:
                    pass
                log.write('refused %d %d\n' % (cmd, n))
                continue
            value = decode_float(struct.unpack('>I', data[20:24])[0])
            clients[seq] = (addr, cmd, n)
            try:
                usock.sendto(data, chronyd)
                log.write('forwarded %d %d %.9f\n' % (cmd, seq, value))
            except OSError as e:
                log.write('lost %d %d %s\n' % (cmd, seq, e))
        if usock in ready:
            data, _ = usock.recvfrom(1024)
            if len(data) < 28:
                continue
            seq = struct.unpack('>I', data[16:20])[0]
            status = struct.unpack('>H', data[8:10])[0]
            if seq not in clients:
                continue
            addr, cmd, n = clients[seq]
            log.write('answered %d %d status %d\n' % (cmd, seq, status))
            # REQ_TRACKING's reply data (after the 28-byte header) starts
            # with the reference id.
            if refid is not None and cmd == 33 and len(data) >= 32:
                data = data[:28] + refid + data[32:]
            if (cmd, n) in delay:
                held.append((now + delay.pop((cmd, n)), data, addr, cmd, n))
                log.write('held %d %d\n' % (cmd, n))
                continue
            try:
                lsock.sendto(data, addr)
            except OSError:
                pass


main()
