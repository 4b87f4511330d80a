#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-clockbound.sh - vmclockd's ClockBound segment read by ClockBound's
# own client library, not a re-implementation: libclockbound built from
# ClockBound 2.0.2's released sources (the peers directory beside the
# repository, $top_srcdir/../shared/peers, or $PEERS_DIR;
# tests/build-libclockbound.sh,
# cached in the build tree), its C example (examples/client/c) and a probe
# of ours (tests/cb-probe.c) linked with it, against a real chronyd (-x)
# fed by vmclockd from a simulated page:
#   1. a long loop: every call SYNCHRONIZED, earliest <= page time <= latest
#   2. ClockBound's C example, unchanged, at its default paths (a private
#      mount namespace puts the segment and the page there)
#   3. a migration: no call SYNCHRONIZED from the first after the page's
#      marker changed until vmclockd has handled it, SYNCHRONIZED again after
#   4. vmclockd stopped: UNKNOWN at once; restarted (without a state file):
#      the readers that have the segment open read SYNCHRONIZED again (it
#      was taken over in place)
#   5. vmclockd killed: UNKNOWN once the reader's grace period and
#      void_after have passed
# and never an error (CAUSALITY_BREACH, MALFORMED, ...) in any call.
. "$(dirname "$0")/lib.sh"
require_chronyd
# PEERS_DIR: another place for it (a git worktree away from the clone).
PEERS=${PEERS_DIR:-$top_srcdir/../shared/peers}/clock-bound-2.0.2
[ -f "$PEERS/clock-bound-ffi/include/clockbound.h" ] ||
	skip_or_fail "ClockBound's client sources not found at $PEERS (the peers directory beside the repository)"
command -v unshare >/dev/null || skip_or_fail "unshare (util-linux) not installed"
# CLOCKBOUND_CACHE: where the built library is kept (CI: one build for both
# suites, outside their build trees).
CB=${CLOCKBOUND_CACHE:-$top_builddir/tests/clockbound}
CC=${CC:-cc}
STATE=$T/run/state
SEG=$T/cb/shm0
SECONDS_LOOP=${CB_LOOP_SECONDS:-10}

sh "$top_srcdir/tests/build-libclockbound.sh" "$PEERS" "$CB"
rc=$?
[ $rc -eq 77 ] && skip_or_fail "libclockbound cannot be built here (see above)"
[ $rc -eq 0 ] || { echo "FAIL: building libclockbound"; exit 1; }
echo "# libclockbound: $CB/lib/libclockbound.so ($(cat "$CB/stamp" | sed 's/.* rustc/rustc/'))"
RPATH="-Wl,-rpath,$CB/lib -Wl,-rpath,$top_builddir/refclock/.libs"
# shellcheck disable=SC2086
$CC ${CLOCKBOUND_PROBE_CFLAGS:--Wall -Wextra -Werror} -O2 -D_GNU_SOURCE -I"$CB/include" -I"$top_srcdir/include" \
	"$top_srcdir/tests/cb-probe.c" -o "$T/cb-probe" -L"$CB/lib" -lclockbound \
	-L"$top_builddir/refclock/.libs" -lvmclock $RPATH || { echo "FAIL: building cb-probe"; exit 1; }
$CC -O2 -I"$CB/include" "$PEERS/examples/client/c/src/clockbound_now.c" -o "$T/clockbound_now" \
	-L"$CB/lib" -lclockbound $RPATH || { echo "FAIL: building ClockBound's C example"; exit 1; }

