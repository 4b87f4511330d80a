#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-journal.sh - vmclockd's alerts reach the journal as native-protocol
# datagrams with the MESSAGE_IDs of daemon/log.h, or stderr as one line each.
# No systemd needed: in a private mount namespace a tmpfs goes on
# /run/systemd/journal and capture-dgram.py binds its socket there.
#   A. JOURNAL_STREAM = stderr's dev:ino: start-up, DISRUPTION_SOON (flag),
#      DISRUPTION_IMMINENT (flag), DISRUPTION (SIGUSR1 to the sim: migration),
#      RECOVERED (chronyd reset, if chronyd is installed), RESTORE (SIGUSR2)
#      are datagrams with one MESSAGE=, PRIORITY= and MESSAGE_ID= exact, and
#      the fields; CODE_FILE/CODE_LINE/CODE_FUNC name the caller (the line
#      that logs that alert's MESSAGE_ID), never log.c; nothing on stderr
#   B. JOURNAL_STREAM unset: the same events on stderr, one line each with
#      the severity, MESSAGE_ID and their fields; no datagram
# What is checked is the records' identifiers, priorities and fields, never
# the wording of their text.
#   C. JOURNAL_STREAM stale (stderr redirected since): stderr
#   D. JOURNAL_STREAM right but no journal socket: stderr
#   E. one DISRUPTION record per handled disruption: K migrations a little
#      further apart than the handover's hold-off (1 s) are K records, each
#      with MARKER_CHANGES=1, their markers chained (OLD_MARKER the previous
#      NEW_MARKER); none is lost to a rate limit
# The DISRUPTION record is logged once the disruption is handled (chronyd
# reset, or at once without chronyd: then the daemon runs with no command
# socket).
# vmclock-sim has no option for the DISRUPTION_SOON/IMMINENT flags: the test
# sets them in the live page itself (one byte, flags' low byte at offset 24;
# the sim never rewrites flags after start).
# Runs as root (unshare -m); otherwise skips (CI: fails).

JOURNAL_NS=1
. "$(dirname "$0")/lib.sh"
journal_start
for name in DISRUPTION RESTORE DISRUPTION_SOON DISRUPTION_IMMINENT RECOVERED; do
	check "log.h defines LOG_MSGID_$name as 128 bits of hex (${MSGID[$name]:-})" \
		grep -Eqx '[0-9a-f]{32}' <<<"${MSGID[$name]:-}"
done

# ---- helpers
# dgram_matching REGEX: the last datagram with a line matching REGEX.
dgram_matching() {
	awk -v re="$1" '
		$0 == "--" { if (hit) last = buf; buf = ""; hit = 0; next }
		{ buf = buf $0 "\n"; if ($0 ~ re) hit = 1 }
		END { printf "%s", last }' "$J"
}
# dgram_count_is NAME N
dgram_count_is() {
	[ "$(n_dgrams "$1")" -eq "$2" ]
}
# has_line TEXT LINE: TEXT has LINE exactly once.
has_line() {
	[ "$(grep -cxF -- "$2" <<<"$1")" -eq 1 ]
}
# near VALUE TARGET TOLERANCE
near() {
	[ -n "$1" ] && abs_le "$(awk -v a="$1" -v b="$2" 'BEGIN { print a - b }')" "$3"
}
# check_dgram NAME PRIORITY KEY=VALUE...: the last datagram of NAME has
# exactly one MESSAGE_ID=, PRIORITY= and non-empty MESSAGE=; each KEY=VALUE
# is present as a line.
check_dgram() {
	local name=$1 prio=$2 d kv
	shift 2
	d=$(dgram "$(n_dgrams "$name")" "$name")
	echo "-- $name datagram:"
	sed 's/^/   /' <<<"$d"
	check "$name: MESSAGE_ID=${MSGID[$name]} once" has_line "$d" "MESSAGE_ID=${MSGID[$name]}"
	check "$name: only one MESSAGE_ID" test "$(grep -c '^MESSAGE_ID=' <<<"$d")" -eq 1
	check "$name: PRIORITY=$prio" has_line "$d" "PRIORITY=$prio"
	check "$name: only one PRIORITY" test "$(grep -c '^PRIORITY=' <<<"$d")" -eq 1
	check "$name: one non-empty MESSAGE=" \
		test "$(grep -c '^MESSAGE=.' <<<"$d")$(grep -c '^MESSAGE=' <<<"$d")" = 11
	for kv in "$@"; do
		check "$name: $kv" has_line "$d" "$kv"
	done
	check_origin "$name" "$d" "${ORIGIN[$name]}"
	LAST_DGRAM=$d
}
# The source line that logs each alert names its MESSAGE_ID within 3 lines
# (the start-up line, which has none, its text).
declare -A ORIGIN=([DISRUPTION]='LOG_MSGID_DISRUPTION,' [RESTORE]='LOG_MSGID_RESTORE,'
	[DISRUPTION_SOON]='LOG_MSGID_DISRUPTION_SOON,' [DISRUPTION_IMMINENT]='LOG_MSGID_DISRUPTION_IMMINENT,'
	[RECOVERED]='LOG_MSGID_RECOVERED,' [STARTED]='started: page')
