#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-tools.sh - black-box tests of vmclockctl against pages written by
# vmclock-sim (an independent writer) and by hand (broken pages).
#
# The harness is tests/lib.sh (its check, its private directory $T).

. "$(dirname "$0")/lib.sh"
SIM_PID=

for prog in "$SIM" "$CTL"; do
	[ -x "$prog" ] || { fail "$prog not built"; finish; exit 1; }
done

# Monotonic-enough milliseconds for the timing checks.
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# run_sim PAGE [OPTIONS]: run vmclock-sim in the background and wait for
# its "start" line (the page is in place then).
run_sim() {
	page=$1
	shift
	stop_sim
	SIM_LOG=$T/sim.$$.$(now_ms).log
	: >"$SIM_LOG"
	"$SIM" "$page" "$@" >"$SIM_LOG" 2>&1 &
	SIM_PID=$!
	PIDS="$PIDS $SIM_PID"
	i=0
	while ! grep -q ' start ' "$SIM_LOG"; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 "$SIM_PID" 2>/dev/null; then
			echo "vmclock-sim did not start:"
			cat "$SIM_LOG"
			return 1
		fi
		sleep 0.01
	done
}

# json_field NAME < JSON: the value of a top-level scalar field.
json_field() {
	sed -n "s/.*\"$1\":\\(\"[^\"]*\"\\|[-0-9]*\\|null\\).*/\\1/p" | tr -d '"'
}

# ---- status --json on a full page -------------------------------------------
PAGE=$T/page
run_sim "$PAGE" --offset-ns 1234567 || exit 1

out=$("$CTL" -d "$PAGE" status --json)
rc=$?
check "status --json exits 0" [ $rc -eq 0 ]
missing=
for key in magic size version counter_id time_type seq_count disruption_marker flags \
	clock_status leap_second_smearing_hint tai_offset_sec leap_indicator \
	counter_period_shift counter_value counter_period_frac_sec \
	counter_period_esterror_rate_frac_sec counter_period_maxerror_rate_frac_sec \
	time_sec time_frac_sec time_esterror_nanosec time_maxerror_nanosec \
	vm_generation_counter; do
	case $out in
	*"\"$key\":"*) ;;
	*) missing="$missing $key" ;;
	esac
done
check "status --json has every ABI key${missing:+ (missing:$missing)}" [ -z "$missing" ]
check "status --json is one object on one line" \
	sh -c 'printf "%s\n" "$1" | grep -q "^{.*}\$" && [ $(printf "%s\n" "$1" | wc -l) -eq 1 ]' \
	sh "$out"
check "status --json: magic, counter, status" \
	sh -c 'case $1 in *"\"magic\":1263289174,"*"\"counter_id\":\"x86_tsc\""*"\"clock_status\":\"synchronized\""*) exit 0;; *"\"counter_id\":\"arm_vcnt\""*) exit 0;; esac; exit 1' \
	sh "$out"
check "status --json: flags array of names" \
	sh -c 'case $1 in *"\"flags\":[\"period_esterror_valid\",\"period_maxerror_valid\",\"time_esterror_valid\",\"time_maxerror_valid\",\"vm_gen_counter_present\"]"*) exit 0;; esac; exit 1' \
	sh "$out"
if command -v python3 >/dev/null 2>&1; then
	check "status --json parses as JSON" python3 -c 'import json,sys; json.loads(sys.argv[1])' "$out"
fi
out=$("$CTL" -d "$PAGE" status)
check "status (human) exits 0 and aligns labels" \
	sh -c 'printf "%s\n" "$1" | grep -q "^Disruption marker     : 1\$"' sh "$out"

# ---- time --json: offset accuracy -------------------------------------------
worst=0
sum=0
n=0
bad=0
while [ $n -lt 20 ]; do
	off=$("$CTL" -d "$PAGE" time --json | json_field offset_ns)
	if [ -z "$off" ]; then
		bad=1
		break
	fi
	err=$((off - 1234567))
	[ $err -lt 0 ] && err=$((-err))
	[ $err -gt $worst ] && worst=$err
	sum=$((sum + err))
	n=$((n + 1))
	sleep 0.02