probe() { "$T/cb-probe" -c "$SEG" -d "$T/page" -s "$STATE" "$@"; }
# field NAME FILE: a key=value of the probe's summary line.
field() { tail -n 1 "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
no_errors() {
	local k
	for k in err_syscall err_uninit err_malformed err_causality err_version; do
		[ "$(field $k "$1")" = 0 ] || return 1
	done
}
show() {
	echo "$1:"
	sed -e 's/^/    /' -e '$a\' "$2"
}

write_chrony_conf
start_chronyd || fail "chronyd started"
start_sim --offset-ns 1234567 --interval-ms 100
start_vmclockd --state-file "$STATE" --clockbound-shm "$SEG"
check "synchronized (vmclockctl waitsync)" "$CTL" -d "$T/page" -s "$STATE" waitsync --timeout 30
check "the segment exists, 80 bytes, mode 0644" \
	test "$(stat -c '%s %a' "$SEG" 2>/dev/null)" = "80 644"

# 1. The long loop.
probe -t "$SECONDS_LOOP" >"$T/loop.txt" 2>&1
show "cb-probe, $SECONDS_LOOP s" "$T/loop.txt"
calls=$(field calls "$T/loop.txt")
check "loop: calls made (${calls:-0})" test "${calls:-0}" -gt 1000
check "loop: every call SYNCHRONIZED" test "$(field synchronized "$T/loop.txt")" = "$calls"
check "loop: every call checked against the page" test "$(field checked "$T/loop.txt")" = "$calls"
check "loop: earliest <= page time <= latest at every call" test "$(field outside "$T/loop.txt")" = 0
check "loop: no error" no_errors "$T/loop.txt"

# 2. ClockBound's example at its default paths (/var/run/clockbound/shm0,
# /dev/vmclock0), in a mount namespace of its own.
cat >"$T/example.sh" <<NS
set -e
mount -t tmpfs tmpfs /run
mkdir /run/clockbound
mount --bind "$T/cb" /run/clockbound
mount -t tmpfs tmpfs /dev
touch /dev/vmclock0
mount --bind "$T/page" /dev/vmclock0
exec "$T/clockbound_now"
NS
unshare -m --propagation private sh "$T/example.sh" >"$T/example.txt" 2>&1
rc=$?
show "ClockBound's C example (exit $rc)" "$T/example.txt"
check "example: exit 0" test $rc -eq 0
check "example: the clock status is SYNCHRONIZED" grep -q 'The clock status is SYNCHRONIZED\.' "$T/example.txt"

# 3. A migration in the middle of a loop.
probe -t 20 >"$T/migration.txt" 2>&1 &
PROBE_PID=$!
sleep 3
kill -USR1 "$SIM_PID"
wait "$PROBE_PID"
show "cb-probe around a migration" "$T/migration.txt"
grep ' migrate ' "$T/sim.log" | sed 's/^/    vmclock-sim: /'
check "migration: calls made while the new marker was not handled" \
	test "$(field unhandled "$T/migration.txt")" -gt 0
check "migration: none of them SYNCHRONIZED" test "$(field unhandled_sync "$T/migration.txt")" = 0
check "migration: the first call after the marker changed not SYNCHRONIZED" \
	test "$(field first_unhandled "$T/migration.txt")" != SYNCHRONIZED
check "migration: SYNCHRONIZED again after the handover" \
	holds "$(field resync_s "$T/migration.txt") >= 0"
check "migration: SYNCHRONIZED at the end" test "$(field last "$T/migration.txt")" = SYNCHRONIZED
check "migration: earliest <= page time <= latest whenever SYNCHRONIZED or FREE_RUNNING" \
	test "$(field outside "$T/migration.txt")" = 0
check "migration: no error" no_errors "$T/migration.txt"

# 4. Stopped, then restarted, under a reader that keeps the segment open.
ino=$(stat -c %i "$SEG")
probe -t 15 >"$T/restart.txt" 2>&1 &
PROBE_PID=$!
sleep 1
kill "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID" 2>/dev/null
sleep 1
# Restarted without a state file (--publish-file=): the segment does not
# depend on it.
start_vmclockd --publish-file= --clockbound-shm "$SEG"
wait "$PROBE_PID"
show "cb-probe around vmclockd's restart" "$T/restart.txt"
seq=$(awk 'NF == 5 { print $3 }' "$T/restart.txt" | tr '\n' ' ')
check "restart: SYNCHRONIZED -> UNKNOWN -> SYNCHRONIZED (got: $seq)" \
	test "$seq" = "SYNCHRONIZED UNKNOWN SYNCHRONIZED "
check "restart: the same segment taken over" test "$(stat -c %i "$SEG")" = "$ino"
check "restart: no error" no_errors "$T/restart.txt"

# 5. Killed: nothing says UNKNOWN but the age of the segment.
probe -t 15 -u >"$T/kill.txt" 2>&1 &
PROBE_PID=$!
sleep 1
t_kill=$(date +%s%N)
kill -KILL "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID" 2>/dev/null
wait "$PROBE_PID"
show "cb-probe after vmclockd was killed (at ${t_kill:0:10}.${t_kill:10})" "$T/kill.txt"
t_unk=$(awk '$3 == "UNKNOWN" { print $2; exit }' "$T/kill.txt")
stale=$(awk -v u="${t_unk:-0}" -v k="$t_kill" 'BEGIN { printf "%.3f", u - k / 1e9 }')
echo "UNKNOWN $stale s after vmclockd was killed"
check "killed: UNKNOWN at the end" test "$(field last "$T/kill.txt")" = UNKNOWN
# The reader keeps a status 5 s after as_of (ClockBound's grace period);
# void_after is vmclockd's heartbeat timeout, shorter: UNKNOWN after 5 s.
check "killed: UNKNOWN between 4 and 6.5 s after the kill ($stale s)" holds "$stale >= 4 && $stale <= 6.5"
check "killed: no error" no_errors "$T/kill.txt"
finish
