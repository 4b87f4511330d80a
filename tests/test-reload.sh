#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-reload.sh - a reload never interrupts sampling or the heartbeat.
#
# SIGHUPs in a loop, ten a second (closer together than the once-a-second
# retries of a device or state file that had to be reopened), while an
# application watches vmclock_timestamp() every millisecond
# (tests/verdict-timeline) and a real chronyd logs every sample it receives
# (log refclocks).  The verdict never says UNKNOWN, vmclockd never withholds,
# and chronyd's samples keep arriving at the sampling rate.
. "$(dirname "$0")/lib.sh"
require_chronyd
command -v python3 >/dev/null || skip_or_fail "python3 not installed (reads chronyd's refclocks.log)"

TIMELINE=$top_builddir/tests/verdict-timeline
STATE=$T/run/state
HUPS=40
# Largest gap between two samples chronyd receives during the storm: the
# sampling interval is 62 ms, so this allows several ticks missed to a busy
# machine, and fails on a reload that stops sampling for a few ticks.
MAX_GAP_S=0.5

write_chrony_conf "log refclocks"
start_chronyd || fail "chronyd started"
start_sim --interval-ms 100
start_vmclockd
check "VMC selected" wait_for 15 vmc_selected
check "state published" wait_for 5 test -s "$STATE"

# Samples withheld so far, every reason (the published state's counts).
withheld_total() {
	"$CTL" -d "$1" -s "$2" daemon --json 2>/dev/null |
		python3 -c 'import json, sys; print(sum(json.load(sys.stdin)["withheld"].values()))'
}
mark=$(wc -l <"$T/vmclockd.log")
withheld0=$(withheld_total "$T/page" "$STATE")
"$TIMELINE" -d "$T/page" -s "$STATE" -t 5.5 >"$T/timeline.txt" 2>&1 &
TL_PID=$!
sleep 0.5
t_start=$(date +%s.%N)
for _ in $(seq $HUPS); do
	kill -HUP "$VMCLOCKD_PID"
	sleep 0.1
done
t_end=$(date +%s.%N)
wait "$TL_PID"
echo "verdicts during $HUPS reloads:"
sed 's/^/    /' "$T/timeline.txt"

reloads=$(n_events_since "$mark" - RELOAD=applied)
check "reloaded many times ($reloads of $HUPS SIGHUPs)" test "$reloads" -ge $((HUPS / 2))
check "alive after the reloads" kill -0 "$VMCLOCKD_PID"
verdicts=$(awk 'NF == 4 { print $2 }' "$T/timeline.txt" | sort -u | tr '\n' ' ')
check "the verdict was read ($verdicts)" test -n "$verdicts"
check "the verdict never went unknown ($verdicts)" \
	bash -c "! grep -q ' unknown ' '$T/timeline.txt'"
withheld1=$(withheld_total "$T/page" "$STATE")
check "no sample withheld during the reloads (withheld: $withheld0 -> $withheld1)" \
	test -n "$withheld0" -a "$withheld1" = "$withheld0"

# chronyd's refclocks.log: "YYYY-MM-DD HH:MM:SS.ffffff VMC ..." (UTC) per sample.
gaps=$(python3 - "$T/refclocks.log" "$t_start" "$t_end" <<'EOP'
import calendar, sys, time
start, end = float(sys.argv[2]), float(sys.argv[3])
times = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 4 or f[2] != "VMC" or f[3] == "-":
        continue
    day, sec = f[1].split(".") if "." in f[1] else (f[1], "0")
    t = calendar.timegm(time.strptime(f[0] + " " + day, "%Y-%m-%d %H:%M:%S")) + float("0." + sec)
    if start <= t <= end:
        times.append(t)
gap = max((b - a for a, b in zip(times, times[1:])), default=float("inf"))
print("%d %.3f" % (len(times), gap))
EOP
)
echo "chronyd received $(echo $gaps | cut -d' ' -f1) samples during the reloads, largest gap $(echo $gaps | cut -d' ' -f2) s"
check "samples kept flowing to chronyd (gap <= $MAX_GAP_S s)" \
	awk -v g="$gaps" -v m=$MAX_GAP_S 'BEGIN { split(g, a, " "); exit !(a[1] >= 20 && a[2] <= m) }'

