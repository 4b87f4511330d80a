#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# bench-verdict.sh - how soon an application's truthful verdict follows
# chrony back to synchronised after a live migration.  Run by `make bench`,
# never by `make check`.
#
# A real chronyd -x (the tests' refclock line), vmclock-sim, vmclockd
# publishing its state file, and tests/verdict-timeline calling
# vmclock_timestamp() every millisecond as an application would, while
# tests/chrony-observe reads chrony's tracking every 10 ms.  Each of
# BENCH_MIGRATIONS (5) migrations (SIGUSR1 to the sim: +2 ms, +30 ppm) is
# at least 2.5 s after the previous one.  Per migration, seconds after it:
#   chrony   chrony synchronised again (first reading with leap != 3 after
#            one with leap 3)
#   verdict  the first SYNCHRONIZED verdict after the DISRUPTED one
#   lag      verdict - chrony
# Goal: the median verdict latency <= 0.5 s (BENCH_VERDICT_GOAL); the exit
# status is 1 when it is missed or a migration is never seen synchronised.
. "$(dirname "$0")/lib.sh"
require_chronyd

N=${BENCH_MIGRATIONS:-5}
GOAL=${BENCH_VERDICT_GOAL:-0.5}
GAP=2.5
STATE=$T/run/state
OBSERVE=$top_builddir/tests/chrony-observe

write_chrony_conf
start_chronyd || fail "chronyd started"
start_sim --offset-ns 1234567 --interval-ms 100
start_vmclockd --state-file "$STATE"
"$CTL" -d "$T/page" -s "$STATE" waitsync --timeout 30 >/dev/null 2>&1 ||
	fail "synchronised before the first migration"

record_migrations "$STATE" "$N" "$GAP" 3

# One line per migration: t_mig chrony verdict lag (- when never seen).
awk '
FILENAME ~ /sim.log$/ && / migrate / { mig[++n] = $1; next }
FILENAME ~ /observe.txt$/ && NF > 5 && $1 ~ /^[0-9.]+$/ { ot[++no] = $1; ol[no] = $5; next }
FILENAME ~ /timeline.txt$/ && NF == 4 { vt[++nv] = $1; vv[nv] = $2; next }
END {
	for (i = 1; i <= n; i++) {
		end = i < n ? mig[i + 1] : 1e30
		c = "-"; v = "-"; unsync = 0; dis = 0
		for (j = 1; j <= no; j++) {
			if (ot[j] < mig[i] || ot[j] >= end) continue
			if (ol[j] == 3) unsync = 1
			else if (unsync) { c = ot[j] - mig[i]; break }
		}
		for (j = 1; j <= nv; j++) {
			if (vt[j] < mig[i] || vt[j] >= end) continue
			if (vv[j] == "disrupted") dis = 1
			else if (dis && vv[j] == "synchronized") { v = vt[j] - mig[i]; break }
		}
		printf "%.6f %s %s %s\n", mig[i], c == "-" ? c : sprintf("%.3f", c),
			v == "-" ? v : sprintf("%.3f", v),
			(c == "-" || v == "-") ? "-" : sprintf("%+.3f", v - c)
	}
}' "$T/sim.log" "$T/observe.txt" "$T/timeline.txt" >"$T/latency.txt"

echo "migration            chrony_s  verdict_s  lag_s"
awk '{ printf "%-20s %8s %10s %6s\n", $1, $2, $3, $4 }' "$T/latency.txt"
median=$(awk '$3 != "-" { print $3 }' "$T/latency.txt" | sort -n |
	awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }')
worst=$(awk '$3 != "-" { print $3 }' "$T/latency.txt" | sort -n | tail -n 1)
seen=$(awk '$3 != "-"' "$T/latency.txt" | wc -l)
echo "verdict latency: median ${median} s, worst ${worst:--} s over $seen of $N migrations"
check "every migration seen back to synchronized ($seen of $N)" test "$seen" -eq "$N"
check "median verdict latency ${median} s <= ${GOAL} s" \
	awk -v m="$median" -v g="$GOAL" 'BEGIN { exit !(m != "-" && m <= g) }'
check "bounds held the truth throughout (violations=0)" grep -q ' violations=0 ' "$T/timeline.txt"
finish
