#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-privileges.sh - the privilege model of vmclockd.service, without
# systemd: uid 0 with an empty capability set, chronyd's command socket in
# a 0770 directory owned by chronyd's user (here "nobody", as _chrony on a
# real system), reached through group membership alone
# (SupplementaryGroups=_chrony in the unit).  Also: an unwritable
# state directory is said once and changes nothing else.
. "$(dirname "$0")/lib.sh"
require_chronyd

# chronyd insists that its socket directory belongs to its user and that
# user's group, as /run/chrony belongs to _chrony:_chrony.
GROUP_ID=$(id -g nobody)
mkdir "$T/chrony-run"
chown nobody:"$GROUP_ID" "$T/chrony-run"
chmod 0770 "$T/chrony-run"
CMD=$T/chrony-run/chronyd.sock

write_chrony_conf
sed -i "s|^bindcmdaddress .*|bindcmdaddress $CMD|" "$T/chrony.conf"
CHRONY_CMD_SOCK=$CMD
chmod 0711 "$T"
# UMask=0002, as systemd/chrony-vmclockd.conf sets for chrony.service: the
# command socket must be group-writable.
(umask 0002 && exec $NOSYSTIME "$CHRONYD" -x -d -u nobody -f "$T/chrony.conf") >>"$T/chronyd.log" 2>&1 &
PIDS="$PIDS $!"
check "chronyd up" wait_for 10 test -S "$CMD"
start_sim --offset-ns 300000 --interval-ms 100
mkdir -m 0555 "$T/ro-state"

# run_unprivileged GROUPS LOG: vmclockd as uid 0, no capabilities at all.
run_unprivileged() {
	setpriv --reuid 0 --regid 0 $1 --inh-caps=-all --ambient-caps=-all \
		--bounding-set=-all --no-new-privs \
		"$VMCLOCKD" --foreground --config /dev/null --device "$T/page" \
		--chrony-sock "$T/vmc.sock" --chrony-cmd "$CMD" --state-dir "$T/ro-state/sub" \
		--state-file "$T/run/state" >>"$2" 2>&1 &
	VMCLOCKD_PID=$!
	PIDS="$PIDS $VMCLOCKD_PID"
}

run_unprivileged "--groups $GROUP_ID" "$T/vmclockd.log"
check "VMC selected with no capabilities" wait_for 15 vmc_selected
cap=$(awk '/^CapEff/ { print $2 }' /proc/"$VMCLOCKD_PID"/status)
check "no effective capability (CapEff $cap)" test "$cap" = 0000000000000000
check "unwritable state directory said once" \
	test "$(grep -c 'cannot save the handled marker' "$T/vmclockd.log")" -eq 1
kill -USR1 "$SIM_PID"
check "handover through group membership alone" wait_for 3 has_event RECOVERED DISRUPTION_MARKER=2
check "... handled, the published state says" handled 2
check "state file world-readable, owner-writable" test "$(stat -c %a "$T/run/state")" = 644
kill "$VMCLOCKD_PID"; wait "$VMCLOCKD_PID" 2>/dev/null

# Without the group: the command socket is out of reach, said clearly.
run_unprivileged --clear-groups "$T/nogroup.log"
sleep 1
kill -USR1 "$SIM_PID"
# The socket is there but out of reach: a failed handover that is retried,
# never "chronyd not reachable", the path that takes chronyd for absent and
# the disruption for handled.
reset_failed() { EVENTS_LOG=$T/nogroup.log has_event HANDOVER_FAILED DISRUPTION_MARKER=3 FAILED_STEP=tracking ERRNO=13; }
check "without the group the handover fails (EACCES at its first request)" wait_for 5 reset_failed
check "not taken for an absent chronyd: the published state keeps marker 2" handled 2
check "and the daemon stays up" kill -0 "$VMCLOCKD_PID"
finish
