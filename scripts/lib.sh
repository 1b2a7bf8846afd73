# SPDX-License-Identifier: GPL-2.0
# Common helpers for the cs614 build scripts. Sourced, never run.
#
# Layout of the cache (outside the checkout, survives across clones):
#   $CS614_CACHE/root        hermetic Debian trixie toolchain root (debootstrap)
#   $CS614_CACHE/work/base   unpacked base kernel source (read only)
#   $CS614_CACHE/work/linux  git tree: base + patches/series + rust-mm-cs614 overlay
#   $CS614_CACHE/work/am     scratch git worktree used to build the commits
#   $CS614_CACHE/work/build-$FLAVOUR  O= object directory, kept across preparations
#
# The toolchain root sees the work directory and the checkout at the same
# absolute paths, so commands run identically inside and outside of it.

set -euo pipefail

CS614_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CS614_CACHE=${CS614_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cs614}
CS614_ROOT=$CS614_CACHE/root
CS614_WORK=$CS614_CACHE/work
TOOLCHAIN=${TOOLCHAIN:-root}
FLAVOUR=${FLAVOUR:-default}
BASE=${BASE:-linux-source-7.3}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
JOBS=${JOBS:-$(nproc)}
export CS614_TOP CS614_CACHE CS614_ROOT CS614_WORK TOOLCHAIN FLAVOUR BASE

log() { printf '[cs614] %s\n' "$*" >&2; }
die() { printf '[cs614] error: %s\n' "$*" >&2; exit 1; }

# stage NAME CMD...: run CMD, report how long it took and remember it in
# STAGE_TIMES.
STAGE_TIMES=()
stage() {
	local name=$1 start rc=0 t
	shift
	start=$(date +%s)
	log "stage $name: start"
	"$@" || rc=$?
	t=$(($(date +%s) - start))
	STAGE_TIMES+=("$(printf '%-12s %5ss' "$name" "$t")")
	log "stage $name: ${t}s (exit $rc)"
	return "$rc"
}

# series_patches: the patch files named by patches/series, in order, one
# path a line (blank lines and '#' comments skipped); fails on a missing one.
series_patches() {
	local p
	while read -r p; do
		case "$p" in '' | '#'*) continue ;; esac
		[ -f "$CS614_TOP/patches/$p" ] || die "patches/series names missing patch $p"
		echo "$CS614_TOP/patches/$p"
	done <"$CS614_TOP/patches/series"
}

# tree_id [FLAVOUR]: a stable hash of what the kernel FLAVOUR builds and
# tests is made of, as the checkout has it now (uncommitted changes
# included): the base source (base.stamp: package, version, tarball
# sha256), patches/series and the patches it names, the rust-mm-cs614/ and
# selftests/ overlays, configs/base.config and configs/$FLAVOUR.config, and
# the two scripts whose output is part of what runs: scripts/series-cut.py
# (it writes the component's sources) and scripts/guest-run.sh (the guest's
# set-up: cgroup2, zswap; how the tests run). Contents, paths and the
# executable bit count; git history, README.md and the other scripts do
# not. check.sh, check-mm.sh and the benchmarks write it next to their
# results (tree-id); 'make rfc' quotes only results of its own tree.
tree_id() {
	local flavour=${1:-$FLAVOUR} files f x
	[ -f "$CS614_WORK/base.stamp" ] || die "no base source: run 'make fetch'"
	files=$(
		cd "$CS614_TOP"
		echo patches/series
		series_patches | while read -r f; do echo "patches/${f##*/}"; done
		find rust-mm-cs614 selftests ! -type d
		echo configs/base.config
		if [ -f "configs/$flavour.config" ]; then echo "configs/$flavour.config"; fi
		echo scripts/series-cut.py
		echo scripts/guest-run.sh
	)
	{
		cat "$CS614_WORK/base.stamp"
		cd "$CS614_TOP"
		while read -r f; do
			if [ -x "$f" ]; then x=x; else x=-; fi
			printf '%s %s %s\n' "$(sha256sum <"$f" | cut -d' ' -f1)" "$x" "$f"
		done < <(LC_ALL=C sort -u <<<"$files")
	} | sha256sum | cut -c1-16
}

need_root() {
	[ "$(id -u)" = 0 ] || die "$1 needs root (debootstrap, chroot, unshare)"
}

# in_root CMD...: run CMD inside the toolchain root, or on the host when
# TOOLCHAIN=host. /proc, /sys and /dev are mounted only inside a private
# mount namespace, so nothing outlives the command, however it ends.
in_root() {
	if [ "$TOOLCHAIN" = host ]; then
		"$@"
		return
	fi
	[ -f "$CS614_ROOT/.cs614-stamp" ] || die "toolchain root missing: run 'make toolchain'"
	need_root "the toolchain root"
	mkdir -p "$CS614_WORK"
	unshare --mount --propagation private -- /bin/bash -euo pipefail -c '
		r=$1; shift
		mount -t proc proc "$r/proc"
		mount -t sysfs sysfs "$r/sys"
		mount --rbind /dev "$r/dev"
		mount -t tmpfs tmpfs "$r/run"
		mount -t tmpfs tmpfs "$r/tmp"
		# After the tmpfs mounts, which would hide mount points made under
		# /tmp or /run (a cache or checkout there).
		mkdir -p "$r$CS614_WORK" "$r$CS614_TOP"
		mount --bind "$CS614_WORK" "$r$CS614_WORK"
		mount --bind "$CS614_TOP" "$r$CS614_TOP"
		cp /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
		exec chroot "$r" /usr/bin/env -i \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
			CS614_TOP="$CS614_TOP" CS614_CACHE="$CS614_CACHE" \
			CS614_WORK="$CS614_WORK" FLAVOUR="$FLAVOUR" TOOLCHAIN=root \
			CCACHE_DIR="$CS614_WORK/ccache" \
			"$@"
	' cs614-root "$CS614_ROOT" "$@"
}

# tap_totals TAP_LOG: "PASS FAIL SKIP", the sums of the totals that
# kselftest_harness.h prints for each binary (an error counts as a failure).
tap_totals() {
	awk '
		/^# # Totals: / {
			for (i = 1; i <= NF; i++) {
				split($i, kv, ":")
				if (kv[1] == "pass") p += kv[2]
				if (kv[1] == "fail" || kv[1] == "error") f += kv[2]
				if (kv[1] == "skip") s += kv[2]
			}
		}
		END { print p + 0, f + 0, s + 0 }' "$1"
}

# vng_exec IMAGE RUNDIR COMMAND: boot IMAGE with virtme-ng (TCG unless
# KVM=1; 2 vCPUs, 4 GiB in two NUMA nodes of 2 GiB, the second without CPUs:
# a QEMU socket cannot span nodes), RUNDIR
# writable in the guest, run COMMAND there
# and give up after BOOT_TIMEOUT seconds. The console goes to stdout and to
# RUNDIR.console. Both streams pass through a pipe: QEMU reopens its stdio
# by path, which would truncate a log file they were redirected to.
vng_exec() {
	local image=$1 rundir=$2 cmd=$3 accel=--disable-kvm
	if [ "${KVM:-0}" = 1 ]; then accel=; fi
	# shellcheck disable=SC2086
	in_root timeout --kill-after=15 "${BOOT_TIMEOUT:-1200}" \
		vng --run "$image" $accel --disable-microvm --cpus 2 --memory 4G \
		--numa 2G,cpus=0-1 --numa 2G \
		--rwdir "$rundir" --exec "$cmd" </dev/null 2>&1 |
		tee "$rundir.console" || log "virtme-ng exited with status $?"
}
