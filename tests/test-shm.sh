#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-shm.sh - vmclockd feeds only an ntpd SHM segment that is its own:
#   1. a segment another user created first with mode 0666 is refused with
#      one error (its owner could read and rewrite the samples), retried,
#      and STATUS= does not say the output works; once it is removed,
#      vmclockd creates its own (owner root, mode 0600) and says so once
#   2. a segment of the wrong size: the same
#   3. our own uid's segment with a mode wider than ntp-shm-mode: the same
#   4. our segment removed under us: a new one is made and used
# In a private IPC namespace (unshare -i), so no segment of the machine's
# (or of another test) is touched; needs root, otherwise skips (CI: fails).

if [ -z "${VMCLOCKD_TEST_NS:-}" ]; then
	if [ "$(id -u)" -eq 0 ] && unshare -i true 2>/dev/null; then
		VMCLOCKD_TEST_NS=1 exec unshare -i bash "$0" "$@"
	fi
	VMCLOCKD_TEST_NS=none
fi
. "$(dirname "$0")/lib.sh"
[ "$VMCLOCKD_TEST_NS" = 1 ] || skip_or_fail "needs root and unshare(1) for a private IPC namespace"
command -v ipcs >/dev/null || skip_or_fail "ipcs (util-linux) not installed"

UNIT=2
KEY=0x4e545032

# make_segment SIZE MODE [SETPRIV-ARGS...]: create the unit's segment (never
# over one), as another program would before vmclockd starts; with
# setpriv's arguments, as another user (from /, the system's python3:
# nothing under a home directory that user may not be able to reach).
make_segment() {
	local size=$1 mode=$2
	shift 2
	local runas=()
	[ $# -eq 0 ] || runas=(setpriv "$@")
	(cd / && "${runas[@]}" /usr/bin/python3 -c '
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT, IPC_EXCL = 0o1000, 0o2000
key, size, mode = int(sys.argv[1], 0), int(sys.argv[2]), int(sys.argv[3], 8)
if libc.shmget(ctypes.c_int(key), ctypes.c_size_t(size), IPC_CREAT | IPC_EXCL | mode) < 0:
    sys.exit("shmget: " + os.strerror(ctypes.get_errno()))' $KEY "$size" "$mode")
}

# seg FIELD: owner, perms, bytes or nattch of the unit's segment (ipcs -m).
seg() {
	ipcs -m | awk -v k=$KEY -v f="$1" '
		tolower($1) == k { split("key shmid owner perms bytes nattch", n, " ")
			for (i in n) if (n[i] == f) print $i }'
}
seg_is() { [ "$(seg "$1")" = "$2" ]; }
count() { grep -c -- "$1" "$T/vmclockd.log"; }
logged() { grep -q -- "$1" "$T/vmclockd.log"; }
# status_says REGEX: the last STATUS= sent matches.
status_says() { grep '^STATUS=' "$T/notify.txt" | tail -n 1 | grep -q -- "$1"; }

python3 "$(dirname "$0")/capture-dgram.py" "$T/notify.sock" "$T/notify.txt" &
PIDS="$PIDS $!"
wait_for 5 test -S "$T/notify.sock" || fail "notify socket bound"
start_sim --interval-ms 50

run_vmclockd() {
	: >"$T/vmclockd.log"
	: >"$T/notify.txt"
	NOTIFY_SOCKET=$T/notify.sock start_vmclockd --ntp-shm $UNIT --chrony-sock "" \
		--chrony-cmd "" --interval-ms 50
}
stop_vmclockd() {
	kill "$VMCLOCKD_PID" 2>/dev/null
	wait "$VMCLOCKD_PID" 2>/dev/null
}
# refused CASE PATTERN: vmclockd says PATTERN once (and again not two
# seconds later), leaves the segment unattached, keeps running, and its
# STATUS= names the problem instead of claiming the output works.
refused() {
	check "$1: refused with one error" wait_for 10 logged "$2"
	sleep 2
	check "$1: ... said once ($(count "$2"))" test "$(count "$2")" -eq 1
	check "$1: not attached" seg_is nattch 0
	check "$1: vmclockd running" kill -0 "$VMCLOCKD_PID"
	check "$1: STATUS= says ntp-shm is not usable" status_says 'ntp-shm: segment'
}
# recovers CASE: the segment removed, vmclockd makes and uses its own.
recovers() {
	local mark
	mark=$(wc -l <"$T/vmclockd.log")
	ipcrm -M $KEY
	check "$1: removed: vmclockd makes its own" wait_for 5 seg_is nattch 1
	check "$1: ... owned by root" seg_is owner root
	check "$1: ... mode 600" seg_is perms 600
	check "$1: ... 96 bytes" seg_is bytes 96
	check "$1: ... said" wait_for 5 logged 'using the segment with key 0x4e545032 (mode 0600) now'
	sleep 1
	check "$1: ... once" test "$(tail -n +$((mark + 1)) "$T/vmclockd.log" |
		grep -c 'using the segment with key 0x4e545032 (mode 0600) now')" -eq 1
	check "$1: STATUS= no longer names a problem" wait_for 5 sh -c \
		"grep '^STATUS=' '$T/notify.txt' | tail -n 1 | grep -q '^STATUS=feeding' &&
		 ! grep '^STATUS=' '$T/notify.txt' | tail -n 1 | grep -q 'ntp-shm'"
}

# ---- 1. another user's segment, mode 0666
check "nobody creates the segment first, mode 0666" \
	make_segment 96 0666 --reuid=nobody --regid=nogroup --clear-groups
check "... owned by nobody" seg_is owner nobody
run_vmclockd
refused "another user's segment" 'belongs to uid 65534 (created by uid 65534), not to vmclockd (uid 0)'
recovers "another user's segment"
stop_vmclockd

# ---- 2. the wrong size
ipcrm -M $KEY
make_segment 64 0600
run_vmclockd
refused "a 64-byte segment" 'is 64 bytes, not the 96 of ntpd'
recovers "a 64-byte segment"
stop_vmclockd

# ---- 3. ours, but wider than ntp-shm-mode
ipcrm -M $KEY
make_segment 96 0666
run_vmclockd
refused "a segment of mode 0666" 'has mode 0666, wider than ntp-shm-mode 0600'
recovers "a segment of mode 0666"

# ---- 4. ours removed under us
mark=$(wc -l <"$T/vmclockd.log")
ipcrm -M $KEY
check "removed under us: said" wait_for 5 logged 'was removed; attaching to a new one'
check "removed under us: a new one, attached" wait_for 5 seg_is nattch 1
check "removed under us: using it" wait_for 5 sh -c \
	"tail -n +$((mark + 1)) '$T/vmclockd.log' | grep -q 'using the segment with key'"
stop_vmclockd
check "on exit: detached, left for ntpd" seg_is nattch 0

finish
