#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Generate the prepared kernel tree $CS614_WORK/linux from the base commit,
# patches/series (one commit per entry, git am) and the rust-mm-cs614/ and
# selftests/ overlays (one commit).
#
# The commits are built in the base repository's own worktree; the prepared
# tree is a second worktree that is then moved to the new commit with
# 'git reset --hard', which rewrites only the files whose contents changed.
# Unchanged files keep their mtimes, so the kept O= object directory
# rebuilds incrementally.
. "$(dirname "$0")/lib.sh"

base=$CS614_WORK/base
linux=$CS614_WORK/linux
[ -f "$CS614_WORK/base.stamp" ] || die "no base source: run 'make fetch'"

export GIT_AUTHOR_NAME=cs614 GIT_AUTHOR_EMAIL=cs614@localhost
export GIT_COMMITTER_NAME=cs614 GIT_COMMITTER_EMAIL=cs614@localhost
g() { git -C "$base" "$@"; }

g am --abort >/dev/null 2>&1 || true
g checkout -q -f -B cs614-prepared cs614-base
g clean -q -fdx

n=0
patches=$(series_patches)
while read -r p; do
	g am -q --committer-date-is-author-date "$p" ||
		die "patch $(basename "$p") does not apply to $(sed -n 2p "$CS614_WORK/base.stamp")"
	n=$((n + 1))
done <<<"$patches"

cp -a "$CS614_TOP/rust-mm-cs614/." "$base/"
# The component's sources as the last of its patches leaves them (markers out).
python3 "$CS614_TOP/scripts/series-cut.py" all "$CS614_TOP/rust-mm-cs614/mm/cs614" \
	"$base/mm/cs614"
# The selftests as the last of their patches leaves them (Makefile markers out).
python3 "$CS614_TOP/scripts/series-cut.py" --selftests all "$CS614_TOP/selftests" \
	"$base/tools/testing/selftests/cs614"
g add -A -f .
if ! g diff --cached --quiet; then
	GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" GIT_COMMITTER_DATE="2000-01-01T00:00:00Z" \
		g commit -q -m "cs614: add the rust-mm-cs614 component and its selftests (overlay)"
fi
head=$(g rev-parse HEAD)

if [ ! -e "$linux/.git" ]; then
	rm -rf "$linux"
	g worktree prune
	g worktree add -q --detach "$linux" "$head"
else
	git -C "$linux" reset -q --hard "$head"
	git -C "$linux" clean -q -fdx
fi
log "prepared tree $linux: base + $n patches + overlay ($(git -C "$linux" rev-parse --short HEAD))"
