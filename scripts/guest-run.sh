#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs inside the virtme-ng guest: the installed cs614 kselftests, then the
# kernel log. Usage: guest-run.sh KSELFTEST_INSTALL_DIR OUTPUT_DIR tests|bench [TEST]
#                   guest-run.sh KSELFTEST_INSTALL_DIR OUTPUT_DIR mm MM_TEST...
install=$1
out=$2
mode=$3
shift 3
test=${1:-}

echo "cs614 guest: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
echo "cs614 guest: boot to first test $(cut -d' ' -f1 /proc/uptime)s"
cd "$install" || exit 1
# run_kselftest.sh reopens /dev/stdout for the tests' own output, so stdout
# must be a file opened for appending, or the two streams overwrite each other.
log=/tmp/cs614-tap.log
echo "cs614 guest: /dev/stdout -> $(readlink /dev/stdout || echo none)"
if [ "$(readlink /dev/stdout)" != /proc/self/fd/1 ]; then
	ln -sfn /proc/self/fd/1 /dev/stdout
fi
: >"$log"
# cgroup2 with the memory controller enabled for child cgroups, as a
# distribution boots: the memcg tests make their cgroups under it.
if ! awk '$2 == "/sys/fs/cgroup" && $3 == "cgroup2" { found = 1 } END { exit !found }' \
	/proc/mounts; then
	mount -t cgroup2 none /sys/fs/cgroup || echo "cs614 guest: cannot mount cgroup2"
fi
echo +memory >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
	echo "cs614 guest: cannot enable the memory controller"
# zswap in front of the zram swap device, so that the tests that swap pages
# out put them in zswap first.
if [ -w /sys/module/zswap/parameters/enabled ]; then
	echo Y >/sys/module/zswap/parameters/enabled
fi
if [ "$mode" = mm ]; then
	# Each mm selftest on its own, its totals (or exit status) recorded.
	cd mm || exit 1
	for t in "$@"; do
		echo "# mm/$t" >>"$log"
		timeout 1200 "./$t" >/tmp/cs614-mm.log 2>&1
		rc=$?
		cat /tmp/cs614-mm.log >>"$log"
		totals=$(grep -E '^# Totals: ' /tmp/cs614-mm.log | tail -n1 | sed 's/^# Totals: //')
		echo "$t: ${totals:-no totals} exit=$rc" >>/tmp/cs614-mm-results
	done
	cp /tmp/cs614-mm-results "$out/mm-results"
elif [ "$mode" = bench ]; then
	# Each benchmark twice in the same boot: cs614's trace events disabled,
	# then enabled (their overhead).
	events=/sys/kernel/tracing/events/cs614/enable
	[ -e "$events" ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
	for b in cs614/*_bench; do
		[ -z "$test" ] || [ "$b" = "cs614/$test" ] || continue
		echo "# $b" >>"$log"
		"./$b" >>"$log" 2>&1
		[ -e "$events" ] || continue
		echo "# $b+events (cs614 trace events enabled)" >>"$log"
		echo 1 >"$events"
		"./$b" >>"$log" 2>&1
		echo 0 >"$events"
	done
elif [ -n "$test" ]; then
	./run_kselftest.sh -t "cs614:$test" >>"$log" 2>&1
else
	./run_kselftest.sh >>"$log" 2>&1
fi
cat "$log"
dmesg >/tmp/cs614-dmesg.log
# Write the results to the shared directory in one go, once complete.
cp "$log" "$out/tap.log"
cp /tmp/cs614-dmesg.log "$out/dmesg.log"
echo done >"$out/finished"
