#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Entry point of the Makefile: runs the stages a target needs, in order,
# each timed, and prints the timings at the end.
#
#   cs614.sh build   toolchain, base source, prepared tree, kernel
#   cs614.sh check   build, then the cs614 kselftests in virtme-ng
#   cs614.sh bench   build, then the cs614 benchmarks in virtme-ng
#   cs614.sh lint    build, then checkpatch, rustfmt and clippy
#   cs614.sh check-mm  build this and the stock base, compare mm's own selftests
. "$(dirname "$0")/lib.sh"

S=$CS614_TOP/scripts
report() {
	local rc=$? t
	log "stage timings (FLAVOUR=$FLAVOUR):"
	for t in "${STAGE_TIMES[@]}"; do log "  $t"; done
	exit "$rc"
}
trap report EXIT

build() {
	stage toolchain bash "$S/toolchain.sh"
	stage source bash "$S/fetch.sh"
	# What the tree about to be prepared and built is made of, taken right
	# before prepare.sh reads the checkout: the tests and benchmarks record
	# it with their results, even if the checkout changes while they run.
	CS614_TREE_ID=$(tree_id "$FLAVOUR")
	export CS614_TREE_ID
	stage prepare bash "$S/prepare.sh"
	stage build bash "$S/build.sh"
}

case "${1:-}" in
build) build ;;
check)
	build
	stage check bash "$S/check.sh"
	;;
bench)
	build
	BENCH=1 stage bench bash "$S/check.sh"
	;;
lint)
	build
	stage lint bash "$S/lint.sh"
	;;
check-mm)
	build
	FLAVOUR=stock stage build-stock bash "$S/build.sh"
	stage check-mm bash "$S/check-mm.sh"
	;;
*) die "usage: cs614.sh build|check|bench|lint|check-mm" ;;
esac
