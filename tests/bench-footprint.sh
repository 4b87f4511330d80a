#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# bench-footprint.sh - what vmclockd costs next to the bare loop it replaces.
# Run by `make bench`, never by `make check`.
#
# One chronyd -x (no clock control) with two SOCK refclocks, one vmclock-sim
# page, and side by side for BENCH_FOOTPRINT_SECONDS (60): vmclockd at its
# default interval (62 ms) with chronyd's sample and command sockets present,
# and tests/naive-feeder at the same interval.  CPU is utime + stime from
# /proc/PID/stat (clock ticks) and, finer, the scheduler's run time from
# /proc/PID/schedstat (ns), both taken after a 2 s warm-up and scaled to
# CPU seconds per hour; memory is the peak RSS (VmHWM).
. "$(dirname "$0")/lib.sh"
require_chronyd
NAIVE=$top_builddir/tests/naive-feeder
SECONDS_RUN=${BENCH_FOOTPRINT_SECONDS:-60}
INTERVAL_MS=${BENCH_INTERVAL_MS:-62}
TICK=$(getconf CLK_TCK)

{
	echo "refclock SOCK $T/vmc.sock refid VMC poll -3 filter 2 precision 1e-8"
	echo "refclock SOCK $T/naive.sock refid NAIV poll -3 filter 2 precision 1e-8 noselect"
	echo "bindcmdaddress $T/chronyd.sock"
	echo "cmdport 0"
	echo "port 0"
	echo "pidfile $T/chronyd.pid"
	echo "logdir $T"
} >"$T/chrony.conf"
start_chronyd || skip_or_fail "chronyd did not start"
start_sim --offset-ns 1000000
start_vmclockd --state-file "$T/vmclockd.state"
"$NAIVE" --device "$T/page" --sock "$T/naive.sock" --interval-ms "$INTERVAL_MS" \
	>>"$T/naive.log" 2>&1 &
NAIVE_PID=$!
PIDS="$PIDS $NAIVE_PID"

# cpu PID: "ticks schedstat_ns" so far.
cpu() {
	local ticks ns
	ticks=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat")
	ns=$(awk '{ print $1 }' "/proc/$1/schedstat" 2>/dev/null)
	echo "$ticks ${ns:-0}"
}

sleep 2
read -r v_t0 v_n0 < <(cpu "$VMCLOCKD_PID")
read -r n_t0 n_n0 < <(cpu "$NAIVE_PID")
sleep "$SECONDS_RUN"
read -r v_t1 v_n1 < <(cpu "$VMCLOCKD_PID")
read -r n_t1 n_n1 < <(cpu "$NAIVE_PID")
v_hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$VMCLOCKD_PID/status")
n_hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$NAIVE_PID/status")
np=$(chronyc_cmd -c sourcestats 2>/dev/null | awk -F, '{ printf "%s%s:%s", s, $1, $2; s = " " }')

check "vmclockd ran throughout" kill -0 "$VMCLOCKD_PID"
check "naive-feeder ran throughout" kill -0 "$NAIVE_PID"
echo "chronyd sourcestats NP: $np"
awk -v s="$SECONDS_RUN" -v tick="$TICK" -v iv="$INTERVAL_MS" \
	-v vt=$((v_t1 - v_t0)) -v vn=$((v_n1 - v_n0)) -v vh="$v_hwm" \
	-v nt=$((n_t1 - n_t0)) -v nn=$((n_n1 - n_n0)) -v nh="$n_hwm" 'BEGIN {
	printf "footprint over %d s, both sampling every %d ms\n", s, iv
	printf "%-14s %18s %18s %12s\n", "", "stat CPU s/hour", "sched CPU s/hour", "VmHWM kB"
	printf "%-14s %18.2f %18.2f %12d\n", "vmclockd", vt / tick * 3600 / s, vn * 1e-9 * 3600 / s, vh
	printf "%-14s %18.2f %18.2f %12d\n", "naive-feeder", nt / tick * 3600 / s, nn * 1e-9 * 3600 / s, nh
	rt = "n/a"; rn = "n/a"
	if (nt > 0) rt = sprintf("%.2f", vt / nt)
	if (nn > 0) rn = sprintf("%.2f", vn / nn)
	printf "%-14s %18s %18s\n", "vmclockd/naive", rt, rn
}'
finish
