#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-handover.sh - the handover's races against a real chronyd, behind a
# proxy (chrony-proxy.py) that delays or refuses chosen requests and logs
# what chronyd applied.  Each case runs a fresh page (counter frequency 0,
# then +30 ppm at a migration) and a fresh vmclockd:
#
#  (a) SIGHUP while chronyd's answer to the dfreq is held back 700 ms (past
#      the client's wait): chronyd applies exactly one dfreq, and vmclockd
#      finds out from chronyd's frequency that it was applied;
#  (b) SIGHUP during the backoff after chronyd refused two resets: one
#      handover, one dfreq, no stale retry afterwards;
#  (c) a second migration during the backoff after a refused dfreq: chronyd
#      applies one dfreq, the whole change (about -30 ppm) from the period it
#      was right for, not a near-zero one against the newest period.
#  (d) the marker flapping, 50 changes in 10 s: a handful of resets, one
#      disruption record per handover (the first at once), their
#      MARKER_CHANGES adding up to the 50;
#  (e) a marker record with "period 0 0" and a migration while vmclockd is down:
#      the period is ignored, chronyd gets no dfreq (and no infinite one);
#  (f) a host that makes the counter 10 % faster at a migration (a change far
#      beyond any real counter's): no dfreq reaches chronyd, an error says so,
#      and chronyd is still reset and stepped;
#  (g) after a handled migration the host restarts on the same page with
#      clock_status unknown and its time 5 s ahead (a new marker): chronyd is
#      reset but gets no doffset (the page does not vouch for its time), and
#      vmclockd says why;
#  (h) vmclockd killed (SIGKILL) after chronyd applied the dfreq and before
#      its answer came back (held 3 s): the marker record holds the dfreq
#      recorded ahead, and the restarted vmclockd tells from chronyd's
#      frequency that it was applied: one dfreq in all, and chronyd's own
#      tracking frequency moved by the migration's change once;
#  (i) the state directory full (a tmpfs of 8 KiB in a mount namespace of
#      vmclockd's own, filled once its marker is saved): the dfreq cannot be
#      recorded first, so it never reaches chronyd (said once, then given up
#      with an error), and chronyd is still reset and stepped.
#  (j) chronyd refuses reset sources (as a chrony older than 4.0 does) for
#      longer than a round of tries, across a restart of vmclockd: the
#      disruption stays unhandled (the published sync state DISRUPTED, never
#      SYNCHRONIZED from chronyd's old selection; the marker record keeps the
#      old marker), the failure is said once per vmclockd, samples are fed
#      while it waits, and once the refusals stop the handover completes:
#      chronyd's frequency takes the change once (a dfreq composed onto what
#      it learned from the samples meanwhile), and the verdict is
#      synchronised again;
#  (k) chronyd refuses the dfreq through three rounds of tries while
#      samples fed between rounds teach it the new frequency: the dfreq that
#      finally goes composes onto that, and chronyd's frequency, read every
#      10 ms, never goes past the migration's change;
#  (l) the state directory full when the migration comes (the dfreq given
#      up unrecorded, the handled marker not saved), space back a moment
#      later: a retry writes the marker, and vmclockd killed and restarted
#      does not hand the migration over a second time.
# What chronyd applied is read from the proxy's log (answers with status 0),
# the change expected from vmclockd's own disruption records (each one's
# FREQ_CHANGE_PPM, composed as a ratio of periods).  vmclockd's log is read
# for its records' MESSAGE_IDs and fields (lib.sh's events), and the
# published state for the marker it handled, not for its wording, but where
# no field carries the fact (said so where it is checked).

. "$(dirname "$0")/lib.sh"
require_chronyd
command -v python3 >/dev/null || { echo "FAIL: python3 is missing (the proxy)"; exit 1; }

write_chrony_conf
start_chronyd || fail "chronyd started"

# start_proxy PROXY-RULES...: lib.sh's proxy_case for the case $CASE names,
# with no full state directory left from the last case either.
start_proxy() {
	rm -rf "$T/fullstate"
	proxy_case "$CASE" "$@"
}