done
echo "time --json: offset error vs injected 1234567 ns over $n readings:" \
	"mean $((sum / (n > 0 ? n : 1))) ns, worst $worst ns"
check "time --json offset_ns within 1000 ns of --offset-ns (worst $worst ns)" \
	[ $bad -eq 0 -a $worst -lt 1000 ]
out=$("$CTL" -d "$PAGE" time --json)
check "time --json has every key" sh -c '
	for k in sec nsec timescale utc_sec utc_nsec offset_ns esterror_ns maxerror_ns \
		clock_status disruption_marker; do
		case $1 in *"\"$k\":"*) ;; *) exit 1;; esac
	done' sh "$out"
check "time --json: timescale utc, errors from the page" sh -c '
	case $1 in *"\"timescale\":\"utc\""*"\"esterror_ns\":10"[0-9]*"\"maxerror_ns\":10"[0-9][0-9]*) exit 0;; esac
	exit 1' sh "$out"

# ---- watch ------------------------------------------------------------------
: >"$T/watch.out"
"$CTL" -d "$PAGE" watch --interval-ms 20 >"$T/watch.out" 2>"$T/watch.err" &
WATCH_PID=$!
i=0
while ! grep -q ' initial ' "$T/watch.out" && [ $i -lt 200 ]; do
	sleep 0.01
	i=$((i + 1))
done
check "watch prints the initial state" grep -q ' initial marker=1 gen=1 ' "$T/watch.out"
sleep 0.1
kill -USR1 "$SIM_PID"
i=0
while ! grep -q 'change marker=2' "$T/watch.out" && [ $i -lt 200 ]; do
	sleep 0.01
	i=$((i + 1))
done
check "watch prints a line after SIGUSR1 (migration)" grep -q ' change marker=2 gen=1 ' "$T/watch.out"
kill -USR2 "$SIM_PID"
i=0
while ! grep -q 'change marker=3' "$T/watch.out" && [ $i -lt 200 ]; do
	sleep 0.01
	i=$((i + 1))
done
check "watch prints a line after SIGUSR2 (restore)" grep -q ' change marker=3 gen=2 ' "$T/watch.out"
check "watch printed exactly three lines" [ "$(wc -l <"$T/watch.out")" -eq 3 ]
kill -TERM "$WATCH_PID"
wait "$WATCH_PID"
check "watch exits 0 on SIGTERM" [ $? -eq 0 ]
check "watch wrote nothing on stderr" [ ! -s "$T/watch.err" ]

"$CTL" -d "$PAGE" watch --json >"$T/watch.json" 2>&1 &
WATCH_PID=$!
sleep 0.3
kill -USR1 "$SIM_PID"
sleep 0.3
kill -INT "$WATCH_PID"
wait "$WATCH_PID"
check "watch --json exits 0 on SIGINT" [ $? -eq 0 ]
check "watch --json reports the changed marker" \
	grep -q '"event":"change","disruption_marker":4,.*"changed":\["disruption_marker"\]' \
	"$T/watch.json"

# The migration stepped the device clock by 2 ms.
off=$("$CTL" -d "$PAGE" time --json | json_field offset_ns)
check "time after two migrations: offset about 1234567 + 2 x 2000000 ns (got $off)" \
	[ -n "$off" -a "${off:-0}" -gt 5230000 -a "${off:-0}" -lt 5300000 ]

# ---- TAI page ---------------------------------------------------------------
run_sim "$PAGE" --tai || exit 1
before=$(date +%s)
out=$("$CTL" -d "$PAGE" time --json)
after=$(date +%s)
utc=$(printf '%s\n' "$out" | json_field utc_sec)
sec=$(printf '%s\n' "$out" | json_field sec)
check "TAI page: timescale tai" sh -c 'case $1 in *"\"timescale\":\"tai\""*) exit 0;; esac; exit 1' sh "$out"
check "TAI page: utc_sec equals realtime seconds ($utc vs $before..$after)" \
	[ -n "$utc" -a "${utc:-0}" -ge "$before" -a "${utc:-0}" -le "$after" ]
