#!/bin/busybox sh
# SPDX-License-Identifier: BSD-2-Clause
#
# /init of the guest test's initramfs: set the guest up, then run the host's
# commands.  The second serial port is the control channel: each line the
# host writes is one shell command line (framed, below); its output comes
# back prefixed with '|', then '@@rc N'.  Nothing here knows what is tested: vm.py and
# run.py say.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
mkdir -p /proc /sys /dev /run /tmp /var/lib/chrony
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -m 0700 /run/t
ln -s /proc/self/fd /dev/fd 2>/dev/null
# The control channel: the second serial port, or what the kernel's command
# line names (guest_ctl=, e.g. the arm64 guest's virtio console /dev/hvc0).
# Raw while open (a virtio console resets its settings on the last close).
ctl=${guest_ctl:-/dev/ttyS1}
exec 3<>"$ctl"
stty raw -echo <&3
echo "@@hello $(uname -r)" >&3
# Each line is LENGTH:COMMAND, LENGTH the command's bytes as the host sent
# them.  A line that lost or gained bytes on the way (the serial port has
# dropped some across a live migration) is not run: it is answered
# "@@garbled" and the host sends it again.  `command eval`, since a plain
# eval of a line that does not parse would end this shell, the guest's init.
while IFS= read -r line <&3; do
	cmd=${line#*:}
	case $line in
	*:*) [ "${line%%:*}" = "${#cmd}" ] ;;
	*) false ;;
	esac || {
		echo "init: a garbled control line of ${#line} bytes: $line" >&2
		echo "@@garbled" >&3
		continue
	}
	command eval "$cmd" </dev/null >/tmp/.out 2>&1
	rc=$?
	sed 's/^/|/' /tmp/.out >&3
	echo "@@rc $rc" >&3
done
poweroff -f