# A chronyd started afresh, at frequency 0, right for a fresh page (whose
# counter runs at the system clock's rate): the cases that judge chronyd's
# frequency must not start from the last case's migrated one.
restart_chronyd() {
	stop_chronyd
	start_chronyd || fail "$CASE: chronyd restarted"
}

# run_case NAME PROXY-RULES...: fresh page, proxy and vmclockd; migrate once.
run_case() {
	CASE=$1
	shift
	start_proxy "$@"
	start_sim --interval-ms 100 --migrate-freq-ppb 30000 ${SIM_ARGS:-}
	start_vmclockd --chrony-cmd "$T/proxy.sock" ${VMCLOCKD_ARGS:-}
	wait_for 10 test -s "$T/state/marker" || fail "$CASE: vmclockd started"
	sleep 0.3
	CASE_F0=$(chrony_freq)
	kill -USR1 "$SIM_PID"
}

end_case() {
	kill "$VMCLOCKD_PID" "$SIM_PID" "$PROXY_PID" 2>/dev/null
	wait "$VMCLOCKD_PID" "$SIM_PID" "$PROXY_PID" 2>/dev/null
	cp "$T/vmclockd.log" "$T/vmclockd-$CASE.log"
}

# The dfreq values chronyd answered success to.
applied_dfreqs() {
	awk '$1 == "forwarded" && $2 == 31 { v[$3] = $4 }
	     $1 == "answered" && $2 == 31 && $5 == 0 { print v[$3] }' "$T/proxy-$CASE.log"
}

# recovered MARKER: the handover to MARKER completed (its RECOVERED record).
recovered() { has_event RECOVERED "DISRUPTION_MARKER=$1"; }
# detections [LOG]: with --debug, the line of every marker change as it is
# seen (debug severity, OLD_MARKER and NEW_MARKER fields, no MESSAGE_ID).
detections() {
	grep '^vmclockd: debug: .* OLD_MARKER=[0-9]* NEW_MARKER=[0-9]*' "${1:-$T/vmclockd.log}"
}
# composed_change [LOG]: the change vmclockd logged (in LOG, default this
# case's) for each migration of this case, composed: the dfreq that takes
# chronyd from the first period to the last.  The DISRUPTION records'
# fields, or (--debug: every change, also before it is handled) the
# detections'.
composed_change() {
	local log=${1:-$T/vmclockd.log}
	{ if detections "$log" >/dev/null; then detections "$log"
	  else EVENTS_LOG=$log events DISRUPTION; fi; } |
		sed -n 's/.* FREQ_CHANGE_PPM=\([-0-9.]*\).*/\1/p' |
		awk '{ r *= 1 + $1 * 1e-6 } BEGIN { r = 1 } END { printf "%.9f", -(r - 1) * 1e6 }'
}

check_one_dfreq() {
	local d want
	d=$(applied_dfreqs)
	want=$(composed_change)
	echo "$CASE: dfreq applied by chronyd: [$(echo $d)], the migrations' change composed: $want"
	check "$CASE: chronyd applied exactly one dfreq" test "$(echo "$d" | grep -c .)" -eq 1
	check "$CASE: it is the whole change ($d, want $want)" \
		awk -v d="${d:-0}" -v w="$want" 'BEGIN { exit !(d - w < 1e-4 && w - d < 1e-4 && w < -29) }'
}

# freq_range FILE FROM: the lowest and highest frequency (ppm) in chrony-observe
# readings from CLOCK_REALTIME FROM on.
freq_range() {
	awk -v from="$2" 'NF > 4 && $1 !~ /error/ && $1 + 0 >= from {
		if (n++ == 0 || $4 < lo) lo = $4; if (n == 1 || $4 > hi) hi = $4 }
		END { if (n) printf "%.6f %.6f\n", lo, hi; else print "none" }' "$1"
}

run_case a --delay 31:1:700
check "a: chronyd's answer to the dfreq held back" wait_for 5 grep -q '^held 31 1' "$T/proxy-a.log"
kill -HUP "$VMCLOCKD_PID"
check "a: handover done" wait_for 10 recovered 2
check_one_dfreq
check "a: the lost answer resolved from chronyd's frequency: applied" \
	has_event RECOVERED DISRUPTION_MARKER=2 DFREQ_IN_DOUBT=applied DFREQ=applied