check "TAI page: sec = utc_sec + 37" [ -n "$sec" -a $((${sec:-0} - ${utc:-0})) -eq 37 ]
off=$(printf '%s\n' "$out" | json_field offset_ns)
off=${off#-}
check "TAI page: offset_ns near 0 (got $off)" [ -n "$off" -a "${off:-0}" -lt 1000 ]
out=$("$CTL" -d "$PAGE" status --json)
check "TAI page: status shows tai_offset_sec -37 and the flag" sh -c '
	case $1 in *"\"time_type\":\"tai\""*) ;; *) exit 1;; esac
	case $1 in *"\"tai_offset_sec\":-37,"*) ;; *) exit 1;; esac
	case $1 in *"\"tai_offset_valid\""*) exit 0;; esac; exit 1' sh "$out"
# TAI seconds read as a calendar date are no UTC date: labelled TAI, not Z.
line=$("$CTL" -d "$PAGE" status | grep '^Time  *:')
check "TAI page: status dates the page's time in TAI, not Z ($line)" sh -c '
	case $1 in *[0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]" TAI") exit 0;; esac; exit 1' sh "$line"

# ---- marker-only (Firecracker) page -----------------------------------------
run_sim "$PAGE" --marker-only || exit 1
out=$("$CTL" -d "$PAGE" status --json)
rc=$?
check "marker-only: status exits 0" [ $rc -eq 0 ]
check "marker-only: counter invalid, status unknown, two flags" sh -c '
	case $1 in *"\"counter_id\":\"invalid\""*"\"flags\":[\"vm_gen_counter_present\",\"notification_present\"],\"clock_status\":\"unknown\""*) exit 0;; esac
	exit 1' sh "$out"
"$CTL" -d "$PAGE" time --json >"$T/out" 2>"$T/err"
rc=$?
check "marker-only: time exits 3 (got $rc)" [ $rc -eq 3 ]
check "marker-only: time prints one line on stderr, nothing on stdout" \
	[ "$(wc -l <"$T/err")" -eq 1 -a ! -s "$T/out" ]
stop_sim

# ---- unusable pages ---------------------------------------------------------
# mkpage FILE MAGIC_BYTES SIZE_BYTES VERSION_BYTES SEQ_BYTES: a 4096-byte page
# whose first 16 bytes are given as printf escapes, the rest zero.
mkpage() {
	printf "$2$3$4\\001\\000$5" >"$1"
	dd if=/dev/zero bs=1 count=4080 2>/dev/null >>"$1"
}
MAGIC='\126\103\114\113'
SIZE4K='\000\020\000\000'

