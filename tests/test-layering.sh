#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-layering.sh - data flows one way through daemon/.
#
# The include graph of daemon/ (an edge from a file's module to every
# daemon/ header it includes; a module is a file name without .c/.h) has no
# cycle, and the modules along the tick's data path include none of their
# consumers, directly or through the headers they include (a producer that
# reaches a consumer's header through a third header depends on it just the
# same): the sampler produces, disrupt consumes its page copies,
# chronysync consumes disrupt's report, publish consumes all three, textfile
# disrupt's report (after publish has written the state it reads back), and
# main.c wires them.  A producer that needs something back from a consumer
# gets it as a callback registered by main.c.
#
# Reads the sources only: top_srcdir=DIR runs it on another tree.

. "$(dirname "$0")/lib.sh"

D=$top_srcdir/daemon
# The tick's data path, producers first.
CHAIN="sampler disrupt chronysync publish textfile main"

command -v tsort >/dev/null || { echo "FAIL: tsort (coreutils) is missing"; exit 1; }
[ -f "$D/sampler.c" ] || { echo "FAIL: no daemon/ sources under $top_srcdir"; exit 1; }

# The daemon/ headers FILE includes (#include "x.h"), one name a line.
includes() {
	sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"/]*\)\.h".*/\1/p' "$1" |
		while read -r h; do
			[ -f "$D/$h.h" ] && echo "$h"
		done
}
# "module header-module" for every daemon/ header a module's .c or .h
# includes; "header header-module" for what each header includes (only
# those are followed transitively: a .c is never included).
for f in "$D"/*.c "$D"/*.h; do
	m=$(basename "${f%.*}")
	includes "$f" | while read -r h; do [ "$h" != "$m" ] && echo "$m $h"; done
done | sort -u >"$T/edges"
for f in "$D"/*.h; do
	m=$(basename "${f%.h}")
	includes "$f" | while read -r h; do [ "$h" != "$m" ] && echo "$m $h"; done
done | sort -u >"$T/hedges"
echo "include graph of daemon/: $(wc -l <"$T/edges") edges"

if tsort "$T/edges" >/dev/null 2>"$T/loops"; then
	pass "the include graph of daemon/ has no cycle"
else
	fail "the include graph of daemon/ has no cycle: $(sed -n 's/^tsort: \([a-z_]*\)$/\1/p' "$T/loops" | tr '\n' ' ')"
fi

# reached M: "header via" for every daemon/ header module M's files reach,
# directly (via M) or through the headers they include (via the header
# that includes it).
reached() {
	local m=$1 h x via
	declare -A seen=()
	local todo=()
	while read -r _ h; do seen[$h]=$m; todo+=("$h"); done < <(grep "^$m " "$T/edges")
	while [ ${#todo[@]} -gt 0 ]; do
		h=${todo[0]}
		todo=("${todo[@]:1}")
		while read -r _ x; do
			[ -n "${seen[$x]:-}" ] || [ "$x" = "$m" ] && continue
			seen[$x]=$h
			todo+=("$x")
		done < <(grep "^$h " "$T/hedges")
	done
	for h in "${!seen[@]}"; do echo "$h ${seen[$h]}"; done
}
consumers_included() {
	local m=$1 later=0 c via
	reached "$m" >"$T/reached-$m"
	for c in $CHAIN; do
		if [ "$c" = "$m" ]; then later=1; continue; fi
		[ $later = 1 ] || continue
		via=$(sed -n "s/^$c //p" "$T/reached-$m")
		[ -z "$via" ] && continue
		if [ "$via" = "$m" ]; then echo "$c.h"; else echo "$c.h via $via.h"; fi
	done
	return 0
}
for m in $CHAIN; do
	[ "$m" = main ] && continue
	bad=$(consumers_included "$m" | paste -sd, | sed 's/,/, /g')
	check "$m includes none of its consumers, directly or through a header${bad:+ (includes: $bad)}" [ -z "$bad" ]
done

finish
