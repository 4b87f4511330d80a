#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# demo.sh - vmclockd in one minute: a simulated vmclock page, a real chronyd
# (-x: it never touches this machine's clock), vmclockd between them; chrony
# locks on, the "hypervisor" live-migrates the VM (+2 ms, +30 ppm), vmclockd
# raises the alert and hands chrony the new frequency and offset.
. "$(dirname "$0")/lib.sh"
require_chronyd

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
OFFSET_NS=1000000
write_chrony_conf
start_chronyd || { echo "chronyd did not start"; exit 1; }
start_sim --offset-ns $OFFSET_NS --interval-ms 100
start_vmclockd
tail -n +1 -f "$T/vmclockd.log" | sed -u 's/^/    [vmclockd] /' &
PIDS="$PIDS $!"

say "The page, as vmclockctl sees it"
"$CTL" -d "$T/page" status | sed -n '1,12p'
"$CTL" -d "$T/page" time

say "chronyd locks on the VMC refclock (injected offset: system clock $((OFFSET_NS / 1000)) us behind)"
wait_for 15 vmc_selected
sleep 3
chronyc_cmd sources
chronyc_cmd tracking | grep -E 'Reference|System time|Frequency|Leap'

# error_us TIME CORRECTION: chrony's error against the simulator's truth.
truth_offset() {
	awk -v t="$1" -v m="${t_mig:-0}" -v o=$OFFSET_NS 'BEGIN {
		if (m > 0) printf "%.9f", o * 1e-9 + 0.002 + 30e-6 * (t - m); else printf "%.9f", o * 1e-9 }'
}
say "Live migration: marker bump, +2 ms step, +30 ppm"
kill -USR1 "$SIM_PID"
sleep 0.01
t_mig=$(awk '/ migrate / { print $1 }' "$T/sim.log")
printf '    %8s  %12s  %12s  %s\n' "t (s)" "chrony (us)" "error (us)" "state"
"$OBSERVE" -s "$T/chronyd.sock" -i 100 -n 20 | while read -r t _ c _ leap _; do
	truth=$(truth_offset "$t")
	awk -v t="$t" -v m="$t_mig" -v c="$c" -v tr="$truth" -v l="$leap" 'BEGIN {
		printf "    %8.3f  %12.3f  %12.3f  %s\n", t - m, c * 1e6, (c - tr) * 1e6,
			l == 3 ? "unsynchronised" : "synchronised" }'
done
say "chronyd after the recovery"
chronyc_cmd tracking | grep -E 'Reference|System time|Frequency|Leap'

say "What applications see (vmclock_timestamp() through vmclockctl)"
"$CTL" -d "$T/page" -s "$T/run/state" daemon | grep -E 'Verdict|Sync state|Disruption|Error bound'
echo
echo "Done: vmclockd reset chronyd and handed it the new frequency and offset;"
echo "chrony's error stayed within a microsecond of the truth."
