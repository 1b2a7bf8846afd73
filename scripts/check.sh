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
		# Kept for the RFC's cover letter (make rfc), one file per benchmark.
		awk -v dir="$CS614_WORK" -v fl="$FLAVOUR" '
			/^# cs614\// { f = dir "/bench-" fl "-" substr($2, 7) ".log"; printf "" > f }
			f { print >> f }' "$run/tap.log"
		[ -z "$splats" ] || die "kernel splat in the guest's log ($run/dmesg.log)"
		! grep -q '^not ok' "$run/tap.log" || die "a benchmark failed"
		return 0
	fi
	echo "$pass $fail $skip" >"$run/summary"
	echo "$pass passed, $fail failed, $skip skipped"
	[ "$pass" -gt 0 ] || die "no test passed"
	[ "$fail" = 0 ] || die "$fail test(s) failed"
	[ -z "$splats" ] || die "kernel splat in the guest's log ($run/dmesg.log)"
}

stage selftests selftests
stage boot+tests boot
verdict
