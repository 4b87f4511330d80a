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
# Each segment vmclockd made is read back as ntpd reads it: a valid sample
# of the right time, and a newer one a moment later.
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
# The SHM output's lines (OUTPUT=ntp-shm): a failure's CAUSE= and its
# detail, or the MODE= of a segment taken into use (no CAUSE=).
refusals() { n_events - OUTPUT=ntp-shm "$@"; }
uses() { events - OUTPUT=ntp-shm "$@" | grep -vc ' CAUSE='; }
used() { [ "$(uses "$@")" -ge 1 ]; }
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
# shm_sample: one consistent sample from the unit's segment, read as ntpd
# reads it (count before and after the copy, equal and even; the segment is
# not written).  ntpd's struct shmTime on x86_64 (docs/internals.md): mode 0,
# count 4, clock seconds 8 (64-bit) and microseconds 16, receive seconds 24
# and microseconds 32, leap 36, precision 40, nsamples 44, valid 48, clock
# nanoseconds 52, receive nanoseconds 56 (unsigned), 96 bytes in all.
# Prints "mode valid count clock_s clock_ns clock_us recv_s recv_ns recv_us
# leap precision now_s now_ns".
shm_sample() {
	python3 - $KEY <<'EOP'
import ctypes, os, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
SHM_RDONLY = 0o10000
shmid = libc.shmget(ctypes.c_int(int(sys.argv[1], 0)), ctypes.c_size_t(96), 0)
if shmid < 0:
    sys.exit("shmget: " + os.strerror(ctypes.get_errno()))
addr = libc.shmat(shmid, None, SHM_RDONLY)
if addr in (None, ctypes.c_void_p(-1).value):
    sys.exit("shmat: " + os.strerror(ctypes.get_errno()))
for _ in range(1000):
    before = struct.unpack("<i", ctypes.string_at(addr + 4, 4))[0]
    raw = ctypes.string_at(addr, 96)
    after = struct.unpack("<i", ctypes.string_at(addr + 4, 4))[0]
    if before == after and before % 2 == 0:
        break
else:
    sys.exit("no consistent copy of the segment")
now = time.clock_gettime_ns(time.CLOCK_REALTIME)
mode, count, csec, cusec, rsec, rusec, leap, prec, nsamples, valid, cnsec, rnsec = \
    struct.unpack_from("<iiqi4xqiiiiiII", raw, 0)
print(mode, valid, count, csec, cnsec, cusec, rsec, rnsec, rusec, leap, prec,
      now // 10**9, now % 10**9)
EOP
}
# reads_sample CASE: vmclockd's samples are in the segment as ntpd reads
# them: valid (mode 1, even count), received within the last 2 s, the clock
# time within 1 ms of it (the simulator is in step with the system clock),
# microseconds matching nanoseconds, no leap, a precision of a fed sample;
# and a moment later a newer one (the count moved on).
reads_sample() {
	local a b
	a=$(shm_sample) || { fail "$1: segment read ($a)"; return; }
	echo "$1: segment: $a"
	check "$1: sample valid, mode 1, even count" \
		awk -v s="$a" 'BEGIN { split(s, f, " "); exit !(f[1] == 1 && f[2] == 1 && f[3] > 0 && f[3] % 2 == 0) }'
	check "$1: sample received within 2 s" \
		awk -v s="$a" 'BEGIN { split(s, f, " "); d = (f[12] - f[7]) + (f[13] - f[8]) * 1e-9; exit !(d >= 0 && d < 2) }'
	check "$1: clock time within 1 ms of the receive time" \
		awk -v s="$a" 'BEGIN { split(s, f, " "); d = (f[4] - f[7]) + (f[5] - f[8]) * 1e-9; exit !(d > -0.001 && d < 0.001) }'
	check "$1: microseconds match nanoseconds" \
		awk -v s="$a" 'BEGIN { split(s, f, " "); exit !(f[6] == int(f[5] / 1000) && f[9] == int(f[8] / 1000) && f[5] < 1e9 && f[8] < 1e9) }'
	check "$1: no leap, precision of a bounded sample" \
		awk -v s="$a" 'BEGIN { split(s, f, " "); exit !(f[10] == 0 && f[11] < 0 && f[11] > -32) }'
	sleep 0.3
	b=$(shm_sample) || { fail "$1: segment read again ($b)"; return; }
	check "$1: a newer sample after 0.3 s" \
		awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
			exit !(y[3] > x[3] && (y[7] > x[7] || (y[7] == x[7] && y[8] > x[8]))) }'
}
# refused CASE FIELD=VALUE...: vmclockd says why once, with these fields
# (and again not two seconds later), leaves the segment unattached, keeps
# running, and its STATUS= names the problem instead of claiming the output
# works.
refused() {
	local c=$1
	shift
	check "$c: refused with one error ($*)" wait_for 10 has_event - OUTPUT=ntp-shm "$@"
	sleep 2
	check "$c: ... said once ($(refusals "$@"))" test "$(refusals "$@")" -eq 1
	check "$c: not attached" seg_is nattch 0
	check "$c: vmclockd running" kill -0 "$VMCLOCKD_PID"
	check "$c: STATUS= says ntp-shm is not usable" status_says 'ntp-shm: segment'
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
	check "$1: ... said" wait_for 5 used MODE=0600
	sleep 1
	tail -n +$((mark + 1)) "$T/vmclockd.log" >"$T/since.log"
	check "$1: ... once" test "$(EVENTS_LOG=$T/since.log uses MODE=0600)" -eq 1
	check "$1: STATUS= no longer names a problem" wait_for 5 sh -c \
		"grep '^STATUS=' '$T/notify.txt' | tail -n 1 | grep -q '^STATUS=feeding' &&
		 ! grep '^STATUS=' '$T/notify.txt' | tail -n 1 | grep -q 'ntp-shm'"
	reads_sample "$1"
}

# ---- 1. another user's segment, mode 0666
check "nobody creates the segment first, mode 0666" \
	make_segment 96 0666 --reuid=nobody --regid=nogroup --clear-groups
check "... owned by nobody" seg_is owner nobody
run_vmclockd
refused "another user's segment" CAUSE=foreign OWNER_UID=65534
recovers "another user's segment"
stop_vmclockd

# ---- 2. the wrong size
ipcrm -M $KEY
make_segment 64 0600
run_vmclockd
refused "a 64-byte segment" CAUSE=wrong_size SIZE=64
recovers "a 64-byte segment"
stop_vmclockd

# ---- 3. ours, but wider than ntp-shm-mode
ipcrm -M $KEY
make_segment 96 0666
run_vmclockd
refused "a segment of mode 0666" CAUSE=wide_mode MODE=0666
recovers "a segment of mode 0666"

# ---- 4. ours removed under us
mark=$(wc -l <"$T/vmclockd.log")
ipcrm -M $KEY
check "removed under us: said" wait_for 5 has_event - OUTPUT=ntp-shm CAUSE=removed
check "removed under us: a new one, attached" wait_for 5 seg_is nattch 1
used_since_mark() { tail -n +$((mark + 1)) "$T/vmclockd.log" >"$T/since.log"; EVENTS_LOG=$T/since.log used; }
check "removed under us: using it" wait_for 5 used_since_mark
reads_sample "removed under us"
stop_vmclockd
check "on exit: detached, left for ntpd" seg_is nattch 0

finish