end_case

run_case b --refuse 66:2
check "b: resets refused" wait_for 5 grep -q '^refused 66 2' "$T/proxy-b.log"
kill -HUP "$VMCLOCKD_PID"
check "b: handover done" wait_for 10 recovered 2
sleep 2 # a stale retry timer would have fired by now
check_one_dfreq
check "b: one handover" test "$(n_events RECOVERED)" -eq 1
check "b: no reset after it" test "$(awk '$1 == "forwarded" && $2 == 66' "$T/proxy-b.log" | wc -l)" -eq 1
end_case

VMCLOCKD_ARGS=--debug run_case c --refuse 31:2
check "c: dfreq refused" wait_for 5 grep -q '^refused 31 1' "$T/proxy-c.log"
kill -USR1 "$SIM_PID"
check "c: second migration seen" wait_for 5 eval 'detections | grep -q " OLD_MARKER=2 NEW_MARKER=3"'
check "c: handover done for the newest marker" wait_for 10 recovered 3
check_one_dfreq
end_case

# (d) The marker flapping, 50 changes in 10 s: a handful of resets, and the
# dfreqs chronyd applied compose to the changes the migrations made.
VMCLOCKD_ARGS=--debug run_case d
for _ in $(seq 49); do
	sleep 0.2
	kill -USR1 "$SIM_PID"
done
check "d: handover done for the newest marker" wait_for 20 recovered 51
resets=$(awk '$1 == "forwarded" && $2 == 66' "$T/proxy-d.log" | wc -l)
handovers=$(n_events RECOVERED)
echo "d: 50 marker changes in 10 s: $resets resets, $handovers handovers"
check "d: coalesced: $resets resets for 50 marker changes (at most 8)" test "$resets" -le 8
records=$(n_events DISRUPTION)
covered=$(events DISRUPTION | sed -n 's/.* MARKER_CHANGES=\([0-9]*\).*/\1/p' |
	awk '{ n += $1 } END { print n + 0 }')
echo "d: 50 marker changes in 10 s: $records disruption records covering $covered"
check "d: the first disruption record is for the first change alone" \
	has_event DISRUPTION OLD_MARKER=1 NEW_MARKER=2 MARKER_CHANGES=1
check "d: one disruption record per handover ($records, $handovers handovers)" \
	test "$records" -eq "$handovers"
check "d: their MARKER_CHANGES add up to the 50 changes ($covered)" test "$covered" -eq 50
applied=$(applied_dfreqs | awk '{ r *= 1 - $1 * 1e-6 } BEGIN { r = 1 } END { printf "%.9f", -(r - 1) * 1e6 }')
want=$(composed_change)
check "d: every migration's change logged (debug)" test "$(detections | wc -l)" -eq 50
check "d: the applied dfreqs compose to the migrations' change ($applied, want $want)" \
	awk -v d="$applied" -v w="$want" 'BEGIN { exit !(d - w < 1e-4 && w - d < 1e-4) }'
end_case

# dfreqs_forwarded: how many dfreq requests reached chronyd in this case.
dfreqs_forwarded() {
	awk '$1 == "forwarded" && $2 == 31' "$T/proxy-$CASE.log" | wc -l
}

# (e) "period 0 0" in the marker record, then a migration while vmclockd is down.
run_case e
check "e: first handover done" wait_for 10 recovered 2
kill "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID" 2>/dev/null
before=$(dfreqs_forwarded)
printf 'marker 2\ngeneration 1\nperiod 0 0\n' >"$T/state/marker"
kill -USR1 "$SIM_PID"
sleep 0.3
start_vmclockd --chrony-cmd "$T/proxy.sock"
check "e: the disruption while down handed over" wait_for 10 recovered 3
check "e: the zero period ignored: no dfreq handed" has_event RECOVERED DISRUPTION_MARKER=3 DFREQ=none
check "e: no infinite frequency change logged" sh -c "! grep -qi 'inf ppm\|=-\?inf' '$T/vmclockd.log'"
check "e: the record has no frequency change (FREQ_CHANGE_PPM absent: not known)" \
	eval 'events DISRUPTION NEW_MARKER=3 | grep -v " FREQ_CHANGE_PPM=" | grep -q .' 
