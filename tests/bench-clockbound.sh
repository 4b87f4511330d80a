#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# bench-clockbound.sh [--smoke] - vmclock_timestamp() against AWS
# ClockBound's clockbound_now() and clock_gettime() (tests/bench_cb.c), in
# one run, against a live vmclockd: a simulated page, a real chronyd (-x,
# without CAP_SYS_TIME) fed by vmclockd, its published state and its
# ClockBound segment (clockbound-shm).  ClockBound's library is built from
# its released sources beside the repository (tests/build-libclockbound.sh,
# cached).  Run by make bench; --smoke (CI) prints the ratios without
# judging them.  Exit status: bench_cb's (1: a goal missed).
. "$(dirname "$0")/lib.sh"
require_chronyd
PEERS=${PEERS_DIR:-$top_srcdir/../shared/peers}/clock-bound-2.0.2
[ -f "$PEERS/clock-bound-ffi/include/clockbound.h" ] ||
	skip_or_fail "ClockBound's client sources not found at $PEERS (the peers directory beside the repository)"
CB=${CLOCKBOUND_CACHE:-$top_builddir/tests/clockbound}
sh "$top_srcdir/tests/build-libclockbound.sh" "$PEERS" "$CB"
rc=$?
[ $rc -eq 77 ] && skip_or_fail "libclockbound cannot be built here (see above)"
[ $rc -eq 0 ] || { echo "FAIL: building libclockbound"; exit 1; }
# Built as the library's users build: -O2, no sanitizers.
${CC:-cc} -O2 -Wall -Wextra -Werror -I"$CB/include" -I"$top_srcdir/include" \
	"$top_srcdir/tests/bench_cb.c" -o "$T/bench_cb" -L"$CB/lib" -lclockbound \
	-L"$top_builddir/refclock/.libs" -lvmclock \
	-Wl,-rpath,"$CB/lib" -Wl,-rpath,"$top_builddir/refclock/.libs" ||
	{ echo "FAIL: building bench_cb"; exit 1; }

STATE=$T/run/state
SEG=$T/cb/shm0
write_chrony_conf
start_chronyd || fail "chronyd started"
start_sim --interval-ms 100
start_vmclockd --state-file "$STATE" --clockbound-shm "$SEG"
"$CTL" -d "$T/page" -s "$STATE" waitsync --timeout 30 || { echo "FAIL: never synchronised"; exit 1; }
# Past the first handover's resynchronisation, so that every reader says
# SYNCHRONIZED throughout.
sleep 2
"$T/bench_cb" "$@" "$T/page" "$STATE" "$SEG"
