#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-flood.sh - a page whose flags, generation counter, status or marker
# flap costs a bounded number of journal records and state-file writes, and
# no count of what was cut is left unsaid.  The journal is captured for real
# (lib.sh's journal_start).  For FLOOD_SECONDS (13) tests/flood-page toggles
# DISRUPTION_IMMINENT every 100 ms (it appears 5 times a second) and bumps
# vm_generation_counter every 50 ms:
#   - the imminent and restore alerts are each logged at most 3 times at
#     once and then once every 10 s, a later one saying how many similar
#     alerts it suppressed (SUPPRESSED=N)
#   - what the flood's last window suppressed is said when that window
#     closes, with no alert after it (SUPPRESSED_MESSAGE_ID the alert's)
#   - the marker file is rewritten at most about once a second, and holds
#     the latest generation a second after the flood and on exit
# The counts and vmclockd's CPU time are printed (figures, not goals).
# Then a page whose clock_status flaps every 50 ms: withhold-reason lines
# are bounded the same way, and the state the flood leaves is logged.
# Then a marker that changes every 10 ms (a migration every 10 ms): one
# DISRUPTION record per handover, a bounded number of them, whose markers
# chain from the first marker to the last and whose MARKER_CHANGES add up to
# the changes vmclockd saw (its debug lines, one per change); no record is
# lost and none is said twice.
JOURNAL_NS=1
. "$(dirname "$0")/lib.sh"
journal_start
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

start_vmclockd_journal --chrony-sock "" --chrony-cmd "" --interval-ms 62
wait_for 5 grep -q '^MESSAGE=vmclockd .* started' "$J" || fail "vmclockd started"
cpu0=$(cpu_ms "$VMCLOCKD_PID")
sleep "$SECONDS_"
cpu1=$(cpu_ms "$VMCLOCKD_PID")
renames=$(cat "$T/renames")
kill "$FLOOD_PID"
wait "$FLOOD_PID" 2>/dev/null
# The flood is over: from here on nothing of it is said but counts.
flood_end=$(grep -cx -- -- "$J")
# kind_records NAME: the alerts of NAME and the counts said for them, as
# "SUPPRESSED SUPPRESSED_MESSAGE_ID" ("-" for a field a record lacks).
kind_records() {
	{
		dgram_fields "MESSAGE_ID=${MSGID[$1]}" SUPPRESSED SUPPRESSED_MESSAGE_ID
		dgram_fields "SUPPRESSED_MESSAGE_ID=${MSGID[$1]}" SUPPRESSED SUPPRESSED_MESSAGE_ID
	}
}
# said_after_flood NAME: a count for NAME said after the flood ended.
said_after_flood() {
	awk -v n="$flood_end" -v id="SUPPRESSED_MESSAGE_ID=${MSGID[$1]}" '
		$0 == "--" { k++; next } k >= n && $0 == id { found = 1 } END { exit !found }' "$J"
}
# The flood ended about 3 s after its first window closed (10 s after the
# first alert): what it suppressed since is said when the next one closes,
# though no alert comes to carry it.
check "the imminent alerts suppressed at the end are said when the window closes" \
	wait_for 11 said_after_flood DISRUPTION_IMMINENT
check "the restore alerts suppressed at the end are said when the window closes" \
	wait_for 2 said_after_flood RESTORE
imminent=$(kind_records DISRUPTION_IMMINENT | wc -l)
restore=$(kind_records RESTORE | wc -l)
echo "flood of ${SECONDS_} s: $imminent imminent records, $restore restore records (alerts and" \
	"counts), $renames marker-file renames," \
	"vmclockd CPU $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }') ms"
kind_records DISRUPTION_IMMINENT | sed 's/^/   imminent: SUPPRESSED SUPPRESSED_MESSAGE_ID: /'
kind_records RESTORE | sed 's/^/   restore: SUPPRESSED SUPPRESSED_MESSAGE_ID: /'
check "imminent records bounded: 3 at once, then one per 10 s ($imminent)" \
	test "$imminent" -ge 1 -a "$imminent" -le $((3 + (SECONDS_ + 9 + 10) / 10))
check "restore records bounded: 3 at once, then one per 10 s ($restore)" \
	test "$restore" -ge 1 -a "$restore" -le $((3 + (SECONDS_ + 9 + 10) / 10))
counts_ok() {
	kind_records "$1" | awk '$1 != "-" { n++; if ($1 !~ /^[1-9][0-9]*$/) bad = 1 }
		END { exit !(n >= 1 && !bad) }'
}
check "imminent: the counts of what was suppressed are numbers (SUPPRESSED=N)" \
	counts_ok DISRUPTION_IMMINENT
