# SPDX-License-Identifier: BSD-2-Clause
#
# lib.sh - shared harness of the system tests: real chronyd, vmclock-sim,
# vmclockd, each in a private 0700 directory, all stopped on exit.
#
# No test may touch the machine's clock or its kernel NTP state: every time
# daemon runs under setpriv without CAP_SYS_TIME, and chronyd with -x.
# A missing peer skips the test (exit 77) with a reason; under CI (CI=true)
# it is a failure instead, since .ci/run installs every peer.

set -u
# A test that sets JOURNAL_NS=1 before sourcing this file runs in a private
# mount namespace (as root; otherwise journal_start skips it), where
# journal_start puts journald's native socket.
if [ "${JOURNAL_NS:-}" = 1 ] && [ -z "${VMCLOCKD_TEST_NS:-}" ]; then
	if [ "$(id -u)" -eq 0 ] && unshare -m --propagation private true 2>/dev/null; then
		VMCLOCKD_TEST_NS=1 exec unshare -m --propagation private bash "$0" "$@"
	fi
	VMCLOCKD_TEST_NS=none
fi
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/.." && pwd)}
top_srcdir=${top_srcdir:-$top_builddir}
SIM=$top_builddir/tools/vmclock-sim
CTL=$top_builddir/tools/vmclockctl
VMCLOCKD=$top_builddir/daemon/vmclockd
OBSERVE=$top_builddir/tests/chrony-observe
TIMELINE=$top_builddir/tests/verdict-timeline
CHRONYD=${CHRONYD:-/usr/sbin/chronyd}
CHRONYC=${CHRONYC:-/usr/bin/chronyc}
NOSYSTIME="setpriv --inh-caps=-sys_time --bounding-set=-sys_time"

T=$(mktemp -d /tmp/vmclockd-test.XXXXXX)
chmod 700 "$T"
PASS=0
FAIL=0
PIDS=""

pass() { PASS=$((PASS + 1)); echo "PASS: $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL: $*"; }
# check DESCRIPTION COMMAND...: one assertion, the command's success.  The
# only check of the system tests; a failure names the command.
check() {
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc [$*]"; fi
}
# holds CONDITION: an awk condition on numbers, e.g. holds "$a - $b < 1e-6".
holds() {
	awk "BEGIN { exit !($1) }" </dev/null
}
finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

