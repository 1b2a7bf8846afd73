#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Configure and build the prepared tree into $CS614_WORK/build-$FLAVOUR.
# FLAVOUR=stock builds the unpatched base ($CS614_WORK/stock) instead.
#
# The configuration is allnoconfig + configs/base.config (+ configs/$FLAVOUR.config)
# merged by the kernel's own scripts/kconfig/merge_config.sh. It is generated
# in a scratch directory and copied over the build's .config only when it
# differs, so an unchanged configuration never triggers a rebuild.
. "$(dirname "$0")/lib.sh"

linux=$CS614_WORK/linux
build=$CS614_WORK/build-$FLAVOUR
[ -e "$linux/.git" ] || die "no prepared tree: run 'make prepare'"

fragments=("$CS614_TOP/configs/base.config")
case "$FLAVOUR" in
default) ;;
stock)
	# The unpatched base with the same configuration, for comparing the
	# kernel's own mm selftests ('make check-mm').
	linux=$CS614_WORK/stock
	if [ ! -e "$linux/.git" ]; then
		git -C "$CS614_WORK/base" worktree prune
		git -C "$CS614_WORK/base" worktree add -q --detach "$linux" cs614-base
	fi
	git -C "$linux" reset -q --hard cs614-base
	;;
*)
	[ -f "$CS614_TOP/configs/$FLAVOUR.config" ] ||
		die "unknown FLAVOUR=$FLAVOUR (no configs/$FLAVOUR.config)"
	fragments+=("$CS614_TOP/configs/$FLAVOUR.config")
	;;
esac

configure() {
	local scratch=$CS614_WORK/config-$FLAVOUR
	rm -rf "$scratch"
	mkdir -p "$scratch" "$build"
	in_root /bin/sh -c 'cd "$1" && shift && LLVM=1 scripts/kconfig/merge_config.sh -n -O "$@"' \
		sh "$linux" "$scratch" "${fragments[@]}" >"$scratch.log" 2>&1 ||
		{ tail -n 30 "$scratch.log" >&2; die "merge_config.sh failed"; }
	# Every option a fragment asks for must have survived the merge.
	local f line name want got bad=0
	for f in "${fragments[@]}"; do
		while read -r line; do
			case "$line" in
			CONFIG_*=*) name=${line%%=*} want=${line#*=} ;;
			*) continue ;;
			esac
			# The stock base has no cs614.
			if [ "$FLAVOUR" = stock ] && [ "$name" = CONFIG_CS614 ]; then continue; fi
			got=$(grep -E "^$name=|^# $name is not set" "$scratch/.config" || true)
			if [ "$want" = n ]; then
				case "$got" in "" | "# $name is not set") continue ;; esac
			elif [ "$got" = "$name=$want" ]; then
				continue
			fi
			log "config: $name=$want requested by $(basename "$f"), got '${got:-unset}'"
			bad=1
		done <"$f"
	done
	[ "$bad" = 0 ] || die "configuration does not satisfy the fragments (see $scratch.log)"
	if ! cmp -s "$scratch/.config" "$build/.config"; then
		cp "$scratch/.config" "$build/.config"
		log "configuration updated ($(grep -c '=y' "$build/.config") options set)"
	else
		log "configuration unchanged"
	fi
	rm -rf "$scratch"
}

kbuild() {
	if [ "$TOOLCHAIN" = host ]; then
		make -s -C "$linux" O="$build" LLVM=1 rustavailable ||
			die "TOOLCHAIN=host: the host's Rust toolchain is not usable for this kernel"
	fi
	in_root make -s -C "$linux" O="$build" LLVM=1 -j"$JOBS" olddefconfig
	# -s: only warnings and errors reach the terminal; the log keeps them too.
	in_root make -s -C "$linux" O="$build" LLVM=1 -j"$JOBS" bzImage 2>&1 |
		tee "$build.log" || die "kernel build failed (see $build.log)"
	[ -f "$build/arch/x86/boot/bzImage" ] || die "kernel build produced no bzImage"
	log "built $build/arch/x86/boot/bzImage ($(in_root make -s -C "$linux" O="$build" LLVM=1 kernelrelease))"
}

stage configure configure
stage build kbuild
