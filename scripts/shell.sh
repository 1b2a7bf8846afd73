#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Boot the built kernel (FLAVOUR) in virtme-ng with an interactive shell.
# The checkout and the cache are visible in the guest at the same paths;
# the selftests are in $CS614_WORK/build-$FLAVOUR/kselftest/kselftest_install.
. "$(dirname "$0")/lib.sh"

image=$CS614_WORK/build-$FLAVOUR/arch/x86/boot/bzImage
[ -f "$image" ] || die "no kernel built for FLAVOUR=$FLAVOUR: run 'make build'"
accel=--disable-kvm
if [ "${KVM:-0}" = 1 ]; then accel=; fi
log "booting $image (TCG unless KVM=1); leave with 'exit' or Ctrl-D"
# shellcheck disable=SC2086
in_root vng --run "$image" $accel --disable-microvm --cpus 2 --memory 4G --rwdir "$CS614_WORK"