cleanup() {
	local p
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	if [ "$FAIL" -ne 0 ] || [ -n "${KEEP_TEST_DIR:-}" ]; then
		for f in "$T"/*.log; do
			[ -f "$f" ] || continue
			echo "---- $f (tail)"
			tail -n 25 "$f"
		done
	fi
	[ -n "${KEEP_TEST_DIR:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

skip_or_fail() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL: $* (CI installs every peer: a skip here is a failure)"
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}

# CHRONYD and CHRONYC name another chrony to test against (CI: the newest,
# built by .ci/chrony-newest); the log says which one ran.
require_chronyd() {
	[ -x "$CHRONYD" ] && [ -x "$CHRONYC" ] || skip_or_fail "chronyd/chronyc not installed ($CHRONYD, $CHRONYC)"
	echo "# chronyd: $CHRONYD: $("$CHRONYD" --version 2>&1 | head -n 1)"
}

# wait_for SECONDS COMMAND...: poll every 20 ms until COMMAND succeeds.
wait_for() {
	local deadline=$(($(date +%s%N) + $1 * 1000000000))
	shift
	while ! "$@" 2>/dev/null; do
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.02
	done
}

# chrony.conf for the tests; extra lines as arguments.
write_chrony_conf() {
	{
		echo "refclock SOCK $T/vmc.sock refid VMC ${REFCLOCK_OPTS:-poll -3 filter 1 precision 1e-8}"
		echo "bindcmdaddress $T/chronyd.sock"
		echo "cmdport 0"
		echo "port 0"
		echo "pidfile $T/chronyd.pid"
		echo "logdir $T"
		for l in "$@"; do echo "$l"; done
	} >"$T/chrony.conf"
}

start_chronyd() {
	rm -f "$T/chronyd.sock"
	$NOSYSTIME "$CHRONYD" -x -d -u root -f "$T/chrony.conf" >>"$T/chronyd.log" 2>&1 &
	CHRONYD_PID=$!
	PIDS="$PIDS $CHRONYD_PID"
	wait_for 10 test -S "$T/chronyd.sock"
}

stop_chronyd() {
	kill "$CHRONYD_PID" 2>/dev/null
	wait "$CHRONYD_PID" 2>/dev/null
}

# start_sim ARGS...: a simulated page at $T/page.
start_sim() {
	"$SIM" "$T/page" "$@" >>"$T/sim.log" 2>&1 &
	SIM_PID=$!
	PIDS="$PIDS $SIM_PID"
	wait_for 5 test -s "$T/page"
}

stop_sim() {
	if [ -n "${SIM_PID:-}" ]; then
		kill "$SIM_PID" 2>/dev/null
		wait "$SIM_PID" 2>/dev/null
		SIM_PID=
	fi
}

# proxy_case NAME PROXY-RULES...: a fresh case NAME ($CASE): no page, state
# or vmclockd log, and tests/chrony-proxy.py with the rules in front of
# chronyd at $T/proxy.sock ($PROXY_PID), logging to $T/proxy-NAME.log.
proxy_case() {
	CASE=$1
	shift
	rm -rf "$T/page" "$T/state" "$T/proxy.sock" "$T/proxy-up.sock"
	: >"$T/vmclockd.log"
	python3 "$top_srcdir/tests/chrony-proxy.py" "$T/proxy.sock" "$T/proxy-up.sock" \
		"$T/chronyd.sock" "$T/proxy-$CASE.log" "$@" &
	PROXY_PID=$!
	PIDS="$PIDS $PROXY_PID"
	wait_for 5 test -S "$T/proxy.sock" || fail "$CASE: proxy started"
}

# start_vmclockd ARGS...: against $T/page, chronyd's sockets in $T.
start_vmclockd() {
	"$VMCLOCKD" --foreground --config /dev/null --device "$T/page" \
		--chrony-sock "$T/vmc.sock" --chrony-cmd "$T/chronyd.sock" \
		--state-dir "$T/state" --state-file "$T/run/state" "$@" >>"$T/vmclockd.log" 2>&1 &
	VMCLOCKD_PID=$!
	PIDS="$PIDS $VMCLOCKD_PID"
}

chronyc_cmd() {
	"$CHRONYC" -n -h "${CHRONY_CMD_SOCK:-$T/chronyd.sock}" "$@"
}

# True once chronyd has selected the VMC refclock.
vmc_selected() {
	chronyc_cmd sources 2>/dev/null | grep -q '^#\* VMC'
}

# Number of samples chronyd holds for VMC (sourcestats NP).
vmc_np() {
	chronyc_cmd -c sourcestats 2>/dev/null | awk -F, '$1 == "VMC" { print $2 }'
}

# Seconds since chronyd's last VMC sample (sources LastRx), empty if none.
vmc_last_rx() {
	chronyc_cmd -c sources 2>/dev/null | awk -F, '$3 == "VMC" { print $7 }'
}

# chronyd's current correction (seconds; > 0: system clock behind), read
# over the command socket with the round trip timed.
chrony_correction() {
	"$OBSERVE" -s "$T/chronyd.sock" --once --json |
		sed -n 's/.*"current_correction": *\([-0-9.e+]*\).*/\1/p'
}

# chronyd's frequency (ppm), from its tracking report over the command socket.
chrony_freq() {
	"$OBSERVE" -s "$T/chronyd.sock" --once --json |
		sed -n 's/.*"freq_ppm": *\([-0-9.e+]*\).*/\1/p'
}

