#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs inside the virtme-ng guest: the installed cs614 kselftests, then the
# kernel log. Usage: guest-run.sh KSELFTEST_INSTALL_DIR OUTPUT_DIR [TEST]
install=$1
out=$2
test=${3:-}

echo "cs614 guest: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
echo "cs614 guest: boot to first test $(cut -d' ' -f1 /proc/uptime)s"
cd "$install" || exit 1
if [ -n "$test" ]; then
	./run_kselftest.sh -t "cs614:$test"
else
	./run_kselftest.sh
fi 2>&1 | tee "$out/tap.log"
dmesg >"$out/dmesg.log"
echo done >"$out/finished"
