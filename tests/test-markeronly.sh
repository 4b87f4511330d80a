#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-markeronly.sh - a page that carries only the disruption marker (as
# Firecracker and QEMU's own vmclock device publish it): vmclockd feeds
# nothing, but a marker change still resets chronyd and asks it for an NTP
# burst.  chronyd's NTP source is a second chronyd on loopback serving its
# local clock.  The journal is captured for real (lib.sh's journal_start):
#   - a page that never carries time is a mode said once, at NOTICE: no line
#     at warning or above but the DISRUPTION records, at start or after any
#     of the migrations
#   - one DISRUPTION record per migration, without the fields a page with no
#     time cannot give (STEP_NS, COUNTER_PERIOD_*, FREQ_CHANGE_PPM)
#   - no sampling burst after a migration (nothing could be fed): the ticks
#     in the 3 s after one, counted from vmclockctl daemon --json, are the
#     100 ms timer's, not the 31 ms burst's
#   - vmclockctl daemon --json: drift_ppb null while no bound is published
JOURNAL_NS=1
. "$(dirname "$0")/lib.sh"
require_chronyd
journal_start

PORT=$((20000 + RANDOM % 20000))
mkdir -m 700 "$T/server"
cat >"$T/server/chrony.conf" <<EOC
local stratum 3
allow 127.0.0.1
bindaddress 127.0.0.1
port $PORT
cmdport 0
bindcmdaddress $T/server/chronyd.sock
pidfile $T/server/chronyd.pid
EOC
$NOSYSTIME "$CHRONYD" -x -d -u root -f "$T/server/chrony.conf" >"$T/server.log" 2>&1 &
PIDS="$PIDS $!"

write_chrony_conf "server 127.0.0.1 port $PORT minpoll 0 maxpoll 0 iburst"
start_chronyd || fail "chronyd started"
start_sim --marker-only --interval-ms 100
start_vmclockd_journal --interval-ms 100

ntp_np() {
	chronyc_cmd -c sourcestats 2>/dev/null | awk -F, '$1 == "127.0.0.1" { print $2 }'
}
ntp_has_samples() { [ "$(ntp_np)" -ge 4 ]; }
json_get() {
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
# ticks NAME: vmclockctl daemon --json into $T/NAME.json; prints the ticks
# so far (samples fed and withheld, every reason).
ticks() {
	"$CTL" -s "$T/run/state" daemon --json >"$T/$1.json" &&
		json_get "$T/$1.json" "j['samples_fed'] + sum(j['withheld'].values())"
}
check "the NTP source collects samples" wait_for 20 ntp_has_samples
check "no VMC samples from a marker-only page" test "$(vmc_np)" -eq 0
ticks start >/dev/null
check "vmclockd withholds: no_time" test "$(json_get "$T/start.json" "j['withhold_reason']")" = no_time
check "the marker-only mode is said at start, at NOTICE" \
	test "$(dgram_fields PRIORITY=5 PRIORITY | wc -l)" -ge 1

np_before=$(ntp_np)
t0=$(ticks before)
kill -USR1 "$SIM_PID"
record_for() { dgram_fields "MESSAGE_ID=${MSGID[DISRUPTION]}" NEW_MARKER | grep -qx "$1"; }
check "marker change handled: a DISRUPTION record for marker 2" wait_for 3 record_for 2
np_after=$(ntp_np)
echo "NTP source NP before $np_before, after the reset $np_after"
check "chrony's NTP samples were dropped" test "$np_after" -lt "$np_before"
# The burst is asked for after the reset is logged: its failure could come
# later.  chronyd bursting shows the request was answered.
bursting() { chronyc_cmd -c activity 2>/dev/null | awk -F, '{ exit !($3 + $4 > 0) }'; }
check "chronyd took the burst" wait_for 5 bursting
check "no burst failure logged" bash -c "! grep -q 'burst request failed' '$T/vmclockd.log'"
check "the marker was saved" grep -q '^marker 2$' "$T/state/marker"
sleep 3
t1=$(ticks after)
echo "ticks in the 3 s around the first migration: $((t1 - t0))"
check "no sampling burst after a migration: $((t1 - t0)) ticks in 3 s (100 ms timer: ~30; a 31 ms burst: ~100)" \
	test $((t1 - t0)) -le 45

# Two more migrations, each after the last was handled.
for m in 3 4; do
	kill -USR1 "$SIM_PID"
	check "DISRUPTION record for marker $m" wait_for 3 record_for $m
	sleep 1.5
done
dgram_fields "MESSAGE_ID=${MSGID[DISRUPTION]}" OLD_MARKER NEW_MARKER MARKER_CHANGES STEP_NS \
	COUNTER_PERIOD_FRAC_SEC COUNTER_PERIOD_SHIFT FREQ_CHANGE_PPM >"$T/records"
sed 's/^/   OLD NEW CHANGES STEP_NS COUNTER_PERIOD_FRAC_SEC COUNTER_PERIOD_SHIFT FREQ_CHANGE_PPM: /' \
	"$T/records"
check "3 migrations: 3 DISRUPTION records, one change each" \
	awk '$3 != 1 { exit 1 } END { exit NR != 3 }' "$T/records"
check "no field a page without time cannot give (STEP_NS, COUNTER_PERIOD_*, FREQ_CHANGE_PPM)" \
	awk '$4 $5 $6 $7 != "----" { exit 1 }' "$T/records"
# Lines at warning or above, but the DISRUPTION records: none.
dgram_fields "PRIORITY=4" MESSAGE_ID MESSAGE >"$T/warnings"
dgram_fields "PRIORITY=3" MESSAGE_ID MESSAGE >>"$T/warnings"
sed 's/^/   warning or above: /' "$T/warnings"
check "no line at warning or above but the DISRUPTION records" \
	awk -v id="${MSGID[DISRUPTION]}" '$1 != id { exit 1 }' "$T/warnings"

# A second vmclockd without chronyd publishes no bound: the rate it grows at
# is not known either.
"$VMCLOCKD" --foreground --config /dev/null --device "$T/page" --chrony-sock "" --chrony-cmd "" \
	--state-dir "$T/state2" --state-file "$T/run/state2" --interval-ms 100 >>"$T/vmclockd2.log" 2>&1 &
PIDS="$PIDS $!"
nobound_json() { "$CTL" -s "$T/run/state2" daemon --json >"$T/nobound.json"; }
check "vmclockctl daemon --json reads the second state file" wait_for 5 nobound_json
check "daemon --json: no bound, drift_ppb null ($(json_get "$T/nobound.json" "(j['error_bound_ns'], j['drift_ppb'])"))" \
	test "$(json_get "$T/nobound.json" "(j['error_bound_ns'], j['drift_ppb'])")" = "(None, None)"

finish
