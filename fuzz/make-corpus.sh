#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# make-corpus.sh - regenerate the seed corpus in fuzz/corpus/ from the real
# programs: pages copied from running vmclock-sim instances, replies received
# from a real chronyd, the published state of a running vmclockd fed by the
# simulator and polling that chronyd.  Run from a built tree:
#   top_builddir=. fuzz/make-corpus.sh
# Nothing touches the machine's clock: chronyd runs with -x and without
# CAP_SYS_TIME, as in the system tests.  Seeds are small and committed; run
# this again only when a format changes.
set -euo pipefail
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
SIM=$top_builddir/tools/vmclock-sim
VMCLOCKD=$top_builddir/daemon/vmclockd
CHRONYD=${CHRONYD:-/usr/sbin/chronyd}
OUT=$top_srcdir/fuzz/corpus
NOSYSTIME="setpriv --inh-caps=-sys_time --bounding-set=-sys_time"

T=$(mktemp -d /tmp/vmclock-corpus.XXXXXX)
PIDS=""
cleanup() {
	local p
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$OUT"/fuzz_page "$OUT"/fuzz_config "$OUT"/fuzz_chrony_reply "$OUT"/fuzz_state

wait_for() { # wait_for SECONDS COMMAND...
	local i
	for ((i = 0; i < $1 * 50; i++)); do "${@:2}" 2>/dev/null && return 0; sleep 0.02; done
	echo "make-corpus.sh: timed out waiting for: ${*:2}" >&2
	return 1
}

# ---- pages: one simulator per kind, each page copied once written ---------
sim_page() { # sim_page NAME SIM-ARGS...
	local name=$1
	shift
	"$SIM" "$T/$name.page" "$@" >/dev/null 2>&1 &
	PIDS="$PIDS $!"
	wait_for 5 test -s "$T/$name.page"
	sleep 0.3
	# Only the structure and a little beyond: the rest of the 4 KiB is zero.
	head -c 128 "$T/$name.page" >"$OUT/fuzz_page/$name"
}
sim_page utc-synchronized --esterror-ns 1000 --maxerror-ns 5000
sim_page tai --tai
sim_page marker-only --marker-only
sim_page freerunning --status freerunning --offset-ns 2500000 --freq-ppb 300
sim_page leap-pre-pos --leap pre_pos
sim_page unreliable --status unreliable
cp "$T/utc-synchronized.page" "$T/full.page"
good=$OUT/fuzz_page/utc-synchronized
# Broken variants of the good page.
printf 'XCLK' | cat - <(tail -c +5 "$good") >"$OUT/fuzz_page/bad-magic"
head -c 64 "$good" >"$OUT/fuzz_page/short"
{ head -c 8 "$good"; printf '\002\000'; tail -c +11 "$good"; } >"$OUT/fuzz_page/version-2"
{ head -c 4 "$good"; printf '\000\020\000\000'; tail -c +9 "$good"; } >"$OUT/fuzz_page/size-beyond-file"
{ head -c 39 "$good"; printf '\100'; tail -c +41 "$good"; } >"$OUT/fuzz_page/shift-64"

# ---- chronyd, vmclockd on a simulated page, and the published state -----
cat >"$T/chrony.conf" <<EOF
refclock SOCK $T/vmc.sock refid VMC poll -3 filter 2 precision 1e-8
bindcmdaddress $T/chronyd.sock
cmdport 0
port 0
pidfile $T/chronyd.pid
logdir $T
EOF
$NOSYSTIME "$CHRONYD" -x -d -u root -f "$T/chrony.conf" >"$T/chronyd.log" 2>&1 &
PIDS="$PIDS $!"
wait_for 10 test -S "$T/chronyd.sock"
"$SIM" "$T/live.page" --esterror-ns 200 --maxerror-ns 1000 >/dev/null 2>&1 &
PIDS="$PIDS $!"
wait_for 5 test -s "$T/live.page"
"$VMCLOCKD" --foreground --config /dev/null --device "$T/live.page" \
	--chrony-sock "$T/vmc.sock" --chrony-cmd "$T/chronyd.sock" --state-dir "$T/state" \
	--state-file "$T/state.file" --chrony-poll-ms 100 >"$T/vmclockd.log" 2>&1 &
PIDS="$PIDS $!"
wait_for 10 test -s "$T/state.file"
# Let chronyd select the refclock, so that tracking carries real numbers.
sleep 8

# Exchanges with chronyd, each saved as the fuzz_chrony_reply input:
# sequence (4 bytes, big-endian), attempt (2 bytes), then the reply.
python3 - "$T" "$OUT/fuzz_chrony_reply" <<'EOF'
import os, socket, struct, sys
tmp, out = sys.argv[1], sys.argv[2]
TRACKING, RESET_SOURCES, BURST, MAKESTEP, DFREQ = 33, 66, 3, 43, 31
def request(command, seq, data=b"", reply_len=28):
    head = struct.pack(">BBBBHHI4x4x", 6, 1, 0, 0, command, 0, seq)
    pkt = head + data
    return pkt + bytes(max(0, reply_len - len(pkt)))
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(os.path.join(tmp, "corpus-client.sock"))
os.chmod(os.path.join(tmp, "corpus-client.sock"), 0o666)
s.connect(os.path.join(tmp, "chronyd.sock"))
s.settimeout(2)
def exchange(name, command, seq, data=b"", reply_len=28):
    s.send(request(command, seq, data, reply_len))
    reply = s.recv(1024)
    with open(os.path.join(out, name), "wb") as f:
        f.write(struct.pack(">IH", seq, 0) + reply)
exchange("tracking", TRACKING, 0x12345678, reply_len=104)
exchange("reset-sources", RESET_SOURCES, 0x12345679)
# No NTP source configured: chronyd refuses (NOSUCHSOURCE), a bare header.
exchange("burst-refused", BURST, 0x1234567a, bytes(40) + struct.pack(">II", 4, 8))
exchange("makestep", MAKESTEP, 0x1234567b)
exchange("tracking-after-reset", TRACKING, 0x1234567c, reply_len=104)
EOF
cp "$T/state.file" "$OUT/fuzz_state/running"
# Broken variants of the state.
printf 'XCDS' | cat - <(tail -c +5 "$T/state.file") >"$OUT/fuzz_state/bad-magic"
head -c 100 "$T/state.file" >"$OUT/fuzz_state/short"

# ---- configuration files ---------------------------------------------------
cp "$top_srcdir/systemd/vmclockd.conf" "$OUT/fuzz_config/example"
cat >"$OUT/fuzz_config/every-directive" <<'EOF'
debug
device /dev/vmclock0
chrony-sock /run/vmclockd.sock
chrony-cmd /run/chrony/chronyd.sock
ntp-shm 2
ntp-shm-mode 0640
interval-ms 62
burst-interval-ms 31
burst-ms 4000
max-error-ns 100000
allow-freerunning yes
state-dir /var/lib/vmclockd
state-file /run/vmclockd/state
chrony-poll-ms 500
metrics-file /run/vmclockd/vmclockd.prom
metrics-interval-ms 5000
EOF
printf 'interval-ms\t125   # a comment\r\n\n   \n#debug yes\ndebug off\n' >"$OUT/fuzz_config/whitespace"
printf 'interval-ms 9\n' >"$OUT/fuzz_config/out-of-range"
printf 'ntp-shm-mode 0800\n' >"$OUT/fuzz_config/bad-mode"
printf 'device /a /b\n' >"$OUT/fuzz_config/trailing-word"
printf 'foreground\n' >"$OUT/fuzz_config/command-line-only"
printf 'max-error-ns 18446744073709551616\n' >"$OUT/fuzz_config/overflow"
: >"$OUT/fuzz_config/empty"
# Past the documented 1023 characters a line is read in pieces: here the
# tail of a comment is a directive of its own.
{ printf '#%01022d' 0 | tr 0 x; printf 'debug yes\n'; } >"$OUT/fuzz_config/long-comment"
echo "make-corpus.sh: seeds in $OUT"
