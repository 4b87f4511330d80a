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
# Then a page whose clock_status flaps every 50 ms: withhold-reason lines
# are bounded the same way, and the state the flood leaves is logged.
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

# A page whose status flaps every 50 ms makes the withhold reason change at
# nearly every tick: the first changes are logged at once, then one line
# every 10 s saying how many were suppressed, and once the flood is over
# the state it left (withheld: the host clock not synchronized) is logged
# even though it no longer changes.
"$FLOOD" "$T/page2" --status-ms 50 --duration "$SECONDS_" >>"$T/flood2.log" 2>&1 &
FLOOD_PID=$!
PIDS="$PIDS $FLOOD_PID"
wait_for 5 test -s "$T/page2" || fail "flapping page written"
"$VMCLOCKD" --foreground --config /dev/null --device "$T/page2" --chrony-sock "" \
	--chrony-cmd "" --interval-ms 62 --state-dir "$T/state2" --state-file "$T/run/state2" \
	>>"$T/vmclockd2.log" 2>&1 &
VMCLOCKD_PID=$!
PIDS="$PIDS $VMCLOCKD_PID"
reason_lines() { grep -E 'withholding samples|feeding samples' "$T/vmclockd2.log"; }
sleep $((SECONDS_ - 2))
mark=$(reason_lines | wc -l)
wait "$FLOOD_PID"
flood_lines=$(reason_lines | wc -l)
echo "status flapping for ${SECONDS_} s: $flood_lines withhold-reason lines"
reason_lines | sed 's/^/   /'
check "withhold-reason lines bounded: 8 at once, then one per 10 s ($flood_lines)" \
	test "$flood_lines" -ge 2 -a "$flood_lines" -le $((8 + (SECONDS_ + 9) / 10 + 1))
check "a later line counts the changes it suppressed" \
	bash -c "grep -E 'samples.*\([0-9]+ similar suppressed\)' '$T/vmclockd2.log' | grep -q ."
# The flood is over and the page stays withheld: its state is logged within
# an interval (10 s) of the last line, without another change.
last_withheld_after_mark() {
	local n
	n=$(reason_lines | wc -l)
	[ "$n" -gt "$mark" ] && reason_lines | tail -n 1 | grep -q 'withholding samples.*not synchronized'
}
check "the state after the flood is logged (withheld)" wait_for 13 last_withheld_after_mark
reason_lines | tail -n 1 | sed 's/^/   last: /'
kill "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID" 2>/dev/null
finish
