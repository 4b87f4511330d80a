#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-layering.sh - data flows one way through daemon/.
#
# The include graph of daemon/ (an edge from a file's module to every
# daemon/ header it includes; a module is a file name without .c/.h) has no
# cycle, and the modules along the tick's data path include none of their
# consumers: the sampler produces, disrupt consumes its page copies,
# chronysync consumes disrupt's report, publish consumes all three, and
# main.c wires them.  A producer that needs something back from a consumer
# gets it as a callback registered by main.c.
#
# Reads the sources only: top_srcdir=DIR runs it on another tree.

. "$(dirname "$0")/lib.sh"

D=$top_srcdir/daemon
# The tick's data path, producers first.
CHAIN="sampler disrupt chronysync publish main"

command -v tsort >/dev/null || { echo "FAIL: tsort (coreutils) is missing"; exit 1; }
[ -f "$D/sampler.c" ] || { echo "FAIL: no daemon/ sources under $top_srcdir"; exit 1; }

# "module header-module" for every #include "x.h" naming a daemon/ header.
for f in "$D"/*.c "$D"/*.h; do
	m=$(basename "${f%.*}")
	sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"/]*\)\.h".*/\1/p' "$f" |
		while read -r h; do
			[ -f "$D/$h.h" ] && [ "$h" != "$m" ] && echo "$m $h"
		done
done | sort -u >"$T/edges"
echo "include graph of daemon/: $(wc -l <"$T/edges") edges"

if tsort "$T/edges" >/dev/null 2>"$T/loops"; then
	pass "the include graph of daemon/ has no cycle"
else
	fail "the include graph of daemon/ has no cycle: $(sed -n 's/^tsort: \([a-z_]*\)$/\1/p' "$T/loops" | tr '\n' ' ')"
fi

consumers_included() {
	local m=$1 later=0 c
	for c in $CHAIN; do
		if [ "$c" = "$m" ]; then later=1; continue; fi
		[ $later = 1 ] && grep -qx "$m $c" "$T/edges" && echo "$c"
	done
	return 0
}
for m in $CHAIN; do
	[ "$m" = main ] && continue
	bad=$(consumers_included "$m" | tr '\n' ' ')
	check "$m includes none of its consumers${bad:+ (includes: $bad)}" [ -z "$bad" ]
done

finish
