#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-valgrind.sh - the library's Check suite and vmclockctl under
# valgrind's memcheck: no invalid access, no uninitialised use, no leak.
# (vmclockd itself runs under valgrind in test-soak.sh.)  An ASan build
# checks itself instead, and valgrind cannot run it: skipped there.
. "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || skip_or_fail "valgrind not installed"
real_lib=$top_builddir/tests/.libs/check_lib
[ -x "$real_lib" ] || real_lib=$top_builddir/tests/check_lib
if ldd "$real_lib" | grep -q libasan; then
	echo "SKIP: an ASan build is checked by ASan, not valgrind"
	exit 77
fi
export LD_LIBRARY_PATH=$top_builddir/refclock/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# --fair-sched=yes: by default valgrind lets a spinning reader thread take
# the big lock again and again, starving the writer in the concurrency tests
# for hundreds of ms (reads then time out, as they must after 100 ms).
VG="valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
	--child-silent-after-fork=yes"

# The suite forks per test by default; CK_FORK=no keeps it in one process.
CK_FORK=no $VG --log-file="$T/check_lib.vg" "$real_lib" >"$T/check_lib.log" 2>&1
rc=$?
tail -n 1 "$T/check_lib.log"
check "check_lib under valgrind (exit $rc)" test "$rc" -eq 0
[ -s "$T/check_lib.vg" ] && head -n 40 "$T/check_lib.vg"

ctl_real=$top_builddir/tools/.libs/vmclockctl
[ -x "$ctl_real" ] || ctl_real=$CTL
start_sim --offset-ns 1000 --interval-ms 50
for cmd in "status" "status --json" "time" "time --json"; do
	# shellcheck disable=SC2086
	$VG --log-file="$T/ctl.vg" "$ctl_real" -d "$T/page" $cmd >/dev/null 2>&1
	rc=$?
	check "vmclockctl $cmd under valgrind (exit $rc)" test "$rc" -eq 0
done
head -c 50 /dev/zero >"$T/short"
$VG --log-file="$T/ctl.vg" "$ctl_real" -d "$T/short" status >/dev/null 2>&1
rc=$?
check "vmclockctl on a bad page under valgrind: exit 1, clean (exit $rc)" test "$rc" -eq 1
finish