# abs_le A B: |A| <= B, floating point.
abs_le() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a < 0) a = -a; exit !(a <= b) }'
}

# record_migrations STATE N GAP SLACK: N migrations GAP seconds apart, while
# the verdict read from STATE (tests/verdict-timeline, into
# $T/timeline.txt) and chronyd's tracking every 10 ms (into
# $T/observe.txt) are recorded for N * GAP + SLACK seconds.
record_migrations() {
	local state=$1 n=$2 gap=$3 slack=$4 seconds tl ob
	seconds=$(awk -v n="$n" -v g="$gap" -v s="$slack" 'BEGIN { print int(n * g + s) }')
	"$TIMELINE" -d "$T/page" -s "$state" -t "$seconds" >"$T/timeline.txt" 2>&1 &
	tl=$!
	"$OBSERVE" -s "$T/chronyd.sock" -i 10 -t "$seconds" -k >"$T/observe.txt" 2>&1 &
	ob=$!
	sleep 1
	for _ in $(seq "$n"); do
		kill -USR1 "$SIM_PID"
		sleep "$gap"
	done
	wait "$tl" "$ob"
}

# freq_change_exact VMCLOCKD_LOG PAGE_LOG OLD NEW [P0_FRAC P0_SHIFT]: the
# FREQ_CHANGE_PPM of vmclockd's DISRUPTION record (its MESSAGE_ID, with
# OLD_MARKER=OLD NEW_MARKER=NEW) is, to the
# field's last digit (1e-6 ppm), the exact change between two pages'
# periods, (P1 / P0 - 1) * 1e6 with P = frac / 2^(64 + shift): P1 the
# period it logged with the field, which must be a page the simulator
# published under NEW (vmclock-sim --page-log PAGE_LOG), and P0 either the
# one given (a saved period; it must be a page published under OLD) or one
# of the last 10 pages published under OLD (the daemon's last tick before
# the migration read one of them).  Prints what it compared.
freq_change_exact() {
	DISRUPTION_ID=$(msgid DISRUPTION) python3 - "$@" <<'PYEOF'
import os, re, sys
from fractions import Fraction
log, pagelog, old, new = sys.argv[1:5]
fixed = tuple(int(x) for x in sys.argv[5:7]) if len(sys.argv) > 6 else None
line = [l for l in open(log) if ' MESSAGE_ID=%s ' % os.environ['DISRUPTION_ID'] in l
        and ' OLD_MARKER=%s ' % old in l and ' NEW_MARKER=%s ' % new in l]
if not line:
    print('  no disruption %s -> %s logged' % (old, new)); sys.exit(1)
f = dict(kv.split('=', 1) for kv in line[0].split() if re.match(r'[A-Z_]+=', kv))
logged = f['FREQ_CHANGE_PPM']
p1 = (int(f['COUNTER_PERIOD_FRAC_SEC']), int(f['COUNTER_PERIOD_SHIFT']))
pages = []
for l in open(pagelog):
    m = re.search(r' page seq=(\d+) marker=(\d+) period_frac=(\d+) period_shift=(\d+)', l)
    if m:
        pages.append((m.group(2), (int(m.group(3)), int(m.group(4)))))
olds = [p for m, p in pages if m == old]
if p1 not in [p for m, p in pages if m == new]:
    print('  P1 %d/%d is no page the simulator published under marker %s' % (p1 + (new,)))
    sys.exit(1)
if fixed is not None:
    if fixed not in olds:
        print('  P0 %d/%d is no page the simulator published under marker %s' % (fixed + (old,)))
        sys.exit(1)
    cands = [fixed]
else:
    cands = olds[-10:]
def ppm(p0, p1):
    return (Fraction(p1[0] * 2**p0[1], p0[0] * 2**p1[1]) - 1) * 10**6
for i, p0 in enumerate(reversed(cands)):
    exact = ppm(p0, p1)
    if abs(exact - Fraction(logged)) <= Fraction(1, 10**6):
        print('  FREQ_CHANGE_PPM=%s; pages: P0 %d/%d (%s), P1 %d/%d: exactly %.9f ppm'
              % (logged, p0[0], p0[1], 'given' if fixed else '%d before the last under marker %s'
                 % (len(olds) - 1 - olds.index(p0), old), p1[0], p1[1], float(exact)))
        sys.exit(0)
print('  FREQ_CHANGE_PPM=%s matches no page: P1 %d/%d, candidates give %s' % (logged, p1[0], p1[1],
      ' '.join('%.6f' % float(ppm(p0, p1)) for p0 in cands)))
sys.exit(1)
PYEOF
}

