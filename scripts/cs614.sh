#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Entry point of the Makefile: runs the stages a target needs, in order,
# each timed, and prints the timings at the end.
#
#   cs614.sh build   toolchain, base source, prepared tree, kernel
#   cs614.sh check   build, then the cs614 kselftests in virtme-ng
. "$(dirname "$0")/lib.sh"

S=$CS614_TOP/scripts
timings=()
run() {
	local name=$1 start rc=0
	shift
	start=$(date +%s)
	log "== $name"
	"$@" || rc=$?
	timings+=("$(printf '%-10s %5ss' "$name" "$(($(date +%s) - start))")")
	return "$rc"
}
report() {
	local rc=$? t
	log "stage timings (FLAVOUR=$FLAVOUR):"
	for t in "${timings[@]}"; do log "  $t"; done
	exit "$rc"
}
trap report EXIT

build() {
	run toolchain bash "$S/toolchain.sh"
	run source bash "$S/fetch.sh"
	run prepare bash "$S/prepare.sh"
	run build bash "$S/build.sh"
}

case "${1:-}" in
build) build ;;
check)
	build
	run check bash "$S/check.sh"
	;;
*) die "usage: cs614.sh build|check" ;;
esac
