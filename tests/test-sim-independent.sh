#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# test-sim-independent.sh - vmclock-sim is an independent writer: it links
# nothing of libvmclock (no undefined vmclock_* symbol, no libvmclock in its
# dynamic dependencies), so a test that reads its pages checks the reader
# instead of agreeing with it.
set -u
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/.." && pwd)}
SIM=$top_builddir/tools/vmclock-sim
# A libtool wrapper script in its place would mean it links a libtool
# library (the real program then hides in tools/.libs).
bin=$SIM
pass=0 fail=0
check() {
	if eval "$2"; then pass=$((pass + 1)); echo "PASS: $1"; else fail=$((fail + 1)); echo "FAIL: $1"; fi
}
command -v nm >/dev/null 2>&1 || { echo "FAIL: nm is missing (binutils)"; echo "0 passed, 1 failed"; exit 1; }
check "vmclock-sim is a program, not a libtool wrapper" \
	'head -c 4 "$SIM" | od -An -c | grep -q "E   L   F"'
# Each listing must succeed: an unreadable file proves nothing.
check "vmclock-sim needs no vmclock_* symbol" \
	'syms=$(nm -u "$bin") && ! printf "%s\n" "$syms" | grep -q " vmclock_"'
check "vmclock-sim does not load libvmclock" \
	'deps=$(ldd "$bin") && ! printf "%s\n" "$deps" | grep -q libvmclock'
check "vmclock-sim defines no vmclock_* function of its own either" \
	'syms=$(nm "$bin") && ! printf "%s\n" "$syms" | grep -q " [Tt] vmclock_"'
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