# ---- structured facts: what the tests assert on, never the log's wording
# state_field KEY [STATE]: KEY of vmclockd's published state as
# `vmclockctl daemon --json` gives it (one line; withheld.REASON for a
# count: every key is unique in the object), "null" for null, empty when
# the state cannot be read.
state_field() {
	"$CTL" -d "$T/page" -s "${2:-$T/run/state}" daemon --json 2>/dev/null |
		sed -n "s/.*\"${1##*.}\": *\"\{0,1\}\([^\",}]*\).*/\1/p"
}
# handled MARKER [STATE]: the published state says vmclockd handled the
# disruption to MARKER (chronyd took the handover, or none is configured).
handled() {
	[ "$(state_field disruption_marker "${2:-$T/run/state}")" = "$1" ]
}
# msgid NAME: daemon/log.h's LOG_MSGID_NAME.
msgid() {
	sed -n "s/^#define LOG_MSGID_$1 *\"\([0-9a-f]*\)\".*/\1/p" "$top_srcdir/daemon/log.h"
}
# events NAME [FIELD=VALUE...]: the lines of vmclockd's log ($EVENTS_LOG,
# default $T/vmclockd.log: standard error) with NAME's MESSAGE_ID (any line
# for NAME "-") and every FIELD=VALUE given, VALUE a basic regular
# expression (vmclockd(8), LOGGING: on standard error the identifier and the
# fields follow the text).
events() {
	local id=. lines f
	if [ "$1" != - ]; then
		id=$(msgid "$1")
		[ -n "$id" ] || { echo "no LOG_MSGID_$1 in daemon/log.h" >&2; return 2; }
		id=" MESSAGE_ID=$id\( \|\$\)"
	fi
	shift
	lines=$(grep -- "$id" "${EVENTS_LOG:-$T/vmclockd.log}")
	for f in "$@"; do
		lines=$(grep -- " $f\( \|\$\)" <<<"$lines")
	done
	[ -n "$lines" ] && printf '%s\n' "$lines"
}
# n_events NAME [FIELD=VALUE...]: how many; has_event: at least one.
n_events() {
	local lines
	lines=$(events "$@")
	if [ -n "$lines" ]; then wc -l <<<"$lines"; else echo 0; fi
}
has_event() {
	[ "$(n_events "$@")" -gt 0 ]
}
# errnos NAME...: sets each shell variable NAME (ENOENT, ELOOP, ...) to its
# errno value on this machine, as the log's ERRNO= fields give it.
errnos() {
	eval "$(perl -MPOSIX -e 'no strict "refs"; print "$_=", &{"POSIX::$_"}(), "\n" for @ARGV' "$@")"
}
# n_events_since LINE NAME [FIELD=VALUE...]: n_events among vmclockd.log's
# lines after LINE (a count of lines taken earlier); has_event_since.
n_events_since() {
	local mark=$1
	shift
	tail -n +$((mark + 1)) "$T/vmclockd.log" >"$T/since.log"
	EVENTS_LOG=$T/since.log n_events "$@"
}
has_event_since() {
	[ "$(n_events_since "$@")" -gt 0 ]
}
# event_field NAME KEY [FIELD=VALUE...]: KEY's value in the last such line
# (a value without white space).
event_field() {
	local name=$1 key=$2
	shift 2
	events "$name" "$@" | tail -n 1 | sed -n "s/.* $key=\([^ ]*\).*/\1/p"
}