check "e: no dfreq reached chronyd after the restart" test "$(dfreqs_forwarded)" -eq "$before"
end_case

# (f) The counter 10 % faster after a migration: a dfreq of about 1e5 ppm, refused.
SIM_ARGS='--migrate-freq-ppb 100000000' run_case f
check "f: handover done" wait_for 10 recovered 2
check "f: no dfreq reached chronyd" test "$(dfreqs_forwarded)" -eq 0
check "f: the dfreq refused, said in the handover's record" \
	has_event RECOVERED DISRUPTION_MARKER=2 DFREQ=refused
check "f: chronyd still stepped (a doffset)" grep -q '^forwarded 71 ' "$T/proxy-f.log"
end_case

# (g) A page that does not vouch for its time after a disruption: no step.
run_case g
check "g: first handover done" wait_for 10 recovered 2
check "g: the first migration stepped chronyd" grep -q '^forwarded 71 ' "$T/proxy-g.log"
doffsets=$(awk '$1 == "forwarded" && $2 == 71' "$T/proxy-g.log" | wc -l)
resets=$(awk '$1 == "forwarded" && $2 == 66' "$T/proxy-g.log" | wc -l)
stop_sim
start_sim --status unknown --offset-ns 5000000000
check "g: the new marker handed over" wait_for 10 recovered 1
check "g: chronyd reset again" \
	test "$(awk '$1 == "forwarded" && $2 == 66' "$T/proxy-g.log" | wc -l)" -gt "$resets"
check "g: no doffset reached chronyd for the unvouched page" \
	test "$(awk '$1 == "forwarded" && $2 == 71' "$T/proxy-g.log" | wc -l)" -eq "$doffsets"
check "g: vmclockd says why (STEP_WITHHELD)" \
	has_event RECOVERED DISRUPTION_MARKER=1 STEP_WITHHELD=not_synchronized
end_case

# (h) vmclockd dies while the dfreq it sent is applied but unanswered.
VMCLOCKD_ARGS=--debug run_case h --delay 31:1:3000
check "h: chronyd's answer to the dfreq held back" wait_for 5 grep -q '^held 31 1' "$T/proxy-h.log"
kill -KILL "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID" 2>/dev/null
check "h: killed before the handover completed (no RECOVERED, marker 1 published)" \
	eval '[ "$(n_events RECOVERED)" -eq 0 ] && handled 1' 
echo "h: marker record at the kill: $(tr '\n' ';' <"$T/state/marker")"
check "h: the dfreq recorded in the marker record before it was sent" grep -q '^dfreq 2 ' "$T/state/marker"
f_killed=$(chrony_freq)
want=$(composed_change) # the migration's debug line, before the restart adds its own
start_vmclockd --chrony-cmd "$T/proxy.sock"
check "h: handed over after the restart" wait_for 10 recovered 2
f1=$(chrony_freq)
d=$(applied_dfreqs)
echo "h: dfreq applied by chronyd: [$(echo $d)]; frequency $CASE_F0 before the migration," \
	"$f_killed at the kill, $f1 after the restart's handover; the migration's change $want"
# The restarted handover targets the page as it is then: a simulator that
# refined its period measurement in between (by ~0.005 ppm under ASan) gets
# that refinement as a second, tiny dfreq, composed on the applied one.  The
# migration's change itself must reach chronyd once.
check "h: chronyd applied the migration's dfreq once" \
	test "$(echo "$d" | awk '$1 > 1 || $1 < -1' | grep -c .)" -eq 1
check "h: any other dfreq only the page's refinement (< 0.05 ppm)" \
	test "$(echo "$d" | awk '($1 > 1 || $1 < -1) || $1 >= 0.05 || $1 <= -0.05 { n++ } END { print n + 0 }')" -eq 1
check "h: the restarted vmclockd found it applied" \
	has_event RECOVERED DISRUPTION_MARKER=2 DFREQ_IN_DOUBT=applied
check "h: chronyd's frequency moved by the change once ($CASE_F0 -> $f1, want $want ppm)" \
	awk -v a="$CASE_F0" -v b="$f1" -v w="$want" 'BEGIN { x = b - a - w; exit !(x < 1 && x > -1 && w < -29) }'
