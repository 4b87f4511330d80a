#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-truth.sh - truthful timestamps end to end: a real chronyd (-x),
# vmclock-sim as the hypervisor, vmclockd publishing its state file, and
# vmclock_timestamp() as applications see it (through vmclockctl and
# tests/verdict-timeline).
#   1. steady state: waitsync returns 0, verdict synchronized, metrics valid
#   2. a migration: synchronized -> disrupted -> synchronized, disrupted
#      within 10 ms of the marker change, the bounds always hold the truth
#   3. vmclockctl daemon: every field sane after one migration
#   4. vmclockd stopped: unknown within 1.5 s, waitsync times out
. "$(dirname "$0")/lib.sh"
require_chronyd
command -v python3 >/dev/null || skip_or_fail "python3 not installed (JSON and metrics checks)"

TIMELINE=$top_builddir/tests/verdict-timeline
STATE=$T/run/state
OFFSET_NS=1234567
ctl() { "$CTL" -d "$T/page" -s "$STATE" "$@"; }
now_ns() { date +%s%N; }

# A checker of the Prometheus text exposition format (0.0.4): names, label
# escaping, one HELP and TYPE per family before its samples, families not
# interleaved, no duplicate series, values that parse.
cat >"$T/promcheck.py" <<'EOF'
import re, sys
name_re = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*$')
label_re = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample_re = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:%s(?:,%s)*,?)?\})? (\S+)( -?\d+)?$'
                       % (label_re, label_re))
types, helps, seen, done, series = {}, {}, set(), set(), set()
current, errors = None, []
for n, line in enumerate(sys.stdin.read().split('\n'), 1):
    if line == '':
        continue
    if line.startswith('#'):
        parts = line.split(' ', 3)
        if len(parts) >= 3 and parts[1] in ('HELP', 'TYPE'):
            if not name_re.match(parts[2]):
                errors.append('%d: bad name %r' % (n, parts[2]))
            d = types if parts[1] == 'TYPE' else helps
            if parts[2] in d:
                errors.append('%d: second %s for %s' % (n, parts[1], parts[2]))
            if parts[2] in seen:
                errors.append('%d: %s after samples of %s' % (n, parts[1], parts[2]))
            d[parts[2]] = parts[3] if len(parts) > 3 else ''
            if parts[1] == 'TYPE' and d[parts[2]] not in ('counter', 'gauge', 'histogram',
                                                           'summary', 'untyped'):
                errors.append('%d: bad type %r' % (n, d[parts[2]]))
        continue
    m = sample_re.match(line)
    if not m:
        errors.append('%d: not a sample: %r' % (n, line))
        continue
    name = m.group(1)
    if name != current:
        if name in done:
            errors.append('%d: family %s interleaved' % (n, name))
        if current:
            done.add(current)
        current = name
    if name not in types:
        errors.append('%d: no TYPE before %s' % (n, name))
    elif types[name] == 'counter' and not name.endswith('_total'):
        errors.append('%d: counter %s without _total' % (n, name))
    seen.add(name)
    key = name + (m.group(2) or '')
    if key in series:
        errors.append('%d: duplicate series %s' % (n, key))
    series.add(key)
    try:
        float(m.group(3))
    except ValueError:
        errors.append('%d: bad value %r' % (n, m.group(3)))
for e in errors:
    print('promcheck: ' + e)
sys.exit(1 if errors or not series else 0)
EOF
promcheck() { python3 "$T/promcheck.py" <"$1"; }

