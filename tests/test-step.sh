#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-step.sh - the handover's makestep against a real chronyd (-x, under
# setpriv without CAP_SYS_TIME: this machine's clock never moves), behind
# the proxy (chrony-proxy.py) that logs every request and chronyd's status.
#
#  (a) chrony's makestep request as vmclockd encodes it: chronyd parses it
#      and answers; with -x it cannot step, so the status is "failed" (1),
#      and chronyd 4.3 drops the correction it was slewing on the way
#      (newer versions keep it): tracking says which;
#  (b) a migration (+2 ms, +30 ppm): exactly one makestep, after the doffset
#      (the tracking read between them is tests/check_handover's: vmclockd's
#      sync module reads tracking through the same socket meanwhile); chronyd
#      -x answers "failed", so the
#      doffset is made again from a fresh tracking read and chronyd's
#      correction ends as the migration's 2 ms, once (not 0 as 4.3's failed
#      step left it, not 4 ms);
#  (c) handover-step no (the directive in vmclockd.conf): no makestep, one
#      doffset, the correction the migration's 2 ms;
#  (d) a handover-step value that is neither yes nor no: start-up fails,
#      naming the file and line.
# That chronyd really steps by what the handover left it (its tracking's
# correction to zero, the clock right at once) is shown where a clock may
# move: in the guest (tests/guest/run.py --clock-bench).

. "$(dirname "$0")/lib.sh"
require_chronyd
command -v python3 >/dev/null || { echo "FAIL: python3 is missing (the proxy)"; exit 1; }

write_chrony_conf
start_chronyd || fail "chronyd started"
MIGRATION=0.002

# ---- (a) the request on its own ----------------------------------------------
"$OBSERVE" -s "$T/chronyd.sock" --reset >/dev/null
"$OBSERVE" -s "$T/chronyd.sock" --doffset -$MIGRATION >/dev/null
C0=$(chrony_correction)
OUT=$("$OBSERVE" -s "$T/chronyd.sock" --makestep)
RC=$?
C1=$(chrony_correction)
echo "a: makestep with 2 ms to slew: $OUT (rc $RC); correction $C0 -> $C1"
check "a: chronyd answers makestep, status failed (-x cannot step)" \
	test "$RC $(echo "$OUT" | awk '{ print $1, $2 }')" = "3 error=EIO status=1"
check "a: the correction before it was the doffset's ($C0)" abs_le "$(awk -v c="$C0" -v m=$MIGRATION 'BEGIN { print c - m }')" 20e-6
check "a: after it, dropped (4.3) or kept (newer) ($C1)" \
	holds "($C1 < 1e-9 && $C1 > -1e-9) || ($C1 - $C0 < 20e-6 && $C0 - $C1 < 20e-6)"
"$OBSERVE" -s "$T/chronyd.sock" --reset >/dev/null

# run_case NAME VMCLOCKD-ARGS...: fresh page, proxy and vmclockd; one
# migration of +2 ms and +30 ppm; waits for the handover.
run_case() {
	proxy_case "$1"
	shift
	start_sim --interval-ms 100 --migrate-freq-ppb 30000 --migrate-step-ns 2000000
	start_vmclockd --chrony-cmd "$T/proxy.sock" "$@"
	wait_for 10 test -s "$T/state/marker" || fail "$CASE: vmclockd started"
	sleep 0.3
	kill -USR1 "$SIM_PID"
	check "$CASE: handover done" wait_for 10 grep -q 'chronyd reset:' "$T/vmclockd.log"
	CORR=$(chrony_correction)
}

end_case() {
	kill "$VMCLOCKD_PID" "$SIM_PID" "$PROXY_PID" 2>/dev/null
	wait "$VMCLOCKD_PID" "$SIM_PID" "$PROXY_PID" 2>/dev/null
	cp "$T/vmclockd.log" "$T/vmclockd-$CASE.log"
}

# The commands forwarded to chronyd, in order, from reset sources on, but
# tracking: 66 reset, 31 dfreq, 71 doffset, 43 makestep.
forwarded() {
	awk '$1 == "forwarded" && $2 != 33 { print $2 }' "$T/proxy-$CASE.log" |
		awk '$1 == 66 { on = 1 } on' | tr '\n' ' '
}

# chronyd's status to each makestep.
makestep_status() {
	awk '$1 == "answered" && $2 == 43 { print $5 }' "$T/proxy-$CASE.log" | tr '\n' ' '
}

# ---- (b) the handover steps -------------------------------------------------
run_case b
SEQ=$(forwarded)
echo "b: requests: $SEQ; makestep status: $(makestep_status); correction after: $CORR"
check "b: the makestep after the doffset (${SEQ})" bash -c "echo '$SEQ' | grep -q '^66 31 71 43 '"
check "b: exactly one makestep" test "$(echo "$SEQ" | tr ' ' '\n' | grep -c '^43$')" -eq 1
check "b: chronyd -x answered it failed" test "$(makestep_status)" = "1 "
check "b: the doffset made again after the failed step (${SEQ})" \
	bash -c "echo '$SEQ' | grep -q ' 43 71 \$'"
check "b: chronyd's correction is the migration's 2 ms, once ($CORR)" \
	abs_le "$(awk -v c="$CORR" -v m=$MIGRATION 'BEGIN { print c - m }')" 100e-6
end_case
"$OBSERVE" -s "$T/chronyd.sock" --reset >/dev/null
"$OBSERVE" -s "$T/chronyd.sock" --doffset "$CORR" >/dev/null

# ---- (c) steps forbidden ------------------------------------------------------
printf '# slew only\nhandover-step no\n' >"$T/vmclockd.conf"
run_case c --config "$T/vmclockd.conf"
SEQ=$(forwarded)
echo "c: requests: $SEQ; correction after: $CORR"
check "c: no makestep (${SEQ})" test "$(echo "$SEQ" | tr ' ' '\n' | grep -c '^43$')" -eq 0
check "c: one doffset, last" bash -c "echo '$SEQ' | grep -q '^66 31 71 \$'"
check "c: chronyd's correction is the migration's 2 ms ($CORR)" \
	abs_le "$(awk -v c="$CORR" -v m=$MIGRATION 'BEGIN { print c - m }')" 100e-6
end_case

# ---- (d) a bad value ------------------------------------------------------------
printf 'handover-step maybe\n' >"$T/bad.conf"
OUT=$("$VMCLOCKD" --config "$T/bad.conf" --check-config 2>&1)
RC=$?
echo "d: $OUT (rc $RC)"
check "d: handover-step maybe refused at start-up" test "$RC" -ne 0
check "d: the line is named" bash -c "echo '$OUT' | grep -q 'bad.conf:1'"

stop_chronyd
finish
