# SPDX-License-Identifier: GPL-2.0
#
# cs614: build, boot and test a Linux kernel with the cs614 Rust mm component.
#
#   make                 build the patched kernel (toolchain, source, tree, kernel)
#   make check           ... and run the cs614 kselftests in virtme-ng (TAP)
#   make check FLAVOUR=debug   the same with KASAN, lockdep and DEBUG_VM
#   make bench           ... and run the cs614 benchmarks in one boot
#   make lint            checkpatch --strict, rustfmt --check and CLIPPY=1 on our changes
#   make check-mm        mm's own selftests here and on the unpatched base: no regression
#   make shell           boot the built kernel with an interactive shell
#   make rfc             write the series as an upstream RFC to out/rfc/, quoting results of the
#                        same tree (check, check-mm, bench: run first if missing or stale;
#                        RFC_EVIDENCE=stale quotes older ones, for developers); rfc-check: build every step
#
# Variables: FLAVOUR=default|debug, TOOLCHAIN=root|host, BASE=linux-source-X.Y,
# CS614_CACHE=DIR (default ~/.cache/cs614), KVM=1, T=TEST, BOOT_TIMEOUT=SECONDS, JOBS=N.

SHELL := /bin/bash
export FLAVOUR TOOLCHAIN BASE CS614_CACHE KVM T BOOT_TIMEOUT JOBS BENCH MM_TESTS

.PHONY: all build check bench lint check-mm shell rfc rfc-check toolchain fetch prepare devtree export-patches clean distclean

all: build

build:
	@bash scripts/cs614.sh build

check:
	@bash scripts/cs614.sh check

bench:
	@bash scripts/cs614.sh bench

shell:
	@bash scripts/shell.sh

# mm's own selftests (MM_TESTS) on this kernel and on the stock base: same results?
check-mm:
	@bash scripts/cs614.sh check-mm

# checkpatch --strict, rustfmt and clippy on what the series changes.
lint:
	@bash scripts/cs614.sh lint

# The series as an upstream RFC in out/rfc/, with the results of check (both
# flavours), check-mm and bench of the same tree, which it makes first if they
# are missing or of another tree; rfc-check builds it step by step.
rfc: fetch
	@bash scripts/rfc.sh

rfc-check: rfc
	@bash scripts/rfc-check.sh

toolchain:
	@bash scripts/toolchain.sh

fetch: toolchain
	@bash scripts/fetch.sh

prepare: fetch
	@bash scripts/prepare.sh

# Developer tree: a git worktree with patches/series applied on branch 'dev'.
devtree: fetch
	@bash scripts/devtree.sh

export-patches:
	@bash scripts/export-patches.sh

# Remove the object directories (the toolchain and base source stay).
clean:
	@bash -c '. scripts/lib.sh && rm -rf "$$CS614_WORK"/build-* "$$CS614_WORK"/run-*'

# Remove everything in the cache, toolchain root included.
distclean:
	@bash scripts/distclean.sh