# json_get FILE EXPR: a Python expression over the object j.
json_get() {
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
# one_line_exit1 DESC FILE COMMAND...: exit status 1 and exactly one line on stderr.
one_line_exit1() {
	local desc=$1 out=$2 rc
	shift 2
	"$@" >/dev/null 2>"$out"
	rc=$?
	echo "  $desc: rc=$rc: $(head -n 1 "$out")"
	[ "$rc" -eq 1 ] && [ "$(wc -l <"$out")" -eq 1 ]
}

write_chrony_conf
start_chronyd || fail "chronyd started"
start_sim --offset-ns $OFFSET_NS --interval-ms 100
start_vmclockd --state-file "$STATE"

# ---- 1. steady state
t0=$(now_ns)
ctl waitsync --timeout 20 >"$T/waitsync.out" 2>&1
rc=$?
echo "waitsync: rc=$rc after $((($(now_ns) - t0) / 1000000)) ms: $(cat "$T/waitsync.out")"
check "waitsync --timeout 20 returns 0 once synchronized" test "$rc" -eq 0
ctl daemon >"$T/daemon.txt" 2>&1
sed 's/^/    /' "$T/daemon.txt"
check "daemon: verdict synchronized in steady state" grep -q '^Verdict *: synchronized' "$T/daemon.txt"
check "waitsync --max-error-ns 10000000 (10 ms, above |correction| under -x) returns 0" \
	ctl waitsync --timeout 5 --max-error-ns 10000000
ctl waitsync --timeout 0.5 --max-error-ns 1 >/dev/null 2>"$T/waitsync-bound.err"
rc=$?
echo "  waitsync --max-error-ns 1: rc=$rc: $(cat "$T/waitsync-bound.err")"
check "waitsync --max-error-ns 1 times out (1) naming the bound" \
	test "$rc" -eq 1 -a -n "$(grep 'bound [0-9]* ns > 1 ns' "$T/waitsync-bound.err")"

ctl metrics >"$T/metrics.txt"
check "metrics exits 0" test $? -eq 0
check "metrics: valid exposition format" promcheck "$T/metrics.txt"
check "metrics: vmclock_disruptions_total present" grep -q '^vmclock_disruptions_total [0-9]' "$T/metrics.txt"
check "metrics: verdict synchronized 1" grep -qx 'vmclock_sync_verdict{verdict="synchronized"} 1' "$T/metrics.txt"
check "metrics: verdict disrupted 0" grep -qx 'vmclock_sync_verdict{verdict="disrupted"} 0' "$T/metrics.txt"
check "metrics: daemon up" grep -qx 'vmclock_daemon_up 1' "$T/metrics.txt"
check "metrics: device clock status synchronized" \
	grep -qx 'vmclock_clock_status{status="synchronized"} 1' "$T/metrics.txt"
check "metrics: device offset within 10 us of the injected one" \
	abs_le "$(awk -v o=$OFFSET_NS '/^vmclock_device_time_offset_seconds / { print $2 - o * 1e-9 }' \
		"$T/metrics.txt")" 1e-5
check "metrics: a withheld counter per reason" \
	test "$(grep -c '^vmclock_samples_withheld_total{reason="[a-z_]*"} [0-9]' "$T/metrics.txt")" -eq 11

# ---- 2. a migration seen by an application polling every millisecond
"$TIMELINE" -d "$T/page" -s "$STATE" -t 10 >"$T/timeline.txt" 2>&1 &
TL_PID=$!
sleep 2
kill -USR1 "$SIM_PID"
wait "$TL_PID"
echo "verdict timeline around the migration:"
sed 's/^/    /' "$T/timeline.txt"
t_mig=$(awk '/ migrate / { print $1 }' "$T/sim.log")
echo "    (vmclock-sim: migrate at $t_mig)"
seq=$(awk 'NF == 4 { print $2 }' "$T/timeline.txt" | tr '\n' ' ')
check "timeline: synchronized -> disrupted -> synchronized (got: $seq)" \
	test "$seq" = "synchronized disrupted synchronized "
t_dis=$(awk '$2 == "disrupted" { print $1; exit }' "$T/timeline.txt")
lag=$(awk -v d="${t_dis:-0}" -v m="${t_mig:-0}" 'BEGIN { printf "%.6f", d - m }')
echo "disrupted $lag s after the marker changed"
check "timeline: disrupted within 10 ms of the migration" \
	awk -v l="$lag" -v d="${t_dis:-0}" -v m="${t_mig:-0}" 'BEGIN { exit !(d > 0 && m > 0 && l >= 0 && l <= 0.010) }'
check "timeline: disrupted carries the new marker" grep -q ' disrupted bound_ns=[0-9]* marker=2$' "$T/timeline.txt"
check "timeline: bounds contain the truth at every check (violations=0)" \
	grep -Eq '^checks=[1-9][0-9]* violations=0 ' "$T/timeline.txt"

# ---- 3. the daemon's state, decoded
ctl daemon --json >"$T/daemon.json"
check "daemon --json exits 0 with one JSON object" json_get "$T/daemon.json" 'exit(type(j) is not dict)'
cat "$T/daemon.json"
check "daemon --json: disruption_marker 2 after one migration" \
	test "$(json_get "$T/daemon.json" 'j["disruption_marker"]')" = 2
check "daemon --json: disruptions >= 1" json_get "$T/daemon.json" 'exit(j["disruptions"] < 1)'
check "daemon --json: samples_fed > 0" json_get "$T/daemon.json" 'exit(j["samples_fed"] < 1)'
check "daemon --json: sync_state synchronized, heartbeat fresh" \
	json_get "$T/daemon.json" 'exit(not (j["sync_state"] == "synchronized" and j["heartbeat_fresh"]
		and 0 <= j["heartbeat_age_ns"] < j["heartbeat_timeout_ms"] * 1000000))'
