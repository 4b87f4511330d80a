#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# fetch-kernel.sh CACHE_DIR [ARCH [MODULE...]]: a Debian kernel whose
# ptp_vmclock driver the guest test boots, cached in CACHE_DIR (the build
# tree).  ARCH is amd64 (the default: tests/test-guest.sh) or arm64
# (tests/test-guest-arm64.sh); MODULEs are further modules the guest loads,
# kept beside ptp_vmclock.ko where the kernel has them as modules.
#
# Debian 12's own kernels lack the driver; newer suites have it as a module
# of the cloud-ARCH flavour.  They are read through a PRIVATE apt
# configuration under CACHE_DIR (its own sources list, package lists and
# archive cache): the machine's apt sources are never changed.  The newest
# kernel whose configuration has CONFIG_PTP_1588_CLOCK_VMCLOCK is chosen;
# its vmlinuz, the decompressed ptp_vmclock.ko and its config land in
# CACHE_DIR/kernel/ (CACHE_DIR/kernel-arm64/ for arm64), and its version
# file names it.  Once that is
# there nothing is fetched again (delete the directory to look anew).
#
# On failure: exit 1 with a message naming what is missing.
set -eu
mkdir -p "$1"
cache=$(cd "$1" && pwd)
arch=${2:-amd64}
[ $# -lt 2 ] || shift 2
out=$cache/kernel
apt=$cache/apt
if [ "$arch" != amd64 ]; then
	out=$cache/kernel-$arch
	apt=$cache/apt-$arch
fi
modules=$(echo " $* " | sed 's/ \([^ ][^ ]*\)/ \1.ko/g' | xargs)
# The driver is a module (amd64) or built in (arm64: no ptp_vmclock.ko); the
# cache was filled for these MODULEs.
if [ -s "$out/version" ] && [ -s "$out/vmlinuz" ] && { [ -s "$out/ptp_vmclock.ko" ] ||
	grep -q '^CONFIG_PTP_1588_CLOCK_VMCLOCK=y$' "$out/config" 2>/dev/null; } &&
	[ "$(cat "$out/modules" 2>/dev/null)" = "$modules" ]; then
	exit 0
fi
for tool in apt-get apt-cache dpkg-deb xz; do
	command -v $tool >/dev/null 2>&1 || { echo "fetch-kernel: $tool is missing" >&2; exit 1; }
done
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r $keyring ] || { echo "fetch-kernel: $keyring is missing (debian-archive-keyring)" >&2; exit 1; }
mirror=${GUEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/dl" "$apt/sources.list.d"
# The suites that carry 7.x kernels with the driver, newest first.
cat >"$apt/sources.list" <<EOT
deb [signed-by=$keyring] $mirror trixie-backports main
deb [signed-by=$keyring] $mirror sid main
EOT
# Signatures are checked; a Release file's age is not (a registry's mirror of
# sid may lag its Valid-Until by weeks).
set -- -o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts="$apt/sources.list.d" \
	-o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt" \
	-o Dir::Cache::archives="$apt/archives" -o Dir::Cache::pkgcache="$apt/pkgcache.bin" \
	-o Dir::Cache::srcpkgcache="$apt/srcpkgcache.bin" \
	-o APT::Architecture="$arch" -o Acquire::Languages=none -o Debug::NoLocking=1 \
	-o APT::Sandbox::User=root -o Acquire::Check-Valid-Until=false
if ! apt-get "$@" -q update >"$apt/update.log" 2>&1; then
	echo "fetch-kernel: apt-get update of trixie-backports and sid failed (no network to $mirror?):" >&2
	tail -n 5 "$apt/update.log" >&2
	exit 1
fi
# Every cloud-$arch kernel version with a modules package, newest first.
versions=$(apt-cache "$@" pkgnames linux-modules- 2>/dev/null |
	sed -n 's/^linux-modules-\([0-9][0-9.]*+[a-z0-9]*-cloud-'"$arch"'\)$/\1/p' | sort -Vru)
[ -n "$versions" ] || { echo "fetch-kernel: no linux-modules-*-cloud-$arch package in trixie-backports or sid" >&2; exit 1; }
cd "$apt/dl"
for v in $versions; do
	rm -rf x ./*.deb
	apt-get "$@" -q download "linux-base-$v" >/dev/null 2>&1 || continue
	mkdir x
	dpkg-deb -x linux-base-"$v"_*.deb x
	conf=x/usr/lib/modules/$v/config
	if ! grep -Eq '^CONFIG_PTP_1588_CLOCK_VMCLOCK=(m|y)$' "$conf" 2>/dev/null; then
		echo "fetch-kernel: $v: no CONFIG_PTP_1588_CLOCK_VMCLOCK" >&2
		continue
	fi
	# amd64's notification is an ACPI Notify from an upgraded DSDT.
	[ "$arch" != amd64 ] || grep -q '^CONFIG_ACPI_TABLE_UPGRADE=y$' "$conf" ||
		{ echo "fetch-kernel: $v: no CONFIG_ACPI_TABLE_UPGRADE" >&2; continue; }
	bin=linux-binary-unsigned-$v
	apt-cache "$@" show "$bin" >/dev/null 2>&1 || bin=linux-binary-$v
	apt-get "$@" -q download "$bin" "linux-modules-$v" >/dev/null 2>&1 ||
		{ echo "fetch-kernel: $v: cannot download $bin linux-modules-$v" >&2; continue; }
	for d in ./*.deb; do dpkg-deb -x "$d" x; done
	mod=$(find x/usr/lib/modules/"$v" -name 'ptp_vmclock.ko*' | head -n 1)
	# The signed package names it vmlinuz, the unsigned one vmlinuz.unsigned.
	img=$(find x/usr/lib/modules/"$v" -maxdepth 1 -name 'vmlinuz*' | head -n 1)
	[ -n "$mod" ] || ! grep -q '^CONFIG_PTP_1588_CLOCK_VMCLOCK=m$' "$conf" || img=
	[ -n "$img" ] ||
		{ echo "fetch-kernel: $v: no vmlinuz or ptp_vmclock module in the packages" >&2; continue; }
	rm -rf "$out.tmp"
	mkdir -p "$out.tmp"
	cp "$img" "$out.tmp/vmlinuz"
	cp "$conf" "$out.tmp/config"
	case $mod in
	'') ;;
	*.xz) xz -dc "$mod" >"$out.tmp/ptp_vmclock.ko" ;;
	*.zst) zstd -dqc "$mod" >"$out.tmp/ptp_vmclock.ko" ;;
	*) cp "$mod" "$out.tmp/ptp_vmclock.ko" ;;
	esac
	for m in $modules; do
		f=$(find x/usr/lib/modules/"$v" -name "$m*" | head -n 1)
		case $f in
		'') ;;
		*.xz) xz -dc "$f" >"$out.tmp/$m" ;;
		*.zst) zstd -dqc "$f" >"$out.tmp/$m" ;;
		*) cp "$f" "$out.tmp/$m" ;;
		esac
	done
	echo "$modules" >"$out.tmp/modules"
	echo "$v" >"$out.tmp/version"
	rm -rf "$out" x ./*.deb
	mv "$out.tmp" "$out"
	exit 0
done
echo "fetch-kernel: no kernel in trixie-backports or sid has CONFIG_PTP_1588_CLOCK_VMCLOCK" >&2
exit 1
