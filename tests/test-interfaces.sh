#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-interfaces.sh - the interfaces other tools read, as those tools read
# them: `vmclockd --version` and `vmclockctl --version` print the package
# version (and --version wins over an unreadable configuration); `vmclockctl
# metrics` passes Prometheus's own checker, `promtool check metrics`
# (Debian package prometheus), with no lint finding, on the output for a
# device without vmclockd, for a running vmclockd feeding a real chronyd
# (-x), and after a migration (every family present, counters non-zero).
. "$(dirname "$0")/lib.sh"
require_chronyd
PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}
[ -n "$PROMTOOL" ] || skip_or_fail "promtool not installed (package prometheus)"
STATE=$T/run/state
ctl() { "$CTL" -d "$T/page" -s "$STATE" "$@"; }

# promtool_ok DESC FILE: promtool exits 0 and prints no finding.
promtool_ok() {
	local out rc=0
	out=$("$PROMTOOL" check metrics <"$2" 2>&1) || rc=$?
	if [ $rc -eq 0 ] && [ -z "$out" ]; then
		pass "$1"
	else
		fail "$1 (promtool exit $rc: $out)"
	fi
}

version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$top_builddir/autoconfig.h")
check "vmclockd --version: vmclockd $version" \
	test "$("$VMCLOCKD" --version)" = "vmclockd $version" -a -n "$version"
check "vmclockd --version exits 0 whatever the configuration" \
	"$VMCLOCKD" --config "$T/no-such-file" --version
check "vmclockctl --version: vmclockctl $version" \
	test "$("$CTL" --version)" = "vmclockctl $version" -a -n "$version"

start_sim
ctl metrics >"$T/nodaemon.txt"
check "metrics without vmclockd: exit 0" test $? -eq 0
promtool_ok "promtool: device only, no vmclockd" "$T/nodaemon.txt"

write_chrony_conf
start_chronyd || fail "chronyd started"
start_vmclockd
check "VMC selected" wait_for 20 vmc_selected
ctl metrics >"$T/running.txt"
promtool_ok "promtool: vmclockd feeding chronyd" "$T/running.txt"

kill -USR1 "$SIM_PID"
check "migration handled" wait_for 5 has_event RECOVERED DISRUPTION_MARKER=2
wait_for 5 sh -c "\"$CTL\" -d \"$T/page\" -s \"$STATE\" metrics | grep -q '^vmclock_disruptions_total [1-9]'"
ctl metrics >"$T/migrated.txt"
promtool_ok "promtool: after a migration" "$T/migrated.txt"
check "after a migration: disruptions counted" grep -q '^vmclock_disruptions_total 1$' "$T/migrated.txt"
check "generation of device and daemon exported" \
	test "$(grep -c '^vmclock_vm_generation{source="\(device\|vmclockd\)"}' "$T/migrated.txt")" -eq 2
finish
