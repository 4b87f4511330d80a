#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-flood.sh - a page whose flags and generation counter flap costs a
# bounded number of alerts and state-file writes.  For FLOOD_SECONDS (13)
# tests/flood-page toggles DISRUPTION_IMMINENT every 100 ms (it appears 5
# times a second) and bumps vm_generation_counter every 50 ms:
#   - the imminent and restore alerts are each logged at most 3 times at
#     once and then once every 10 s, the later one saying how many similar
#     alerts it suppressed
#   - the marker file is rewritten at most about once a second, and holds
#     the latest generation a second after the flood and on exit
# The counts and vmclockd's CPU time are printed (figures, not goals).
. "$(dirname "$0")/lib.sh"
FLOOD=$top_builddir/tests/flood-page
SECONDS_=${FLOOD_SECONDS:-13}
[ -x "$FLOOD" ] || { fail "tests/flood-page is built"; finish; exit 1; }

# Until killed: the flood lasts FLOOD_SECONDS from vmclockd's start however
# slowly that start goes.
"$FLOOD" "$T/page" --flags-ms 100 --generation-ms 50 >>"$T/flood.log" 2>&1 &
FLOOD_PID=$!
PIDS="$PIDS $FLOOD_PID"
wait_for 5 test -s "$T/page" || fail "flood page written"
mkdir -m 700 "$T/state"
python3 "$(dirname "$0")/count-renames.py" "$T/state" marker "$T/renames" &
PIDS="$PIDS $!"
wait_for 5 test -s "$T/renames" || fail "rename counter started"

# CPU time on the scheduler's clock (ns; /proc/PID/stat counts 10 ms ticks).
cpu_ms() { awk '{ printf "%.1f\n", $1 / 1e6 }' "/proc/$1/schedstat"; }

start_vmclockd --chrony-sock "" --chrony-cmd "" --interval-ms 62
wait_for 5 grep -q 'started' "$T/vmclockd.log" || fail "vmclockd started"
cpu0=$(cpu_ms "$VMCLOCKD_PID")
sleep "$SECONDS_"
cpu1=$(cpu_ms "$VMCLOCKD_PID")
renames=$(cat "$T/renames")
imminent=$(grep -c 'within about an hour' "$T/vmclockd.log")
restore=$(grep -c 'VM restored or cloned' "$T/vmclockd.log")
kill "$FLOOD_PID"
wait "$FLOOD_PID" 2>/dev/null
echo "flood of ${SECONDS_} s: $imminent imminent alerts, $restore restore alerts," \
	"$renames marker-file renames, vmclockd CPU $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }') ms"
grep 'suppressed' "$T/vmclockd.log" | sed 's/^/   /'

check "imminent alerts bounded: 3 at once, then one per 10 s ($imminent)" \
	test "$imminent" -ge 1 -a "$imminent" -le $((3 + (SECONDS_ + 9) / 10))
check "restore alerts bounded: 3 at once, then one per 10 s ($restore)" \
	test "$restore" -ge 1 -a "$restore" -le $((3 + (SECONDS_ + 9) / 10))
check "the later imminent alert counts what it suppressed" \
	grep -Eq 'within about an hour \([0-9]+ similar suppressed\)' "$T/vmclockd.log"
check "the later restore alert counts what it suppressed" \
	grep -Eq 'VM restored or cloned: .* \([0-9]+ similar suppressed\)' "$T/vmclockd.log"
check "marker file written at most about once a second ($renames in ${SECONDS_} s)" \
	test "$renames" -le $((SECONDS_ + 3))

# The flood is over: the latest generation reaches the file within a second
# or two, without another change to trigger it.
page_gen() { od -An -tu8 -j104 -N8 "$T/page" | tr -d ' '; }
file_gen() { sed -n 's/^generation //p' "$T/state/marker"; }
gen=$(page_gen)
check "the latest generation ($gen) is written after the flood" \
	wait_for 3 sh -c "[ \"\$(sed -n 's/^generation //p' '$T/state/marker')\" = '$gen' ]"
check "vmclockd still running" kill -0 "$VMCLOCKD_PID"
kill "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID" 2>/dev/null
check "clean exit" grep -q 'signal 15: exiting' "$T/vmclockd.log"
finish
