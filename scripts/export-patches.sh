#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Developer helper: regenerate patches/ and patches/series from a kernel git
# branch whose history starts at the base commit (default: the 'dev'
# worktree made by 'make devtree'). The overlay directories are not part of
# the series: commits there must only touch existing kernel files.
. "$(dirname "$0")/lib.sh"

dev=${DEV:-$CS614_WORK/dev}
[ -e "$dev/.git" ] || die "no developer tree at $dev: run 'make devtree'"
rm -f "$CS614_TOP"/patches/*.patch
git -C "$dev" format-patch -q --no-signature --zero-commit -N --patience \
	-o "$CS614_TOP/patches" cs614-base..HEAD
(cd "$CS614_TOP/patches" && ls -1 ./*.patch | sed 's|^\./||') >"$CS614_TOP/patches/series"
log "exported $(wc -l <"$CS614_TOP/patches/series") patches from $dev"