# Changed settings are applied, and only they: a new state file and page
# are taken up at once, the old state file is told vmclockd left it, and
# chronyd forgets the old page.
kill "$VMCLOCKD_PID"; wait "$VMCLOCKD_PID" 2>/dev/null
"$SIM" "$T/page2" --interval-ms 100 --offset-ns 3000000 >>"$T/sim2.log" 2>&1 &
PIDS="$PIDS $!"
wait_for 5 test -s "$T/page2"
conf() {
	printf 'device %s\nchrony-sock %s\nchrony-cmd %s\nstate-dir %s\nstate-file %s\n' \
		"$1" "$T/vmc.sock" "$T/chronyd.sock" "$T/state" "$2" >"$T/vmclockd.conf"
}
conf "$T/page" "$STATE"
"$VMCLOCKD" --foreground --config "$T/vmclockd.conf" >>"$T/vmclockd.log" 2>&1 &
VMCLOCKD_PID=$!
PIDS="$PIDS $VMCLOCKD_PID"
fresh() { "$CTL" -d "$1" -s "$2" daemon --json 2>/dev/null | grep -q '"heartbeat_fresh": *true'; }
check "publishing with the first settings" wait_for 10 fresh "$T/page" "$STATE"
np_many() { local n; n=$(vmc_np); [ "${n:-0}" -ge 12 ]; }
check "chronyd holds many samples of the first page" wait_for 10 np_many
np_before=$(vmc_np)
mark=$(wc -l <"$T/vmclockd.log")
cmark=$(wc -l <"$T/chronyd.log")
# Withheld but for the handover (the sampler's counts carry over the reload).
withheld_not_handover() {
	"$CTL" -d "$1" -s "$2" daemon --json 2>/dev/null |
		python3 -c 'import json, sys
w = json.load(sys.stdin)["withheld"]
print(sum(v for k, v in w.items() if k != "disruption"))'
}
withheld0=$(withheld_not_handover "$T/page" "$STATE")
conf "$T/page2" "$T/run/state2"
kill -HUP "$VMCLOCKD_PID"
check "reloaded with a new page and state file: the new one published" \
	wait_for 5 fresh "$T/page2" "$T/run/state2"
# Left on purpose: read, and saying so (sync state unknown, heartbeat 0), not
# merely unreadable.
left() {
	local j
	j=$("$CTL" -d "$1" -s "$2" daemon --json 2>/dev/null) || return 1
	grep -q '"sync_state": *"unknown"' <<<"$j" && grep -q '"heartbeat_realtime_ns": *0[,}]' <<<"$j"
}
check "the old one says vmclockd left it (sync_state unknown, heartbeat 0)" left "$T/page" "$STATE"
# page2 is 3 ms ahead of page, which is in step with the system clock.
offset_near_3ms() {
	"$CTL" -d "$T/page2" -s "$T/run/state2" daemon --json 2>/dev/null |
		sed -n 's/.*"last_offset_ns": *\(-\{0,1\}[0-9]*\).*/\1/p' |
		awk '{ exit !($1 > 2000000 && $1 < 4000000) }'
}
check "feeding from the new page within a second" wait_for 1 offset_near_3ms
np_after=$(vmc_np)
# Another device is another clock (here 3 ms apart): chronyd must not mix
# the two.  The change is handled like a disruption with no frequency change
# and no step carried over: one line, one reset, and chronyd keeps only the
# new page's samples.
after() { tail -n +$((mark + 1)) "$T/vmclockd.log" >"$T/after.log"; }
check "the device change said so once" \
	test "$(after; EVENTS_LOG=$T/after.log n_events - FILE_STATE=new_source "FILE=$T/page2")" -eq 1
recovered_after() { after; EVENTS_LOG=$T/after.log has_event RECOVERED; }
check "chronyd was reset after the device change" wait_for 2 recovered_after
after
check "no disruption or restore alert for the device change" \
	eval 'EVENTS_LOG=$T/after.log; [ "$(n_events DISRUPTION)$(n_events RESTORE)" = 00 ]'
EVENTS_LOG=
withheld1=$(withheld_not_handover "$T/page2" "$T/run/state2")
check "nothing withheld but for the handover ($withheld0 -> $withheld1)" \
	test -n "$withheld0" -a "$withheld1" = "$withheld0"
# chronyd's own word: its sources were dropped after the change.
check "chronyd says it dropped its sources after the change" wait_for 2 bash -c \
	"tail -n +$((cmark + 1)) '$T/chronyd.log' | grep -q 'no selectable sources'"
echo "chronyd's VMC samples: $np_before before the change, $np_after after"
check "chronyd dropped the old page's samples (NP $np_before -> $np_after)" \
	test "${np_after:-99}" -lt "$np_before"

finish
