#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-resync.sh - after a migration the published state does not say
# SYNCHRONIZED before chronyd has reselected a source.
#
# A real chronyd -x with `local stratum 10` configured: right after the
# handover's `reset sources` it reports its local reference (127.127.1.1)
# with leap status NORMAL, which is not a reselection.  vmclock-sim is
# migrated (SIGUSR1) MIGRATIONS times; tests/chrony-observe reads chronyd's
# tracking every 10 ms and tests/verdict-timeline reads the published state
# through vmclock_timestamp() every millisecond.  For every tracking reading
# after a migration whose reference is not VMC (chronyd has not reselected
# it yet), the verdict in effect 2 ms before it (the two readers' clocks are
# the same; 2 ms covers the timeline's 1 ms sampling) is not SYNCHRONIZED.
# Each migration must be seen: chronyd leaves VMC and comes back to it, and
# the verdict returns to SYNCHRONIZED.
. "$(dirname "$0")/lib.sh"
require_chronyd

N=${MIGRATIONS:-3}
GAP=2.5
STATE=$T/run/state
VMC_REFID=564d4300

write_chrony_conf "local stratum 10"
start_chronyd || fail "chronyd started"
start_sim --offset-ns 1234567 --interval-ms 100
start_vmclockd --state-file "$STATE"
check "synchronised before the first migration" \
	"$CTL" -d "$T/page" -s "$STATE" waitsync --timeout 30

record_migrations "$STATE" "$N" "$GAP" 2

# Per migration: "t_mig left back synced violations first_violation", times
# in seconds after the migration ("-" when not seen): chronyd first seen on
# another reference, first seen back on VMC, the verdict first SYNCHRONIZED
# again, and the readings away from VMC under a SYNCHRONIZED verdict.
awk -v vmc="$VMC_REFID" '
FILENAME ~ /sim.log$/ && / migrate / { mig[++n] = $1; next }
FILENAME ~ /observe.txt$/ && NF > 5 && $1 ~ /^[0-9.]+$/ { ot[++no] = $1; oref[no] = $6; next }
FILENAME ~ /timeline.txt$/ && NF == 4 { vt[++nv] = $1; vv[nv] = $2; next }
function verdict_at(t,   j, v) {
	v = "-"
	for (j = 1; j <= nv && vt[j] <= t; j++) v = vv[j]
	return v
}
END {
	for (i = 1; i <= n; i++) {
		end = i < n ? mig[i + 1] : 1e30
		left = "-"; back = "-"; synced = "-"; bad = 0; first_bad = "-"; prev_away = 0
		for (j = 1; j <= no; j++) {
			if (ot[j] < mig[i] || ot[j] >= end) continue
			if (oref[j] != vmc && back == "-") {
				if (left == "-") left = ot[j]
				if (prev_away && verdict_at(ot[j] - 0.002) == "synchronized") {
					bad++
					if (first_bad == "-") first_bad = ot[j]
				}
				prev_away = 1
			} else if (oref[j] == vmc && left != "-" && back == "-")
				back = ot[j]
		}
		dis = 0
		for (j = 1; j <= nv; j++) {
			if (vt[j] < mig[i] || vt[j] >= end) continue
			if (vv[j] == "disrupted") dis = 1
			else if (dis && vv[j] == "synchronized") { synced = vt[j]; break }
		}
		printf "%.6f %s %s %s %d %s\n", mig[i],
			left == "-" ? "-" : sprintf("%.3f", left - mig[i]),
			back == "-" ? "-" : sprintf("%.3f", back - mig[i]),
			synced == "-" ? "-" : sprintf("%.3f", synced - mig[i]), bad,
			first_bad == "-" ? "-" : sprintf("%.3f", first_bad - mig[i])
	}
}' "$T/sim.log" "$T/observe.txt" "$T/timeline.txt" >"$T/resync.txt"

echo "migration          chrony_left_s chrony_back_s verdict_synced_s away_but_synced first_s"
awk '{ printf "%-18s %13s %13s %16s %15s %7s\n", $1, $2, $3, $4, $5, $6 }' "$T/resync.txt"
check "$N migrations seen" test "$(wc -l <"$T/resync.txt")" -eq "$N"
check "chronyd left VMC after each reset (its local reference)" \
	bash -c "! awk '\$2 == \"-\"' '$T/resync.txt' | grep -q ."
check "chronyd came back to VMC after each" \
	bash -c "! awk '\$3 == \"-\"' '$T/resync.txt' | grep -q ."
check "the verdict came back to synchronized after each" \
	bash -c "! awk '\$4 == \"-\"' '$T/resync.txt' | grep -q ."
check "never SYNCHRONIZED while chronyd had not reselected VMC" \
	bash -c "! awk '\$5 != 0' '$T/resync.txt' | grep -q ."
check "the verdict followed chronyd back (not before it)" \
	bash -c "! awk '\$3 != \"-\" && \$4 != \"-\" && \$4 + 0.002 < \$3 - 0.010' '$T/resync.txt' | grep -q ."
finish