# expect_unusable DESCRIPTION PATTERN ARGS...: exit 1, one stderr line
# matching PATTERN, empty stdout, within about a second.
expect_unusable() {
	desc=$1
	pattern=$2
	shift 2
	t0=$(now_ms)
	"$CTL" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	t1=$(now_ms)
	if [ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && [ ! -s "$T/out" ] &&
	   grep -q "^vmclockctl: .*$pattern" "$T/err" && [ $((t1 - t0)) -lt 1500 ]; then
		pass "$desc: $(cat "$T/err")"
	else
		fail "$desc: exit $rc after $((t1 - t0)) ms, stderr: $(cat "$T/err")"
	fi
}

mkpage "$T/badmagic" '\170\126\064\022' "$SIZE4K" '\001\000' '\000\000\000\000'
expect_unusable "wrong magic" "bad magic 0x12345678\$" -d "$T/badmagic" status
expect_unusable "wrong magic (time)" "bad magic 0x12345678\$" -d "$T/badmagic" time

head -c 50 /dev/zero >"$T/short"
expect_unusable "50-byte file" "page too small" -d "$T/short" status

mkpage "$T/v2" "$MAGIC" "$SIZE4K" '\002\000' '\000\000\000\000'
expect_unusable "version 2" "unknown version 2\$" -d "$T/v2" status

mkpage "$T/odd" "$MAGIC" "$SIZE4K" '\001\000' '\001\000\000\000'
expect_unusable "seq_count stuck odd" "page never stable (seq_count odd or changing)\$" \
	-d "$T/odd" status
expect_unusable "seq_count stuck odd (watch)" "page never stable" -d "$T/odd" watch

mkpage "$T/bigsize" "$MAGIC" '\000\000\001\000' '\001\000' '\000\000\000\000'
expect_unusable "size field beyond the file" "page too small" -d "$T/bigsize" status

expect_unusable "missing path" "no such file\$" -d "$T/does-not-exist" status
expect_unusable "directory path" "$T" -d "$T" status

# A valid hand-made page decodes (the writer-independent layout check).
mkpage "$T/good" "$MAGIC" "$SIZE4K" '\001\000' '\002\000\000\000'
out=$("$CTL" -d "$T/good" status --json)
check "hand-made page: x86_tsc, utc, seq_count 2" sh -c '
	case $1 in *"\"counter_id\":\"x86_tsc\",\"time_type\":\"utc\",\"seq_count\":2,"*) exit 0;; esac
	exit 1' sh "$out"

# ---- vmclock-sim --counter: another architecture's counter ----------------
# The page an arm64 TCG guest reads (tests/test-guest-arm64.sh): arm_vcnt, at
# 62.5 MHz from this host's CLOCK_MONOTONIC.  Its period is 16 ns and its
# counter_value is CLOCK_MONOTONIC / 16 ns at the page's last update.
if command -v python3 >/dev/null 2>&1; then
	run_sim "$T/arm" --counter arm_vcnt:62500000 || exit 1
	out=$("$CTL" -d "$T/arm" status --json)
	check "vmclock-sim --counter arm_vcnt:62500000: arm_vcnt, a 16 ns period, the count of CLOCK_MONOTONIC" \
		python3 -c '
import json, sys, time
j = json.loads(sys.argv[1])
period = j["counter_period_frac_sec"] / 2.0 ** (64 + j["counter_period_shift"])
lag = time.monotonic_ns() - j["counter_value"] * 16
print("counter_id %s, period %.9f ns, counter_value %.3f s behind CLOCK_MONOTONIC"
      % (j["counter_id"], period * 1e9, lag * 1e-9))
sys.exit(0 if j["counter_id"] == "arm_vcnt" and abs(period / 16e-9 - 1) < 1e-5
         and 0 <= lag < 10**9 else 1)' "$out"
	stop_sim
fi
for bad in arm_vcnt arm_vcnt:0 tsc:1000 x86_tsc:ten; do
	"$SIM" "$T/arm" --counter "$bad" >"$T/out" 2>&1
	check "vmclock-sim --counter $bad is a usage error" [ $? -eq 2 ]
done

# ---- usage errors -----------------------------------------------------------
expect_usage() {
	desc=$1
	shift
	"$CTL" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc -eq 2 ] && [ -s "$T/err" ] && [ ! -s "$T/out" ]; then
		pass "usage error exits 2: $desc"
	else
		fail "usage error exits 2: $desc (exit $rc)"
	fi
}
expect_usage "no command"
expect_usage "unknown command" -d "$T/good" frobnicate
expect_usage "unknown option" --bogus status
expect_usage "unknown subcommand option" -d "$T/good" status --bogus
expect_usage "-d without argument" -d
expect_usage "bad --interval-ms" -d "$T/good" watch --interval-ms 0
expect_usage "extra argument" -d "$T/good" time now
"$CTL" --help >"$T/out" 2>&1
check "--help exits 0" [ $? -eq 0 ]

finish
