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
# What tests/test-container.sh checks under a real systemd, in brief here.
check "reload needs no procps (no /bin/kill)" bash -c "! grep -q '^ExecReload=.*/bin/kill' '$T/vmclockd.service'"
check "not the whole of /run writable" bash -c "! grep -qx 'ReadWritePaths=/run' '$T/vmclockd.service' &&
	grep -qx 'ReadOnlyPaths=/run' '$T/vmclockd.service'"
check "a private /dev with the page and its PTP clock bound in, read-only" bash -c "grep -qx 'PrivateDevices=yes' '$T/vmclockd.service' &&
	grep -qx 'BindReadOnlyPaths=-/dev/vmclock0 -/dev/ptp_vmclock0' '$T/vmclockd.service' &&
	grep -qx 'DeviceAllow=/dev/vmclock0 r' '$T/vmclockd.service' &&
	grep -qx 'DeviceAllow=/dev/ptp_vmclock0 r' '$T/vmclockd.service'"
check "started only with a device or a configuration" bash -c "grep -qx 'ConditionPathExists=|/dev/vmclock0' '$T/vmclockd.service' &&
	grep -qx 'ConditionPathExists=|/etc/vmclockd.conf' '$T/vmclockd.service'"
finish