# ---- the journal, captured for real (JOURNAL_NS=1)
# journal_start: in this test's private mount namespace a tmpfs goes on
# /run/systemd/journal and tests/capture-dgram.py binds journald's native
# socket there; every datagram is appended to $J, each followed by "--".
# MSGID[NAME] is daemon/log.h's LOG_MSGID_NAME.  vmclockd logs there when its
# JOURNAL_STREAM names its stderr (start_vmclockd_journal).
JDIR=/run/systemd/journal
journal_start() {
	local d
	[ "${VMCLOCKD_TEST_NS:-}" = 1 ] ||
		skip_or_fail "needs root and unshare(1) for a private mount namespace"
	JCREATED=""
	for d in /run/systemd $JDIR; do
		[ -d "$d" ] || JCREATED="$d $JCREATED"
	done
	if ! mkdir -p "$JDIR" || ! mount -t tmpfs -o mode=0755 tmpfs "$JDIR"; then
		skip_or_fail "cannot mount a tmpfs on $JDIR"
	fi
	trap 'cleanup; journal_unmount' EXIT
	J=$T/journal.txt
	: >"$J"
	python3 "$top_srcdir/tests/capture-dgram.py" "$JDIR/socket" "$J" &
	CAPTURE_PID=$!
	PIDS="$PIDS $CAPTURE_PID"
	wait_for 5 test -S "$JDIR/socket" || fail "capture socket bound"
	declare -gA MSGID
	while read -r name id; do
		MSGID[$name]=$id
	done < <(sed -n 's/^#define LOG_MSGID_\([A-Z_]*\) *"\([0-9a-f]*\)".*/\1 \2/p' \
		"$top_srcdir/daemon/log.h")
}
journal_unmount() {
	local d
	umount "$JDIR" 2>/dev/null
	for d in $JCREATED; do rmdir "$d" 2>/dev/null; done
}
# start_vmclockd_journal ARGS...: start_vmclockd, logging to the journal.
start_vmclockd_journal() {
	: >>"$T/vmclockd.log"
	JOURNAL_STREAM=$(stat -c %d:%i "$T/vmclockd.log") start_vmclockd "$@"
}
# dgram N NAME: the Nth datagram carrying MESSAGE_ID=MSGID[NAME].
dgram() {
	awk -v id="MESSAGE_ID=${MSGID[$2]}" -v n="$1" '
		$0 == "--" {
			if (hit && ++k == n) { printf "%s", buf; exit }
			buf = ""; hit = 0; next
		}
		{ buf = buf $0 "\n"; if ($0 == id) hit = 1 }' "$J"
}
# n_dgrams NAME: how many datagrams carry MESSAGE_ID=MSGID[NAME].
n_dgrams() {
	grep -cx "MESSAGE_ID=${MSGID[$1]}" "$J"
}
# dgram_fields MATCH KEY...: for each datagram with a line MATCH (exactly),
# one line with the values of the KEYs, "-" for a key it lacks.
dgram_fields() {
	local match=$1
	shift
	awk -v match_="$match" -v keys="$*" '
		BEGIN { n = split(keys, k, " ") }
		$0 == "--" {
			if (hit) {
				line = ""
				for (i = 1; i <= n; i++)
					line = line (i > 1 ? " " : "") ((k[i] in v) ? v[k[i]] : "-")
				print line
			}
			hit = 0; delete v; next
		}
		{
			if ($0 == match_) hit = 1
			eq = index($0, "=")
			if (eq && !(substr($0, 1, eq - 1) in v)) v[substr($0, 1, eq - 1)] = substr($0, eq + 1)
		}' "$J"
}
# field TEXT KEY: the value of KEY= in a datagram's TEXT.
field() {
	sed -n "s/^$2=//p" <<<"$1" | head -n 1
}
