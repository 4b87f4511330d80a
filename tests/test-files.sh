#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-files.sh - files that are not what they should be never hang, fill
# memory or pass for good:
#   1. the configuration file (at start-up and on SIGHUP) must be a regular
#      file of at most 64 KiB, read without error
#   2. the handled-marker file in the state directory: a FIFO, a symbolic
#      link or a huge file in place of marker or marker.tmp neither blocks
#      the daemon nor is followed nor read; a state directory others can
#      write, or another user's, is not used
. "$(dirname "$0")/lib.sh"

# check_config_refused DESCRIPTION PATH PATTERN: --check-config on PATH
# exits 1 within 5 s with one line naming PATH and matching PATTERN.
check_config_refused() {
	local out rc
	out=$(timeout 5 "$VMCLOCKD" --config "$2" --check-config 2>&1)
	rc=$?
	check "$1: refused, not hung or accepted (rc $rc: $out)" test "$rc" -eq 1
	check "$1: one line naming the file" \
		grep -qx "vmclockd: error: $2: $3" <<<"$out"
}

mkfifo "$T/fifo"
check_config_refused "a FIFO" "$T/fifo" 'a FIFO, not a configuration file'
check_config_refused "/dev/zero" /dev/zero 'a character device, not a configuration file'
mkdir "$T/dir"
check_config_refused "a directory" "$T/dir" 'a directory, not a configuration file'
# comment_lines BYTES: BYTES bytes of 64-byte comment lines.
comment_lines() {
	yes "$(printf '#%.0s' $(seq 63))" | head -c "$1"
}
comment_lines 65537 >"$T/big.conf"
check_config_refused "65537 bytes" "$T/big.conf" 'larger than 64 KiB, not a configuration file'
# A regular file whose st_size says 0 but which holds megabytes: the limit
# is on what is read, not on what fstat() says.
check "/proc/kallsyms is a large regular file that says it is empty" \
	test -f /proc/kallsyms -a ! -s /proc/kallsyms
check_config_refused "a large file with st_size 0" /proc/kallsyms \
	'larger than 64 KiB, not a configuration file'
# A regular file whose read fails (address 0 of our own memory): an error,
# not the end of an empty file.
check_config_refused "a read error" /proc/self/mem 'read error: Input/output error'

# At the limit, and through a symbolic link (the administrator's choice).
{ echo "interval-ms 100"; comment_lines $((65536 - 16)); } >"$T/max.conf"
check "the limit itself is 65536 bytes" test "$(stat -c %s "$T/max.conf")" -eq 65536
out=$("$VMCLOCKD" --config "$T/max.conf" --check-config 2>&1)
check "a 64 KiB file is accepted ($out)" test "$out" = "vmclockd: configuration OK"
ln -s "$T/max.conf" "$T/link.conf"
out=$("$VMCLOCKD" --config "$T/link.conf" --check-config 2>&1)
check "a symbolic link to a configuration file is followed ($out)" \
	test "$out" = "vmclockd: configuration OK"

out=$("$VMCLOCKD" --config /dev/null --check-config 2>&1)
check "/dev/null is an empty configuration ($out)" test "$out" = "vmclockd: configuration OK"

# SIGHUP with the file turned into a FIFO: the running configuration is
# kept, the daemon answers SIGTERM.
printf 'interval-ms 100\n' >"$T/run.conf"
"$VMCLOCKD" --config "$T/run.conf" --device "$T/nopage" --chrony-sock "" --chrony-cmd "" \
	--state-dir "$T/state" --state-file "" >>"$T/vmclockd.log" 2>&1 &
VMCLOCKD_PID=$!
PIDS="$PIDS $VMCLOCKD_PID"
check "vmclockd started" wait_for 10 grep -q 'started' "$T/vmclockd.log"
rm "$T/run.conf"
mkfifo "$T/run.conf"
kill -HUP "$VMCLOCKD_PID"
check "SIGHUP on a FIFO: the file is named" \
	wait_for 5 grep -q "$T/run.conf: a FIFO, not a configuration file" "$T/vmclockd.log"
check "SIGHUP on a FIFO: the running configuration is kept" \
	wait_for 5 has_event - RELOAD=refused
