#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-statefile.sh - the published state file under hostile hands: a real
# chronyd (-x), vmclock-sim, vmclockd and an application reading
# vmclock_timestamp() every millisecond (tests/verdict-timeline).
#   1. truncate -s 0, twenty times, under the running daemon and the reading
#      application: neither dies (a mapping would raise SIGBUS in both), the
#      file is whole again at the next tick, the verdict synchronized again
#   2. replaced by rename with garbage: the daemon writes a fresh file by
#      temp file + rename within seconds; removed: likewise
#   3. a full file system at start-up (a tmpfs of 8 KiB, filled, in a mount
#      namespace of its own): the daemon logs the error and keeps running,
#      and publishes once there is room
. "$(dirname "$0")/lib.sh"
require_chronyd
command -v unshare >/dev/null || skip_or_fail "unshare (util-linux) not installed"

TIMELINE=$top_builddir/tests/verdict-timeline
STATE=$T/run/state
STATE_BYTES=200
ctl() { "$CTL" -d "$T/page" -s "$STATE" "$@"; }
size_is() { [ "$(stat -c %s "$1" 2>/dev/null)" = "$2" ]; }
alive() { kill -0 "$1" 2>/dev/null; }

write_chrony_conf
start_chronyd || fail "chronyd started"
start_sim --offset-ns 1234567 --interval-ms 100
start_vmclockd --state-file "$STATE"
check "synchronized before the test" ctl waitsync --timeout 20

# ---- 1. truncation under the daemon and a reader
"$TIMELINE" -d "$T/page" -s "$STATE" -t 4 >"$T/timeline.txt" 2>&1 &
TL_PID=$!
sleep 0.5
for _ in $(seq 20); do
	truncate -s 0 "$STATE"
	sleep 0.05
done
wait "$TL_PID"
rc=$?
sed 's/^/    /' "$T/timeline.txt"
check "a reading application survives truncation (exit $rc, 0 expected; 135 is SIGBUS)" \
	test "$rc" -eq 0
check "the application's bounds held the truth (violations=0)" \
	grep -q ' violations=0 ' "$T/timeline.txt"
check "vmclockd survives truncation" alive "$VMCLOCKD_PID"
check "the state file is whole again" wait_for 2 size_is "$STATE" $STATE_BYTES
check "the verdict is synchronized again" ctl waitsync --timeout 5
check "the application saw synchronized again before it ended" \
	eval 'awk "NF == 4 { v = \$2 } END { exit v != \"synchronized\" }" "$T/timeline.txt"'

# ---- 2. replacement by rename, and removal
head -c 512 /dev/urandom >"$T/run/garbage"
mv "$T/run/garbage" "$STATE"
check "a state file replaced by garbage is rewritten by vmclockd" \
	wait_for 5 ctl daemon --json
check "vmclockd said so" has_event - "FILE=$STATE" FILE_STATE=replaced
check "the verdict is synchronized again after the replacement" ctl waitsync --timeout 5
rm -f "$STATE"
check "a removed state file is written again" wait_for 5 size_is "$STATE" $STATE_BYTES
check "vmclockd still running" alive "$VMCLOCKD_PID"
check "no temporary file left behind" test ! -e "$STATE.tmp"

# ---- 3. no room at start-up
errnos ENOSPC
mkdir -p "$T/full"
cat >"$T/enospc.sh" <<EOF
set -u
mount -t tmpfs -o size=8k,mode=0700 tmpfs "$T/full" || exit 2
head -c 8192 /dev/zero >"$T/full/filler" 2>/dev/null
"$VMCLOCKD" --foreground --config /dev/null --device "$T/page" --chrony-sock "" \
	--chrony-cmd "" --state-dir "$T/state2" --state-file "$T/full/state" \
	>>"$T/vmclockd-full.log" 2>&1 &
pid=\$!
sleep 2
kill -0 \$pid 2>/dev/null || { echo "vmclockd died on a full file system"; exit 1; }
grep -Eq " FILE=$T/full/state FILE_STATE=(unpublished|unwritable) ERRNO=$ENOSPC( |\\$)" \
	"$T/vmclockd-full.log" || { echo "no ENOSPC logged"; exit 1; }
rm -f "$T/full/filler"
for _ in \$(seq 150); do
	[ "\$(stat -c %s "$T/full/state" 2>/dev/null)" = $STATE_BYTES ] && break
	sleep 0.02
done
[ "\$(stat -c %s "$T/full/state" 2>/dev/null)" = $STATE_BYTES ] ||
	{ echo "no state published once there was room"; kill \$pid; exit 1; }
"$CTL" -d "$T/page" -s "$T/full/state" daemon --json >/dev/null || { kill \$pid; exit 1; }
kill \$pid
wait \$pid
EOF
unshare -m bash "$T/enospc.sh" >"$T/enospc.out" 2>&1
rc=$?
sed 's/^/    /' "$T/enospc.out"
grep -h "space\|publish" "$T/vmclockd-full.log" 2>/dev/null | sed 's/^/    /'
check "a full file system at start-up: logged, survived, published once there is room (rc=$rc)" \
	test "$rc" -eq 0
finish
