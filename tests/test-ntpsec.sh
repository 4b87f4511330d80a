#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-ntpsec.sh - vmclockd feeding ntpsec's ntpd through the SHM refclock.
#   1. vmclockd creates the segment (key 0x4e545030 + unit) with the default
#      --ntp-shm-mode 0600
#   2. ntpd's peerstats show the SHM refclock's offset equal to the injected
#      one: median of the last 5 within 1 us, each within 20 us
#   3. ntpd selects it (peer status word, select field 6 = sys.peer)
#
# Sign convention: ntpd's offset is reference time minus system time, the
# same sense as vmclock-sim's --offset-ns (device ahead of the system clock)
# and chrony's "System time"; +1234567 ns reads as +0.001234567 s.
#
# ntpsec conflicts with chrony in apt, so it is never installed: the .deb is
# fetched with `apt-get download` into a cache under the build tree
# ($NTPSEC_CACHE, reused by later runs) and unpacked there with `dpkg -x`.
# ntpq is a Python program needing python3-ntp, so selection is read from
# peerstats instead.  NTPD=/path/to/ntpd uses an ntpd found elsewhere.
# ntpd runs without CAP_SYS_TIME (it touches the kernel's NTP state at start
# even with `disable ntp kernel`), with `disable ntp`, and opens no network
# address except 127.0.0.1.
. "$(dirname "$0")/lib.sh"

OFFSET_NS=1234567
NTPSEC_CACHE=${NTPSEC_CACHE:-$top_builddir/tests/ntpsec-cache}
NTPD=${NTPD:-$NTPSEC_CACHE/root/usr/sbin/ntpd}
SHM_KEY=""

# Remove the segment after everything is stopped, so runs never share one.
trap 'cleanup; [ -z "$SHM_KEY" ] || ipcrm -M "$SHM_KEY" 2>/dev/null' EXIT

# newest_deb: the last ntpsec_*.deb in the cache, or nothing.
newest_deb() {
	local debs=("$NTPSEC_CACHE"/ntpsec_*.deb)
	[ -e "${debs[-1]}" ] && echo "${debs[-1]}"
}

fetch_ntpsec() {
	local deb
	[ -x "$NTPD" ] && return 0
	mkdir -p "$NTPSEC_CACHE" 2>>"$T/apt.log" || return 1
	deb=$(newest_deb)
	if [ -z "$deb" ]; then
		# Only when the package lists do not know it: apt-get update.
		(cd "$NTPSEC_CACHE" && apt-get -q download ntpsec) >>"$T/apt.log" 2>&1 ||
			{ apt-get -q update >>"$T/apt.log" 2>&1 &&
				(cd "$NTPSEC_CACHE" && apt-get -q download ntpsec) >>"$T/apt.log" 2>&1; } ||
			return 1
		deb=$(newest_deb) || return 1
	fi
	rm -rf "$NTPSEC_CACHE/root.tmp"
	dpkg -x "$deb" "$NTPSEC_CACHE/root.tmp" && rm -rf "$NTPSEC_CACHE/root" &&
		mv "$NTPSEC_CACHE/root.tmp" "$NTPSEC_CACHE/root" && [ -x "$NTPD" ]
}

fetch_ntpsec || { tail -n 5 "$T/apt.log" 2>/dev/null; skip_or_fail "ntpsec's ntpd not available (apt-get download ntpsec failed)"; }
missing=$(ldd "$NTPD" 2>&1 | awk '/not found/ { print $1 }' | tr '\n' ' ')
[ -z "$missing" ] || skip_or_fail "$NTPD needs missing libraries: $missing(.ci/setup installs them)"
"$NTPD" --version 2>&1 | head -n 1

# Without root there is no CAP_SYS_TIME to drop (and no right to drop it).
WRAP=$NOSYSTIME
[ "$(id -u)" -eq 0 ] || WRAP=""

# A unit in 2..9 whose segment nobody uses (0 and 1 are gpsd's favourites).
for u in $(shuf -i 2-9); do
	key=$(printf '0x%08x' $((0x4e545030 + u)))
	if ! ipcs -m | awk '{ print $1 }' | grep -qix "$key"; then
		UNIT=$u
		SHM_KEY=$key
		break
	fi
done
[ -n "$SHM_KEY" ] || { fail "a free SHM unit in 2..9"; finish; exit 1; }
echo "SHM unit $UNIT, key $SHM_KEY"

shm_perms() {
	ipcs -m | awk -v k="$SHM_KEY" 'tolower($1) == k { print $4 }'
}
shm_exists() {
	[ -n "$(shm_perms)" ]
}

mkdir "$T/stats"
cat >"$T/ntp.conf" <<EOF
refclock shm unit $UNIT refid VMC minpoll 0 maxpoll 0
disable ntp
disable kernel
interface ignore wildcard
interface ignore ipv6
interface listen 127.0.0.1
driftfile $T/ntp.drift
statsdir $T/stats/
statistics peerstats
filegen peerstats file peerstats type none enable
logfile $T/ntpd.log
EOF

start_sim --offset-ns $OFFSET_NS --interval-ms 100
start_vmclockd --ntp-shm "$UNIT" --chrony-sock "" --chrony-cmd ""

# ---- 1. the segment, created by vmclockd before ntpd runs
check "vmclockd created the SHM segment" wait_for 5 shm_exists
check "segment mode is the default 0600 (got $(shm_perms))" test "$(shm_perms)" = 600

$WRAP "$NTPD" -n -c "$T/ntp.conf" >>"$T/ntpd.log" 2>&1 &
NTPD_PID=$!
PIDS="$PIDS $NTPD_PID"

# peerstats: MJD secs SHM(unit) status offset delay dispersion jitter
shm_lines() {
	awk -v n="SHM($UNIT)" '$3 == n' "$T/stats/peerstats" 2>/dev/null
}
# Select field of the peer status word: bits 8..10; 6 is sys.peer.
selected_lines() {
	shm_lines | while read -r _ _ _ status _; do
		[ $(((0x$status >> 8) & 7)) -eq 6 ] && echo "$status"
	done
}
# selected_at_least N: N peerstats lines so far show it selected.
selected_at_least() {
	[ "$(selected_lines | wc -l)" -ge "$1" ]
}

# ---- 3. selection
check "ntpd selects the SHM refclock (sys.peer)" wait_for 30 selected_at_least 1
check "ntpd keeps it selected for 5 more polls" wait_for 30 selected_at_least 6
check "ntpd is still running" kill -0 "$NTPD_PID"
echo "peerstats (SHM($UNIT)):"
shm_lines | tail -n 8

# ---- 2. the offset
offsets=$(shm_lines | tail -n 5 | awk '{ print $5 }')
median=$(echo "$offsets" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "ntpd offset median ${median}s, injected +${OFFSET_NS}ns"
check "ntpd's offset median within 1 us of +${OFFSET_NS} ns" \
	abs_le "$(awk -v m="${median:-1}" -v o=$OFFSET_NS 'BEGIN { print m - o * 1e-9 }')" 1e-6
worst=$(echo "$offsets" | awk -v o=$OFFSET_NS '{ d = $1 - o * 1e-9; if (d < 0) d = -d; if (d > w) w = d }
	END { printf "%.9f", NR ? w : 1 }')
check "every recent ntpd offset within 20 us (worst ${worst}s)" abs_le "$worst" 20e-6

finish
