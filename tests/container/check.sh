#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# check.sh - the operator's checks of the installed packages, run inside the
# test container (systemd as PID 1, Debian's chrony, no CAP_SYS_TIME) by
# vmclock-check.service.  One "PASS:"/"FAIL:" line per check, in
# /out/results; the container powers off when this script ends.
set -u
exec >/out/check.log 2>&1
R=/out/results
: >"$R"
PASS=0
FAIL=0
DISRUPTION_ID=c5c72b5b3f1f423f9cd5dfe164721191
RECOVERED_ID=ee29fd58be5f49c591a4d2f186aed00b
HANDOVER_FAILED_ID=1b4785eee24145f7b17d443c38b13af0
EACCES=13

pass() { PASS=$((PASS + 1)); echo "PASS: $*" | tee -a "$R"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL: $*" | tee -a "$R"; }
check() {
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc"; fi
}
# wait_for SECONDS COMMAND...: poll every 50 ms.
wait_for() {
	local deadline=$(($(date +%s%N) + $1 * 1000000000))
	shift
	while ! "$@" 2>/dev/null; do
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}
prop() { systemctl show -P "$2" "$1"; }
probe() { grep -q "^$1" /run/vmclockd/probe; }
# vmclockd's journal has LINE (each phase looks for lines that only it can
# produce; journalctl --after-cursor skipped the alert here, so no cursors).
logged() { journalctl -q -u vmclockd -o cat | grep -q "$1"; }
vmc_selected() { chronyc -n sources 2>/dev/null | grep -q '^#\* VMC'; }
# vmclockd's journal records with these FIELD=VALUE matches: how many.
records() { journalctl -q -u vmclockd "$@" -o cat | wc -l; }
# Handovers that handed chronyd a dfreq.
handovers() { records MESSAGE_ID=$RECOVERED_ID DFREQ=applied; }
new_probe() {
	# The probe runs after READY (ExecStartPost=): wait for a fresh one.
	wait_for 10 test -s /run/vmclockd/probe
}

finish() {
	journalctl -q -b -o short-monotonic >/out/journal.txt 2>&1
	echo "$PASS passed, $FAIL failed" | tee -a "$R"
	echo finished >/out/done
	exit 0
}
trap finish EXIT

# ---- install, as an operator would ---------------------------------------
check "the container has no CAP_SYS_TIME" \
	bash -c '(( !((0x$(sed -n "s/^CapBnd:[[:space:]]*//p" /proc/1/status) >> 25) & 1) ))'
check "packages install" dpkg -i /out/debs/libvmclock0_*.deb /out/debs/vmclockd_*.deb \
	/out/debs/vmclock-sim_*.deb
check "unit enabled on install" test "$(systemctl is-enabled vmclockd)" = enabled
check "no device, no configuration: not started on install (condition)" \
	bash -c '[ "$(systemctl show -P ConditionResult vmclockd)" = no ] &&
		! systemctl -q is-active vmclockd'
check "vmclock group created (udev rule)" getent group vmclock
check "chrony restarted with the drop-in: /run/chrony 0770" \
	test "$(stat -c %a /run/chrony)" = 770
check "chronyd's command socket group-writable" \
	bash -c '[ $(( 0$(stat -c %a /run/chrony/chronyd.sock) & 020 )) -ne 0 ]'
CHRONY_PID=$(prop chrony MainPID)
check "reinstall (an upgrade) with the drop-in in effect" dpkg -i /out/debs/vmclockd_*.deb
check "restarts no chronyd" test "$(prop chrony MainPID)" = "$CHRONY_PID"

# ---- configure and start --------------------------------------------------
cp /usr/share/doc/vmclockd/examples/chrony-vmclock.conf /etc/chrony/conf.d/vmclock.conf
systemctl restart chrony
systemctl start vmclock-sim
wait_for 5 test -s /run/vmclock-sim/page
printf "device /run/vmclock-sim/page\nmetrics-file /run/vmclockd/vmclockd.prom\n" >/etc/vmclockd.conf
mkdir -p /run/systemd/system/vmclockd.service.d
cp /out/vmclockd-test.conf /run/systemd/system/vmclockd.service.d/test.conf
systemctl daemon-reload
check "systemctl restart vmclockd (after writing /etc/vmclockd.conf)" systemctl restart vmclockd
check "active (Type=notify: the start job ends at READY=1)" \
	bash -c '[ "$(systemctl show -P Type vmclockd)" = notify ] && systemctl -q is-active vmclockd'
check "a STATUS line: '$(prop vmclockd StatusText)'" test -n "$(prop vmclockd StatusText)"
check "chrony selects VMC" wait_for 20 vmc_selected
PID=$(prop vmclockd MainPID)
check "CapEff of the daemon is 0" \
	grep -qx 'CapEff:[[:space:]]*0000000000000000' /proc/"$PID"/status
check "the daemon runs under a seccomp filter" grep -qx 'Seccomp:[[:space:]]*2' /proc/"$PID"/status
# The metrics file (vmclockd(8), METRICS) in the runtime directory: the
# sandbox lets it be written, node_exporter (another user) may read it, and
# it is replaced every metrics-interval-ms (5 s).
check "metrics file written under the unit's sandbox, mode 0644" \
	wait_for 10 bash -c '[ "$(stat -c %a /run/vmclockd/vmclockd.prom)" = 644 ]'
check "metrics file: vmclockd up" grep -qx 'vmclock_daemon_up 1' /run/vmclockd/vmclockd.prom
METRICS_INODE=$(stat -c %i /run/vmclockd/vmclockd.prom)
check "metrics file replaced (a new inode) within 10 s" \
	wait_for 10 bash -c "[ \"\$(stat -c %i /run/vmclockd/vmclockd.prom)\" != $METRICS_INODE ]"

# ---- the sandbox, as the probe saw it -------------------------------------
new_probe
cp /run/vmclockd/probe /out/probe.txt
cp /run/vmclockd/probe.writable /out/probe-writable.txt
check "probe: CapEff 0 inside the unit" probe "capeff 0000000000000000"
check "probe: state, runtime and /run/chrony writable" \
	bash -c 'grep -q "^yes write-runtime-dir" /run/vmclockd/probe &&
		grep -q "^yes write-state-dir" /run/vmclockd/probe &&
		grep -q "^yes write-chrony-run-dir" /run/vmclockd/probe'
check "probe: a write elsewhere in /run fails" probe "no write-run"
check "probe: a write in /etc fails" probe "no write-etc"
check "probe: a file created in /dev fails" probe "no write-dev"
check "probe: a root-owned file in /run cannot be chmod()ed" probe "no chmod-run-file"
check "probe: a device node cannot be chmod()ed" probe "no chmod-dev-null"
check "probe: the system call filter refuses chown" probe "no chown-syscall"
check "chown is allowed outside the unit (the probe can fail)" \
	bash -c 'touch /run/x && chown 0:0 /run/x && rm /run/x'
check "probe: no way to systemd's private socket" probe "no systemd-private-socket"
check "probe: no way to the system bus" probe "no dbus-system-bus"
check "probe: no signal to PID 1" probe "no signal-pid1"
check "all three work outside the unit (the probe can fail)" \
	bash -c 'systemctl show -P Version >/dev/null && kill -0 1 &&
		busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId >/dev/null'

# ---- a migration: alert and handover --------------------------------------
systemctl kill -s USR1 vmclock-sim
check "disruption alert: journalctl -u vmclockd MESSAGE_ID=$DISRUPTION_ID" \
	wait_for 5 bash -c "journalctl -q -u vmclockd MESSAGE_ID=$DISRUPTION_ID NEW_MARKER=2 | grep -q ."
check "the alert has PRIORITY=4" bash -c \
	"journalctl -q -u vmclockd MESSAGE_ID=$DISRUPTION_ID NEW_MARKER=2 -o export | grep -qx PRIORITY=4"
check "handover done (RECOVERED, DFREQ=applied)" wait_for 5 eval '[ "$(handovers)" -gt 0 ]'
check "no EACCES in the handover (ERRNO=$EACCES)" eval '[ "$(records ERRNO=$EACCES)" -eq 0 ]'
check "chrony selects VMC again" wait_for 20 vmc_selected

# ---- ClockBound's segment: one line in /etc/vmclockd.conf -----------------
echo "clockbound-shm /var/run/clockbound/shm0" >>/etc/vmclockd.conf
check "systemctl restart vmclockd (clockbound-shm configured)" systemctl restart vmclockd
check "the unit made /run/clockbound, root's, 0755" \
	test "$(stat -c '%U %a' /run/clockbound 2>/dev/null)" = "root 755"
check "the segment written: 80 bytes, 0644" \
	wait_for 5 bash -c 'test "$(stat -c "%s %a" /run/clockbound/shm0 2>/dev/null)" = "80 644"'
# clock_status, a little-endian i32 at offset 68: 1 is SYNCHRONIZED.
check "the segment says SYNCHRONIZED" \
	wait_for 20 bash -c 'test "$(od -An -t u4 -j 68 -N 4 /run/clockbound/shm0 | tr -d " ")" = 1'
check "no complaint about the segment" \
	bash -c '! journalctl -q -u vmclockd -o cat | grep -q "ClockBound segment.*: "'
PID=$(prop vmclockd MainPID)

# ---- reload without procps ------------------------------------------------
check "no /bin/kill here (procps is not installed)" bash -c '[ ! -e /bin/kill ] && [ ! -e /usr/bin/kill ]'
check "systemctl reload vmclockd" systemctl reload vmclockd
check "reloaded: configuration re-read (RELOAD=applied)" wait_for 5 eval '[ "$(records RELOAD=applied)" -gt 0 ]'
check "READY again after the reload (active, same process)" \
	bash -c "systemctl -q is-active vmclockd && [ \"\$(systemctl show -P MainPID vmclockd)\" = $PID ] &&
		[ \"\$(systemctl show -P SubState vmclockd)\" = running ]"

# ---- the watchdog ---------------------------------------------------------
RESTARTS=$(prop vmclockd NRestarts)
kill -STOP "$PID"
check "a stopped daemon is restarted by the watchdog" \
	wait_for 15 bash -c "[ \"\$(systemctl show -P NRestarts vmclockd)\" -gt $RESTARTS ] &&
		systemctl -q is-active vmclockd && [ \"\$(systemctl show -P MainPID vmclockd)\" != $PID ]"
check "the watchdog said so" logged 'Watchdog timeout'

# ---- a device node that appears after boot --------------------------------
# A stand-in node with the numbers of /dev/net/tun (a misc device like the
# real one, and one the container may create): what matters is that the
# unit, started after it appeared (as the udev rule does), sees it, may open
# it for reading and may not open it for writing.
rm -f /run/vmclockd/probe
if mknod -m 0600 /dev/vmclock0 c 10 200; then
	systemctl restart vmclockd
	new_probe
	cp /run/vmclockd/probe /out/probe-device.txt
	check "device appearing later: visible and readable in the unit" probe "yes read-vmclock0"
	check "DeviceAllow= r: opening it for writing is refused" probe "no write-vmclock0"
	check "a private /dev: the container's /dev/net is not there" \
		bash -c '[ -e /dev/net/tun ] && ! grep "^dev " /run/vmclockd/probe | grep -qw net'
	check "still feeding chrony" wait_for 20 vmc_selected
	rm -f /dev/vmclock0
else
	fail "mknod /dev/vmclock0 in the container"
fi

# ---- chronyd stopped, then started (not restarted) -------------------------
# /run/chrony is bound into vmclockd's namespace at its start: the drop-in's
# RuntimeDirectoryPreserve=yes keeps that same directory across the stop.
systemctl stop chrony
systemctl start chrony
wait_for 5 test -S /run/chrony/chronyd.sock
wait_for 20 vmc_selected
BEFORE=$(handovers)
systemctl kill -s USR1 vmclock-sim
check "after chronyd's stop and start the handover still works" \
	wait_for 5 eval '[ "$(handovers)" -gt "$BEFORE" ]'

# ---- chronyd started only after vmclockd ----------------------------------
systemctl stop chrony vmclockd
rm -rf /run/chrony
systemctl start vmclockd
systemctl start chrony
wait_for 5 test -S /run/chrony/chronyd.sock
check "chronyd first started after vmclockd: /run/chrony _chrony 0770" \
	test "$(stat -c '%U %a' /run/chrony)" = "_chrony 770"
wait_for 20 vmc_selected
BEFORE=$(handovers)
systemctl kill -s USR1 vmclock-sim
check "and the handover works" \
	wait_for 5 eval '[ "$(handovers)" -gt "$BEFORE" ]'

# ---- systemd-analyze security --------------------------------------------
systemd-analyze security vmclockd >/out/security.txt 2>&1
check "systemd-analyze security vmclockd <= 1.0 ($(sed -n 's/.*exposure level for vmclockd.service: //p' /out/security.txt))" \
	systemd-analyze security --threshold=10 vmclockd

# ---- the test can fail: without the chrony drop-in, EACCES ----------------
mkdir -p /etc/systemd/system/chrony.service.d
ln -sf /dev/null /etc/systemd/system/chrony.service.d/vmclockd.conf
systemctl daemon-reload
systemctl restart chrony
wait_for 5 test -S /run/chrony/chronyd.sock
systemctl kill -s USR1 vmclock-sim
check "drop-in masked: the handover fails with EACCES (HANDOVER_FAILED, ERRNO=$EACCES)" \
	wait_for 5 eval '[ "$(records MESSAGE_ID=$HANDOVER_FAILED_ID ERRNO=$EACCES)" -gt 0 ]'
rm /etc/systemd/system/chrony.service.d/vmclockd.conf
systemctl daemon-reload
systemctl restart chrony

# ---- purge ----------------------------------------------------------------
check "dpkg --purge vmclockd" dpkg --purge vmclockd
check "purge removed /var/lib/vmclockd and /run/vmclockd" \
	bash -c '[ ! -e /var/lib/vmclockd ] && [ ! -e /run/vmclockd ]'
check "purge left no reply socket in /run/chrony" \
	bash -c '! ls /run/chrony/vmclockd.* >/dev/null 2>&1'
check "unit gone" bash -c '! systemctl cat vmclockd >/dev/null 2>&1'