kill "$VMCLOCKD_PID"
check "SIGTERM after it: exits" wait_for 5 sh -c "! kill -0 $VMCLOCKD_PID"
check "... cleanly" grep -q 'signal 15: exiting' "$T/vmclockd.log"

# ---- 2. the state directory
start_sim --interval-ms 50
S=$T/state
errnos ELOOP
# run_daemon: vmclockd on the sim's page with the state in $S, log afresh.
run_daemon() {
	mv "$T/vmclockd.log" "$T/vmclockd-$(date +%s%N).log" 2>/dev/null
	"$VMCLOCKD" --config /dev/null --device "$T/page" --chrony-sock "" --chrony-cmd "" \
		--state-dir "$S" --state-file "" --interval-ms 50 >>"$T/vmclockd.log" 2>&1 &
	VMCLOCKD_PID=$!
	PIDS="$PIDS $VMCLOCKD_PID"
	wait_for 10 grep -q 'started' "$T/vmclockd.log"
}
# stops CASE: SIGTERM ends the daemon within 5 s (it is not blocked).
stops() {
	kill "$VMCLOCKD_PID"
	check "$1: SIGTERM ends vmclockd (not blocked)" wait_for 5 sh -c "! kill -0 $VMCLOCKD_PID"
	kill -KILL "$VMCLOCKD_PID" 2>/dev/null
	wait "$VMCLOCKD_PID" 2>/dev/null
}
marker_is_regular() { [ -f "$S/marker" ] && [ ! -L "$S/marker" ]; }
saved() { marker_is_regular && grep -q '^marker 1$' "$S/marker"; }
victim_untouched() { [ "$(cat "$T/victim")" = "precious" ]; }
fresh_state() { rm -rf "$S"; mkdir -m 0755 "$S"; echo precious >"$T/victim"; }

fresh_state
mkfifo "$S/marker.tmp"
run_daemon
check "marker.tmp a FIFO: the marker is saved anyway" wait_for 5 saved
stops "marker.tmp a FIFO"

fresh_state
ln -s "$T/victim" "$S/marker.tmp"
run_daemon
check "marker.tmp a symbolic link: the marker is saved" wait_for 5 saved
check "... and the link's target is untouched" victim_untouched
stops "marker.tmp a symbolic link"

fresh_state
mkfifo "$S/marker"
run_daemon
check "marker a FIFO: refused, said" wait_for 5 has_event - "FILE=$S/marker" FILE_STATE=not_regular
check "... and replaced by a saved marker" wait_for 5 saved
stops "marker a FIFO"

fresh_state
printf 'marker 7\ngeneration 1\n' >"$T/victim"
ln -s "$T/victim" "$S/marker"
run_daemon
check "marker a symbolic link: not followed" \
	wait_for 5 has_event - "FILE=$S/marker" FILE_STATE=unreadable ERRNO=$ELOOP
check "... no disruption from what it pointed to" test "$(n_events DISRUPTION)" -eq 0
check "... replaced by a saved marker" wait_for 5 saved
stops "marker a symbolic link"

fresh_state
{ echo "marker 1"; yes "generation 1" | head -c 100000; } >"$S/marker"
run_daemon
check "marker of 100 kB: refused" wait_for 5 has_event - "FILE=$S/marker" FILE_STATE=too_large
check "... and rewritten" wait_for 5 sh -c "[ \$(stat -c %s '$S/marker') -lt 4096 ]"
stops "a huge marker"

fresh_state
chmod 0777 "$S"
run_daemon
check "a world-writable state directory: not used, said" wait_for 5 \
	has_event - "FILE=$S/marker" FILE_STATE=unsaved CAUSE=directory_not_ours OWNER_UID=0 MODE=0777
sleep 1
check "... once" test "$(n_events - "FILE=$S/marker" FILE_STATE=unsaved CAUSE=directory_not_ours)" -eq 1
check "... nothing written in it" test ! -e "$S/marker"
stops "a world-writable state directory"

fresh_state
chown nobody "$S"
run_daemon
check "another user's state directory: not used" wait_for 5 \
	has_event - "FILE=$S/marker" FILE_STATE=unsaved CAUSE=directory_not_ours OWNER_UID=65534 MODE=0755
check "... nothing written in it" test ! -e "$S/marker"
stops "another user's state directory"

finish
