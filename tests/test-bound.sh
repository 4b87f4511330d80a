#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-bound.sh - the published bound covers the page's own error and is
# checked against vmclockd's own measurement.  A real chronyd (-x),
# vmclock-sim as the hypervisor, vmclockd, and vmclock_timestamp() as
# applications see it (vmclockctl, tests/verdict-timeline):
#   1. the page says its time is within 80 us (time_maxerror_nanosec):
#      chronyd, following the page's samples, knows nothing of that, but the
#      published bound and every bound an application gets are >= 80 us
#   2. the page's time steps by 5 ms with no disruption marker change while
#      chronyd is synchronised (to vmclockd the same as `date -s` moving the
#      system clock): no application gets a bound that misses the page's
#      time, synchronized or freerunning, for longer than one sampler tick
#      after the step (plus the reader's 1 ms refresh and 50 ms of
#      scheduling on a loaded machine)
# No test steps the machine's clock: the watch on CLOCK_REALTIME steps
# (timerfd, TFD_TIMER_CANCEL_ON_SET) cannot be exercised without
# CAP_SYS_TIME; the step of the page exercises everything after it.
. "$(dirname "$0")/lib.sh"
require_chronyd
command -v python3 >/dev/null || skip_or_fail "python3 not installed (JSON checks)"

TIMELINE=$top_builddir/tests/verdict-timeline
STATE=$T/run/state
MAXERR_NS=80000
STEP_NS=5000000
TICK_MS=100
SLACK_MS=51 # the reader's 1 ms refresh, 50 ms of scheduling
ctl() { "$CTL" -d "$T/page" -s "$STATE" "$@"; }
json_get() {
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
# field NAME FILE: NAME=value from the timeline's last line.
field() { sed -n "s/^checks=.* $1=\([0-9.]*\).*/\1/p" "$2"; }

# chronyd takes the refclock's samples once a second, as a deployment
# might (poll 0): until its next update after the step, its own figures
# cannot know of it.
REFCLOCK_OPTS="poll 0 filter 1 precision 1e-8" write_chrony_conf
start_chronyd || fail "chronyd started"
start_sim --maxerror-ns $MAXERR_NS --step-ns $STEP_NS --interval-ms 100
start_vmclockd --state-file "$STATE" --interval-ms $TICK_MS

# ---- 1. the page's own error is in the bound
ctl waitsync --timeout 20 >"$T/waitsync.out" 2>&1
check "waitsync returns 0 once synchronized ($(cat "$T/waitsync.out"))" test $? -eq 0
"$TIMELINE" -d "$T/page" -s "$STATE" -t 2 >"$T/timeline-maxerr.txt" 2>&1
sed 's/^/    /' "$T/timeline-maxerr.txt"
ctl daemon --json >"$T/maxerr.json"
cat "$T/maxerr.json"
"$OBSERVE" -s "$T/chronyd.sock" --once --json >"$T/tracking.json" 2>&1
echo "chronyd tracking: $(cat "$T/tracking.json")"
check "timeline: synchronized throughout" \
	test "$(awk 'NF == 4 { print $2 }' "$T/timeline-maxerr.txt" | tr '\n' ' ')" = "synchronized "
check "timeline: every bound >= the page's max error ($MAXERR_NS ns; min $(field min_bound_ns "$T/timeline-maxerr.txt"))" \
	test "$(field min_bound_ns "$T/timeline-maxerr.txt")" -ge $MAXERR_NS
check "daemon --json: published error_bound_ns and the verdict's bound >= $MAXERR_NS ns" \
	json_get "$T/maxerr.json" "exit(not (j['verdict'] == 'synchronized' and
		j['error_bound_ns'] >= $MAXERR_NS and j['bound_ns'] >= $MAXERR_NS))"
check "daemon --json: the bound grows at least at the page's rate (50 ppb) over chrony's 1 ppm" \
	json_get "$T/maxerr.json" "exit(not j['drift_ppb'] >= 1050)"

# The watch for steps of the realtime clock: a timerfd on CLOCK_REALTIME (0)
# armed with TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET (settime flags 3).
# Firing it needs a step of the machine's clock, which no test may make.
check "vmclockd watches CLOCK_REALTIME for steps (a timerfd, cancel on set)" \
	eval 'grep -l "^clockid: 0" /proc/$VMCLOCKD_PID/fdinfo/* 2>/dev/null |
		xargs -r grep -l "^settime flags: 03" | grep -q .'

# ---- 2. the page's time steps by 5 ms, the marker unchanged
"$TIMELINE" -d "$T/page" -s "$STATE" -t 6 >"$T/timeline-step.txt" 2>&1 &
TL_PID=$!
sleep 1.5
kill -WINCH "$SIM_PID"
wait "$TL_PID"
echo "verdict timeline around the step:"
sed 's/^/    /' "$T/timeline-step.txt"
grep ' step ' "$T/sim.log" | sed 's/^/    sim: /'
t_step=$(awk '/ step / { print $1; exit }' "$T/sim.log")
check "vmclock-sim stepped the page's time by $STEP_NS ns, marker unchanged" \
	grep -q " step marker=1 step_ns=$STEP_NS " "$T/sim.log"
violations=$(sed -n 's/^checks=[0-9]* violations=\([0-9]*\) .*/\1/p' "$T/timeline-step.txt")
first=$(field first_violation "$T/timeline-step.txt")
last=$(field last_violation "$T/timeline-step.txt")
window_ms=$(awk -v l="$last" -v s="${t_step:-0}" -v n="${violations:-0}" \
	'BEGIN { printf "%.1f", (n > 0 ? (l - s) * 1000 : 0) }')
echo "bounds missed the page's time in $violations calls, from $first to $last:" \
	"$window_ms ms after the step"
check "timeline: checked calls after the step" \
	grep -Eq '^checks=[1-9][0-9]* ' "$T/timeline-step.txt"
check "no bound missed the page's time before the step" \
	awk -v f="$first" -v s="${t_step:-0}" -v n="${violations:-0}" \
	'BEGIN { exit !(s > 0 && (n == 0 || f >= s)) }'
check "bounds missed the page's time for at most one tick ($TICK_MS ms + $SLACK_MS ms; $window_ms ms)" \
	awk -v w="$window_ms" 'BEGIN { exit !(w != "" && w + 0 <= '$TICK_MS' + '$SLACK_MS') }'
check "vmclockd said the measurement contradicts chronyd's bound" \
	has_event - CONTRADICTED=1 'OFFSET_NS=-\{0,1\}[0-9]*' 'BOUND_NS=[0-9]*'
ctl daemon --json >"$T/step.json"
cat "$T/step.json"
check "daemon --json: afterwards, a bound >= the step ($STEP_NS ns)" \
	json_get "$T/step.json" "exit(not (j['bound_ns'] is not None and j['bound_ns'] >= $STEP_NS))"
finish
