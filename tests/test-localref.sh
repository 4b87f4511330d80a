#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-localref.sh - a chronyd that serves only its own clock (`local
# stratum 10`) is not synchronised, whatever its leap status says.  A real
# chronyd (-x), vmclock-sim, vmclockd, and vmclock_timestamp() as
# applications see it (vmclockctl, tests/verdict-timeline):
#   1. no real source (vmclockd withholds every sample: max-error-ns 1):
#      chronyd reports reference LOCAL, leap normal; the published state is
#      unsynchronized, the verdict freerunning with no bound, never
#      synchronized
#   2. a real source (reloaded without the limit, vmclockd feeds): chronyd
#      selects VMC, the state and the verdict become synchronized
#   3. the source lost again: unsynchronized, and the bound is the last
#      real one growing, never chronyd's local figures
#   4. reference id 0 with leap normal (chronyd's tracking answers rewritten
#      by tests/chrony-proxy.py while it follows VMC): unsynchronized, no bound
# chronyd keeps its last real reference after losing it until its root
# distance reaches the `local` directive's distance (1 s by default, an
# hour and more at 1 ppm): 10 us here, so that it falls back in seconds.
. "$(dirname "$0")/lib.sh"
require_chronyd
command -v python3 >/dev/null || skip_or_fail "python3 not installed (JSON checks)"

STATE=$T/run/state
ctl() { "$CTL" -d "$T/page" -s "$STATE" "$@"; }
json_get() {
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
# daemon_json NAME: vmclockctl daemon --json into $T/NAME.json.
daemon_json() { ctl daemon --json >"$T/$1.json"; }
sync_state_is() {
	daemon_json poll && test "$(json_get "$T/poll.json" 'j["sync_state"]')" = "$1"
}
# chronyd's own view: reference id (hex) and leap status (0 normal, 3 none).
chrony_ref() {
	"$OBSERVE" -s "$T/chronyd.sock" --once --json |
		sed -n 's/.*"ref_id": *"\([0-9a-f]*\)".*"leap_status": *\([0-9]*\).*/\1 \2/p'
}
chrony_is_local() { test "$(chrony_ref)" = "7f7f0101 0"; }

write_chrony_conf "local stratum 10 distance 0.00001"
echo "max-error-ns 1" >"$T/vmclockd.conf"
start_chronyd || fail "chronyd started"
start_sim --interval-ms 100
start_vmclockd --config "$T/vmclockd.conf" --chrony-poll-ms 200

# ---- 1. chronyd on its local reference only
check "chronyd serves its local reference (ref id 7f7f0101, leap normal)" wait_for 10 chrony_is_local
echo "chronyd tracking: ref id, leap: $(chrony_ref)"
check "vmclockd has read chronyd's tracking (sync_state no longer unknown)" \
	wait_for 10 eval '! sync_state_is unknown'
"$TIMELINE" -d "$T/page" -s "$STATE" -t 3 >"$T/timeline-local.txt" 2>&1
sed 's/^/    /' "$T/timeline-local.txt"
check "chronyd's local reference is still all it has (ref id, leap: $(chrony_ref))" chrony_is_local
check "no sample reached chronyd (withheld: error bound)" test -z "$(vmc_np)" -o "$(vmc_np)" = 0
check "timeline: freerunning only, never synchronized, over 3 s" \
	test "$(awk 'NF == 4 { print $2 }' "$T/timeline-local.txt" | tr '\n' ' ')" = "freerunning "
check "timeline: freerunning without a bound (bound_ns unknown)" \
	grep -q ' freerunning bound_ns=18446744073709551615 ' "$T/timeline-local.txt"
daemon_json local
cat "$T/local.json"
check "daemon --json: sync_state unsynchronized, verdict freerunning, bound null" \
	json_get "$T/local.json" 'exit(not (j["sync_state"] == "unsynchronized" and
		j["verdict"] == "freerunning" and j["bound_ns"] is None))'
check "daemon --json: the published error_bound_ns is null (unknown), not all ones" \
	json_get "$T/local.json" 'exit(not (j["error_bound_ns"] is None))'
ctl daemon >"$T/local.txt"
grep '^Error bound' "$T/local.txt"
check "daemon: the published error bound reads unknown, not 18446744073709551615 ns" \
	eval 'grep -q "^Error bound *: unknown" "$T/local.txt" && ! grep -q 18446744073709551615 "$T/local.txt"'
check "daemon --json: samples withheld for their error bound, none fed" \
	json_get "$T/local.json" 'exit(not (j["withheld"]["error_bound"] > 0 and j["samples_fed"] == 0))'
