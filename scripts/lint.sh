#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Static checks of what this project changes in the kernel:
#  - scripts/checkpatch.pl --strict on every patch of the series and on the
#    overlays' files (the component's sources, the selftests and the
#    documentation), run from the top of the prepared tree so that the
#    checks that need the tree are on,
#  - rustfmt --check on every Rust file the series or the overlay touches, and on the
#    component as each of its earlier patches leaves it,
#  - a CLIPPY=1 build of the Rust code (rust/ and mm/cs614/), no warnings,
#  - make rustdoc, no warnings,
#  - a W=1 build of every C file the series touches, no warnings,
#  - Documentation/{mm,userspace-api}/cs614.rst through Sphinx (make htmldocs) if the root
#    has it, else through docutils if the host has it, else skipped.
# The MAINTAINERS reminder for new files is reported but not fatal.
. "$(dirname "$0")/lib.sh"

linux=$CS614_WORK/linux
build=$CS614_WORK/build-$FLAVOUR
[ -f "$build/.config" ] || die "no configured build for FLAVOUR=$FLAVOUR: run 'make build'"
fail=0

# checkpatch misreads the TRACE_EVENT() and EM()/EMe() macros of every
# include/trace/events/ header (include/trace/events/huge_memory.h gets the
# same remarks): for a patch adding one, those types are not reported.
TRACE_HEADER_TYPES=COMPLEX_MACRO,MACRO_ARG_UNUSED,TRAILING_SEMICOLON,CAMELCASE
TRACE_HEADER_TYPES+=,PARENTHESIS_ALIGNMENT,OPEN_ENDED_LINE

# run_checkpatch ARGS...: scripts/checkpatch.pl --strict -q ARGS from the
# top of the prepared tree, as upstream runs it: with the tree, the checks
# that read it are on (SPDX identifiers against LICENSES/ through
# scripts/spdxcheck.py, the CamelCase names include/ already defines, the
# MAINTAINERS status of the files, absolute paths in commit messages,
# <asm/...> includes that have a <linux/...> equivalent, commit ids quoted
# in commit messages). Paths in the tree are given relative to it.
run_checkpatch() {
	in_root /bin/sh -c 'cd "$1" && shift && exec perl scripts/checkpatch.pl --strict -q "$@"' \
		sh "$linux" "$@"
}

