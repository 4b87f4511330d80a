#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# fetch-arm64-userland.sh CACHE_DIR: the arm64 programs of the arm64 guest
# test (tests/test-guest-arm64.sh) that this project does not build:
# busybox-static and chrony, and the libraries chronyd and chronyc link,
# as arm64 packages unpacked (never installed) into CACHE_DIR/arm64-root.
#
# The libraries are those this machine's own chronyd and chronyc link (ldd),
# taken in their arm64 build: the packages that own them here, downloaded
# for arm64 through this machine's apt sources (.ci/setup has added arm64).
# Once CACHE_DIR/arm64-root/done is there nothing is fetched again.
#
# On failure: exit 1 with a message naming what is missing.
set -eu
mkdir -p "$1"
cache=$(cd "$1" && pwd)
out=$cache/arm64-root
[ -e "$out/done" ] && exit 0
for tool in apt-get dpkg-deb dpkg ldd; do
	command -v $tool >/dev/null 2>&1 || { echo "fetch-arm64-userland: $tool is missing" >&2; exit 1; }
done
dpkg --print-foreign-architectures | grep -qx arm64 ||
	{ echo "fetch-arm64-userland: arm64 is not a dpkg architecture here (.ci/setup adds it)" >&2; exit 1; }
# The owners of what chronyd and chronyc load, whichever of /lib and
# /usr/lib dpkg knows the file under.
libs=$(ldd /usr/sbin/chronyd /usr/bin/chronyc | sed -n 's/.*=> *\(\/[^ ]*\).*/\1/p' | sort -u)
pkgs="busybox-static chrony"
for l in $libs; do
	r=$(realpath "$l")
	p=$(dpkg -S "$r" 2>/dev/null || dpkg -S "${r#/usr}" 2>/dev/null || dpkg -S "/usr$r" 2>/dev/null) ||
		{ echo "fetch-arm64-userland: no package owns $r" >&2; exit 1; }
	pkgs="$pkgs ${p%%:*}"
done
pkgs=$(echo "$pkgs" | tr ' ' '\n' | sort -u | sed 's/$/:arm64/' | xargs)
rm -rf "$out" "$cache/arm64-debs"
mkdir -p "$out" "$cache/arm64-debs"
cd "$cache/arm64-debs"
# shellcheck disable=SC2086
if ! apt-get -q download $pkgs >download.log 2>&1; then
	echo "fetch-arm64-userland: apt-get download $pkgs failed:" >&2
	grep -v '^W: Download is performed unsandboxed' download.log | tail -n 5 >&2
	exit 1
fi
for d in ./*.deb; do dpkg-deb -x "$d" "$out"; done
[ -x "$out/bin/busybox" ] && [ -x "$out/usr/sbin/chronyd" ] ||
	{ echo "fetch-arm64-userland: no busybox or chronyd in the packages" >&2; exit 1; }
echo "$pkgs" >"$out/done"