check "h: and not at all after the restart ($f_killed -> $f1)" \
	awk -v a="$f_killed" -v b="$f1" 'BEGIN { x = b - a; exit !(x < 0.05 && x > -0.05) }'
check "h: nothing in doubt left in the marker record" sh -c "! grep -q '^dfreq' '$T/state/marker'"
end_case

# (i) No room for the dfreq's record.
command -v unshare >/dev/null || { echo "FAIL: unshare (util-linux) is missing"; exit 1; }
CASE=i
start_proxy
start_sim --interval-ms 100 --migrate-freq-ppb 30000
mkdir -p "$T/fullstate"
cat >"$T/enospc-i.sh" <<EOF
set -u
mount -t tmpfs -o size=8k,mode=0700 tmpfs "$T/fullstate" || exit 2
"$VMCLOCKD" --foreground --config /dev/null --device "$T/page" --chrony-sock "$T/vmc.sock" \\
	--chrony-cmd "$T/proxy.sock" --state-dir "$T/fullstate" --state-file "$T/run/state" \\
	>>"$T/vmclockd.log" 2>&1 &
pid=\$!
for _ in \$(seq 250); do [ -s "$T/fullstate/marker" ] && break; sleep 0.02; done
[ -s "$T/fullstate/marker" ] || { echo "no marker saved"; kill \$pid; exit 1; }
head -c 16384 /dev/zero >"$T/fullstate/filler" 2>/dev/null
sleep 0.3
kill -USR1 $SIM_PID
for _ in \$(seq 500); do
	grep -q ' MESSAGE_ID=\($(msgid RECOVERED)\|$(msgid HANDOVER_FAILED)\) DISRUPTION_MARKER=2 ' \
		"$T/vmclockd.log" && break
	sleep 0.02
done
kill \$pid
wait \$pid
EOF
unshare -m bash "$T/enospc-i.sh" >"$T/enospc-i.out" 2>&1
rc=$?
sed 's/^/    /' "$T/enospc-i.out"
grep -h 'dfreq\|space\|chronyd reset' "$T/vmclockd.log" | sed 's/^/    /'
check "i: vmclockd ran on the full state directory (rc=$rc)" test "$rc" -eq 0
# The retries are one warning, the outcome a field of the RECOVERED record;
# chronyd's side is the proxy's log.
errnos ENOSPC
check "i: the dfreq not sent, said once (DFREQ_RECORD=failed ERRNO=$ENOSPC)" \
	test "$(n_events - DFREQ_RECORD=failed ERRNO=$ENOSPC)" -eq 1
check "i: then given up (DFREQ=unrecorded), at error priority" \
	eval 'has_event RECOVERED DISRUPTION_MARKER=2 DFREQ=unrecorded &&
		[ "$(grep -c "^vmclockd: error: " "$T/vmclockd.log")" -eq 1 ]'
check "i: no dfreq reached chronyd" test "$(dfreqs_forwarded)" -eq 0
check "i: chronyd still reset" grep -q '^forwarded 66 ' "$T/proxy-i.log"
check "i: and stepped (a doffset)" grep -q '^forwarded 71 ' "$T/proxy-i.log"
check "i: the handover done" recovered 2
kill "$SIM_PID" "$PROXY_PID" 2>/dev/null
wait "$SIM_PID" "$PROXY_PID" 2>/dev/null
cp "$T/vmclockd.log" "$T/vmclockd-$CASE.log"