check "daemon --json: withheld by reason name, handling a disruption counted" \
	json_get "$T/daemon.json" 'exit(len(j["withheld"]) != 11 or j["withheld"]["disruption"] < 1)'
check "daemon --json: last disruption at the migration (within 1 s)" \
	json_get "$T/daemon.json" "exit(abs(j['last_disruption_realtime_ns'] / 1e9 - $t_mig) > 1)"
check "daemon --json: device marker and verdict" \
	json_get "$T/daemon.json" 'exit(j["device_disruption_marker"] != 2 or j["verdict"] != "synchronized")'
check "daemon: no state file: exit 1, one line" \
	one_line_exit1 "no state" "$T/err1" "$CTL" -s "$T/none" daemon
head -c 200 /dev/zero | tr '\0' x >"$T/bad-state"
check "daemon: bad magic: exit 1, one line" \
	one_line_exit1 "bad magic" "$T/err2" "$CTL" -s "$T/bad-state" daemon
check "daemon: bad magic named" grep -q 'bad magic 0x78787878' "$T/err2"
echo short >"$T/short-state"
check "daemon: short file: exit 1, one line" \
	one_line_exit1 "short" "$T/err3" "$CTL" -s "$T/short-state" daemon

# ---- 4. vmclockd stopped: the heartbeat goes stale
"$TIMELINE" -d "$T/page" -s "$STATE" -t 3 >"$T/timeline-stop.txt" 2>&1 &
TL_PID=$!
sleep 0.5
t_kill=$(now_ns)
kill "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID" 2>/dev/null
wait "$TL_PID"
echo "verdict timeline around vmclockd's exit (killed at ${t_kill:0:10}.${t_kill:10}):"
sed 's/^/    /' "$T/timeline-stop.txt"
t_unk=$(awk '$2 == "unknown" { print $1; exit }' "$T/timeline-stop.txt")
stale=$(awk -v u="${t_unk:-0}" -v k="$t_kill" 'BEGIN { printf "%.3f", u - k / 1e9 }')
echo "unknown $stale s after vmclockd was killed"
check "verdict unknown within 1.5 s of vmclockd's exit" \
	awk -v s="$stale" -v u="${t_unk:-0}" 'BEGIN { exit !(u > 0 && s >= 0 && s <= 1.5) }'
t0=$(now_ns)
ctl waitsync --timeout 1 >/dev/null 2>"$T/waitsync-stopped.err"
rc=$?
ms=$((($(now_ns) - t0) / 1000000))
echo "  waitsync --timeout 1 without vmclockd: rc=$rc after $ms ms: $(cat "$T/waitsync-stopped.err")"
check "waitsync --timeout 1 returns 1 while vmclockd is stopped" test "$rc" -eq 1
check "waitsync times out after about 1 s" test "$ms" -ge 950 -a "$ms" -le 1500
check "waitsync names the stale heartbeat" grep -q 'vmclockd not running' "$T/waitsync-stopped.err"
ctl metrics >"$T/metrics-stopped.txt"
check "metrics without vmclockd: valid, daemon down, verdict unknown" \
	eval 'promcheck "$T/metrics-stopped.txt" && grep -qx "vmclock_daemon_up 0" "$T/metrics-stopped.txt" &&
		grep -qx "vmclock_sync_verdict{verdict=\"unknown\"} 1" "$T/metrics-stopped.txt"'
check "daemon still decodes a stale state (exit 0, heartbeat stale)" \
	eval 'ctl daemon | grep -q "^Heartbeat *: .*: stale"'

# ---- 5. a daemon that comes back with a new state file: a long-lived
# handle (the timeline's) follows it without being reopened.
"$TIMELINE" -d "$T/page" -s "$STATE" -t 6 >"$T/timeline-back.txt" 2>&1 &
TL_PID=$!
sleep 0.3
rm -f "$STATE"
start_vmclockd --state-file "$STATE"
wait "$TL_PID"
sed 's/^/    /' "$T/timeline-back.txt"
check "a long-lived handle follows a recreated state file back to synchronized" \
	grep -q ' synchronized ' "$T/timeline-back.txt"
check "and the restarted daemon's bounds contain the truth (violations=0)" \
	grep -q 'violations=0 ' "$T/timeline-back.txt"

finish
