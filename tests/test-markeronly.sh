#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-markeronly.sh - a page that carries only the disruption marker (as
# Firecracker publishes it): vmclockd feeds nothing, but a marker change still
# resets chronyd and asks it for an NTP burst.  chronyd's NTP source is a
# second chronyd on loopback serving its local clock.
. "$(dirname "$0")/lib.sh"
require_chronyd

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
start_vmclockd --interval-ms 100

ntp_np() {
	chronyc_cmd -c sourcestats 2>/dev/null | awk -F, '$1 == "127.0.0.1" { print $2 }'
}
ntp_has_samples() { [ "$(ntp_np)" -ge 4 ]; }
check "the NTP source collects samples" wait_for 20 ntp_has_samples
check "no VMC samples from a marker-only page" test "$(vmc_np)" -eq 0
check "vmclockd says why it withholds" grep -q 'withholding samples: page carries no time' "$T/vmclockd.log"

np_before=$(ntp_np)
kill -USR1 "$SIM_PID"
check "marker change handled" wait_for 3 grep -q 'chronyd reset (marker-only page)' "$T/vmclockd.log"
np_after=$(ntp_np)
echo "NTP source NP before $np_before, after the reset $np_after"
check "chrony's NTP samples were dropped" test "$np_after" -lt "$np_before"
# The burst is asked for after the reset is logged: its failure could come
# later.  chronyd bursting shows the request was answered.
bursting() { chronyc_cmd -c activity 2>/dev/null | awk -F, '{ exit !($3 + $4 > 0) }'; }
check "chronyd took the burst" wait_for 5 bursting
check "no burst failure logged" bash -c "! grep -q 'burst request failed' '$T/vmclockd.log'"
check "the marker was saved" grep -q '^marker 2$' "$T/state/marker"

finish
