#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-policy.sh - the sample policy against a real chronyd: while vmclockd
# withholds samples (host not synchronised, error bound too large or
# wrapping, no bound, a frozen clock, smearing around a leap) chronyd stops
# selecting VMC, and selects it again once samples flow; the published state
# says the reason (withhold_reason, and withheld counts that grow tick by
# tick), and vmclockd's log grows by one line per change of reason, not one
# per tick (counted, whatever its wording); a strict host's leap second
# reaches chronyd in the SOCK samples.
#
# The page comes from vmclock-sim, restarted on the same page file with new
# options (the daemon notices the replaced page within a second); values the
# simulator cannot publish (bounds near 2^64, a zero period, a smearing
# hint) are written into the stopped simulator's page in place, under the
# seq_count protocol, as a hypervisor would.
. "$(dirname "$0")/lib.sh"
require_chronyd
command -v python3 >/dev/null || skip_or_fail "python3 not installed"

# The reason of the last tick as published (fed, or why withheld), and how
# many samples were withheld for a reason.
reason_is() { [ "$(state_field withhold_reason)" = "$1" ]; }
withheld() { state_field "withheld.$1"; }
withheld_more_than() { [ "$(withheld "$1")" -gt "$2" ]; }
# Lines in vmclockd's log: one more at each change of reason, and no other.
log_lines() { wc -l <"$T/vmclockd.log"; }

vmc_not_selected() { ! vmc_selected; }

# restart_sim ARGS...: a new simulator on the same page file, its page in
# place (its "start" line) on return.
sim_starts() { grep -c ' start ' "$T/sim.log"; }
more_starts_than() { [ "$(sim_starts)" -gt "$1" ]; }
restart_sim() {
	local starts
	stop_sim
	starts=$(sim_starts)
	start_sim "$@"
	wait_for 5 more_starts_than "$starts"
}

# patch_page OFFSET:SIZE:VALUE...: little-endian fields written in place
# into the (stopped) simulator's page, seq_count odd while writing.
patch_page() {
	python3 - "$T/page" "$@" <<'EOP'
import mmap, struct, sys
fmt = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
with open(sys.argv[1], "r+b") as f:
    m = mmap.mmap(f.fileno(), 4096)
    seq = struct.unpack_from("<I", m, 12)[0]
    struct.pack_into("<I", m, 12, (seq | 1))
    for spec in sys.argv[2:]:
        off, size, value = spec.split(":")
        struct.pack_into(fmt[int(size)], m, int(off, 0), int(value, 0))
    struct.pack_into("<I", m, 12, ((seq | 1) + 1) & 0xffffffff)
    m.close()
EOP
}
MAXERR=96:8   # time_maxerror_nanosec
PERIOD=48:8   # counter_period_frac_sec
SMEARING=35:1 # leap_second_smearing_hint
LEAP=38:1     # leap_indicator

# expect_change N REASON: the published reason becomes REASON, and the
# change is the Nth line vmclockd logged after its start: one line for it.
expect_change() {
	check "change $1: $2 published" wait_for 10 reason_is "$2"
	check "change $1: one line for it ($(log_lines) lines, $((LINES0 + $1)) expected)" \
		test "$(log_lines)" -eq $((LINES0 + $1))
}
withheld_phase() {
	local n
	expect_change "$1" "$2"
	n=$(withheld "$2")
	check "$2: withheld at each tick (more than ${n:-?})" wait_for 3 withheld_more_than "$2" "${n:-0}"
	check "$2: chronyd stops selecting VMC" wait_for 15 vmc_not_selected
}
fed_phase() {
	expect_change "$1" fed
	check "after $2: chronyd selects VMC again" wait_for 20 vmc_selected
}

write_chrony_conf "log refclocks"
start_chronyd || fail "chronyd started"
start_sim --offset-ns 200000 --interval-ms 100
start_vmclockd --interval-ms 100 --max-error-ns 100000
check "VMC selected" wait_for 20 vmc_selected
check "first: feeding" reason_is fed
# vmclockd's start-up line, then one per change of reason, the first to fed.
LINES0=$(($(log_lines) - 1))
check "start-up and the first change: two lines ($(log_lines))" test "$LINES0" -eq 1

# The host stops vouching for its time, and vouches again.
restart_sim --offset-ns 200000 --status unknown
withheld_phase 2 not_synchronized
restart_sim --offset-ns 200000
fed_phase 3 not_synchronized

# A large error bound from the simulator (2^63-1 ns).
restart_sim --offset-ns 200000 --maxerror-ns 9223372036854775807
withheld_phase 4 error_bound
# Bounds that wrap in unsaturated arithmetic: 2^64-2 plus the measurement's
# uncertainty, and 2^63 plus itself grown.  The same reason, withheld at
# every tick: no new line, and chronyd, given time to select VMC again,
# does not.
stop_sim
patch_page $MAXERR:18446744073709551614
n=$(withheld error_bound)
sleep 2
check "2^64-2: still withheld for the bound ($(withheld error_bound) > $n)" \
	eval 'reason_is error_bound && withheld_more_than error_bound "$n"'
check "2^64-2: no new line ($(log_lines))" test "$(log_lines)" -eq $((LINES0 + 4))
check "2^64-2: chronyd does not select VMC" vmc_not_selected
patch_page $MAXERR:9223372036854775808
n=$(withheld error_bound)
sleep 2
check "2^63: still withheld for the bound ($(withheld error_bound) > $n)" \
	eval 'reason_is error_bound && withheld_more_than error_bound "$n"'
check "2^63: no new line ($(log_lines))" test "$(log_lines)" -eq $((LINES0 + 4))
check "2^63: chronyd does not select VMC" vmc_not_selected
# No bound at all (2^64-1), then a frozen clock (a zero period).
patch_page $MAXERR:18446744073709551615
withheld_phase 5 no_bound
patch_page $MAXERR:1000 $PERIOD:0
withheld_phase 6 no_time

# A leap second announced by a strict host is fed, and chronyd reads it.
restart_sim --offset-ns 200000 --leap pre_pos
fed_phase 7 no_time
np_at_least() { test "$(vmc_np)" -ge "$1"; }
wait_for 5 np_at_least 4
restart_sim --offset-ns 200000 --leap pre_neg
# Samples of the new page, past vmclockd's once-a-second check for a
# replaced page (a fixed second was not always enough on a loaded machine).
samples_fed() { state_field samples_fed; }
fed_at_least() { test "$(samples_fed)" -ge "$1"; }
fed0=$(samples_fed)
wait_for 10 fed_at_least $((${fed0:-0} + 25))
# ...and smeared by a smearing host: withheld.
stop_sim
patch_page $SMEARING:1
withheld_phase 8 smeared
patch_page $LEAP:0
fed_phase 9 smeared

sleep 1
check "one line per change of reason ($(log_lines) lines)" test "$(log_lines)" -eq $((LINES0 + 9))

# chronyd's refclock log (written out when it exits) shows the leap field
# of every sample it took: N none, + insert, - delete.
stop_chronyd
leap_samples() { grep -Ec "^[-0-9]+ [0-9:.]+ VMC +[0-9]+ $1 " "$T/refclocks.log"; }
check "insert announced to chronyd ($(leap_samples '[+]') samples)" test "$(leap_samples '[+]')" -gt 0
check "delete announced to chronyd ($(leap_samples -) samples)" test "$(leap_samples -)" -gt 0
finish