# (j) Reset sources refused through more than a round of tries (six), for
# two vmclockd lives: 20 refusals, the 21st reset goes through.
CASE=j
restart_chronyd
start_proxy --refuse 66:20
# No step: the clock stays within chronyd's bound for a while, so only the
# handover's state can keep chronyd's old selection from counting as a resync.
start_sim --interval-ms 100 --migrate-freq-ppb 30000 --migrate-step-ns 0
start_vmclockd --chrony-cmd "$T/proxy.sock" --debug
wait_for 10 test -s "$T/state/marker" || fail "j: vmclockd started"
check "j: synchronised before the migration" "$CTL" -d "$T/page" -s "$T/run/state" waitsync --timeout 60
CASE_F0=$(chrony_freq)
"$OBSERVE" -s "$T/chronyd.sock" -i 10 -t 90 -k >"$T/observe-j.txt" 2>&1 &
OBS_PID=$!
PIDS="$PIDS $OBS_PID"
t_mig=$(date +%s.%N)
kill -USR1 "$SIM_PID"
wait_for 5 eval 'detections | grep -q " OLD_MARKER=1 NEW_MARKER=2"' || fail "j: migration seen"
# The published sync state, samples fed and the saved marker, every 0.1 s
# until the handover is done.
j_poll() {
	printf '%s %s %s\n' \
		"$("$CTL" -d "$T/page" -s "$T/run/state" daemon --json | sed -n 's/.*"sync_state": *"\([a-z]*\)".*/\1/p')" \
		"$("$CTL" -d "$T/page" -s "$T/run/state" daemon --json | sed -n 's/.*"samples_fed": *\([0-9]*\).*/\1/p')" \
		"$(sed -n 's/^marker //p' "$T/state/marker")" >>"$T/j-states.txt"
}
: >"$T/j-states.txt"
for _ in $(seq 100); do
	j_poll
	has_event HANDOVER_FAILED DISRUPTION_MARKER=2 && break
	sleep 0.1
done
for _ in $(seq 20); do j_poll; sleep 0.1; done
check "j: a round of resets refused" test "$(grep -c '^refused 66 ' "$T/proxy-j.log")" -ge 6
check "j: said once while failing, with its fields" \
	test "$(n_events HANDOVER_FAILED DISRUPTION_MARKER=2 'FAILED_STEP=reset sources')" -eq 1
check "j: the marker record keeps the old marker" test "$(tail -1 "$T/j-states.txt" | cut -d' ' -f3)" -eq 1
fed0=$(head -1 "$T/j-states.txt" | cut -d' ' -f2)
fed1=$(tail -1 "$T/j-states.txt" | cut -d' ' -f2)
check "j: samples fed while the handover waits ($fed0 -> $fed1)" test "$fed1" -gt "$fed0"
# vmclockd restarted while the handover fails: it hands the marker over again.
# The first life's log is set aside: its alert states the migration's change,
# the restart's the change from the period chronyd has learned (recorded).
kill "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID"
check "j: the marker record still says marker 1 after the stop" \
	grep -qx 'marker 1' "$T/state/marker"
mv "$T/vmclockd.log" "$T/vmclockd-j1.log"
start_vmclockd --chrony-cmd "$T/proxy.sock"
for _ in $(seq 300); do
	j_poll
	recovered 2 && break
	sleep 0.1
done
echo "j: published sync state and saved marker, polled every 0.1 s:"
cut -d' ' -f1,3 "$T/j-states.txt" | uniq -c | sed 's/^/    /'
grep -h 'could not hand\|handed over to chronyd after\|chronyd reset' "$T/vmclockd.log" | sed 's/^/    /'
check "j: handed over once the refusals stopped" recovered 2
check "j: all 20 refused first" test "$(grep -c '^refused 66 ' "$T/proxy-j.log")" -eq 20
check "j: said at most once by the restarted vmclockd" \
	test "$(n_events HANDOVER_FAILED DISRUPTION_MARKER=2)" -le 1
# Every poll but the last was made before the handover completed.
check "j: never synchronized before the handover completed" \
	sh -c "! sed '\$d' '$T/j-states.txt' | grep -q '^synchronized '"
check "j: disrupted meanwhile" sh -c "sed '\$d' '$T/j-states.txt' | grep -q '^disrupted '"
sleep 1
kill "$OBS_PID" 2>/dev/null
wait "$OBS_PID" 2>/dev/null
# The first life's alert: the restart's states the change from the period
# chronyd had learned by then.
want=$(awk -v a="$CASE_F0" -v w="$(composed_change "$T/vmclockd-j1.log")" 'BEGIN { printf "%.6f", a + w }')
read -r lo hi <<<"$(freq_range "$T/observe-j.txt" "$t_mig")"
f_end=$(chrony_freq)
echo "j: frequency $CASE_F0 before the migration, want $want; seen $lo to $hi, $f_end at the end;" \
	"dfreq applied: [$(echo $(applied_dfreqs))]"