check "restore: the counts of what was suppressed are numbers (SUPPRESSED=N)" counts_ok RESTORE
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
check "clean exit" wait_for 5 grep -q '^MESSAGE=.*signal 15: exiting' "$J"

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
reason_lines() { grep -E ' SAMPLES=(withheld|fed)( |$)' "$T/vmclockd2.log"; }
sleep $((SECONDS_ - 2))
mark=$(reason_lines | wc -l)
wait "$FLOOD_PID"
flood_lines=$(reason_lines | wc -l)
echo "status flapping for ${SECONDS_} s: $flood_lines withhold-reason lines"
reason_lines | sed 's/^/   /'
check "withhold-reason lines bounded: 8 at once, then one per 10 s ($flood_lines)" \
	test "$flood_lines" -ge 2 -a "$flood_lines" -le $((8 + (SECONDS_ + 9) / 10 + 1))
check "a later line counts the changes it suppressed" \
	eval 'reason_lines | grep -Eq " SUPPRESSED=[1-9][0-9]*( |\$)"'
# The flood is over and the page stays withheld: its state is logged within
# an interval (10 s) of the last line, without another change.
last_withheld_after_mark() {
	local n
	n=$(reason_lines | wc -l)
	[ "$n" -gt "$mark" ] && reason_lines | tail -n 1 | grep -Eq ' SAMPLES=withheld REASON=not_synchronized( |$)'
}
check "the state after the flood is logged (withheld)" wait_for 13 last_withheld_after_mark
reason_lines | tail -n 1 | sed 's/^/   last: /'
kill "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID" 2>/dev/null

# A marker that changes every 10 ms, faster than a handover (whose hold-off
# doubles from 1 s to 8 s while markers keep changing): one DISRUPTION record
# per handover, each saying how many changes it covers.
"$FLOOD" "$T/page3" --marker-ms 10 --duration "$SECONDS_" >>"$T/flood3.log" 2>&1 &
FLOOD_PID=$!
PIDS="$PIDS $FLOOD_PID"
wait_for 5 test -s "$T/page3" || fail "flapping-marker page written"
mark=$(grep -cx -- -- "$J")
: >>"$T/vmclockd3.log"
JOURNAL_STREAM=$(stat -c %d:%i "$T/vmclockd3.log") "$VMCLOCKD" --foreground --config /dev/null \
	--device "$T/page3" --chrony-sock "" --chrony-cmd "" --interval-ms 62 --debug \
	--state-dir "$T/state3" --state-file "$T/run/state3" >>"$T/vmclockd3.log" 2>&1 &
VMCLOCKD_PID=$!
PIDS="$PIDS $VMCLOCKD_PID"
wait "$FLOOD_PID"
last_marker=$(od -An -tu8 -j16 -N8 "$T/page3" | tr -d ' ')
last_handled() {
	dgram_fields "MESSAGE_ID=${MSGID[DISRUPTION]}" NEW_MARKER | tail -n 1 | grep -qx "$last_marker"
}
check "the last marker ($last_marker) is handled within the longest hold-off" wait_for 10 last_handled
sleep 1
dgram_fields "MESSAGE_ID=${MSGID[DISRUPTION]}" OLD_MARKER NEW_MARKER FIRST_MARKER MARKER_CHANGES \
	>"$T/records3"
records=$(wc -l <"$T/records3")
# The changes vmclockd saw: its debug line for each (PRIORITY=7, with the
# markers as fields).
seen=$(dgram_fields PRIORITY=7 NEW_MARKER | grep -cv '^-$')
covered=$(awk '{ n += $4 } END { print n + 0 }' "$T/records3")
said=$(awk -v n="$mark" '$0 == "--" { k++; next } k >= n && /^PRIORITY=[0-6]$/ { c++ }
	END { print c + 0 }' "$J")
echo "marker changing every 10 ms for ${SECONDS_} s (1 -> $last_marker): $seen changes seen," \
	"$records DISRUPTION records covering $covered, $said lines above debug"
sed 's/^/   OLD_MARKER NEW_MARKER FIRST_MARKER MARKER_CHANGES: /' "$T/records3"
check "DISRUPTION records bounded: $records for ${SECONDS_} s (the hold-off doubles)" \
	test "$records" -ge 2 -a "$records" -le $((SECONDS_ / 2 + 2))
check "each record says how many changes it covers (MARKER_CHANGES >= 1), and its first marker" \
	awk '!($4 ~ /^[1-9][0-9]*$/) || $3 == "-" || $4 > $2 - $1 { exit 1 }' "$T/records3"
check "the records chain: each begins where the last ended, the last at $last_marker" \
	awk -v last="$last_marker" 'NR > 1 && $1 != prev { exit 1 } { prev = $2 } END { exit !(prev == last) }' \
	"$T/records3"
check "their MARKER_CHANGES add up to the changes seen ($covered of $seen)" test "$covered" -eq "$seen"
check "lines above debug bounded: $said (records, start, a flood-limited withhold reason)" \
	test "$said" -le $((records + 8 + (SECONDS_ + 9) / 10 + 8))
kill "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID" 2>/dev/null
finish
