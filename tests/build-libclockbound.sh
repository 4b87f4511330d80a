#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# build-libclockbound.sh SRC OUT: builds AWS ClockBound's client library,
# libclockbound (SRC: the released tree of clock-bound 2.0.2, unmodified),
# into OUT (OUT/lib/libclockbound.so, OUT/include/clockbound.h), offline,
# with Debian's packages only: cargo and rustc from cargo-web/rustc-web,
# the crates from the librust-*-dev packages in /usr/share/cargo/registry.
# Cached: nothing is done if OUT holds a build of the same SRC.
#
# The build runs in a copy of SRC with only these relaxations, none in the
# code: the workspace cut to the three library crates (the others are not
# released with it), no Cargo.lock (it names crates.io's versions), errno
# 0.3 -> 0.2 (default features on: 0.2 implements Debug only with std) and
# tempfile 3.13 -> 3 (a dev-dependency, resolved but not built).
# Exit 77 with a reason when a tool is missing.
set -eu
src=$1
out=$2
CARGO=${CARGO:-/usr/bin/cargo}
RUSTC=${RUSTC:-/usr/bin/rustc}
REGISTRY=/usr/share/cargo/registry

for f in "$CARGO" "$RUSTC"; do
	[ -x "$f" ] || { echo "build-libclockbound: $f missing (cargo-web, rustc-web)"; exit 77; }
done
[ -d "$REGISTRY" ] || { echo "build-libclockbound: $REGISTRY missing (librust-*-dev)"; exit 77; }
stamp="$(cd "$src" && find . -type f | LC_ALL=C sort | xargs cat | cksum) $("$RUSTC" --version)"
if [ -f "$out/lib/libclockbound.so" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
	exit 0
fi
rm -rf "$out"
mkdir -p "$out/tree" "$out/lib" "$out/include" "$out/cargo-home"
cp -R "$src/clock-bound-shm" "$src/clock-bound-vmclock" "$src/clock-bound-ffi" "$out/tree/"
# The workspace: the upstream file's [workspace.package] table, members cut.
{
	printf '[workspace]\nmembers = ["clock-bound-shm", "clock-bound-vmclock", "clock-bound-ffi"]\nresolver = "2"\n\n'
	sed -n '/^\[workspace.package\]/,$p' "$src/Cargo.toml"
} >"$out/tree/Cargo.toml"
for c in "$out"/tree/clock-bound-*/Cargo.toml; do
	sed -i -e 's/^errno = .*/errno = "0.2"/' -e 's/^tempfile = .*/tempfile = "3"/' "$c"
done
cat >"$out/cargo-home/config.toml" <<CONF
[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "$REGISTRY"
[net]
offline = true
CONF
(cd "$out/tree" && CARGO_HOME="$out/cargo-home" RUSTC="$RUSTC" \
	"$CARGO" build --offline --release -p clock-bound-ffi) >"$out/build.log" 2>&1 || {
	echo "build-libclockbound: cargo build failed:"
	tail -n 30 "$out/build.log"
	exit 1
}
cp "$out/tree/target/release/libclockbound.so" "$out/lib/"
cp "$src/clock-bound-ffi/include/clockbound.h" "$out/include/"
echo "$stamp" >"$out/stamp"