check "j: chronyd's frequency took the change once ($lo to $hi ppm, want $want, $f_end at the end)" \
	holds "$lo > $want - 3 && $hi < $CASE_F0 + 3 && $f_end - $want < 1 && $want - $f_end < 1"
check "j: synchronised again" "$CTL" -d "$T/page" -s "$T/run/state" waitsync --timeout 60
check "j: the marker record says marker 2" grep -qx 'marker 2' "$T/state/marker"
end_case

# (k) The dfreq refused through three rounds of tries (18): between rounds
# samples are fed and chronyd learns the new frequency from them; the round
# that succeeds composes its dfreq onto the frequency chronyd has then, not
# the one it had before the migration.  chronyd's frequency, read every
# 10 ms, never goes past the migration's change.
CASE=k
restart_chronyd
run_case k --refuse 31:18
"$OBSERVE" -s "$T/chronyd.sock" -i 10 -t 40 -k >"$T/observe-k.txt" 2>&1 &
OBS_PID=$!
PIDS="$PIDS $OBS_PID"
t_mig=$(date +%s.%N)
check "k: handover done" wait_for 35 recovered 2
sleep 2
kill "$OBS_PID" 2>/dev/null
wait "$OBS_PID" 2>/dev/null
want=$(awk -v a="$CASE_F0" -v w="$(composed_change)" 'BEGIN { printf "%.6f", a + w }')
read -r lo hi <<<"$(freq_range "$T/observe-k.txt" "$t_mig")"
f_end=$(chrony_freq)
echo "k: frequency $CASE_F0 before the migration, want $want after it; seen $lo to $hi," \
	"$f_end at the end; dfreq applied: [$(echo $(applied_dfreqs))]," \
	"$(grep -c '^refused 31 ' "$T/proxy-k.log") refused"
grep -h 'moved to\|could not hand\|chronyd reset' "$T/vmclockd.log" | sed 's/^/    /'
check "k: a round of dfreqs refused, samples fed while waiting" \
	test "$(grep -c '^refused 31 ' "$T/proxy-k.log")" -ge 6
check "k: chronyd learned the new frequency from the samples meanwhile (within 3 ppm)" \
	sh -c "awk -v f=\"\$0\" -v w='$want' '\$1 + 0 >= f && NF > 4 && (\$4 - w < 3 && w - \$4 < 3) { ok = 1 } END { exit !ok }' '$T/observe-k.txt'" "$t_mig"
check "k: chronyd's frequency never went past the change ($lo to $hi ppm, want $want)" \
	holds "$lo > $want - 3 && $hi < $CASE_F0 + 3"
check "k: and ends at it ($f_end, want $want)" holds "$f_end - $want < 1 && $want - $f_end < 1"
end_case

# (l) The state directory full when the migration comes (the tmpfs of (i)):
# the dfreq cannot be recorded and is given up, the handled marker cannot be
# saved; chronyd learns the new frequency from the samples.  Space comes
# back: a retry writes the marker.  Then vmclockd is killed (SIGKILL) and
# started again: it must not hand the same migration over a second time,
# which would put its dfreq onto the frequency chronyd has learned.
CASE=l
restart_chronyd
start_proxy
: >"$T/vmclockd-l2.log"
start_sim --interval-ms 100 --migrate-freq-ppb 30000
mkdir -p "$T/fullstate"
CASE_F0=$(chrony_freq)
cat >"$T/enospc-l.sh" <<EOF
set -u
mount -t tmpfs -o size=8k,mode=0700 tmpfs "$T/fullstate" || exit 2
run() {
	"$VMCLOCKD" --foreground --config /dev/null --device "$T/page" --chrony-sock "$T/vmc.sock" \\
		--chrony-cmd "$T/proxy.sock" --state-dir "$T/fullstate" --state-file "$T/run/state" \\
		>>"\$1" 2>&1 &
	pid=\$!
}
run "$T/vmclockd.log"
for _ in \$(seq 250); do [ -s "$T/fullstate/marker" ] && break; sleep 0.02; done
[ -s "$T/fullstate/marker" ] || { echo "no marker saved"; kill \$pid; exit 1; }
head -c 16384 /dev/zero >"$T/fullstate/filler" 2>/dev/null
sleep 0.3
kill -USR1 $SIM_PID
for _ in \$(seq 500); do
	grep -q ' MESSAGE_ID=$(msgid RECOVERED) DISRUPTION_MARKER=2 ' "$T/vmclockd.log" && break
	sleep 0.02
