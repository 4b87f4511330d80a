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

errnos ENOENT EBADMSG EPROTO EMSGSIZE ETIMEDOUT ERANGE
log_mark() { wc -l <"$T/vmclockd.log"; }
# said_once DESCRIPTION FIELD=VALUE...: an event with these fields comes
# (waited for, since a slow machine is normal) and, a second and many ticks
# later, has not repeated.
said_once() {
	local desc=$1
	shift
	wait_for 10 has_event - "$@"
	sleep 1
	check "$desc said once" test "$(n_events - "$@")" -eq 1
}
# The page as a file vmclockd reads: FILE_STATE=STATE [FIELD=VALUE...].
page() { local s=$1; shift; echo "FILE=$T/page" "FILE_STATE=$s" "$@"; }
# back_since MARK: the page usable again, or samples fed, after MARK lines.
back_since() { has_event_since "$1" - $(page usable) || has_event_since "$1" - SAMPLES=fed; }

# Missing device: waits for it, says so once.
start_vmclockd --interval-ms 20 --chrony-cmd ""
said_once "missing device" $(page unusable ERRNO=$ENOENT)
check "alive without a device" kill -0 "$VMCLOCKD_PID"
write_page
check "device appearing is noticed" wait_for 10 has_event - $(page usable)

# Bad magic, unknown version, short page: each said once, never a crash.
# A replaced page is noticed within a second (the check is once a second).
write_page 0:00000000
said_once "bad magic" ERRNO=$EBADMSG
write_page 8:0200
said_once "unknown version" ERRNO=$EPROTO
head -c 50 /dev/zero >"$T/page.tmp" && mv "$T/page.tmp" "$T/page"
said_once "short page" ERRNO=$EMSGSIZE
# seq_count stuck odd: the read gives up after 100 ms each tick, said once.
write_page 12:03000000
said_once "odd seq_count" ERRNO=$ETIMEDOUT
check "alive after all bad pages" kill -0 "$VMCLOCKD_PID"
# Absurd shift on a page with a counter (and a period: a zero period is no
# time, which libvmclock says first): no crash, withheld.
write_page 10:01 34:02 39:ff 48:0100000000000000
said_once "absurd shift" $(page unmeasurable ERRNO=$ERANGE)
check "alive after an absurd shift" kill -0 "$VMCLOCKD_PID"
# The device vanishing under the daemon, and coming back.
mark=$(log_mark)
start_sim --interval-ms 50
check "sim page taken up" wait_for 10 back_since "$mark"
kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null
mark=$(log_mark)
rm -f "$T/page"
check "vanished device noticed" wait_for 10 has_event_since "$mark" - $(page unusable ERRNO=$ENOENT)
check "alive without it" kill -0 "$VMCLOCKD_PID"
mark=$(log_mark)
start_sim --interval-ms 50
check "device back: feeding again" wait_for 10 back_since "$mark"
kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null
# A page file truncated under the mapping: SIGBUS is caught, not fatal.
# The writer is stopped first: it holds the same mapping.  The once-a-second
# replaced-page check may see the truncation before a read faults (then the
# reopen says the page is too small); a few tries make sure the fault is met.
truncated_since() { has_event_since "$1" - $(page truncated); }
for _ in 1 2 3 4 5; do
	mark=$(log_mark)
	truncate -s 0 "$T/page"
	wait_for 10 eval 'truncated_since "$mark" || has_event_since "$mark" - ERRNO=$EMSGSIZE' || break
	truncated_since "$mark" && break
	mark=$(log_mark)
	start_sim --interval-ms 50
	wait_for 10 has_event_since "$mark" - $(page usable)
	kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null
done
check "truncation said" truncated_since "$mark"
check "alive after the page was truncated under it" kill -0 "$VMCLOCKD_PID"
kill "$VMCLOCKD_PID"; wait "$VMCLOCKD_PID" 2>/dev/null
check "clean exit on SIGTERM" grep -q 'signal 15: exiting' "$T/vmclockd.log"

# A SOCK path nobody listens on, in a directory that does not exist.
mv "$T/vmclockd.log" "$T/vmclockd-faults.log"; : >"$T/vmclockd.log"
start_sim --interval-ms 100
"$VMCLOCKD" --foreground --config /dev/null --device "$T/page" --chrony-sock "$T/nodir/vmc.sock" \
	--chrony-cmd "" --state-dir "$T/state" --interval-ms 20 >>"$T/vmclockd.log" 2>&1 &
VMCLOCKD_PID=$!
PIDS="$PIDS $VMCLOCKD_PID"
said_once "unusable SOCK path" OUTPUT=chrony-sock ERRNO=$ENOENT
check "alive with an unusable SOCK path" kill -0 "$VMCLOCKD_PID"

# Configuration errors are fatal with file and line.
printf 'interval-ms 5\n' >"$T/bad.conf"
out=$("$VMCLOCKD" --config "$T/bad.conf" --check-config 2>&1)
check "config error names file and line ($out)" test "$out" = "vmclockd: error: $T/bad.conf:1: interval-ms is out of range"
printf 'bogus 1\n' >"$T/bad.conf"
out=$("$VMCLOCKD" --config "$T/bad.conf" --check-config 2>&1)
check "unknown directive named ($out)" test "$out" = "vmclockd: error: $T/bad.conf:1: unknown directive 'bogus'"
"$VMCLOCKD" --nonsense >/dev/null 2>&1
check "usage error exits 2" test $? -eq 2

# Our own output that cannot be created (here a SOCK path longer than a Unix
# socket address) is a local failure: fatal at start-up, naming the setting;
# on a reload the running configuration is kept.
long=$T/$(printf 's%.0s' $(seq 120))
out=$(timeout 10 "$VMCLOCKD" --foreground --config /dev/null --device "$T/page" \
	--chrony-sock "$long" --chrony-cmd "" --state-dir "$T/state" 2>&1)
rc=$?
check "an output that cannot be created is fatal at start-up (exit $rc)" test "$rc" -eq 1
check "... naming the setting ($(tail -n 2 <<<"$out" | tr '\n' ' '))" grep -q "chrony-sock $long" <<<"$out"
printf 'chrony-sock %s\n' "$T/vmc.sock" >"$T/reload.conf"
mark=$(log_mark)
"$VMCLOCKD" --foreground --config "$T/reload.conf" --device "$T/page" --chrony-cmd "" \
	--state-dir "$T/state" --interval-ms 20 >>"$T/vmclockd.log" 2>&1 &
VMCLOCKD_PID=$!
PIDS="$PIDS $VMCLOCKD_PID"
check "started with a usable SOCK path" wait_for 10 eval 'tail -n +$((mark + 1)) "$T/vmclockd.log" | grep -q "started: page"'
printf 'chrony-sock %s\n' "$long" >"$T/reload.conf"
kill -HUP "$VMCLOCKD_PID"
check "a reload to an output that cannot be created is refused" \
	wait_for 10 has_event_since "$mark" - RELOAD=refused
check "... naming the setting" eval 'tail -n +$((mark + 1)) "$T/vmclockd.log" | grep -q "chrony-sock $long"'
check "... and the daemon runs on" kill -0 "$VMCLOCKD_PID"

finish