# check_origin NAME TEXT FRAGMENT: the datagram names the caller of the
# logging module, not the module: CODE_FILE a source file of the daemon
# whose CODE_LINE (+-3 lines) has FRAGMENT, CODE_FUNC the function defined
# last before that line.
check_origin() {
	local name=$1 d=$2 frag=$3 file line func src defined
	file=$(field "$d" CODE_FILE)
	line=$(field "$d" CODE_LINE)
	func=$(field "$d" CODE_FUNC)
	src=$top_srcdir/$file
	check "$name: CODE_FILE=$file, CODE_LINE=$line, CODE_FUNC=$func once each" test \
		"$(grep -c '^CODE_FILE=' <<<"$d")$(grep -c '^CODE_LINE=' <<<"$d")$(grep -c '^CODE_FUNC=' <<<"$d")" = 111
	check "$name: CODE_FILE is a daemon source other than log.c" \
		sh -c "[ -f '$src' ] && [ '$file' != daemon/log.c ] && case '$file' in daemon/*.c) true;; *) false;; esac"
	check "$name: CODE_LINE $line of $file logs '$frag'" \
		sh -c "[ -n '$line' ] && sed -n \"\$(( $line > 3 ? $line - 3 : 1 )),\$(( $line + 3 ))p\" '$src' | grep -qF -- '$frag'"
	defined=$(awk -v n="$line" 'NR > n { exit }
		/^[A-Za-z_].*[A-Za-z_0-9]\(/ && !/;$/ { s = $0; sub(/\(.*/, "", s); sub(/.*[ *]/, "", s); f = s }
		END { print f }' "$src" 2>/dev/null)
	check "$name: CODE_FUNC=$func is the function around it ($defined)" test -n "$func" -a "$func" = "$defined"
}
# set_flags BITS: the page's DISRUPTION_SOON (2) / IMMINENT (4) bits.
set_flags() {
	python3 - "$T/page" "$1" <<'EOP'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 4096)
m[24] = (m[24] & ~6) | int(sys.argv[2])
m.close()
os.close(fd)
EOP
}
# stderr_count_is NAME N [FIELD=VALUE...]: N lines of vmclockd's stderr carry
# NAME's MESSAGE_ID (and the fields).
stderr_count_is() {
	local name=$1 n=$2
	shift 2
	[ "$(n_events "$name" "$@")" -eq "$n" ]
}
# stderr_line NAME [FIELD=VALUE...]: the last such line.
stderr_line() {
	events "$@" | tail -n 1
}
# on_stderr: vmclockd wrote to stderr (its lines start "vmclockd: ").
on_stderr() {
	grep -q '^vmclockd: ' "$T/vmclockd.log"
}
stop_vmclockd() {
	kill "$VMCLOCKD_PID" 2>/dev/null
	wait "$VMCLOCKD_PID" 2>/dev/null
}

# chronyd, if there is one, lets the handover complete: RECOVERED.
HAVE_CHRONYD=no
if [ -x "$CHRONYD" ] && [ -x "$CHRONYC" ]; then
	write_chrony_conf
	if start_chronyd; then HAVE_CHRONYD=yes; else fail "chronyd started"; fi
elif [ "${CI:-}" = true ]; then
	fail "chronyd not installed (CI installs it): RECOVERED not checked"
else
	echo "NOTE: no chronyd: RECOVERED not checked"
fi
# Without chronyd a disruption is handled at once (no command socket).
NO_CMD=()
[ $HAVE_CHRONYD = yes ] || NO_CMD=(--chrony-cmd "")

start_sim --offset-ns 1234567 --interval-ms 100 --migrate-step-ns 2000000 --migrate-freq-ppb 30000

# ==== A. the journal
: >"$T/vmclockd.log"
JS=$(stat -c %d:%i "$T/vmclockd.log")
JOURNAL_STREAM=$JS start_vmclockd --interval-ms 62 "${NO_CMD[@]}"
started() { grep -q '^MESSAGE=vmclockd .* started' "$J"; }
check "A: start-up message in the journal" wait_for 5 started
d=$(dgram_matching '^MESSAGE=vmclockd .* started')
check "A: start-up: PRIORITY=6" has_line "$d" PRIORITY=6
check "A: start-up: no MESSAGE_ID" test "$(grep -c '^MESSAGE_ID=' <<<"$d")" -eq 0
check_origin "A: start-up" "$d" "${ORIGIN[STARTED]}"
check "A: feeding (the published state)" wait_for 5 eval '[ "$(state_field withhold_reason)" = fed ]' 

set_flags 2
check "A: DISRUPTION_SOON datagram" wait_for 3 dgram_count_is DISRUPTION_SOON 1
check_dgram DISRUPTION_SOON 5
set_flags 6
check "A: DISRUPTION_IMMINENT datagram" wait_for 3 dgram_count_is DISRUPTION_IMMINENT 1
check_dgram DISRUPTION_IMMINENT 4
set_flags 0
sleep 0.3
check "A: clearing the flags logs nothing" test "$(n_dgrams DISRUPTION_SOON)$(n_dgrams DISRUPTION_IMMINENT)" = 11

# The field checked below is the exact ratio of the two pages' periods. The
# simulator measures its counter's period over the baseline since it started,
# so its pages carry bracket noise / baseline: after 2 s that reached 0.015 ppm
# on a loaded machine (29.9845 under ASan in CI). A 6 s baseline keeps it well
# inside the 0.01 ppm the check allows.
sleep 5
kill -USR1 "$SIM_PID"
check "A: DISRUPTION datagram after a migration" wait_for 3 dgram_count_is DISRUPTION 1
check_dgram DISRUPTION 4 OLD_MARKER=1 NEW_MARKER=2 FIRST_MARKER=2 MARKER_CHANGES=1 \
	VM_GENERATION_COUNTER=1
d=$LAST_DGRAM
check "A: STEP_NS=$(field "$d" STEP_NS) is the 2 ms step (+-5 us)" near "$(field "$d" STEP_NS)" 2000000 5000
check "A: COUNTER_PERIOD_FRAC_SEC=$(field "$d" COUNTER_PERIOD_FRAC_SEC) is a non-zero integer" \
	grep -Eqx '[1-9][0-9]*' <<<"$(field "$d" COUNTER_PERIOD_FRAC_SEC)"
check "A: COUNTER_PERIOD_SHIFT present" grep -Eq '^COUNTER_PERIOD_SHIFT=[0-9]+$' <<<"$d"
check "A: FREQ_CHANGE_PPM=$(field "$d" FREQ_CHANGE_PPM) is +30 ppm (+-0.01)" \
	near "$(field "$d" FREQ_CHANGE_PPM)" 30 0.01
if [ $HAVE_CHRONYD = yes ]; then
	check "A: RECOVERED datagram after chronyd's reset" wait_for 5 dgram_count_is RECOVERED 1
	check_dgram RECOVERED 6 DISRUPTION_MARKER=2 STATE_SAVED=1 DFREQ=applied
fi
sleep 0.5

kill -USR2 "$SIM_PID"
check "A: RESTORE datagram after a restore" wait_for 3 dgram_count_is RESTORE 1
check_dgram RESTORE 4 VM_GENERATION_COUNTER=2 DISRUPTION_MARKER=3
check "A: the restore's new marker is a DISRUPTION too" wait_for 3 dgram_count_is DISRUPTION 2
check_dgram DISRUPTION 4 OLD_MARKER=2 NEW_MARKER=3 VM_GENERATION_COUNTER=2
d=$LAST_DGRAM
check "A: restore: FREQ_CHANGE_PPM=$(field "$d" FREQ_CHANGE_PPM) is 0 (+-0.01)" \
	near "$(field "$d" FREQ_CHANGE_PPM)" 0 0.01
if [ $HAVE_CHRONYD = yes ]; then
	check "A: RECOVERED after the second reset" wait_for 5 dgram_count_is RECOVERED 2
fi
sleep 0.5
check "A: nothing from vmclockd on stderr" sh -c "! grep -q 'vmclockd' '$T/vmclockd.log'"
stop_vmclockd
# vmclockd has sent its last datagram before it exits, but capture-dgram.py
# (another process) may not have written it yet: wait for the line.  It is
# the last datagram, so once it is there so are all the others (each is one
# write) and the counts below are final.
check "A: exit message in the journal" wait_for 5 grep -q '^MESSAGE=.*signal 15: exiting' "$J"
check "A: every datagram has a CODE_FILE" \
	test "$(grep -c '^CODE_FILE=' "$J")" -eq "$(grep -cx -- -- "$J")"
check "A: no datagram says it comes from log.c" sh -c "! grep -q '^CODE_FILE=.*log\.c' '$J'"

# ==== B. JOURNAL_STREAM unset: stderr, one line per event
mv "$T/vmclockd.log" "$T/vmclockd-A.log"
journal_before=$(wc -l <"$J")
unset JOURNAL_STREAM
start_vmclockd --interval-ms 62 "${NO_CMD[@]}"
check "B: start-up on stderr" wait_for 5 on_stderr
sleep 1
# A restart with the page's marker equal to the saved one is no disruption.
check "B: a restart with the marker unchanged raises no DISRUPTION" stderr_count_is DISRUPTION 0
set_flags 2
check "B: DISRUPTION_SOON: one line" wait_for 3 stderr_count_is DISRUPTION_SOON 1
check "B: ... as a notice, no fields" \
	grep -Eqx "vmclockd: notice: .+ MESSAGE_ID=${MSGID[DISRUPTION_SOON]}" <<<"$(stderr_line DISRUPTION_SOON)"
set_flags 6
check "B: DISRUPTION_IMMINENT: one line" wait_for 3 stderr_count_is DISRUPTION_IMMINENT 1
check "B: ... as a warning, no fields" \
	grep -Eqx "vmclockd: warning: .+ MESSAGE_ID=${MSGID[DISRUPTION_IMMINENT]}" <<<"$(stderr_line DISRUPTION_IMMINENT)"
set_flags 0
kill -USR1 "$SIM_PID"
check "B: DISRUPTION: one line" wait_for 3 stderr_count_is DISRUPTION 1 OLD_MARKER=3 NEW_MARKER=4
l=$(stderr_line DISRUPTION OLD_MARKER=3 NEW_MARKER=4)
echo "   $l"
check "B: ... a warning with its fields" grep -Eqx "vmclockd: warning: .+ MESSAGE_ID=${MSGID[DISRUPTION]} OLD_MARKER=3 NEW_MARKER=4 FIRST_MARKER=4 MARKER_CHANGES=1 VM_GENERATION_COUNTER=2 WHILE_DOWN=0 STEP_NS=[-0-9]+ COUNTER_PERIOD_FRAC_SEC=[0-9]+ COUNTER_PERIOD_SHIFT=[0-9]+ FREQ_CHANGE_PPM=[-0-9.]+" <<<"$l"
if [ $HAVE_CHRONYD = yes ]; then
	check "B: RECOVERED: one line" wait_for 5 stderr_count_is RECOVERED 1 DISRUPTION_MARKER=4
	check "B: ... with its fields" \
		grep -Eqx "vmclockd: .+ MESSAGE_ID=${MSGID[RECOVERED]} DISRUPTION_MARKER=4 STATE_SAVED=1 DFREQ=applied DFREQ_PPM=[-0-9.]+ DOFFSET_NS=[-0-9]+ MAKESTEPS=[0-9]+" <<<"$(stderr_line RECOVERED)"
fi
sleep 0.5
kill -USR2 "$SIM_PID"
check "B: RESTORE: one line" wait_for 3 stderr_count_is RESTORE 1
l=$(stderr_line RESTORE)
echo "   $l"
check "B: ... a warning with its fields" \
	grep -Eqx "vmclockd: warning: .+ MESSAGE_ID=${MSGID[RESTORE]} VM_GENERATION_COUNTER=3 DISRUPTION_MARKER=5" <<<"$l"
sleep 0.5
check "B: no datagram without JOURNAL_STREAM" test "$(wc -l <"$J")" -eq "$journal_before"
stop_vmclockd

# ==== C. JOURNAL_STREAM stale: stderr was redirected since
mv "$T/vmclockd.log" "$T/vmclockd-B.log"
JOURNAL_STREAM=$JS start_vmclockd --interval-ms 62 "${NO_CMD[@]}"
check "C: stale JOURNAL_STREAM: start-up on stderr" wait_for 5 on_stderr
check "C: ... and no datagram" test "$(wc -l <"$J")" -eq "$journal_before"
stop_vmclockd

# ==== D. JOURNAL_STREAM right, but journald gone: stderr
mv "$T/vmclockd.log" "$T/vmclockd-C.log"
kill "$CAPTURE_PID"
wait "$CAPTURE_PID" 2>/dev/null
# D1. The socket file is left behind (ECONNREFUSED).
: >"$T/vmclockd.log"
JOURNAL_STREAM=$(stat -c %d:%i "$T/vmclockd.log") start_vmclockd --interval-ms 62 "${NO_CMD[@]}"
check "D1: dead journal socket: start-up on stderr" wait_for 5 on_stderr
stop_vmclockd
# D2. No socket at all: sd_journal_sendv() returns 0 on ENOENT (it drops
# the message silently), so log.c's fall-back to stderr never happens.
mv "$T/vmclockd.log" "$T/vmclockd-D1.log"
rm -f "$JDIR/socket"
: >"$T/vmclockd.log"
JOURNAL_STREAM=$(stat -c %d:%i "$T/vmclockd.log") start_vmclockd --interval-ms 62 "${NO_CMD[@]}"
check "D2: no journal socket: start-up on stderr" wait_for 5 on_stderr
check "D2: vmclockd still running" kill -0 "$VMCLOCKD_PID"
stop_vmclockd

# ==== E. K migrations 1.3 s apart: K handovers, K records
K=6
mv "$T/vmclockd.log" "$T/vmclockd-D2.log"
J=$T/journal-E.txt
: >"$J"
python3 "$(dirname "$0")/capture-dgram.py" "$JDIR/socket" "$J" &
CAPTURE_PID=$!
PIDS="$PIDS $CAPTURE_PID"
wait_for 5 test -S "$JDIR/socket" || fail "E: capture socket bound again"
start_vmclockd_journal --interval-ms 62 "${NO_CMD[@]}"
check "E: started" wait_for 5 grep -q '^MESSAGE=vmclockd .* started' "$J"
sleep 1
for _ in $(seq $K); do
	kill -USR1 "$SIM_PID"
	sleep 1.3
done
check "E: $K migrations: $K DISRUPTION records" wait_for 5 dgram_count_is DISRUPTION $K
dgram_fields "MESSAGE_ID=${MSGID[DISRUPTION]}" OLD_MARKER NEW_MARKER MARKER_CHANGES >"$T/records-E"
sed 's/^/   OLD_MARKER NEW_MARKER MARKER_CHANGES: /' "$T/records-E"
check "E: each covers one marker change, chained from the last" awk '
	NR > 1 && $1 != prev { exit 1 } $2 != $1 + 1 || $3 != 1 { exit 1 } { prev = $2 }' "$T/records-E"
sleep 1
check "E: still $K after the last handover (nothing said twice)" dgram_count_is DISRUPTION $K
stop_vmclockd

finish
