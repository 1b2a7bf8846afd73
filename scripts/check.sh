#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the cs614 kselftests with the kernel's kselftest machinery, boot the
# built kernel with virtme-ng and run them. Prints the TAP output and
# 'N passed, N failed, N skipped'; exits non-zero when a test failed, the
# guest did not finish in time or the guest's kernel log shows a splat.
#
#   KVM=1          use KVM instead of TCG (nested KVM is very slow here)
#   T=NAME         run only selftest binary NAME
#   BOOT_TIMEOUT=S give up on the guest after S seconds (default 1200)
#   BENCH=1        run the benchmarks (cs614/*_bench) instead of the tests
#
# A run through make (cs614.sh) that passes (a benchmark run: that ends
# without a splat, whatever bars it misses) records the tree id of what it
# tested (lib.sh's tree_id, as cs614.sh took it before preparing the tree):
# run-$FLAVOUR/tree-id, and bench-$FLAVOUR-NAME.tree-id beside each
# benchmark's log, so that 'make rfc' quotes only results of the tree it
# makes the series from. A run of one test (T=) records none: it is not the
# whole suite.
. "$(dirname "$0")/lib.sh"

linux=$CS614_WORK/linux
build=$CS614_WORK/build-$FLAVOUR
install=$build/kselftest/kselftest_install
run=$CS614_WORK/run-$FLAVOUR
# Benchmarks get a directory of their own: the tests' results stay for 'make rfc'.
if [ "${BENCH:-0}" = 1 ]; then run=$CS614_WORK/bench-$FLAVOUR; fi
BOOT_TIMEOUT=${BOOT_TIMEOUT:-1200}
T=${T:-}
# What in the guest's kernel log fails a run.
SPLAT='BUG:|WARNING:|Oops|KASAN|possible recursive locking|circular locking|rcu_sched self-detected stall|Call Trace'
mode=tests
if [ "${BENCH:-0}" = 1 ]; then mode=bench; fi
# The tree id of what was prepared and built, which cs614.sh computed
# before preparing the tree; run otherwise, the results are not recorded as
# any tree's (the checkout may have changed since the build).
tested=${CS614_TREE_ID:-}
[ -f "$build/arch/x86/boot/bzImage" ] || die "no kernel built for FLAVOUR=$FLAVOUR: run 'make build'"

selftests() {
	rm -rf "$install"
	in_root make -s -C "$linux" O="$build" LLVM=1 -j"$JOBS" \
		TARGETS=cs614 kselftest-install >"$build/kselftest.log" 2>&1 ||
		{ tail -n 40 "$build/kselftest.log" >&2; die "building the cs614 kselftests failed"; }
	[ -x "$install/run_kselftest.sh" ] || die "kselftest-install produced no run_kselftest.sh"
}

boot() {
	rm -rf "$run"
	mkdir -p "$run"
	vng_exec "$build/arch/x86/boot/bzImage" "$run" \
		"$CS614_TOP/scripts/guest-run.sh $install $run $mode $T"
}

verdict() {
	local pass fail skip top_fail splats
	[ -f "$run/finished" ] || die "the guest did not finish (timeout ${BOOT_TIMEOUT}s or crash)"
	# The tests' own totals, as printed by kselftest_harness.h.
	read -r pass fail skip < <(tap_totals "$run/tap.log")
	# The per-binary results of run_kselftest.sh: a binary that crashed or
	# timed out never prints its totals, but is 'not ok' here.
	top_fail=$(grep -c '^not ok ' "$run/tap.log" || true)
	if [ "$top_fail" -gt "$fail" ]; then
		fail=$top_fail
	fi
	splats=$(grep -E "$SPLAT" "$run/dmesg.log" || true)
	if [ -n "$splats" ]; then
		log "guest kernel log shows a splat:"
		grep -E -B5 -A30 "$SPLAT" "$run/dmesg.log" | head -n 120 >&2
	fi
	if [ "$mode" = bench ]; then
		# Kept for the RFC's cover letter (make rfc), one file per benchmark
		# (NAME and NAME+events), each with the tree id once the run passed.
		# The files of the benchmarks this run ran go first, ids included,
		# and all of them after a run of every benchmark: no log of an older
		# tree may stay next to an id of this one.
		local logs l
		if [ -z "$T" ]; then
			rm -f "$CS614_WORK/bench-$FLAVOUR"-*.log "$CS614_WORK/bench-$FLAVOUR"-*.tree-id
		else
			rm -f "$CS614_WORK/bench-$FLAVOUR-$T".{log,tree-id} \
				"$CS614_WORK/bench-$FLAVOUR-$T+events".{log,tree-id}
		fi
		logs=$(awk -v dir="$CS614_WORK" -v fl="$FLAVOUR" '
			/^# cs614\// {
				f = dir "/bench-" fl "-" substr($2, 7) ".log"
				printf "" > f
				print f
			}
			f { print >> f }' "$run/tap.log")
		[ -z "$splats" ] || die "kernel splat in the guest's log ($run/dmesg.log)"
		[ -n "$logs" ] || die "no benchmark ran"
		# A bar a benchmark misses is one of its results, which the cover
		# letter must quote as it is: the logs are of this tree all the same.
		if [ -n "$tested" ]; then
			while read -r l; do echo "$tested" >"${l%.log}.tree-id"; done <<<"$logs"
		fi
		! grep -q '^not ok' "$run/tap.log" || die "a benchmark missed its bar (see its log)"
		return 0
	fi
	echo "$pass $fail $skip" >"$run/summary"
	echo "$pass passed, $fail failed, $skip skipped"
	[ "$pass" -gt 0 ] || die "no test passed"
	[ "$fail" = 0 ] || die "$fail test(s) failed"
	[ -z "$splats" ] || die "kernel splat in the guest's log ($run/dmesg.log)"
	if [ -n "$T" ]; then
		log "T=$T: not the whole suite, no tree id recorded ('make rfc' runs it all)"
	elif [ -n "$tested" ]; then
		echo "$tested" >"$run/tree-id"
	fi
}

stage selftests selftests
stage boot+tests boot
verdict
