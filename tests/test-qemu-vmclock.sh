#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# test-qemu-vmclock.sh - QEMU's own vmclock device and real live migrations:
# the guest of tests/test-guest.sh (the newest Debian kernel's ptp_vmclock,
# this build's vmclockd and vmclockctl, chronyd) booted by QEMU 10 with
# -device vmclock, then migrated three times in a row into fresh QEMU
# processes.  The checks are tests/guest/qemu_vmclock.py's.
#
# This machine's QEMU (Debian 12: 7.2) has no vmclock device: QEMU comes from
# a Debian 13 root made by debootstrap (--variant=minbase, qemu-system-x86),
# cached as a tarball in $QEMU_ROOT_CACHE (default: the build tree), keyed by
# suite, package list and mirror, and run through that root's own loader and
# libraries (no chroot, no mount).  Nothing of this machine's apt
# configuration is read or changed.
#
# Skips (CI: fails) only without root or debootstrap, or when debootstrap
# cannot reach the mirror.
set -u
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/.." && pwd)}
top_srcdir=${top_srcdir:-$top_builddir}
CACHE=${QEMU_ROOT_CACHE:-$top_builddir/tests/guest/cache}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
INCLUDE=qemu-system-x86
# What of the root the guest's QEMU needs: the program, the loader, the
# libraries (QEMU's modules among them) and the firmware.
MEMBERS="./usr/bin/qemu-system-x86_64 ./usr/lib64 ./usr/lib/x86_64-linux-gnu ./usr/share/qemu
./usr/share/seabios"

fail() {
	echo "FAIL: $*"
	echo "0 passed, 1 failed"
	exit 1
}
skip_or_fail() {
	[ "${CI:-}" = true ] && fail "$*"
	echo "SKIP: $*"
	exit 77
}
[ "$(id -u)" -eq 0 ] || skip_or_fail "needs root (debootstrap of the $SUITE root with QEMU 10)"
command -v debootstrap >/dev/null || skip_or_fail "debootstrap is not installed"
command -v python3 >/dev/null || fail "python3 is missing"

mkdir -p "$CACHE"
TAR=$CACHE/$SUITE-qemu-$(echo "$SUITE $INCLUDE $MIRROR" | md5sum | cut -c1-8).tar
if [ ! -s "$TAR" ]; then
	echo "debootstrap $SUITE with $INCLUDE (not cached yet: $TAR)"
	start=$(date +%s)
	R=$CACHE/$SUITE-qemu.tmp
	rm -rf "$R"
	if ! debootstrap --variant=minbase --include="$INCLUDE" $SUITE "$R" "$MIRROR" \
		>"$CACHE/$SUITE-debootstrap.log" 2>&1; then
		tail -n 20 "$CACHE/$SUITE-debootstrap.log"
		rm -rf "$R"
		skip_or_fail "debootstrap of $SUITE from $MIRROR failed (no network?)"
	fi
	# Nothing installed may have left a process running in the root.
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$R" ] &&
			fail "debootstrap left a process running: $(tr '\0' ' ' <"$p/cmdline")"
	done
	if ! { tar -C "$R" -cf "$TAR.tmp" . && mv "$TAR.tmp" "$TAR"; }; then
		rm -rf "$R"
		fail "cannot write $TAR"
	fi
	rm -rf "$R"
	echo "debootstrap and tarball took $(($(date +%s) - start)) s"
fi

W=$(mktemp -d /tmp/vmclockd-qemu.XXXXXX)
chmod 700 "$W"
mkdir "$W/root"
# shellcheck disable=SC2086
tar -C "$W/root" -xf "$TAR" $MEMBERS || { rm -rf "$W"; fail "cannot unpack $TAR"; }
# The whole run is bounded; a hung guest is a failure, not a hang of make check.
timeout -k 10 "${QEMU_VMCLOCK_TIMEOUT:-300}" python3 "$top_srcdir/tests/guest/qemu_vmclock.py" \
	--builddir "$top_builddir" --srcdir "$top_srcdir" --workdir "$W" --qemu-root "$W/root"
rc=$?
[ $rc -eq 124 ] && echo "FAIL: the test took longer than ${QEMU_VMCLOCK_TIMEOUT:-300} s" &&
	echo "0 passed, 1 failed"
if [ $rc -ne 0 ] || [ -n "${KEEP_TEST_DIR:-}" ]; then
	# ctl: the control channel's transcript, the last command the guest ran.
	for f in guest-vmclockd guest-chronyd guest-watch qemu ctl; do
		echo "---- $f.log (tail)"
		tail -n 30 "$W/$f.log" 2>/dev/null
	done
	# One console per QEMU process the guest ran in; from a panic or oops
	# on, whole (its cause is at its top), else its tail.
	for f in "$W"/console-*.log; do
		[ -s "$f" ] || continue
		echo "---- $f (from a panic or oops, else the tail)"
		grep -qE 'Kernel panic|Oops|BUG:|Attempted to kill init' "$f" &&
			sed -n '/Kernel panic\|Oops\|BUG:\|Attempted to kill init/,$p' "$f" | head -n 120 ||
			tail -n 15 "$f"
	done
fi
if [ -n "${KEEP_TEST_DIR:-}" ]; then echo "kept $W"; else rm -rf "$W"; fi
exit $rc
