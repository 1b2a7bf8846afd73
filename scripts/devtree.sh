#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Developer helper: create $CS614_WORK/dev, a git worktree of the base
# repository on branch 'dev' with patches/series applied, one commit each.
# Edit and commit there, then 'make export-patches' regenerates patches/.
. "$(dirname "$0")/lib.sh"

dev=$CS614_WORK/dev
base=$CS614_WORK/base
[ -f "$CS614_WORK/base.stamp" ] || die "no base source: run 'make fetch'"
if [ -e "$dev/.git" ]; then
	log "developer tree already exists: $dev (branch $(git -C "$dev" branch --show-current))"
	exit 0
fi
git -C "$base" worktree prune
git -C "$base" worktree add -q -B dev "$dev" cs614-base
patches=$(series_patches)
while read -r p; do
	git -C "$dev" am -q "$p" || die "patch $(basename "$p") does not apply"
done <<<"$patches"
log "developer tree ready: $dev"