done
cp "$T/fullstate/marker" "$T/l-marker-full.txt"
rm -f "$T/fullstate/filler"
for _ in \$(seq 100); do grep -qx 'marker 2' "$T/fullstate/marker" && break; sleep 0.05; done
cp "$T/fullstate/marker" "$T/l-marker-back.txt"
# chronyd learns the new frequency from the samples (within 3 ppm; 15 s at most).
for _ in \$(seq 150); do
	"$OBSERVE" -s "$T/chronyd.sock" --once --json | sed -n 's/.*"freq_ppm": *\([-0-9.e+]*\).*/\1/p' |
		awk -v a="$CASE_F0" '{ exit !(\$1 - a < -27 && \$1 - a > -33) }' && break
	sleep 0.1
done
kill -KILL \$pid
wait \$pid
run "$T/vmclockd-l2.log"
sleep 4
kill \$pid
wait \$pid
EOF
"$OBSERVE" -s "$T/chronyd.sock" -i 10 -t 40 -k >"$T/observe-l.txt" 2>&1 &
OBS_PID=$!
PIDS="$PIDS $OBS_PID"
t_mig=$(date +%s.%N)
unshare -m bash "$T/enospc-l.sh" >"$T/enospc-l.out" 2>&1
rc=$?
kill "$OBS_PID" 2>/dev/null
wait "$OBS_PID" 2>/dev/null
sed 's/^/    /' "$T/enospc-l.out"
want=$(awk -v a="$CASE_F0" -v w="$(composed_change)" 'BEGIN { printf "%.6f", a + w }')
read -r lo hi <<<"$(freq_range "$T/observe-l.txt" "$t_mig")"
f_end=$(chrony_freq)
echo "l: marker file while full: $(tr '\n' ';' <"$T/l-marker-full.txt") after space came back:" \
	"$(tr '\n' ';' <"$T/l-marker-back.txt")"
echo "l: frequency $CASE_F0 before the migration, want $want; seen $lo to $hi, $f_end at the end;" \
	"dfreqs forwarded: $(dfreqs_forwarded)"
grep -h 'save\|dfreq\|chronyd reset\|disruption' "$T/vmclockd.log" "$T/vmclockd-l2.log" |
	grep -v 'handover: dfreq failed' | sed 's/^/    /'
check "l: both lives ran on the tmpfs (rc=$rc)" test "$rc" -eq 0
check "l: the handover done while the directory was full, and said unsaved" \
	has_event RECOVERED DISRUPTION_MARKER=2 STATE_SAVED=0
check "l: the marker file still said marker 1 then" grep -qx 'marker 1' "$T/l-marker-full.txt"
check "l: once space came back, a retry wrote marker 2" grep -qx 'marker 2' "$T/l-marker-back.txt"
check "l: and nothing in doubt" sh -c "! grep -q '^dfreq' '$T/l-marker-back.txt'"
check "l: the restarted vmclockd saw no disruption" \
	eval '[ "$(EVENTS_LOG=$T/vmclockd-l2.log n_events DISRUPTION)" -eq 0 ]' 
check "l: no dfreq reached chronyd (given up unrecorded, none after the restart)" \
	test "$(dfreqs_forwarded)" -eq 0
check "l: chronyd's frequency took the change once ($lo to $hi ppm, want $want, $f_end at the end)" \
	holds "$lo > $want - 3 && $hi < $CASE_F0 + 3 && $f_end - $want < 3 && $want - $f_end < 3"
kill "$SIM_PID" "$PROXY_PID" 2>/dev/null
wait "$SIM_PID" "$PROXY_PID" 2>/dev/null
cp "$T/vmclockd.log" "$T/vmclockd-$CASE.log"

finish
