#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-faults.sh - bad input is normal input: vmclockd stays up through bad
# pages, a missing device and an unusable SOCK path, and says why once.
. "$(dirname "$0")/lib.sh"

# Writes a 4096-byte page file with one field overridden: offset, bytes (hex).
write_page() {
	python3 - "$T/page" "$@" <<'EOP'
import struct, sys
path = sys.argv[1]
page = bytearray(4096)
struct.pack_into("<IIHBBI", page, 0, 0x4b4c4356, 4096, 1, 0xff, 0, 2)
for spec in sys.argv[2:]:
    off, hexbytes = spec.split(":")
    page[int(off, 0):int(off, 0) + len(hexbytes) // 2] = bytes.fromhex(hexbytes)
open(path + ".tmp", "wb").write(page)
import os; os.rename(path + ".tmp", path)
EOP
}

count() { grep -c "$1" "$T/vmclockd.log"; }

# Missing device: waits for it, says so once.
start_vmclockd --interval-ms 20 --chrony-cmd ""
sleep 1
check "alive without a device" kill -0 "$VMCLOCKD_PID"
check "missing device said once" test "$(count 'cannot use .*No such file')" -eq 1
write_page
sleep 1
check "device appearing is noticed" grep -q 'is usable now' "$T/vmclockd.log"

# Bad magic, unknown version, short page: each said once, never a crash.
# A replaced page is noticed within a second (the check is once a second).
write_page 0:00000000
sleep 1.5
check "bad magic said once" test "$(count 'bad magic')" -eq 1
write_page 8:0200
sleep 1.5
check "unknown version said once" test "$(count 'unknown page version')" -eq 1
head -c 50 /dev/zero >"$T/page.tmp" && mv "$T/page.tmp" "$T/page"
sleep 1.5
check "short page said once" test "$(count 'page too small')" -eq 1
# seq_count stuck odd: the read gives up after 100 ms each tick, said once.
write_page 12:03000000
sleep 2
check "odd seq_count said once" test "$(count 'page never stable')" -eq 1
check "alive after all bad pages" kill -0 "$VMCLOCKD_PID"
# Absurd shift on a page with a counter: no crash, withheld.
write_page 10:01 34:02 39:ff
sleep 1.5
check "alive after an absurd shift" kill -0 "$VMCLOCKD_PID"
check "absurd shift said once" test "$(count 'out of range')" -eq 1
# The device vanishing under the daemon, and coming back.
start_sim --interval-ms 50
sleep 1.5
kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null
rm -f "$T/page"
sleep 1.5
check "vanished device noticed" grep -q 'cannot use .*No such file' "$T/vmclockd.log"
check "alive without it" kill -0 "$VMCLOCKD_PID"
start_sim --interval-ms 50
sleep 1.5
check "device back: feeding again" test "$(tail -n 3 "$T/vmclockd.log" | grep -c 'usable now\|feeding samples')" -ge 1
kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null
# A page file truncated under the mapping: SIGBUS is caught, not fatal.
start_sim --interval-ms 50
sleep 1.5
truncate -s 0 "$T/page"
sleep 0.5
check "alive after the page was truncated under it" kill -0 "$VMCLOCKD_PID"
check "truncation said" grep -q 'truncated under its mapping' "$T/vmclockd.log"
kill "$SIM_PID" 2>/dev/null
kill "$VMCLOCKD_PID"; wait "$VMCLOCKD_PID" 2>/dev/null
check "clean exit on SIGTERM" grep -q 'signal 15: exiting' "$T/vmclockd.log"

# A SOCK path nobody listens on, in a directory that does not exist.
: >"$T/vmclockd.log"
start_sim --interval-ms 100
"$VMCLOCKD" --foreground --config /dev/null --device "$T/page" --chrony-sock "$T/nodir/vmc.sock" \
	--chrony-cmd "" --state-dir "$T/state" --interval-ms 20 >>"$T/vmclockd.log" 2>&1 &
VMCLOCKD_PID=$!
PIDS="$PIDS $VMCLOCKD_PID"
sleep 1
check "alive with an unusable SOCK path" kill -0 "$VMCLOCKD_PID"
check "unusable SOCK path said once" test "$(count 'not listening on')" -eq 1

# Configuration errors are fatal with file and line.
printf 'interval-ms 5\n' >"$T/bad.conf"
out=$("$VMCLOCKD" --config "$T/bad.conf" --check-config 2>&1)
check "config error names file and line ($out)" test "$out" = "vmclockd: $T/bad.conf:1: interval-ms is out of range"
printf 'bogus 1\n' >"$T/bad.conf"
out=$("$VMCLOCKD" --config "$T/bad.conf" --check-config 2>&1)
check "unknown directive named ($out)" test "$out" = "vmclockd: $T/bad.conf:1: unknown directive 'bogus'"
"$VMCLOCKD" --nonsense >/dev/null 2>&1
check "usage error exits 2" test $? -eq 2

finish
