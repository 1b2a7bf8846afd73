#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/mm/cs614-map draws a known layout exactly: cs614_map_layout builds it
# in its own address space (a THP, then written pages, holes and zero pages,
# a gap, a small VMA), and the pictures with 4 KiB and 2 MiB cells, the
# summary and --around are compared with the text expected from that layout.
#
# The tool: $CS614_MAP if set, else tools/mm/cs614-map of the kernel tree
# this script lies in, else cs614-map next to it (kselftest install).
# Skips (4) when not root, without python3 or the tool, or without THP.

ksft_skip=4
dir=$(cd "$(dirname "$0")" && pwd)
layout=$dir/cs614_map_layout
pass=0
fail=0
nr=0

skip_all() {
	echo "TAP version 13"
	echo "1..0 # SKIP $1"
	echo "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0"
	exit $ksft_skip
}

bail() {
	echo "Bail out! $1"
	echo "# Totals: pass:$pass fail:$((fail + 1)) xfail:0 xpass:0 skip:0 error:0"
	exit 1
}

# check NAME EXPECTED_FILE CS614-MAP-ARGS...: runs the tool, compares.
check() {
	local name=$1 expected=$2 rc
	shift 2
	nr=$((nr + 1))
	python3 "$tool" "$@" >"$tmp/actual" 2>"$tmp/stderr"
	rc=$?
	if [ $rc = 0 ] && [ ! -s "$tmp/stderr" ] && cmp -s "$expected" "$tmp/actual"; then
		echo "ok $nr $name"
		pass=$((pass + 1))
		return
	fi
	echo "# cs614-map $* (exit $rc):"
	sed 's/^/# stderr: /' "$tmp/stderr"
	diff -u --label expected --label actual "$expected" "$tmp/actual" | sed 's/^/# /'
	echo "not ok $nr $name"
	fail=$((fail + 1))
}

[ "$(id -u)" = 0 ] || skip_all "must be run as root (pfns, /proc/kpageflags)"
command -v python3 >/dev/null || skip_all "python3 not found"
if [ -n "${CS614_MAP:-}" ]; then
	tool=$CS614_MAP
elif [ -f "$dir/../../../../tools/mm/cs614-map" ]; then
	tool=$dir/../../../../tools/mm/cs614-map
elif [ -f "$dir/cs614-map" ]; then
	tool=$dir/cs614-map
else
	skip_all "cs614-map not found (set CS614_MAP)"
fi
[ -f "$tool" ] || skip_all "$tool not found"
[ -r /sys/kernel/mm/transparent_hugepage/hpage_pmd_size ] || skip_all "no THP support"
[ "$(cat /sys/kernel/mm/transparent_hugepage/hpage_pmd_size)" = 2097152 ] ||
	skip_all "the PMD size is not 2 MiB"
[ -r /proc/kpageflags ] || skip_all "/proc/kpageflags not readable"
[ -x "$layout" ] || bail "$layout not found"

tmp=$(mktemp -d) || bail "mktemp failed"
coproc LAYOUT { exec "$layout"; }
layout_pid=$LAYOUT_PID
layout_in=${LAYOUT[1]}
cleanup() {
	{ exec {layout_in}>&-; } 2>/dev/null
	kill "$layout_pid" 2>/dev/null
	wait "$layout_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

read -r -t 60 line <&"${LAYOUT[0]}"
case "$line" in
"SKIP "*)
	wait "$layout_pid"
	skip_all "${line#SKIP }" ;;
"pid "*) ;;
*)
	bail "cs614_map_layout: '$line'" ;;
esac
read -r _ pid _ addr _ end <<<"$line"

echo "TAP version 13"
echo "1..4"
echo "# cs614-map: $tool; layout: pid $pid at $addr"

a=$((16#$addr))
b=$((a + 4 * 1024 * 1024 + 64 * 1024))	# the small VMA
w=${#end}
[ "$w" -ge 12 ] || w=12
hex() { printf "%0${w}x" "$1"; }
row() {	# row ADDR PATTERN REPEAT
	printf '  %s ' "$(hex "$1")"
	for ((i = 0; i < $3; i++)); do printf '%s' "$2"; done
	echo
}
big_header="$(hex $a)-$(hex $((a + 4 * 1024 * 1024))) rw-p 00000000"
small_header="$(hex $b)-$(hex $((b + 16 * 1024))) rw-p 00000000"

vma_4k() {
	echo "$big_header"
	for ((r = 0; r < 16; r++)); do
		if [ $r -lt 8 ]; then
			row $((a + r * 256 * 1024)) H 64
		else
			row $((a + r * 256 * 1024)) '#.0#' 16
		fi
	done
}

legend_4k() {
	echo "legend: # populated 4 KiB page  . hole (not present, not swapped)"
	echo "        H page of a huge page (THP)  0 the zero page  S swapped out"
}

{
	echo "pid $pid, $addr-$end: one cell per 4 KiB, 64 cells per row"
	vma_4k
	echo "... unmapped 64 KiB ..."
	echo "$small_header"
	row $b '#.#.' 1
	legend_4k
} >"$tmp/4k"
check "4 KiB cells" "$tmp/4k" --block 4k "$pid" "$addr" "$end"

{
	echo "pid $pid, $addr-$end: one cell per 2 MiB, 64 cells per row"
	echo "$big_header"
	row $a 'H7' 1
	echo "... unmapped 64 KiB ..."
	echo "$small_header"
	row $b '5' 1
	echo "legend: H one PMD-mapped THP  # all populated  1-9 n tenths populated"
	echo "        . none populated  0 all the zero page  S all swapped out"
} >"$tmp/2m"
check "2 MiB cells" "$tmp/2m" --block 2m "$pid" "$addr" "$end"

{
	echo "pid $pid, $addr-$end: counts of 4 KiB pages"
	printf "%-$((2 * w + 1))s PERM %8s %8s %9s %8s %8s %8s %8s NAME\n" \
		START-END OFFSET PAGES POPULATED HOLES HUGE ZERO SWAPPED
	printf "%s %8d %9d %8d %8d %8d %8d\n" "$big_header" 1024 896 128 512 128 0
	printf "%s %8d %9d %8d %8d %8d %8d\n" "$small_header" 4 2 2 0 0 0
} >"$tmp/summary"
check "summary" "$tmp/summary" --summary "$pid" "$addr" "$end"

{
	for when in before after; do
		echo "=== $when: true ==="
		echo "pid $pid, the VMA at $addr: one cell per 4 KiB, 64 cells per row"
		vma_4k
		legend_4k
	done
} >"$tmp/around"
check "--vma, --around" "$tmp/around" --vma "$addr" "$pid" --around true

echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail = 0 ]
