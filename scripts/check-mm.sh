#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Regression check of mm's own selftests: run the same selection on the
# patched kernel (FLAVOUR, default 'default') and on the unpatched base
# built with the same configuration (FLAVOUR=stock), one boot each, and
# fail if any test's totals differ between the two. Then the cs614
# selftests on the stock kernel: they must skip, not fail.
#
#   MM_TESTS="..."  the tests to run (default below), binaries of
#                   tools/testing/selftests/mm
#
# When everything passes with the default selection, run through make
# (cs614.sh), the tree id of the patched kernel (lib.sh's tree_id, as
# cs614.sh took it before preparing the tree) is written beside the results
# (run-mm-$FLAVOUR, run-mm-stock, run-stock-cs614: tree-id), for 'make rfc',
# which quotes only results of the tree it makes the series from.
. "$(dirname "$0")/lib.sh"

default_mm_tests="mremap_test merge split_huge_page_test khugepaged uffd-unit-tests cow"
default_mm_tests+=" ksm_functional_tests"
MM_TESTS=${MM_TESTS:-$default_mm_tests}
export BOOT_TIMEOUT=${BOOT_TIMEOUT:-3600}
# The tree id of what was prepared and built, which cs614.sh computed
# before preparing the tree; run otherwise, the results are not recorded as
# any tree's (the checkout may have changed since the build).
tested=${CS614_TREE_ID:-}
flavours=("$FLAVOUR" stock)

run_flavour() {
	local f=$1 tree=$CS614_WORK/linux build=$CS614_WORK/build-$1
	local install=$build/kselftest/mm_install run=$CS614_WORK/run-mm-$1
	if [ "$f" = stock ]; then tree=$CS614_WORK/stock; fi
	[ -f "$build/arch/x86/boot/bzImage" ] || die "no kernel built for FLAVOUR=$f"

	rm -rf "$install" "$run"
	mkdir -p "$run"
	in_root make -s -C "$tree" O="$build" LLVM=1 -j"$JOBS" TARGETS=mm \
		KSFT_INSTALL_PATH="$install" kselftest-install >"$build/mm-kselftest.log" 2>&1 ||
		{ tail -n 30 "$build/mm-kselftest.log" >&2; die "building the mm selftests failed ($f)"; }
	vng_exec "$build/arch/x86/boot/bzImage" "$run" \
		"$CS614_TOP/scripts/guest-run.sh $install $run mm $MM_TESTS" >/dev/null
	[ -f "$run/finished" ] || die "the $f guest did not finish (timeout ${BOOT_TIMEOUT}s or crash)"
}

for f in "${flavours[@]}"; do
	stage "mm-$f" run_flavour "$f"
done

# The cs614 selftests, built for this kernel, on the stock one: without
# /dev/cs614 every test must skip with its reason, none fail.
stock_cs614() {
	local install=$CS614_WORK/build-$FLAVOUR/kselftest/kselftest_install
	local run=$CS614_WORK/run-stock-cs614 pass fail skip
	# Built again, not reused: an install left by an earlier 'make check'
	# may be of another tree, and these results are recorded as this one's.
	rm -rf "$install"
	in_root make -s -C "$CS614_WORK/linux" O="$CS614_WORK/build-$FLAVOUR" LLVM=1 \
		-j"$JOBS" TARGETS=cs614 kselftest-install >/dev/null 2>&1 ||
		die "building the cs614 kselftests failed"
	rm -rf "$run"
	mkdir -p "$run"
	vng_exec "$CS614_WORK/build-stock/arch/x86/boot/bzImage" "$run" \
		"$CS614_TOP/scripts/guest-run.sh $install $run tests" >/dev/null
	[ -f "$run/finished" ] || die "the stock guest did not finish the cs614 selftests"
	read -r pass fail skip < <(tap_totals "$run/tap.log")
	if grep -q '^not ok ' "$run/tap.log"; then
		fail=$((fail + 1))
	fi
	echo "$pass $fail $skip" >"$run/summary"
	[ "$fail" = 0 ] || die "cs614 selftests on the stock kernel: $fail failed"
	log "cs614 selftests on the stock kernel: $pass passed, $skip skipped, 0 failed"
}
stage stock-cs614 stock_cs614

differ=0
printf '%-24s %-44s %s\n' test "$FLAVOUR" stock
for t in $MM_TESTS; do
	a=$(grep "^$t: " "$CS614_WORK/run-mm-$FLAVOUR/mm-results" | cut -d' ' -f2-)
	b=$(grep "^$t: " "$CS614_WORK/run-mm-stock/mm-results" | cut -d' ' -f2-)
	mark=
	if [ "$a" != "$b" ]; then mark='  <-- differs'; differ=1; fi
	printf '%-24s %-44s %s%s\n' "$t" "${a:-missing}" "${b:-missing}" "$mark"
done
[ "$differ" = 0 ] || die "mm selftests differ from the stock base"
log "mm selftests: same results as the stock base"
if [ "$MM_TESTS" != "$default_mm_tests" ]; then
	log "MM_TESTS is not the default selection: no tree id recorded ('make rfc' runs it all)"
elif [ -n "$tested" ]; then
	for d in run-mm-"$FLAVOUR" run-mm-stock run-stock-cs614; do
		echo "$tested" >"$CS614_WORK/$d/tree-id"
	done
fi
