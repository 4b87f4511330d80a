#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-daemon.sh - vmclockd end to end with a real chronyd (-x, no clock
# control), vmclock-sim playing the hypervisor.
#   1. chrony selects VMC; its offset matches the injected one within 1 us
#   2. a migration resets chrony's sources and chrony converges on the new truth
#   3. chronyd killed and restarted: vmclockd keeps running, VMC selected again
#   4. sd_notify: READY=1, STATUS=, WATCHDOG=1 on a test NOTIFY_SOCKET
. "$(dirname "$0")/lib.sh"
require_chronyd

OFFSET_NS=1234567
write_chrony_conf
start_chronyd || fail "chronyd started"
start_sim --offset-ns $OFFSET_NS --interval-ms 100 --page-log "$T/pages.log"
python3 "$(dirname "$0")/capture-dgram.py" "$T/notify.sock" "$T/notify.txt" &
PIDS="$PIDS $!"
wait_for 5 test -S "$T/notify.sock"
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=400000 \
	start_vmclockd --interval-ms 125

# ---- 1. selection and steady-state offset
check "chrony selects VMC" wait_for 15 vmc_selected
sleep 4
c=$(chrony_correction)
echo "chrony correction ${c}s, injected ${OFFSET_NS}ns"
check "chrony's offset within 1 us of the injected one" \
	abs_le "$(awk -v c="$c" -v o=$OFFSET_NS 'BEGIN { print c - o * 1e-9 }')" 1e-6

# ---- 4. (early: the notify socket has seen start-up by now)
check "READY=1 sent" grep -q '^READY=1' "$T/notify.txt"
check "STATUS= says it is feeding" grep -q '^STATUS=feeding' "$T/notify.txt"
check "WATCHDOG=1 sent" grep -q '^WATCHDOG=1' "$T/notify.txt"

# ---- 2. migration: reset, then convergence on the new truth
# chrony's regression keeps a varying number of samples: wait until it holds
# enough that "dropped" means something, rather than assume it after a sleep.
np_at_least() { [ "$(vmc_np)" -ge "$1" ] 2>/dev/null; }
check "chrony holds at least 8 samples before the migration" wait_for 15 np_at_least 8
np_before=$(vmc_np)
kill -USR1 "$SIM_PID"
wait_for 3 has_event RECOVERED DISRUPTION_MARKER=2
np_after=$(vmc_np)
echo "sourcestats NP before $np_before, right after the migration $np_after"
check "chrony's samples were dropped (NP $np_before -> $np_after)" \
	test "${np_after:-99}" -lt "${np_before:-0}" -a "${np_before:-0}" -ge 8
check "handled: the published state says marker 2" handled 2
check "disruption logged with its fields" \
	has_event DISRUPTION OLD_MARKER=1 NEW_MARKER=2 'COUNTER_PERIOD_FRAC_SEC=[0-9][0-9]*' \
		'COUNTER_PERIOD_SHIFT=[0-9][0-9]*' 'FREQ_CHANGE_PPM=[-0-9.][0-9.]*'

# FREQ_CHANGE_PPM is the exact ratio of the two pages' periods.  The
# simulator re-measures its counter's period at every update over the
# baseline since it started, so its pages carry bracket noise / baseline
# (0.015 ppm after 2 s on a loaded machine): the field is checked against
# the periods of the pages themselves, to its last digit.
check "FREQ_CHANGE_PPM is the exact change between the pages' periods (1e-6 ppm)" \
	freq_change_exact "$T/vmclockd.log" "$T/pages.log" 1 2
check "and the pages carry the simulated +30 ppm (+-0.1: the simulator's calibration noise)" \
	abs_le "$(event_field DISRUPTION FREQ_CHANGE_PPM NEW_MARKER=2 | awk '{ print $1 - 30 }')" 0.1
check "VMC selected again after the migration" wait_for 5 vmc_selected
sleep 2
# Truth after the migration: injected + step (2 ms) + 30 ppm since it.
t_mig=$(awk '/ migrate / { print $1 }' "$T/sim.log")
read -r t_obs c < <("$OBSERVE" -s "$T/chronyd.sock" --once --json |
	sed -n 's/.*"time": *\([0-9.]*\).*"current_correction": *\([-0-9.e+]*\).*/\1 \2/p')
truth=$(awk -v t="$t_obs" -v m="$t_mig" -v o=$OFFSET_NS \
	'BEGIN { printf "%.9f", o * 1e-9 + 0.002 + 30e-6 * (t - m) }')
echo "after the migration: chrony ${c}s, truth ${truth}s"
check "chrony within 1 us of the new truth" \
	abs_le "$(awk -v c="$c" -v t="$truth" 'BEGIN { print c - t }')" 1e-6

# ---- 3. chronyd restarted under a running vmclockd
# The SOCK output's lines carry OUTPUT=chrony-sock, its failures ERRNO too.
sock_failures() { n_events - OUTPUT=chrony-sock 'ERRNO=[0-9]*'; }
sock_recoveries() { events - OUTPUT=chrony-sock | grep -vc ' ERRNO='; }
stop_chronyd
wait_for 10 has_event - OUTPUT=chrony-sock 'ERRNO=[0-9]*'
sleep 1
check "vmclockd survives chronyd's exit" kill -0 "$VMCLOCKD_PID"
check "chronyd's absence logged once ($(sock_failures))" test "$(sock_failures)" -eq 1
start_chronyd || fail "chronyd restarted"
check "VMC selected by the restarted chronyd" wait_for 15 vmc_selected
check "vmclockd noticed chronyd is back ($(sock_recoveries))" test "$(sock_recoveries)" -eq 1

finish
