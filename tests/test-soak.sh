#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-soak.sh - vmclockd under valgrind through repeated migrations and
# chronyd restarts: every migration is followed by a recovery, file
# descriptors and memory do not grow, and valgrind finds no error or leak.
#   SOAK_SECONDS     length (default 90: the short form make check runs;
#                    make soak runs 1800)
#   MIGRATE_EVERY    seconds between migrations (default 10; soak: 30)
#   RESTART_EVERY    seconds between chronyd restarts (default 30; soak: 120)
. "$(dirname "$0")/lib.sh"
require_chronyd

SOAK_SECONDS=${SOAK_SECONDS:-90}
MIGRATE_EVERY=${MIGRATE_EVERY:-10}
RESTART_EVERY=${RESTART_EVERY:-30}

write_chrony_conf
start_chronyd || fail "chronyd started"
start_sim --offset-ns 700000 --interval-ms 100
# libtool's wrapper script would be what valgrind runs: run the real binary.
real=$top_builddir/daemon/.libs/vmclockd
[ -x "$real" ] || real=$VMCLOCKD
export LD_LIBRARY_PATH=$top_builddir/refclock/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# An ASan build checks itself (LeakSanitizer at exit); valgrind checks the
# others.  Either way a finding makes the exit status 99.
if ldd "$real" | grep -q libasan; then
	checker="env ASAN_OPTIONS=detect_leaks=1:exitcode=99:log_path=$T/asan"
else
	command -v valgrind >/dev/null || skip_or_fail "valgrind not installed"
	checker="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect
		--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file=$T/valgrind.log"
fi
$checker "$real" --foreground --config /dev/null --device "$T/page" --chrony-sock "$T/vmc.sock" \
	--chrony-cmd "$T/chronyd.sock" --state-dir "$T/state" --state-file "$T/run/state" \
	>>"$T/vmclockd.log" 2>&1 &
VMCLOCKD_PID=$!
PIDS="$PIDS $VMCLOCKD_PID"
check "VMC selected under ${checker%% *}" wait_for 30 vmc_selected

fds() { ls /proc/"$VMCLOCKD_PID"/fd | wc -l; }
rss_kb() { awk '/^VmRSS/ { print $2 }' /proc/"$VMCLOCKD_PID"/status; }
# The baseline comes after a first migration: the handover opens its
# command socket on first use.
kill -USR1 "$SIM_PID"
check "first migration handled" wait_for 10 has_event RECOVERED DISRUPTION_MARKER=2
sleep 2
fd0=$(fds)
rss0=$(rss_kb)
start=$(date +%s)
migrations=1
restarts=0
next_mig=$((start + MIGRATE_EVERY))
next_restart=$((start + RESTART_EVERY))
while [ $(($(date +%s) - start)) -lt "$SOAK_SECONDS" ]; do
	now=$(date +%s)
	if [ "$now" -ge "$next_mig" ]; then
		kill -USR1 "$SIM_PID"
		migrations=$((migrations + 1))
		next_mig=$((now + MIGRATE_EVERY))
	fi
	if [ "$now" -ge "$next_restart" ]; then
		stop_chronyd
		start_chronyd || fail "chronyd restarted"
		restarts=$((restarts + 1))
		next_restart=$((now + RESTART_EVERY))
	fi
	sleep 0.5
done
sleep 3
fd1=$(fds)
rss1=$(rss_kb)
echo "migrations $migrations, chronyd restarts $restarts; fds $fd0 -> $fd1; RSS ${rss0} kB -> ${rss1} kB"
handled=$(n_events DISRUPTION)
recovered=$(n_events RECOVERED) # a chronyd down is waited for
check "every migration seen ($handled of $migrations)" test "$handled" -eq "$migrations"
check "every migration handled ($recovered of $migrations)" test "$recovered" -eq "$migrations"
check "chrony on VMC at the end" wait_for 15 vmc_selected
check "no file descriptor growth ($fd0 -> $fd1)" test "$fd1" -le "$fd0"
# Under valgrind RSS moves with its own bookkeeping: allow 10%.
check "no RSS growth beyond 10% ($rss0 -> $rss1 kB)" test "$rss1" -le $((rss0 + rss0 / 10))
kill "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID"
rc=$?
check "${checker%% *}: no errors, no leaks (exit $rc)" test "$rc" -eq 0
cat "$T"/valgrind.log "$T"/asan.* 2>/dev/null
finish
