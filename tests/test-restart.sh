#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-restart.sh - the handled marker survives vmclockd restarts: a restart
# is not a disruption, a disruption while vmclockd was down is handled when
# it comes back; SIGHUP re-reads the configuration without losing samples.
. "$(dirname "$0")/lib.sh"
require_chronyd

write_chrony_conf
start_chronyd || fail "chronyd started"
start_sim --offset-ns 500000 --interval-ms 100 --page-log "$T/pages.log"
start_vmclockd
check "VMC selected" wait_for 15 vmc_selected
check "marker saved on first start" wait_for 2 grep -q '^marker 1$' "$T/state/marker"

# A plain restart: no disruption, chrony keeps its samples.
kill "$VMCLOCKD_PID"; wait "$VMCLOCKD_PID" 2>/dev/null
np_before=$(vmc_np)
start_vmclockd
sleep 1
check "restart is not a disruption" test "$(n_events DISRUPTION)" -eq 0
check "chrony kept its samples over the restart (NP $np_before -> $(vmc_np))" test "$(vmc_np)" -ge "$np_before"

# A migration while vmclockd is down: handled when it returns.
kill "$VMCLOCKD_PID"; wait "$VMCLOCKD_PID" 2>/dev/null
read -r saved_frac saved_shift < <(awk '$1 == "period" { print $2, $3 }' "$T/state/marker")
echo "period saved at exit: ${saved_frac:-none} ${saved_shift:-none}"
kill -USR1 "$SIM_PID"
sleep 0.3
start_vmclockd
check "disruption while down is handled" wait_for 3 has_event DISRUPTION OLD_MARKER=1 NEW_MARKER=2 \
	WHILE_DOWN=1
check "chronyd reset after it" wait_for 3 has_event RECOVERED DISRUPTION_MARKER=2
check "the published state says marker 2" wait_for 1 handled 2
# The field is the exact ratio of the saved period (the last page the
# stopped daemon read) and the new page's; the simulator's pages carry
# bracket noise / baseline, so the check is against those two periods, to
# the field's last digit, not against +30 ppm.
check "dfreq from the saved period: exact to 1e-6 ppm" \
	freq_change_exact "$T/vmclockd.log" "$T/pages.log" 1 2 "${saved_frac:-0}" "${saved_shift:-0}"
check "and the pages carry the simulated +30 ppm (+-0.1: the simulator's calibration noise)" \
	abs_le "$(event_field DISRUPTION FREQ_CHANGE_PPM NEW_MARKER=2 | awk '{ print $1 - 30 }')" 0.1
check "marker 2 saved" wait_for 2 grep -q '^marker 2$' "$T/state/marker"
check "VMC selected again" wait_for 10 vmc_selected

# SIGHUP storm: the daemon reloads, keeps feeding, never dies.
for _ in $(seq 20); do kill -HUP "$VMCLOCKD_PID"; sleep 0.01; done
sleep 1
check "alive after 20 SIGHUPs" kill -0 "$VMCLOCKD_PID"
check "reloads logged (RELOAD=applied)" test "$(n_events - RELOAD=applied)" -ge 1
# New samples reach chronyd: its last VMC sample is younger than the time
# since the storm (NP alone cannot tell: it stays put when feeding stops).
sleep 1
rx=$(vmc_last_rx)
check "still feeding after the reloads (last sample ${rx:-never} s ago)" test "${rx:-99}" -le 1
check "no second disruption from reloads" test "$(n_events DISRUPTION)" -eq 1
check "... the published state neither ($(state_field disruptions) disruptions, marker $(state_field disruption_marker))" \
	eval '[ "$(state_field disruptions)" = 1 ] && handled 2' 

# chronyd restarted every 2 s: vmclockd keeps sampling through it, and the
# last chronyd selects VMC again.
for _ in 1 2 3 4 5; do
	stop_chronyd
	start_chronyd || fail "chronyd restarted"
	sleep 2
done
check "alive through a chronyd restart storm" kill -0 "$VMCLOCKD_PID"
check "VMC selected after the storm" wait_for 15 vmc_selected
check "chronyd's absences said, not every tick" \
	test "$(n_events - OUTPUT=chrony-sock 'ERRNO=[0-9]*')" -le 5

finish
