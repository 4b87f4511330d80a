#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-unit.sh - the systemd unit as shipped: it verifies, and its exposure
# under `systemd-analyze security --offline=yes` stays at most 1.0.
. "$(dirname "$0")/lib.sh"
command -v systemd-analyze >/dev/null || skip_or_fail "systemd-analyze not installed"

sed 's|@sbindir@|/usr/sbin|g' "$top_srcdir/systemd/vmclockd.service.in" >"$T/vmclockd.service"
systemd-analyze security --offline=yes "$T/vmclockd.service" >"$T/security.txt" 2>&1
score=$(sed -n 's/.*Overall exposure level for vmclockd.service: \([0-9.]*\).*/\1/p' "$T/security.txt")
echo "exposure: ${score:-?}"
# --threshold is on the 0-100 scale of the table: 10 is an exposure of 1.0.
check "exposure $score is at most 1.0" \
	systemd-analyze security --offline=yes --threshold=10 "$T/vmclockd.service"
check "no capability in the bounding set" grep -qx 'CapabilityBoundingSet=' "$T/vmclockd.service"
check "Type=notify with a watchdog" \
	bash -c "grep -qx 'Type=notify' '$T/vmclockd.service' && grep -q '^WatchdogSec=' '$T/vmclockd.service'"
check "in chrony's group" grep -qx 'SupplementaryGroups=_chrony' "$T/vmclockd.service"
finish
