#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# tests/coverage.sh [DIR]: how much of daemon/ the unit tests alone execute.
#
# Builds the tree with --coverage in DIR (default build-coverage), runs only
# the tests/check_* programs (no system test, no chronyd), and prints, per
# daemon/*.c file but main.c, the share of its lines executed (gcov), then
# daemon/ as a whole.  Exits 1 when a file is below 70 % or the whole below
# 80 %, the goals the project holds its unit tests to.  COVERAGE_CHECKS="
# tests/check_a tests/check_b" runs only those.
set -eu
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
dir=$(realpath -m "${1:-build-coverage}")
mkdir -p "$dir"
cd "$dir"
if [ ! -f Makefile ]; then
	"$top_srcdir/configure" -q CFLAGS="-O0 -g --coverage" LDFLAGS="--coverage"
fi
make -s -j"$(nproc)" >/dev/null
find . -name '*.gcda' -delete
checks=${COVERAGE_CHECKS:-$(printf 'print-tests:\n\t@echo $(TESTS)\n' | make -s -f Makefile -f - print-tests |
	tr ' ' '\n' | grep '^tests/check_')}
# shellcheck disable=SC2086 # a list of names
make -s check TESTS="$(echo $checks)" >/dev/null || {
	echo "coverage: a unit test failed (see $dir/test-suite.log)" >&2
	exit 1
}
cd daemon
status=0
total=0
run=0
printf '%-16s %8s %8s\n' file lines executed
for src in "$top_srcdir"/daemon/*.c; do
	name=$(basename "$src" .c)
	[ "$name" != main ] || continue
	# "Lines executed:P% of N" for the file itself, not its headers (0 %
	# when no unit test ran it: gcov finds no counts then).
	set -- $(gcov -n -o .libs ".libs/libvmclockd_la-$name.o" 2>/dev/null |
		awk -v f="$name.c" '$0 ~ "^File .*/" f "'"'"'$" { want = 1; next }
			want && /^Lines executed:/ { sub(/^Lines executed:/, ""); sub(/%/, "");
				print $1, $3; exit }')
	lines=${2:-0}
	done_=$(awk -v p="${1:-0}" -v n="$lines" 'BEGIN { printf "%d", p * n / 100 + 0.5 }')
	total=$((total + lines))
	run=$((run + done_))
	pct=$(awk -v a="$done_" -v b="$lines" 'BEGIN { printf "%.1f", b ? 100 * a / b : 100 }')
	mark=
	if awk -v p="$pct" 'BEGIN { exit !(p < 70) }'; then
		mark=" < 70 %"
		status=1
	fi
	printf '%-16s %8d %7s%%%s\n' "$name.c" "$lines" "$pct" "$mark"
done
pct=$(awk -v a="$run" -v b="$total" 'BEGIN { printf "%.1f", b ? 100 * a / b : 100 }')
mark=
if awk -v p="$pct" 'BEGIN { exit !(p < 80) }'; then
	mark=" < 80 %"
	status=1
fi
printf '%-16s %8d %7s%%%s\n' "daemon/" "$total" "$pct" "$mark"
exit $status
