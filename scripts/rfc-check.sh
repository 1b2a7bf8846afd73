#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# 'make rfc-check': build the RFC branch (see rfc.sh) at every step of the
# series with the default configuration, incrementally in one object
# directory ($CS614_WORK/build-rfc): each step must build vmlinux without a
# new warning, and must compile the code it adds, not just build with it
# configured out:
#
# - from the step that adds the CS614 option on, CONFIG_CS614=y;
# - every C file the step adds or changes is compiled at that step (its
#   object, or rust/helpers/helpers.o for a Rust helper, is rebuilt), and
#   every function it adds without 'static' is in System.map;
# - a step that changes the kernel crate rebuilds rust/kernel.o, one that
#   changes mm/cs614/*.rs rebuilds mm/cs614/cs614.o;
# - each of the selftests' steps also builds the cs614 selftests as they are then.
#
# The steps that touch widely included headers (mm_types.h, the Rust
# bindings) rebuild most of the tree, so this takes long (about an hour on
# 2 cores): it is not part of CI.
#
#   RFC_FROM=N   start at step N (the earlier ones built before)
. "$(dirname "$0")/lib.sh"

rfc=$CS614_WORK/rfc
build=$CS614_WORK/build-rfc
[ -e "$rfc/.git" ] || die "no RFC branch: run 'make rfc'"
[ -f "$CS614_WORK/build-default/.config" ] || die "no default configuration: run 'make build'"
mkdir -p "$build"

# rebuilt PATH STEP SUBJECT: the object PATH was (re)built during the step.
rebuilt() {
	[ "$build/$1" -nt "$build/.step-start" ] ||
		die "step $2 does not compile $1: $3"
}

# compiled_own_code COMMIT STEP SUBJECT: the checks listed above.
compiled_own_code() {
	local c=$1 n=$2 subject=$3 f fn
	if git -C "$rfc" show "$c:mm/Kconfig" | grep -q '^config CS614$'; then
		grep -q '^CONFIG_CS614=y' "$build/.config" ||
			die "step $n has the CS614 option but does not build it: $subject"
	fi
	while read -r f; do
		case "$f" in
		rust/helpers/*.c) rebuilt rust/helpers/helpers.o "$n" "$subject" ;;
		rust/kernel/*.rs) rebuilt rust/kernel.o "$n" "$subject" ;;
		mm/cs614/*.rs) rebuilt mm/cs614/cs614.o "$n" "$subject" ;;
		tools/* | Documentation/* | samples/* | scripts/*) ;;
		*.c) rebuilt "${f%.c}.o" "$n" "$subject" ;;
		esac
	done < <(git -C "$rfc" diff --name-only --diff-filter=AM "$c~1" "$c")
	# Functions the step defines with external linkage, at column 0.
	while read -r fn; do
		grep -q -E " [Tt] $fn\$" "$build/System.map" ||
			die "step $n: $fn is not in vmlinux: $subject"
		log "  $fn: in vmlinux"
	done < <(git -C "$rfc" diff "$c~1" "$c" -- 'mm/*.c' 'kernel/*.c' |
		grep -E '^\+[a-z][a-z0-9_ ]*[ *]\**[a-z_][a-z0-9_]*\(' |
		grep -v -E '^\+(static|return|if|for|while|else|typedef)\b' |
		sed -E 's/^\+[^(]*[ *]\**([a-z_][a-z0-9_]*)\(.*/\1/')
	if git -C "$rfc" diff --name-only "$c~1" "$c" | grep -q '^tools/testing/selftests/cs614/'; then
		in_root make -s -C "$rfc" O="$build" LLVM=1 -j"$JOBS" TARGETS=cs614 \
			kselftest-install >"$build/step-$n-selftests.log" 2>&1 ||
			{ tail -n 40 "$build/step-$n-selftests.log" >&2; die "step $n: the selftests do not build"; }
		log "  the cs614 selftests build"
	fi
}

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
	touch "$build/.step-start"
	sleep 1
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
	compiled_own_code "$c" "$n" "$subject"
done <<<"$commits"
grep -q '^CONFIG_CS614=y' "$build/.config" || die "the last step did not build CONFIG_CS614"
git -C "$rfc" checkout -q cs614-rfc
log "all $total steps build"
