#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-stuck-page.sh - a page writer that died mid-update (seq_count left
# odd) costs vmclockd almost nothing, and its recovery is seen at once.
#
# vmclock-sim is killed and the page's seq_count set odd in place, as a
# hypervisor dying between its two increments would leave it.  vmclockd's
# CPU time (the scheduler's run time, /proc/PID/schedstat) is measured over
# STUCK_SECONDS while it waits; then seq_count is made even and the time
# until vmclockd feeds again is measured.  Spinning through the 100 ms
# seq_count wait every tick costs 10-60% of a core here.
#
# make check runs it with a generous CPU bound (STUCK_MAX_CPU_PCT, 5%: the
# behaviour, not spinning); make bench with the goal (1% over 20 s).
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip_or_fail "python3 not installed (writes the page)"
STUCK_SECONDS=${STUCK_SECONDS:-5}
STUCK_MAX_CPU_PCT=${STUCK_MAX_CPU_PCT:-5}
RECOVERY_MAX_S=1
SEQ_OFFSET=12 # struct vmclock_abi: magic, size, version, counter_id, time_type

# set_seq odd|even: seq_count of the page, changed in place (vmclockd has
# the file mapped) to the next odd or even value.
set_seq() {
	python3 - "$T/page" "$1" "$SEQ_OFFSET" <<'EOP'
import mmap, struct, sys
path, want, off = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    seq = struct.unpack_from("<I", m, off)[0]
    if (seq & 1) != (want == "odd"):
        seq = (seq + 1) & 0xffffffff
    struct.pack_into("<I", m, off, seq)
    m.close()
EOP
}
# cpu_ns PID: time the process has run, in nanoseconds.
cpu_ns() { cut -d' ' -f1 "/proc/$1/schedstat"; }

start_sim --interval-ms 100
start_vmclockd --chrony-sock "" --chrony-cmd ""
check "feeding from the page" wait_for 10 has_event - SAMPLES=fed

kill -KILL "$SIM_PID"
wait "$SIM_PID" 2>/dev/null
mark=$(wc -l <"$T/vmclockd.log")
set_seq odd
check "the stuck page is noticed" wait_for 5 has_event_since "$mark" - SAMPLES=withheld REASON=unstable
sleep 1 # past the first full wait, into the steady state
c0=$(cpu_ns "$VMCLOCKD_PID")
t0=$(date +%s%N)
sleep "$STUCK_SECONDS"
c1=$(cpu_ns "$VMCLOCKD_PID")
t1=$(date +%s%N)
pct=$(awk -v c=$((c1 - c0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.2f", 100 * c / t }')
echo "vmclockd with seq_count stuck odd: $pct% of a core over $STUCK_SECONDS s"
check "a stuck seq_count costs <= $STUCK_MAX_CPU_PCT% of a core ($pct%)" \
	awk -v p="$pct" -v m="$STUCK_MAX_CPU_PCT" 'BEGIN { exit !(p <= m) }'

mark=$(wc -l <"$T/vmclockd.log")
set_seq even
t0=$(date +%s%N)
wait_for 5 has_event_since "$mark" - SAMPLES=fed WAS=unstable
t1=$(date +%s%N)
rec=$(awk -v t=$((t1 - t0)) 'BEGIN { printf "%.3f", t * 1e-9 }')
echo "recovery seen after $rec s"
check "recovery seen within $RECOVERY_MAX_S s ($rec s)" \
	awk -v r="$rec" -v m="$RECOVERY_MAX_S" 'BEGIN { exit !(r <= m) }'
check "alive" kill -0 "$VMCLOCKD_PID"

finish
