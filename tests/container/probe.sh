#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# probe.sh - run by vmclockd.service's ExecStartPost= in the test container,
# so inside the unit's own sandbox: its mount namespace, device cgroup,
# seccomp filter and credentials.  Each line: "yes WHAT" if the action
# succeeded, "no WHAT: error" if it was refused.  check.sh judges.
out=/run/vmclockd/probe
exec 3>"$out.tmp" || exit 0

try() {
	what=$1
	shift
	if err=$("$@" 2>&1); then echo "yes $what" >&3; else echo "no $what: $err" >&3; fi
}

echo "capeff $(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)" >&3
echo "seccomp $(sed -n 's/^Seccomp:[[:space:]]*//p' /proc/self/status)" >&3
echo "dev $(ls /dev | tr '\n' ' ')" >&3
# What the daemon needs to write.
try write-runtime-dir touch /run/vmclockd/probe.w
try write-state-dir touch /var/lib/vmclockd/probe.w
try write-chrony-run-dir touch /run/chrony/probe.w
rm -f /run/vmclockd/probe.w /var/lib/vmclockd/probe.w /run/chrony/probe.w
# What it must not: elsewhere in /run, /etc, /dev; a root-owned file's mode.
try write-run touch /run/probe.w
try write-etc touch /etc/probe.w
try write-dev touch /dev/probe.w
try chmod-run-file chmod 0666 /run/vmclock-sim/page
try chmod-dev-null chmod 0600 /dev/null
# The system call filter: chown to the file's own owner needs no capability,
# but fchownat is in @privileged, which the unit's filter denies.
touch /run/vmclockd/probe.c
try chown-syscall chown 0:0 /run/vmclockd/probe.c
rm -f /run/vmclockd/probe.c
# No way to the service manager (uid 0 is trusted by peer credentials) and
# no signal to another root process (PID 1 here).
try systemd-private-socket systemctl show -P Version
try dbus-system-bus busctl --system call org.freedesktop.DBus /org/freedesktop/DBus \
	org.freedesktop.DBus GetId
try signal-pid1 kill -0 1
# The device cgroup: the page's node (when there is one) for reading only.
if [ -e /dev/vmclock0 ]; then
	try read-vmclock0 sh -c ': </dev/vmclock0'
	try write-vmclock0 sh -c ': >>/dev/vmclock0'
fi
# Everything writable for this uid 0 without capabilities, outside the
# pseudo file systems and the private /tmp and /var/tmp.
echo "writable $(find / \( -path /proc -o -path /sys -o -path /tmp -o -path /var/tmp \) -prune \
	-o -writable -print 2>/dev/null | wc -l)" >&3
find / \( -path /proc -o -path /sys -o -path /tmp -o -path /var/tmp \) -prune \
	-o -writable -print 2>/dev/null >"$out.writable"
exec 3>&-
mv "$out.tmp" "$out"
