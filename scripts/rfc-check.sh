#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# 'make rfc-check': build the RFC branch (see rfc.sh) at every step of the
# series with the default configuration, incrementally in one object
# directory ($CS614_WORK/build-rfc): each step must build vmlinux without a
# new warning. The steps that touch widely included headers (mm_types.h,
# the Rust bindings) rebuild most of the tree, so this takes long (about an
# hour on 2 cores): it is not part of CI.
#
#   RFC_FROM=N   start at step N (the earlier ones built before)
. "$(dirname "$0")/lib.sh"

rfc=$CS614_WORK/rfc
build=$CS614_WORK/build-rfc
[ -e "$rfc/.git" ] || die "no RFC branch: run 'make rfc'"
[ -f "$CS614_WORK/build-default/.config" ] || die "no default configuration: run 'make build'"
mkdir -p "$build"

commits=$(git -C "$rfc" rev-list --reverse cs614-base..cs614-rfc)
n=0
total=$(wc -l <<<"$commits")
while read -r c; do
	n=$((n + 1))
	[ "$n" -ge "${RFC_FROM:-1}" ] || continue
	git -C "$rfc" checkout -q "$c"
	subject=$(git -C "$rfc" log -1 --format=%s "$c")
	log "step $n/$total: $subject"
	# The default configuration at every step: CONFIG_CS614=y takes effect
	# from the step that adds the symbol on.
	cp "$CS614_WORK/build-default/.config" "$build/.config"
	in_root make -s -C "$rfc" O="$build" LLVM=1 olddefconfig >/dev/null
	if ! in_root make -s -C "$rfc" O="$build" LLVM=1 -j"$JOBS" vmlinux \
		>"$build/step-$n.log" 2>&1; then
		tail -n 40 "$build/step-$n.log" >&2
		die "step $n does not build: $subject"
	fi
	if grep -q -E '(warning|error):' "$build/step-$n.log"; then
		grep -E '(warning|error):' "$build/step-$n.log" >&2
		die "step $n builds with warnings: $subject"
	fi
done <<<"$commits"
grep -q '^CONFIG_CS614=y' "$build/.config" || die "the last step did not build CONFIG_CS614"
git -C "$rfc" checkout -q cs614-rfc
log "all $total steps build"
