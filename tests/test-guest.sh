#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# test-guest.sh - the real ptp_vmclock driver: a Debian kernel booted under
# QEMU (TCG) with a vmclock device whose page vmclock-sim writes from the
# host, notifications as ACPI Notify, and this build's vmclockd, vmclockctl
# and chronyd inside.  See tests/guest/vm.py (the machine) and
# tests/guest/run.py (the checks).  The kernel comes from a newer Debian
# suite through a private apt configuration and is cached in the build tree
# (tests/guest/cache/kernel; tests/guest/fetch-kernel.sh).
#
# Nothing here skips: a missing tool or kernel is a failure naming it.
set -u
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/.." && pwd)}
top_srcdir=${top_srcdir:-$top_builddir}
command -v python3 >/dev/null 2>&1 || { echo "FAIL: python3 is missing"; exit 1; }
W=$(mktemp -d /tmp/vmclockd-guest.XXXXXX)
chmod 700 "$W"
# The whole run is bounded; a hung guest is a failure, not a hang of make check.
# GUEST_RUNNER: the guest's script (tests/test-guest-arm64.sh: arm64.py).
timeout -k 10 ${GUEST_TIMEOUT:-240} python3 "$top_srcdir/tests/guest/${GUEST_RUNNER:-run.py}" \
	--builddir "$top_builddir" --srcdir "$top_srcdir" --workdir "$W" "$@"
rc=$?
[ $rc -eq 124 ] && echo "FAIL: the guest test took longer than ${GUEST_TIMEOUT:-240} s"
if [ $rc -ne 0 ] || [ -n "${KEEP_TEST_DIR:-}" ]; then
	for f in "$W"/guest-*.log "$W"/sim.log; do
		[ -f "$f" ] || continue
		echo "---- $f (tail)"
		tail -n 30 "$f"
	done
	echo "---- console (tail)"
	tail -n 15 "$W/console.log" 2>/dev/null
fi
[ -n "${KEEP_TEST_DIR:-}" ] && echo "kept $W" || rm -rf "$W"
exit $rc
