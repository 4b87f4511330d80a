#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-config-ranges.sh - the ranges of the numeric settings have one
# source, daemon/config.c's table, which vmclockd --help prints: both man
# pages must document the same range for every one of them (vmclockd(8)'s
# OPTIONS, vmclockd.conf(5)'s DIRECTIVES; "0 or 10 to 60000" for a range
# with a hole), and --check-config must accept exactly that range: each
# bound, and 0 where the hole allows it; refuse one past each bound, and
# the values inside the hole.

. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "FAIL: python3 is missing"; exit 1; }

"$VMCLOCKD" --help >"$T/help.txt" || fail "vmclockd --help"

# NAME ZERO MIN MAX, from --help ("[0 or 10-60000]", "[0-0777]").
sed -n 's/^  --\([a-z-]*\) .*\[\(0 or \)\{0,1\}\([0-9]*\)-\([0-9]*\)\]$/\1 \2\3 \4/p' "$T/help.txt" |
	awk '{ if ($2 == "0" && $3 == "or") print $1, 1, $4, $5; else print $1, 0, $2, $3 }' \
		>"$T/table.txt"
echo "ranges in vmclockd --help:"
sed 's/^/    /' "$T/table.txt"
check "--help gives the ranges of the numeric settings" test "$(wc -l <"$T/table.txt")" -ge 8

# The range a man page documents for NAME: the first "A to B" of its
# paragraph (roff escapes and font requests removed), with "0 or" (and a
# parenthesis between) before it for a hole; 10^12 as a number.
man_range() {
	python3 - "$1" "$2" "$3" <<'PYEOF'
import re, sys
page, name, macro = sys.argv[1:4]
text = open(page).read().split('\n')
want = '.BI %s%s ' % (macro, name.replace('-', '\\-'))
for i, l in enumerate(text):
    if l.startswith(want):
        para = []
        for m in text[i + 1:]:
            if m.startswith('.TP') or m.startswith('.SH') or m.startswith('.PP'):
                break
            para.append(re.sub(r'^\.[A-Z]+ ', '', m))
        t = ' '.join(para).replace('\\-', '-').replace('\\(em', '-')
        t = re.sub(r'\\f[BIRP]', '', t)
        num = r'(\d+(?:\^\d+)?)'
        m = re.search(r'(?:\b(0) (?:\([^)]*\) )?or )?' + num + ' to ' + num, t)
        if not m:
            print('none')
            sys.exit(0)
        def val(s):
            if '^' in s:
                b, e = s.split('^')
                return int(b) ** int(e)
            return int(s, 8) if len(s) > 1 and s.startswith('0') else int(s)
        print(1 if m.group(1) else 0, val(m.group(2)), val(m.group(3)))
        sys.exit(0)
print('absent')
PYEOF
}

# Probe --check-config with VALUE for NAME (octal for the mode).
accepts() {
	"$VMCLOCKD" --config /dev/null --check-config "--$1" "$2" >/dev/null 2>&1
}

while read -r name zero min max; do
	dec_min=$min dec_max=$max fmt=%d
	if [ "$name" = ntp-shm-mode ]; then
		dec_min=$((8#$min)) dec_max=$((8#$max)) fmt=0%o
	fi
	for page in 'vmclockd.8:\-\-' vmclockd.conf.5:; do
		got=$(man_range "$top_srcdir/docs/${page%%:*}" "$name" "${page#*:}")
		check "${page%%:*} documents $name as the table's range ($zero $dec_min $dec_max; found $got)" \
			test "$got" = "$zero $dec_min $dec_max"
	done
	lo=$(printf "$fmt" "$dec_min") hi=$(printf "$fmt" "$dec_max")
	check "$name $lo accepted" accepts "$name" "$lo"
	check "$name $hi accepted" accepts "$name" "$hi"
	check "$name $(printf "$fmt" $((dec_max + 1))) refused" \
		sh -c "! \"\$0\" --config /dev/null --check-config --$name $(printf "$fmt" $((dec_max + 1))) >/dev/null 2>&1" "$VMCLOCKD"
	if [ "$dec_min" -gt 0 ]; then
		below=$((dec_min - 1))
		if [ "$zero" = 1 ]; then
			check "$name 0 accepted (the hole's edge)" accepts "$name" 0
			[ "$below" -gt 0 ] && check "$name 1 refused (in the hole)" \
				sh -c "! \"\$0\" --config /dev/null --check-config --$name 1 >/dev/null 2>&1" "$VMCLOCKD"
		fi
		[ "$below" -gt 0 ] || [ "$zero" = 0 ] && check "$name $below refused" \
			sh -c "! \"\$0\" --config /dev/null --check-config --$name $below >/dev/null 2>&1" "$VMCLOCKD"
	fi
done <"$T/table.txt"

finish