checkpatch() {
	local p out patches ignore
	patches=$(series_patches)
	while read -r p; do
		ignore=FILE_PATH_CHANGES
		if grep -q '^+++ b/include/trace/events/' "$p"; then
			ignore+=,$TRACE_HEADER_TYPES
		fi
		out=$(run_checkpatch --ignore "$ignore" "$p" || true)
		if [ -n "$out" ]; then
			log "checkpatch: $(basename "$p")"
			echo "$out"
			fail=1
		fi
	done <<<"$patches"
	# The overlays' C and reStructuredText files, which 'make rfc' folds into
	# the series. The selftests are user space: they use <stdint.h> types and
	# shifts where the kernel has BIT(); 'volatile' is the sig_atomic_t flag
	# of their SIGSEGV handler, which C requires to be volatile; SPACING is
	# checkpatch reading FIXTURE_DATA(name) *self as a multiplication. The
	# cover letter says so for the remarks 'make rfc' gets. They are checked
	# where the prepared tree has them, by their paths in it.
	local files docs component
	files=$(cd "$linux" && ls tools/testing/selftests/cs614/*.[ch])
	docs=$(cd "$CS614_TOP/rust-mm-cs614" && ls Documentation/*/*.rst)
	# The component's own sources (Rust, C, Makefile): line length, SPDX
	# identifiers, whitespace, as in the patches that carry them.
	component=$(cd "$linux" && ls mm/cs614/*)
	# shellcheck disable=SC2086
	out=$(run_checkpatch -f --ignore PREFER_KERNEL_TYPES,VOLATILE,BIT_MACRO,SPACING \
		$files || true)
	# shellcheck disable=SC2086
	out+=$(run_checkpatch -f $docs || true)
	# shellcheck disable=SC2086
	out+=$(run_checkpatch -f $component || true)
	if [ -n "$out" ]; then
		log "checkpatch: the overlays"
		echo "$out"
		fail=1
	fi
}

rustfmt_check() {
	local files
	files=$(git -C "$linux" diff --name-only cs614-base HEAD -- '*.rs' | sed "s|^|$linux/|")
	# shellcheck disable=SC2086
	in_root rustfmt --check --edition 2021 --config-path "$linux/.rustfmt.toml" $files ||
		{ log "rustfmt: the files above need formatting"; fail=1; }
	# The component as its earlier patches leave it (scripts/series-cut.py).
	local feature cuts=$CS614_WORK/series-cuts
	for feature in move promotion; do
		rm -rf "${cuts:?}/$feature"
		python3 "$CS614_TOP/scripts/series-cut.py" "$feature" \
			"$CS614_TOP/rust-mm-cs614/mm/cs614" "$cuts/$feature" || { fail=1; continue; }
		in_root rustfmt --check --edition 2021 --config-path "$linux/.rustfmt.toml" \
			"$cuts/$feature"/*.rs ||
			{ log "rustfmt: the $feature patch's sources need formatting"; fail=1; }
	done
}

clippy() {
	in_root make -s -C "$linux" O="$build" LLVM=1 CLIPPY=1 -j"$JOBS" rust/ mm/cs614/ \
		>"$build.clippy.log" 2>&1 || { cat "$build.clippy.log"; fail=1; return 0; }
	if grep -q -E '^(warning|error)' "$build.clippy.log"; then
		cat "$build.clippy.log"
		fail=1
	fi
}

rustdoc() {
	in_root make -s -C "$linux" O="$build" LLVM=1 -j"$JOBS" rustdoc \
		>"$build.rustdoc.log" 2>&1 || { cat "$build.rustdoc.log"; fail=1; return 0; }
	if grep -q -E '^(warning|error)' "$build.rustdoc.log"; then
		cat "$build.rustdoc.log"
		fail=1
	fi
}

w1() {
	local objs
	objs=$(git -C "$linux" diff --name-only cs614-base HEAD -- '*.c' |
		grep -v -e '^tools/' -e '^samples/' | sed -e 's|^rust/helpers/.*|rust/helpers/helpers.c|' \
		-e 's|\.c$|.o|' | sort -u)
	# shellcheck disable=SC2086
	in_root make -s -C "$linux" O="$build" LLVM=1 -j"$JOBS" W=1 $objs \
		>"$build.w1.log" 2>&1 || { cat "$build.w1.log"; fail=1; return 0; }
	if grep -q -E 'warning:' "$build.w1.log"; then
		cat "$build.w1.log"
		fail=1
	fi
}

docs() {
	local rst
	if in_root python3 -c 'import sphinx' 2>/dev/null; then
		in_root make -s -C "$linux" O="$build" SPHINXDIRS="mm userspace-api" htmldocs \
			>"$build.htmldocs.log" 2>&1 || { tail -n 20 "$build.htmldocs.log"; fail=1; }
		if grep -E 'cs614' "$build.htmldocs.log" | grep -q -i -E 'warning|error'; then
			grep -E 'cs614' "$build.htmldocs.log"
			fail=1
		fi
	elif python3 -c 'import docutils' 2>/dev/null; then
		for rst in "$linux"/Documentation/{mm,userspace-api}/cs614.rst; do
			python3 -m docutils --halt=warning --report=warning "$rst" /dev/null ||
				{ log "docs: $rst has reStructuredText warnings"; fail=1; }
		done
	else
		log "docs: neither Sphinx nor docutils available, the cs614 pages not checked"
	fi
}

stage checkpatch checkpatch
stage rustfmt rustfmt_check
stage clippy clippy
stage rustdoc rustdoc
stage w1 w1
stage docs docs
[ "$fail" = 0 ] || die "static checks failed"
log "static checks clean"
