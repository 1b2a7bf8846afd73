#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Static checks of what this project changes in the kernel:
#  - scripts/checkpatch.pl --strict on every patch of the series,
#  - rustfmt --check on every Rust file the series or the overlay touches,
#  - a CLIPPY=1 build of the Rust code (rust/ and mm/cs614/), no warnings.
# The MAINTAINERS reminder for new files is reported but not fatal.
. "$(dirname "$0")/lib.sh"

linux=$CS614_WORK/linux
build=$CS614_WORK/build-$FLAVOUR
[ -f "$build/.config" ] || die "no configured build for FLAVOUR=$FLAVOUR: run 'make build'"
fail=0

checkpatch() {
	local p out patches
	patches=$(series_patches)
	while read -r p; do
		out=$(in_root perl "$linux/scripts/checkpatch.pl" --strict --no-tree -q \
			--ignore FILE_PATH_CHANGES "$p" || true)
		if [ -n "$out" ]; then
			log "checkpatch: $(basename "$p")"
			echo "$out"
			fail=1
		fi
	done <<<"$patches"
}

rustfmt_check() {
	local files
	files=$(git -C "$linux" diff --name-only cs614-base HEAD -- '*.rs' | sed "s|^|$linux/|")
	# shellcheck disable=SC2086
	in_root rustfmt --check --edition 2021 --config-path "$linux/.rustfmt.toml" $files ||
		{ log "rustfmt: the files above need formatting"; fail=1; }
}

clippy() {
	in_root make -s -C "$linux" O="$build" LLVM=1 CLIPPY=1 -j"$JOBS" rust/ mm/cs614/ \
		>"$build.clippy.log" 2>&1 || { cat "$build.clippy.log"; fail=1; return 0; }
	if grep -q -E '^(warning|error)' "$build.clippy.log"; then
		cat "$build.clippy.log"
		fail=1
	fi
}

stage checkpatch checkpatch
stage rustfmt rustfmt_check
stage clippy clippy
[ "$fail" = 0 ] || die "static checks failed"
log "static checks clean"
