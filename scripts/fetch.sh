#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fetch Debian's linux-source-X.Y package ($BASE) through the toolchain root
# and unpack it once into $CS614_WORK/base, a git repository whose only
# commit (tag cs614-base) is the unpacked tree. Prints the package version
# and the tarball's sha256. The tree is renamed into place only when complete.
. "$(dirname "$0")/lib.sh"

base=$CS614_WORK/base
stamp=$CS614_WORK/base.stamp
if [ -f "$stamp" ] && [ -d "$base" ] && [ "$(sed -n 1p "$stamp")" = "$BASE" ]; then
	log "base source: $(sed -n 2p "$stamp")"
	exit 0
fi

dl=$CS614_WORK/download
rm -rf "$dl" "$base.new"
mkdir -p "$dl" "$base.new"

log "downloading $BASE"
in_root /bin/sh -c "cd '$dl' && apt-get update -qq && apt-get -o APT::Sandbox::User=root download -qq '$BASE'" ||
	die "cannot download Debian package '$BASE' (needs trixie-backports for linux-source-7.3); set BASE=linux-source-X.Y to another version"

deb=$(ls "$dl"/"$BASE"_*.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || die "no $BASE .deb after download"
version=$(dpkg-deb -f "$deb" Version 2>/dev/null || in_root dpkg-deb -f "$deb" Version)
in_root dpkg-deb -x "$deb" "$dl/x"
tarball=$(ls "$dl"/x/usr/src/linux-source-*.tar.* | head -n1)
[ -n "$tarball" ] || die "$BASE contains no source tarball"
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
log "$BASE $version: $(basename "$tarball") sha256 $sum"

log "unpacking"
tar -xf "$tarball" -C "$base.new" --strip-components=1 ||
	die "unpacking $(basename "$tarball") failed"
[ -f "$base.new/Makefile" ] && [ -d "$base.new/rust/kernel" ] ||
	die "$tarball does not look like a kernel tree with Rust support"
kver=$(make -s -C "$base.new" kernelversion 2>/dev/null || echo unknown)
desc="$BASE $version (kernel $kver) sha256 $sum"

log "committing the base tree"
(
	cd "$base.new"
	export GIT_AUTHOR_NAME=cs614 GIT_AUTHOR_EMAIL=cs614@localhost
	export GIT_COMMITTER_NAME=cs614 GIT_COMMITTER_EMAIL=cs614@localhost
	export GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" GIT_COMMITTER_DATE="2000-01-01T00:00:00Z"
	git init -q -b base
	git config core.autocrlf false
	git config gc.auto 0
	git add -A -f .
	git commit -q -m "Linux $kver ($BASE $version)" -m "tarball sha256: $sum"
	git tag cs614-base
) || die "committing the base tree failed"
printf '%s\n%s\n' "$BASE" "$desc" >"$stamp.new"
rm -rf "$base" "$dl" "$stamp" "$CS614_WORK/linux"
mv "$base.new" "$base"
mv "$stamp.new" "$stamp"
log "base source: $desc"
