#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-container.sh DEBDIR - the packages as an operator runs them: a Debian
# bookworm container with systemd as PID 1 (systemd-nspawn), Debian's
# chrony, and the .debs in DEBDIR installed with dpkg inside it.  The checks
# themselves are tests/container/check.sh, run by a unit in the container;
# the container never gets CAP_SYS_TIME and chronyd runs with -x, so nothing
# here can touch the machine's clock.
#
# The root file system (debootstrap --variant=minbase, ~35-70 s) is cached
# as a tarball in $CONTAINER_CACHE (default: the build tree), keyed by the
# package list; a cached run takes well under a minute.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
# --prepare: only make the cached root file system (CI runs this beside the
# package build).
PREPARE=no
[ "${1:-}" = --prepare ] && PREPARE=yes
DEBDIR=${1:?usage: test-container.sh DEBDIR | --prepare}
CACHE=${CONTAINER_CACHE:-$top_builddir/container-cache}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# vmclockd links libevent_core-2.1.so.7; chrony is the peer.
INCLUDE=systemd,systemd-sysv,dbus,chrony,libevent-core-2.1-7,libsystemd0
HERE=$top_srcdir/tests/container

fail_or_skip() {
	if [ "${CI:-}" = true ]; then echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; fi
	echo "SKIP: $*"
	exit 77
}
[ "$(id -u)" -eq 0 ] || fail_or_skip "needs root (systemd-nspawn)"
for t in systemd-nspawn debootstrap; do
	command -v $t >/dev/null || fail_or_skip "$t not installed (systemd-container, debootstrap)"
done
[ $PREPARE = yes ] ||
	ls "$DEBDIR"/vmclockd_*.deb "$DEBDIR"/libvmclock0_*.deb "$DEBDIR"/vmclock-sim_*.deb >/dev/null ||
	fail_or_skip "no .debs in $DEBDIR"

T=$(mktemp -d /tmp/vmclockd-ct.XXXXXX)
CG=vmclockd-ct.$$
CGROOTS=""
cleanup() {
	local r
	for r in $CGROOTS; do
		[ -d "$r/$CG" ] && find "$r/$CG" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

# ---- the root file system, cached --------------------------------------------
mkdir -p "$CACHE"
TAR=$CACHE/bookworm-minbase-$(echo "$INCLUDE $MIRROR" | md5sum | cut -c1-8).tar
if [ ! -s "$TAR" ]; then
	echo "debootstrap (not cached yet: $TAR)"
	B=$CACHE/debootstrap.tmp
	rm -rf "$B"
	debootstrap --variant=minbase --include="$INCLUDE" bookworm "$B" "$MIRROR" \
		>"$CACHE/debootstrap.log" 2>&1 || { tail -n 20 "$CACHE/debootstrap.log"; fail_or_skip "debootstrap failed"; }
	# Nothing installed may have started a daemon on this machine (chrony's
	# postinst finds no systemd in the chroot and starts nothing; make sure).
	for p in /proc/[0-9]*; do
		if [ "$(readlink "$p/root" 2>/dev/null)" = "$B" ]; then
			echo "FAIL: debootstrap left a process running: $(tr '\0' ' ' <"$p/cmdline")"
			kill "${p#/proc/}"
			echo "0 passed, 1 failed"
			exit 1
		fi
	done
	tar -C "$B" -cf "$TAR.tmp" . && mv "$TAR.tmp" "$TAR"
	rm -rf "$B"
fi
[ $PREPARE = no ] || { echo "cached: $TAR"; exit 0; }
ROOT=$T/root
mkdir "$ROOT"
tar -C "$ROOT" -xf "$TAR"

# ---- what the container gets ---------------------------------------------------
OUT=$T/out
UNITS=$T/units
mkdir -p "$OUT/debs" "$UNITS/chrony.service.d" "$UNITS/multi-user.target.wants"
cp "$DEBDIR"/libvmclock0_*.deb "$DEBDIR"/vmclockd_*.deb "$DEBDIR"/vmclock-sim_*.deb "$OUT/debs/"
cp "$HERE/check.sh" "$HERE/probe.sh" "$HERE/vmclockd-test.conf" "$OUT/"
cp "$HERE/vmclock-check.service" "$HERE/vmclock-sim.service" "$UNITS/"
cp "$HERE/chrony-test.conf" "$UNITS/chrony.service.d/test.conf"
ln -s ../vmclock-check.service "$UNITS/multi-user.target.wants/vmclock-check.service"

# ---- boot ------------------------------------------------------------------------
# nspawn runs in cgroups of its own (the name=systemd and unified
# hierarchies) so that it can delegate them to the container's systemd.
# Without the unified hierarchy and bpf() the device cgroup and IP
# filtering of the units inside would silently not be enforced.
for r in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
	[ -d "$r" ] && mkdir "$r/$CG" && CGROOTS="$CGROOTS $r"
done
if [ -z "$CGROOTS" ] && [ -e /sys/fs/cgroup/cgroup.controllers ]; then
	mkdir /sys/fs/cgroup/$CG && CGROOTS=/sys/fs/cgroup
fi
START=$(date +%s%N)
(
	for r in $CGROOTS; do echo "$BASHPID" >"$r/$CG/cgroup.procs"; done
	export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
	exec timeout 240 systemd-nspawn -q -D "$ROOT" -b --register=no --keep-unit \
		--private-network --volatile=overlay --system-call-filter=bpf \
		--drop-capability=CAP_SYS_TIME --console=pipe \
		--bind="$OUT:/out" --bind-ro="$UNITS:/usr/local/lib/systemd/system" \
		--bind-ro="$HERE/default-chrony:/etc/default/chrony"
) </dev/null >"$T/console.log" 2>&1
rc=$?
echo "container ran $((($(date +%s%N) - START) / 1000000)) ms (nspawn exit $rc)"

cat "$OUT/results" 2>/dev/null
if [ ! -e "$OUT/done" ]; then
	echo "---- console (tail)"
	tail -n 40 "$T/console.log"
	echo "FAIL: the checks did not finish"
	echo "0 passed, 1 failed"
	exit 1
fi
if grep -q '^FAIL' "$OUT/results" || [ -n "${KEEP_TEST_DIR:-}" ]; then
	echo "---- check.log (tail)"
	tail -n 30 "$OUT/check.log"
	echo "---- journal, vmclockd and chrony (tail)"
	grep -E 'vmclockd|chrony' "$OUT/journal.txt" | tail -n 40
	for f in probe.txt probe-device.txt security.txt; do
		[ -e "$OUT/$f" ] && { echo "---- $f"; cat "$OUT/$f"; }
	done
	[ -n "${KEEP_TEST_DIR:-}" ] && { cp -r "$OUT" "$KEEP_TEST_DIR"; echo "kept in $KEEP_TEST_DIR"; }
fi
! grep -q '^FAIL' "$OUT/results"
