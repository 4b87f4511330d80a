#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-truncate.sh - a page file truncated and rewritten in place, again and
# again, while vmclockd opens and reads it: every fault is met by the bus
# guard around the page reads and the open, the page is dropped and opened
# afresh, and nothing leaks (the daemon's open descriptors stay bounded) and
# nothing kills it.
. "$(dirname "$0")/lib.sh"

# A valid page, taken once from vmclock-sim.
start_sim --interval-ms 100
sleep 0.3
cp "$T/page" "$T/good"
kill "$SIM_PID"
wait "$SIM_PID" 2>/dev/null
cp "$T/good" "$T/page"

start_vmclockd --interval-ms 10
wait_for 5 eval 'has_event - SAMPLES=fed || has_event - SAMPLES=withheld'
fds() { ls "/proc/$VMCLOCKD_PID/fd" 2>/dev/null | wc -l; }
sleep 0.5
fd0=$(fds)
# Truncate and restore the same inode for 8 s: the daemon meets the page
# short (SIGBUS on a read), empty (the open refused) and whole again.
end=$((SECONDS + 8))
n=0
while [ $SECONDS -lt $end ]; do
	: >"$T/page"
	sleep 0.00$((RANDOM % 10))
	cat "$T/good" >"$T/page"
	sleep 0.0$((RANDOM % 5))
	n=$((n + 1))
done
sleep 1.5
fd1=$(fds)
echo "$n truncations; descriptors $fd0 before, $fd1 after"
check "vmclockd survives $n truncations of its page" kill -0 "$VMCLOCKD_PID"
check "its descriptors stay bounded ($fd0 -> $fd1)" test "$fd1" -gt 0 -a "$fd1" -le $((fd0 + 1))
# The page read short (the bus guard), its open refused while it is empty,
# or a read refused.
met() { has_event - "FILE=$T/page" "FILE_STATE=$1"; }
check "a truncated page is met by the guard and reopened" \
	eval 'met truncated || met unusable || met unreadable'
check "it reads the page again once it is whole" \
	wait_for 5 bash -c "tail -n 2 '$T/vmclockd.log' | grep -Eq ' (FILE_STATE=(usable|readable)|SAMPLES=fed)( |\$)'"
finish
