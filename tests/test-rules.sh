#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-rules.sh - the alerting rules shipped in prometheus/vmclockd-alerts.yml
# pass Prometheus's own checker (`promtool check rules`, Debian package
# prometheus) and their unit tests (`promtool test rules`,
# tests/vmclockd-alerts.test.yml): each alert fires when its condition has
# held as long as it asks, with the labels and annotations it promises.
. "$(dirname "$0")/lib.sh"
PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}
[ -n "$PROMTOOL" ] || skip_or_fail "promtool not installed (package prometheus)"
RULES=$top_srcdir/prometheus/vmclockd-alerts.yml

check "promtool check rules: 5 rules" \
	sh -c "\"$PROMTOOL\" check rules \"$RULES\" | grep -q 'SUCCESS: 5 rules found'"
"$PROMTOOL" test rules "$top_srcdir/tests/vmclockd-alerts.test.yml" >"$T/unit.log" 2>&1
check "promtool test rules: every alert's unit tests pass" test $? -eq 0
cat "$T/unit.log"
finish
