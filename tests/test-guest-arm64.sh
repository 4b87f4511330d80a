#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# test-guest-arm64.sh - the real ptp_vmclock driver on arm64: Debian's
# cloud-arm64 kernel under qemu-system-aarch64 (TCG, virt), the vmclock
# device in the device tree, its page on the Arm counter written by
# vmclock-sim from the host, and this project's arm64 vmclockd and
# vmclockctl (built by .ci/arm64 into build-ci-arm64/obj, or
# --arm64-builddir DIR) with Debian's arm64 chronyd inside.  See
# tests/guest/arm64.py.  Not in make check: it needs the arm64 build.
GUEST_RUNNER=arm64.py exec sh "$(dirname "$0")/test-guest.sh" "$@"
