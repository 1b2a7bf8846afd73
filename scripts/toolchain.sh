#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build (or reuse) the hermetic Debian trixie toolchain root.
#
# The root is rebuilt when its stamp differs from what this script would
# produce (package list, suite, script version). It is built in a temporary
# directory and renamed into place only when complete, so an interrupted run
# never leaves a root that looks usable.
. "$(dirname "$0")/lib.sh"

SUITE=trixie
# Everything the kernel build, the selftests (cs614's and mm's: libcap,
# libnuma) and the virtme-ng boot need.
# iproute2, udev, procps and systemd-sysv are required by virtme-ng's guest init.
# trace-cmd: cs614's trace events, in a guest started with "make shell".
# python3-ply, python3-git: scripts/spdxcheck.py, which checkpatch.pl runs in
# the tree ('make lint', 'make rfc') to check every SPDX-License-Identifier.
PACKAGES="
	rustc rust-src rustfmt rust-clippy bindgen
	clang lld llvm libclang-dev gcc libc6-dev make flex bison bc
	libelf-dev libssl-dev cpio kmod python3 perl rsync git xz-utils zstd ccache
	python3-ply python3-git
	qemu-system-x86 virtme-ng iproute2 udev procps systemd-sysv busybox-static
	ca-certificates libcap-dev libnuma-dev trace-cmd
"
STAMP="suite=$SUITE v=4 pkgs=$(echo $PACKAGES)"

if [ "$TOOLCHAIN" = host ]; then
	log "TOOLCHAIN=host: using the host's tools (checked by 'make rustavailable')"
	exit 0
fi

need_root "building the toolchain root"

if [ -f "$CS614_ROOT/.cs614-stamp" ] && [ "$(head -n1 "$CS614_ROOT/.cs614-stamp")" = "$STAMP" ]; then
	log "toolchain root up to date: $CS614_ROOT"
	exit 0
fi

if ! command -v debootstrap >/dev/null; then
	log "installing debootstrap on the host"
	apt-get update -qq || die "apt-get update failed on the host"
	apt-get install -y -qq debootstrap >/dev/null || die "cannot install debootstrap"
fi

# Refuse to delete anything that still has mounts in it.
safe_rm() {
	local d=$1
	[ -e "$d" ] || return 0
	if findmnt -rn -o TARGET | grep -q "^$d"; then
		die "$d still has mounts; refusing to remove it"
	fi
	rm -rf --one-file-system "$d"
}

mkdir -p "$CS614_CACHE"
new=$CS614_CACHE/root.new
safe_rm "$new"

log "debootstrap $SUITE into $new (a few minutes)"
# debootstrap mounts /proc etc. in the target itself: confine that to a
# private mount namespace too.
unshare --mount --propagation private -- \
	debootstrap --variant=minbase --components=main \
	"$SUITE" "$new" "$DEBIAN_MIRROR" >"$CS614_CACHE/debootstrap.log" 2>&1 ||
	die "debootstrap of $SUITE from $DEBIAN_MIRROR failed (see $CS614_CACHE/debootstrap.log)"

cat >"$new/etc/apt/sources.list" <<SRC
deb $DEBIAN_MIRROR $SUITE main
deb $DEBIAN_MIRROR $SUITE-updates main
deb $DEBIAN_MIRROR $SUITE-backports main
SRC
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
	>"$new/etc/apt/apt.conf.d/90cs614"

log "installing the toolchain packages"
final=$CS614_ROOT
CS614_ROOT=$new
# in_root needs a stamp to exist; give the half-built root a temporary one.
echo building >"$new/.cs614-stamp"
in_root /bin/sh -c "export DEBIAN_FRONTEND=noninteractive;
	apt-get update -qq && apt-get install -y -qq $(echo $PACKAGES) >/dev/null" ||
	die "package installation in the toolchain root failed"

# Pin what the kernel needs: rustc 1.85.x, bindgen 0.71.x, clang 19.
versions=$(in_root /bin/sh -c 'rustc --version; bindgen --version; clang --version | head -n1')
echo "$versions" | grep -q '^rustc 1\.85\.' || die "unexpected rustc: $versions"
echo "$versions" | grep -q '^bindgen 0\.71\.' || die "unexpected bindgen: $versions"
echo "$versions" | grep -q 'clang version 19\.' || die "unexpected clang: $versions"

printf '%s\n%s\n' "$STAMP" "$versions" >"$new/.cs614-stamp"
safe_rm "$final.old"
if [ -e "$final" ]; then mv "$final" "$final.old"; fi
mv "$new" "$final"
safe_rm "$final.old"
log "toolchain root ready:"
echo "$versions" | sed 's/^/[cs614]   /' >&2