ctl waitsync --timeout 1 >/dev/null 2>"$T/waitsync-local.err"
rc=$?
echo "  waitsync --timeout 1: rc=$rc: $(cat "$T/waitsync-local.err")"
check "waitsync times out (1) while chronyd has only its local reference" test "$rc" -eq 1
ctl metrics >"$T/metrics-local.txt"
check "metrics: verdict freerunning, bound +Inf" \
	eval 'grep -qx "vmclock_sync_verdict{verdict=\"freerunning\"} 1" "$T/metrics-local.txt" &&
		grep -qx "vmclock_error_bound_seconds +Inf" "$T/metrics-local.txt"'
check "vmclockd said chronyd follows no real source (its LOCAL reference)" \
	has_event - REFERENCE_ID=0x7f7f0101 'STRATUM=[0-9]*' 

# ---- 2. a real source: vmclockd feeds, chronyd selects VMC
: >"$T/vmclockd.conf"
kill -HUP "$VMCLOCKD_PID"
check "reloaded without the limit" wait_for 5 has_event - RELOAD=applied
check "chronyd selects VMC" wait_for 20 vmc_selected
echo "chronyd tracking: ref id, leap: $(chrony_ref)"
ctl waitsync --timeout 10 >"$T/waitsync-real.out" 2>&1
rc=$?
echo "  waitsync --timeout 10: rc=$rc: $(cat "$T/waitsync-real.out")"
check "waitsync returns 0 once chronyd follows VMC" test "$rc" -eq 0
daemon_json real
cat "$T/real.json"
check "daemon --json: sync_state synchronized, verdict synchronized, bound under 10 ms" \
	json_get "$T/real.json" 'exit(not (j["sync_state"] == "synchronized" and
		j["verdict"] == "synchronized" and j["bound_ns"] is not None and j["bound_ns"] < 10000000))'

# ---- 3. the source lost again: back to the local reference
real_bound=$(json_get "$T/real.json" 'j["error_bound_ns"]')
echo "max-error-ns 1" >"$T/vmclockd.conf"
kill -HUP "$VMCLOCKD_PID"
check "chronyd falls back to its local reference" wait_for 30 chrony_is_local
check "published unsynchronized again" wait_for 5 sync_state_is unsynchronized
daemon_json lost
cat "$T/lost.json"
check "daemon --json: verdict freerunning, a bound at least the last real one ($real_bound ns)" \
	json_get "$T/lost.json" "exit(not (j['verdict'] == 'freerunning' and j['bound_ns'] is not None
		and j['bound_ns'] >= $real_bound and j['error_bound_ns'] > 0))"
"$TIMELINE" -d "$T/page" -s "$STATE" -t 2 >"$T/timeline-lost.txt" 2>&1
sed 's/^/    /' "$T/timeline-lost.txt"
check "timeline: freerunning throughout, its bounds contain the truth (violations=0)" \
	eval 'test "$(awk "NF == 4 { print \$2 }" "$T/timeline-lost.txt" | tr "\n" " ")" = "freerunning " &&
		grep -Eq "^checks=[1-9][0-9]* violations=0 " "$T/timeline-lost.txt"'
daemon_json later
check "the bound grows while chronyd has no source" \
	json_get "$T/later.json" "exit(not (j['verdict'] == 'freerunning' and
		j['bound_ns'] > $(json_get "$T/lost.json" 'j["bound_ns"]')))"

# ---- 4. a tracking answer that names no reference (id 0) with leap normal
: >"$T/vmclockd.conf"
kill -HUP "$VMCLOCKD_PID"
check "chronyd selects VMC again" wait_for 20 vmc_selected
kill "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID" 2>/dev/null
python3 "$top_srcdir/tests/chrony-proxy.py" "$T/proxy.sock" "$T/proxy-up.sock" \
	"$T/chronyd.sock" "$T/proxy.log" --tracking-refid 0 &
PIDS="$PIDS $!"
wait_for 5 test -S "$T/proxy.sock" || fail "proxy started"
start_vmclockd --config "$T/vmclockd.conf" --chrony-poll-ms 200 --chrony-cmd "$T/proxy.sock"
check "the restarted vmclockd has read the rewritten tracking" \
	wait_for 10 grep -q '^answered 33 ' "$T/proxy.log"
sleep 0.5
check "chronyd itself still follows VMC with leap normal (ref id, leap: $(chrony_ref))" \
	test "$(chrony_ref)" = "564d4300 0"
daemon_json noref
cat "$T/noref.json"
check "daemon --json: reference id 0, leap normal: unsynchronized, freerunning, bound null" \
	json_get "$T/noref.json" 'exit(not (j["sync_state"] == "unsynchronized" and
		j["verdict"] == "freerunning" and j["bound_ns"] is None))'
check "vmclockd said chronyd follows no real source (reference id 0)" \
	has_event - REFERENCE_ID=0x00000000 'STRATUM=[0-9]*' 

finish
